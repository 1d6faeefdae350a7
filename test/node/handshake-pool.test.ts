/**
 * The pending-handshake pool on its own (src/node/handshake-pool.ts), with a
 * fake clock and fake connections: each rule of its theory of operation, and
 * the counters. The behaviour over real sockets is test/ws/handshake-fairness.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { HandshakePool, type HandshakePoolOptions, type PendingHead, trustedProxyList } from '../../src/node/handshake-pool.js'
import { emptyLimitStats } from '../../src/node/limits.js'

interface Fake {
  name: string
  address: string | undefined
}

/** A pool over fake connections; `expire` settles at once, as the server does. */
function fakePool(options: Partial<HandshakePoolOptions> = {}) {
  let clock = 0
  const lookups: string[] = []
  const exits: string[] = []
  const stats = emptyLimitStats()
  const pool: HandshakePool<Fake> = new HandshakePool<Fake>(
    { maxPending: 1024, perAddress: 2, timeout: 10_000, trusted: undefined, ...options },
    {
      addressOf: (fake) => {
        lookups.push(fake.name)
        return fake.address
      },
      expire: (fake, exit) => {
        exits.push(`${fake.name}:${exit}`)
        pool.settle()
      },
      now: () => clock,
    },
    stats,
  )
  const entries = new Map<string, PendingHead<Fake>>()
  return {
    pool,
    stats,
    lookups,
    exits,
    /** Admits `name` from `address`; true if admitted. */
    admit(name: string, address: string | undefined = name[0]): boolean {
      const entry = pool.admit({ name, address })
      if (entry) entries.set(name, entry)
      return entry !== undefined
    },
    /** The head of `name` is complete: it is now being decided. */
    headRead(name: string): void {
      pool.headDone(entries.get(name)!)
    },
    at(ms: number): void {
      clock = ms
    },
  }
}

describe('handshake pool', () => {
  test('Rule 6: no address is looked up until perAddress heads are being read; then each once', () => {
    const t = fakePool({ perAddress: 3 })
    t.admit('a1')
    t.admit('b1')
    t.admit('c1')
    assert.deepEqual(t.lookups, [])
    t.admit('a2')
    assert.deepEqual(t.lookups, ['a1', 'b1', 'c1', 'a2'])
    t.admit('b2')
    assert.deepEqual(t.lookups.length, 5)
    t.pool.stop()
  })

  test('Rules 2 and 3: over its share, an address displaces its own oldest once past the grace; a burst of fresh ones is admitted', () => {
    const t = fakePool({ perAddress: 2 })
    t.admit('a1')
    t.admit('a2')
    t.admit('b1')
    // a1 and a2 are fresh (the grace is a tenth of the 10 s timeout, 1 s): a burst, all admitted.
    assert.equal(t.admit('a3'), true)
    assert.deepEqual(t.exits, [])
    t.at(1_000)
    assert.equal(t.admit('a4'), true)
    assert.equal(t.admit('a5'), true)
    assert.deepEqual(t.exits, ['a1:displaced', 'a2:displaced'])
    assert.equal(t.stats.addressShareDisplaced, 2)
    assert.deepEqual([t.pool.reading, t.pool.pending], [4, 4])
    t.pool.stop()
  })

  test('trusted proxies (and IPv4-mapped forms of them) have no share', () => {
    const t = fakePool({ perAddress: 1, trusted: trustedProxyList(['10.0.0.0/8']) })
    t.admit('p1', '10.1.1.1')
    t.admit('p2', '::ffff:10.1.1.1')
    t.at(5_000)
    t.admit('p3', '10.1.1.1')
    t.admit('x1', '192.0.2.1')
    t.at(10_000 - 1)
    t.admit('x2', '::ffff:192.0.2.1')
    assert.deepEqual(t.exits, ['x1:displaced'])
    assert.equal(t.stats.addressShareDisplaced, 1)
    t.pool.stop()
  })

  test('perAddress 1: the address\'s only entry is displaced and its place kept for the newcomer', () => {
    const t = fakePool({ perAddress: 1 })
    t.admit('a1')
    t.at(2_000)
    t.admit('a2')
    t.at(4_000)
    t.admit('a3')
    assert.deepEqual(t.exits, ['a1:displaced', 'a2:displaced'])
    assert.equal(t.pool.reading, 1)
    t.pool.stop()
  })

  test('Rule 4: a full pool displaces the oldest head once it is 50 ms old (not Rule 2\'s second); before that, a newcomer is refused', () => {
    const t = fakePool({ maxPending: 3, perAddress: 0 })
    t.admit('a1')
    t.admit('b1')
    t.admit('c1')
    t.at(20)
    assert.equal(t.admit('d1'), false)
    t.at(60)
    assert.equal(t.admit('d1'), true)
    assert.deepEqual(t.exits, ['a1:displaced'])
    assert.deepEqual([t.stats.handshakesDisplaced, t.pool.pending], [1, 3])
    t.pool.stop()
  })

  test('Rule 4: a full pool gives way first at the address most over its share, then at the oldest head', () => {
    const t = fakePool({ maxPending: 5, perAddress: 2 })
    t.admit('b1')
    t.admit('a1')
    t.admit('a2')
    t.admit('a3') // a burst: over the share, admitted
    t.admit('c1')
    assert.equal(t.admit('d1'), true)
    assert.deepEqual(t.exits, ['a1:displaced'], 'a is the most over its share, whatever the age of its heads')
    assert.equal(t.admit('e0'), false, 'a is back at its share, and no head is 50 ms old yet')
    t.at(60)
    // a is back at its share: now the oldest head goes, whatever its address.
    assert.equal(t.admit('e1'), true)
    assert.deepEqual(t.exits, ['a1:displaced', 'b1:displaced'])
    assert.equal(t.stats.handshakesDisplaced, 2)
    t.pool.stop()
  })

  // Issue 13, found by an outsider: 100 addresses x 32 slow heads each (none over its share), reconnecting
  // as fast as they are closed, kept every place younger than Rule 2's second: real clients got 503.
  test('Rule 4: many addresses, none over its share, reconnecting fast: a newcomer still displaces the oldest', () => {
    const t = fakePool({ maxPending: 100, perAddress: 32 })
    let clock = 0
    for (let i = 0; i < 100; i++) t.admit(`n${i}`, `10.0.0.${i % 10}`)
    clock = 100
    // Attackers keep arriving every 5 ms (200 a second), each displacing the oldest: every place stays younger than 1 s.
    for (let i = 0; i < 400; i++) {
      clock += 5
      t.at(clock)
      assert.equal(t.admit(`n${100 + i}`, `10.0.0.${i % 10}`), true)
    }
    clock += 5
    t.at(clock)
    assert.equal(t.admit('real', '10.9.9.9'), true, 'the real client gets a place')
    t.pool.stop()
  })

  test('Rule 1: heads being decided are never displaced', () => {
    const t = fakePool({ maxPending: 2 })
    t.admit('a1')
    t.admit('b1')
    t.headRead('a1')
    t.headRead('b1')
    t.at(60_000)
    assert.equal(t.admit('c1'), false)
    assert.equal(t.pool.reserve(), false)
    t.pool.settle()
    assert.equal(t.pool.reserve(), true)
    assert.deepEqual(t.exits, [])
    t.pool.stop()
  })

  test('Rule 5: heads time out after the timeout, or a quarter of it while half the pool or more is pending', () => {
    const t = fakePool({ maxPending: 8, perAddress: 0, timeout: 10_000 })
    for (const name of ['a1', 'b1', 'c1']) t.admit(name)
    t.at(2_500)
    t.pool.expireDue()
    assert.deepEqual(t.exits, [], '3 of 8 pending: the full 10 s')
    t.admit('d1')
    t.pool.expireDue()
    // 4 of 8: a1 goes at 2.5 s; then 3 of 8 remain, and the others have their 10 s again.
    assert.deepEqual(t.exits, ['a1:timeout'])
    assert.deepEqual([t.stats.handshakeTimeouts, t.stats.pressureTimeouts], [1, 1])
    t.at(10_000)
    t.pool.expireDue()
    assert.deepEqual(t.exits, ['a1:timeout', 'b1:timeout', 'c1:timeout'])
    t.at(12_500)
    t.pool.expireDue()
    assert.deepEqual(t.exits.at(-1), 'd1:timeout')
    assert.deepEqual([t.stats.handshakeTimeouts, t.stats.pressureTimeouts, t.pool.pending, t.pool.reading], [4, 1, 0, 0])
    t.pool.stop()
  })

  test('trustedProxyList takes addresses and CIDR ranges, and refuses anything else', () => {
    const list = trustedProxyList(['127.0.0.1', '::1', '10.0.0.0/8', 'fd00::/8'])!
    assert.equal(list.check('10.2.3.4', 'ipv4'), true)
    assert.equal(list.check('fd12::1', 'ipv6'), true)
    assert.equal(list.check('11.0.0.1', 'ipv4'), false)
    for (const bad of ['localhost', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/8/1', '::1/129', '']) {
      assert.throws(() => trustedProxyList([bad]), TypeError, bad)
    }
  })
})
