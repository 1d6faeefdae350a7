// One large message in 16,131 fragments, under both default limits (100 MiB maxPayload,
// 16,384 fragments): a legitimate message, sent as fast as the server reads it, while
// the echo is read and checked (length and SHA-256). What counts is what the server
// holds to receive it: RSS growth against the payload.
import { againstTarget, describeCloses, MiB, sampleMemory, sendFragmented, serversFor, size, thin } from '../lib.mjs'

export const name = 'big-fragmented'
export const title = 'one large message in 16,131 fragments'

const FRAGMENTS = 16_131
const SETTINGS = {
  long: { total: 100 * MiB, maxMs: 120_000 },
  quick: { total: 100 * MiB, maxMs: 60_000 },
}
const SERVERS = [
  ['tether', 'port'],
  ['ws', 'port'],
]

export async function run({ quick, targets }) {
  const settings = quick ? SETTINGS.quick : SETTINGS.long
  const rows = []
  for (const [impl, mode] of serversFor(SERVERS, targets)) {
    const variant = `${size(settings.total)} in ${FRAGMENTS.toLocaleString('en')} fragments`
    rows.push({ attack: name, variant, ...(await againstTarget(impl, mode, {}, (server, before) => attack(server, before, settings))) })
  }
  return rows
}

async function attack(server, before, { total, maxMs }) {
  const memory = sampleMemory(server.pid)
  const result = await sendFragmented(server.port, { total, fragments: FRAGMENTS, maxMs, onProgress: (sent) => memory.mark({ sent }) })
  const { peak, samples } = memory.stop()
  const settled = await server.settle(500)
  const growth = peak - before
  return {
    rss: { before, peak, after: settled.rss },
    attackerBytes: result.sent,
    outcome: `${result.outcome}; RSS +${(growth / total).toFixed(2)}x the payload; server received ${size(settled.stats?.largest?.length)}`,
    measures: {
      growth,
      payload: total,
      fragments: FRAGMENTS,
      growthPerPayload: growth / total,
      retained: settled.rss - before,
      intact: result.intact,
      closeCode: result.close?.code,
      result,
      serverReceived: settled.stats?.largest,
      closes: describeCloses(settled.stats),
      limitStats: settled.stats?.limitStats,
      samples: thin(samples),
    },
  }
}
