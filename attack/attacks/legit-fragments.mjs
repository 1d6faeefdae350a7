// Legitimate fragmentation, as Autobahn's case 9.7/9.8 family sends it: a 4 MiB binary
// message in 64-byte fragments (65,536 frames) and in 256-byte fragments (16,384 frames).
// The outcome is either "accepted, echoed intact" or the close code the server chose;
// a fix for the fragment attacks must keep what it should of these.
import { againstTarget, describeCloses, MiB, sampleMemory, sendFragmented, serversFor } from '../lib.mjs'

export const name = 'legit-fragments'
export const title = 'Autobahn-style fragmentation of a 4 MiB message'

const TOTAL = 4 * MiB
const FRAGMENT_SIZES = [64, 256]
const MAX_MS = 60_000
const SERVERS = [
  ['tether', 'port'],
  ['ws', 'port'],
]

export async function run({ targets }) {
  const rows = []
  for (const fragmentSize of FRAGMENT_SIZES) {
    const fragments = TOTAL / fragmentSize
    for (const [impl, mode] of serversFor(SERVERS, targets)) {
      const variant = `4 MiB in ${fragmentSize}-byte fragments (${fragments.toLocaleString('en')} frames)`
      rows.push({ attack: name, variant, fragmentSize, ...(await againstTarget(impl, mode, {}, (server, before) => attack(server, before, fragments))) })
    }
  }
  return rows
}

async function attack(server, before, fragments) {
  const memory = sampleMemory(server.pid)
  const result = await sendFragmented(server.port, { total: TOTAL, fragments, maxMs: MAX_MS })
  const { peak } = memory.stop()
  const settled = await server.settle(500)
  return {
    rss: { before, peak, after: settled.rss },
    attackerBytes: result.sent,
    outcome: result.outcome,
    measures: {
      growth: peak - before,
      fragments,
      intact: result.intact,
      closeCode: result.close?.code,
      closeReason: result.close?.reason,
      result,
      closes: describeCloses(settled.stats),
      limitStats: settled.stats?.limitStats,
    },
  }
}
