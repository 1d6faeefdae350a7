// Continuation flood: a binary message is started and never ended; what follows is an
// endless stream of continuation frames with empty payloads (6 bytes each on the wire)
// or 1-byte payloads (7 bytes each). The message never grows past a few MiB, so
// maxPayload does not stop it: only a limit on frames (or on work per message) does.
// Recorded: the server's RSS against the bytes sent, and how it ended.
import { againstTarget, clientFrame, describeCloses, frameSize, MiB, OPCODE, rawUpgrade, repeatFrames, sampleMemory, serversFor, size, thin, watchSocket, writeWithBackpressure } from '../lib.mjs'

export const name = 'continuation-flood'
export const title = 'endless continuation fragments'

const SETTINGS = {
  long: { cap: 64 * MiB, maxMs: 60_000, stallMs: 5_000 },
  quick: { cap: 8 * MiB, maxMs: 15_000, stallMs: 3_000 },
}
const PAYLOADS = [0, 1]
/** Frames per write: about 64 KiB. */
const FRAMES_PER_WRITE = 10_000
const SERVERS = [
  ['tether', 'port'],
  ['ws', 'port'],
]

export async function run({ quick, targets }) {
  const settings = quick ? SETTINGS.quick : SETTINGS.long
  const rows = []
  for (const payloadSize of PAYLOADS) {
    for (const [impl, mode] of serversFor(SERVERS, targets)) {
      const variant = `${payloadSize === 0 ? 'empty' : `${payloadSize}-byte`} continuations up to ${size(settings.cap)}`
      rows.push({ attack: name, variant, payloadSize, ...(await againstTarget(impl, mode, {}, (server, before) => attack(server, before, settings, payloadSize))) })
    }
  }
  return rows
}

async function attack(server, before, { cap, maxMs, stallMs }, payloadSize) {
  const memory = sampleMemory(server.pid)
  const { socket, status, rest, requestBytes } = await rawUpgrade(server.port, { path: '/continuation-flood' })
  if (status !== 101) {
    socket.destroy()
    return { outcome: `upgrade refused: HTTP ${status}`, rss: { before, peak: memory.stop().peak, after: server.rss() } }
  }
  const payload = Buffer.alloc(payloadSize, 0x78)
  const watch = watchSocket(socket, rest, { hash: false })
  const first = clientFrame({ opcode: OPCODE.binary, fin: false, payload })
  const chunk = repeatFrames(FRAMES_PER_WRITE, { opcode: OPCODE.continuation, fin: false, payload })
  const started = performance.now()
  socket.write(first)
  let frames = 1
  let stopReason = 'byte cap'
  let closedAt
  for (;;) {
    const flooded = socket.bytesWritten - requestBytes
    memory.mark({ sent: flooded })
    if (watch.reader.close || socket.destroyed) {
      stopReason = watch.reader.close ? `close frame ${watch.reader.close.code}` : `connection ${watch.ended ?? 'ended'}`
      closedAt = { bytes: flooded, frames, ms: Math.round(performance.now() - started) }
      break
    }
    if (flooded >= cap) break
    if (performance.now() - started > maxMs) {
      stopReason = 'time cap'
      break
    }
    const ok = await writeWithBackpressure(socket, chunk, stallMs)
    frames += FRAMES_PER_WRITE
    if (!ok && !watch.reader.close && !socket.destroyed) {
      stopReason = `stalled: no drain for ${stallMs / 1000} s`
      break
    }
  }
  const sent = socket.bytesWritten
  const during = await server.stats(5_000)
  socket.destroy()
  const { peak, samples } = memory.stop()
  const settled = await server.settle(500)
  const growth = peak - before
  const serverClosed = watch.reader.close !== undefined || closedAt !== undefined
  const outcome = serverClosed
    ? `server closed${watch.reader.close ? ` ${watch.reader.close.code}` : ` (${watch.ended})`} within ${size(closedAt?.bytes ?? sent)} (~${(closedAt?.frames ?? frames).toLocaleString('en')} frames handed to the socket)`
    : `still open at ${stopReason}: ${size(sent)}, ${frames.toLocaleString('en')} frames`
  return {
    rss: { before, peak, after: settled.rss },
    attackerBytes: sent,
    outcome: `${outcome}; RSS +${size(growth)}`,
    measures: {
      growth,
      growthPerByteSent: growth / sent,
      serverClosed,
      closeCode: watch.reader.close?.code,
      closedAt,
      stopReason,
      framesSent: frames,
      frameBytes: frameSize(payloadSize),
      retained: settled.rss - before,
      messageBytesWhileOpen: during?.memory,
      closes: describeCloses(settled.stats),
      limitStats: settled.stats?.limitStats,
      rssBySent: thin(samples.filter((s) => s.sent !== undefined).map((s) => ({ sent: s.sent, rss: s.rss }))),
    },
  }
}
