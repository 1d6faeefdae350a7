/**
 * The hub's apps on their own: the live-scores model (a seeded generator and
 * a Poisson-like goal model; issue 16: FNV-1a over near-identical keys made
 * 70% of matches end 0-0 and 10.8% have ten goals or more).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { fullTime, matchAt, seededRandom } from '../../src/hub/apps/scores.js'

describe('live scores', () => {
  test('12,000 simulated matches look like football: about 2.7 goals a match, about 7% 0-0, ten goals a rarity', () => {
    const matches = 12_000
    const totals: number[] = []
    for (let i = 0; i < matches; i++) {
      const match = fullTime(i % 6, 1_000 + Math.floor(i / 6))
      assert.equal(match.status, 'full-time')
      totals.push(match.homeScore + match.awayScore)
    }
    const mean = totals.reduce((a, b) => a + b, 0) / matches
    const share = (predicate: (goals: number) => boolean) => totals.filter(predicate).length / matches
    assert.ok(mean > 2.5 && mean < 2.9, `mean ${mean.toFixed(2)} goals`)
    assert.ok(share((g) => g === 0) > 0.04 && share((g) => g === 0) < 0.1, `0-0 in ${(share((g) => g === 0) * 100).toFixed(1)}%`)
    assert.ok(share((g) => g >= 10) < 0.003, `ten or more in ${(share((g) => g >= 10) * 100).toFixed(2)}%`)
    // Poisson(2.7): P(0) 6.7%, P(1) 18.1%, P(2) 24.4%, P(3) 22.0%; each within a few points.
    for (const [goals, expected] of [[1, 0.181], [2, 0.244], [3, 0.22]] as const) {
      const observed = share((g) => g === goals)
      assert.ok(Math.abs(observed - expected) < 0.03, `${goals} goals: ${(observed * 100).toFixed(1)}%, Poisson says ${expected * 100}%`)
    }
  })

  test('every node computes the same match at the same second; a score never goes down during a match', () => {
    const start = 1_765_000_000
    for (let index = 0; index < 6; index++) {
      let previous = matchAt(index, start)
      for (let second = 1; second < 200; second++) {
        const now = matchAt(index, start + second)
        assert.deepEqual(matchAt(index, start + second), now, 'deterministic')
        if (now.minute > previous.minute) {
          assert.ok(now.homeScore >= previous.homeScore && now.awayScore >= previous.awayScore)
        }
        previous = now
      }
    }
  })

  test('the generator is uniform: chi-square over ten buckets of 100,000 draws below the 99.9% quantile (27.9)', () => {
    for (const seed of [1, 42, 2 ** 31]) {
      const random = seededRandom(seed)
      const buckets = new Array<number>(10).fill(0)
      for (let i = 0; i < 100_000; i++) buckets[Math.floor(random() * 10)]!++
      const chiSquare = buckets.reduce((sum, count) => sum + (count - 10_000) ** 2 / 10_000, 0)
      assert.ok(chiSquare < 27.9, `seed ${seed}: ${buckets} (chi-square ${chiSquare.toFixed(1)})`)
    }
  })
})

describe('chat across nodes (issue 16)', () => {
  test('the same nickname accepted on two nodes at once: exactly one keeps it, the other is told and leaves; nobody else sees it vanish', async () => {
    const { createHub } = await import('../../src/hub/index.js')
    const { MemoryBroker } = await import('../../src/pubsub/index.js')
    const { WebSocket: WsClient } = await import('ws')
    const { Inbox, opened, until, delay } = await import('../helpers/net.js')
    const broker = new MemoryBroker()
    const hubs = await Promise.all([0, 1].map(() => createHub({ port: 0, log: () => {}, backplane: { kind: 'custom', backplane: broker.backplane() } })))
    try {
      const open = async (hub: (typeof hubs)[number]) => {
        const ws = await opened(new WsClient(`${hub.url.replace('http', 'ws')}/chat/ws`))
        return { ws, inbox: new Inbox(ws) }
      }
      const events = (inbox: InstanceType<typeof Inbox>) => inbox.messages.map((m) => JSON.parse(String(m.data)))
      // A witness on node 0 first.
      const witness = await open(hubs[0]!)
      witness.ws.send(JSON.stringify({ type: 'join', room: 'race', nick: 'witness' }))
      await until(() => events(witness.inbox).some((e) => e.type === 'welcome'))
      const [a, b] = [await open(hubs[0]!), await open(hubs[1]!)]
      a.ws.send(JSON.stringify({ type: 'join', room: 'race', nick: 'ada' }))
      b.ws.send(JSON.stringify({ type: 'join', room: 'race', nick: 'ada' }))
      // Either both were accepted at once and the later gives way, or the second was refused outright.
      const taken = (inbox: InstanceType<typeof Inbox>) => events(inbox).some((e) => e.type === 'error' && /ada is taken/.test(e.message))
      await until(() => taken(a.inbox) || taken(b.inbox))
      await delay(200)
      const lost = [a, b].filter(({ inbox }) => taken(inbox))
      assert.equal(lost.length, 1, 'exactly one gave way')
      const kept = [a, b].find((side) => !lost.includes(side))!
      assert.ok(events(kept.inbox).some((e) => e.type === 'welcome') && !events(kept.inbox).some((e) => e.type === 'left'))
      // The witness saw ada join once, and never leave: ada is still there.
      const seen = events(witness.inbox).filter((e) => e.nick === 'ada').map((e) => e.type)
      assert.deepEqual(seen, ['join'])
      for (const { ws } of [witness, a, b]) ws.terminate()
    } finally {
      for (const hub of hubs) await hub.close()
    }
  })
})
