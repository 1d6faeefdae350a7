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
