/**
 * The history stores against one contract (history.ts): in-process, Redis
 * Streams (a real redis-server) and NATS JetStream (a real `nats-server -js`),
 * each with two nodes attached, as a cluster would be.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { HistoryEntry, HistoryEvent, HistoryFeed, HistoryPolicy, HistoryStore } from '../../src/pubsub/index.js'
import { MemoryHistory } from '../../src/pubsub/index.js'
import { RedisHistory } from '../../src/pubsub/redis.js'
import { JetStreamHistory } from '../../src/pubsub/nats.js'
import { type Broker, startBroker } from '../helpers/brokers.js'
import { until } from '../helpers/net.js'

const cleanups: Array<() => Promise<void>> = []
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
})

const POLICY: HistoryPolicy = { maxCount: 100, maxAge: 60_000 }
const text = (value: string) => ({ data: new TextEncoder().encode(value), binary: false })
const texts = (entries: HistoryEntry[]) => entries.map((entry) => new TextDecoder().decode(entry.data))

/** A feed that records what a store tells its node. */
class Recorder implements HistoryFeed {
  readonly heard: Array<{ topic: string; epoch: string; offset: number; text: string }> = []
  readonly events: HistoryEvent[] = []
  resyncs = 0
  entries(topic: string, epoch: string, entries: HistoryEntry[]): void {
    for (const entry of entries) this.heard.push({ topic, epoch, offset: entry.offset, text: new TextDecoder().decode(entry.data) })
  }
  resync(): void {
    this.resyncs++
  }
  event(event: HistoryEvent): void {
    this.events.push(event)
  }
}

interface Backend {
  /** Two nodes' stores over the same history. */
  pair(): Promise<[HistoryStore, HistoryStore]>
  /** Loses all history, as a broker restarted without its data. */
  lose(): Promise<void>
  broker?: Broker
}

const backends: Array<[string, () => Promise<Backend>]> = [
  ['memory', async () => {
    const shared = new MemoryHistory()
    return { pair: async () => [shared, shared], lose: async () => shared.clear() }
  }],
  ['redis', async () => {
    const broker = await startBroker('redis')
    cleanups.push(() => broker.stop())
    const connect = async () => {
      const store = await RedisHistory.connect({ url: broker.url })
      cleanups.push(() => store.close())
      return store
    }
    return {
      broker,
      pair: async () => [await connect(), await connect()],
      lose: async () => {
        await broker.stop()
        await broker.start()
      },
    }
  }],
  ['jetstream', async () => {
    const broker = await startBroker('nats', { jetstream: true })
    cleanups.push(() => broker.stop())
    const connect = async () => {
      const store = await JetStreamHistory.connect({ servers: broker.url })
      cleanups.push(() => store.close())
      return store
    }
    return {
      broker,
      pair: async () => [await connect(), await connect()],
      lose: async () => {
        await broker.stop()
        await broker.start({ wipe: true })
      },
    }
  }],
]

for (const [name, make] of backends) {
  describe(`history store contract: ${name}`, { timeout: 60_000 }, () => {
    let backend: Backend
    let one: HistoryStore
    let two: HistoryStore
    const feeds = [new Recorder(), new Recorder()]
    before(async () => {
      backend = await make()
      ;[one, two] = await backend.pair()
      one.attach(feeds[0]!)
      two.attach(feeds[1]!)
    })

    test(`${name}: appends get offsets 1, 2, 3… of one epoch, from either node, and both nodes hear them in order`, async () => {
      const a = await one.append('t1', [text('a'), text('b')], POLICY)
      const b = await two.append('t1', [text('c')], POLICY)
      const c = await one.append('t1', [text('d')], POLICY)
      assert.deepEqual([...a.offsets, ...b.offsets, ...c.offsets], [1, 2, 3, 4])
      assert.equal(new Set([a.epoch, b.epoch, c.epoch]).size, 1)
      for (const feed of feeds) {
        await until(() => feed.heard.filter((heard) => heard.topic === 't1').length === 4)
        const heard = feed.heard.filter((entry) => entry.topic === 't1')
        assert.deepEqual(heard.map((entry) => [entry.offset, entry.text, entry.epoch]), [[1, 'a', a.epoch], [2, 'b', a.epoch], [3, 'c', a.epoch], [4, 'd', a.epoch]])
      }
      const read = await two.read('t1', 1, POLICY)
      assert.equal(read.epoch, a.epoch)
      assert.equal(read.top, 4)
      assert.deepEqual(read.entries.map((entry) => entry.offset), [2, 3, 4])
      assert.deepEqual(texts(read.entries), ['b', 'c', 'd'])
      assert.deepEqual((await one.read('t1', 4, POLICY)).entries, [])
    })

    test(`${name}: binary payloads and keys come back as they went`, async () => {
      await one.append('t2', [{ data: Uint8Array.of(0, 1, 255), binary: true, key: 'k1' }], POLICY)
      const [entry] = (await two.read('t2', undefined, POLICY)).entries
      assert.deepEqual([...entry!.data], [0, 1, 255])
      assert.equal(entry!.binary, true)
      assert.ok(entry!.time > Date.now() - 60_000 && entry!.time <= Date.now() + 60_000, 'a time from a clock near ours')
    })

    test(`${name}: a key already appended is answered with its offset and not appended again (Rule 2)`, async () => {
      const first = await one.append('t3', [{ ...text('x'), key: 'same' }, { ...text('y'), key: 'other' }], POLICY)
      const again = await two.append('t3', [{ ...text('x'), key: 'same' }, { ...text('z') }], POLICY)
      assert.deepEqual(first.offsets, [1, 2])
      assert.deepEqual(again.offsets, [1, 3])
      assert.deepEqual(texts((await one.read('t3', undefined, POLICY)).entries), ['x', 'y', 'z'])
    })

    test(`${name}: a read gives at most the newest maxCount entries after the offset asked for`, async () => {
      const small = { maxCount: 3, maxAge: 60_000 }
      for (let i = 1; i <= 10; i++) await one.append('t4', [text(String(i))], small)
      const all = await two.read('t4', undefined, small)
      assert.equal(all.top, 10)
      assert.deepEqual(all.entries.map((entry) => entry.offset).slice(-3), [8, 9, 10])
      assert.ok(all.entries.length <= 3, `${all.entries.length} entries`)
      const after = await two.read('t4', 2, small)
      assert.deepEqual(after.entries.map((entry) => entry.offset), [8, 9, 10])
    })

    test(`${name}: a topic never published has an epoch and offset 0 to stand at`, async () => {
      const read = await one.read('never', undefined, POLICY)
      assert.equal(read.top, 0)
      assert.deepEqual(read.entries, [])
    })

    test(`${name}: history lost at the broker gives a new epoch (so old positions cannot match)`, async () => {
      const before = await one.append('t5', [text('old')], POLICY)
      await backend.lose()
      // Bounded: the stores reconnect on their own.
      let after: { epoch: string; offsets: number[] } | undefined
      for (let attempt = 0; attempt < 100 && after === undefined; attempt++) {
        after = await two.append('t5', [text('new')], POLICY).catch(async () => {
          await new Promise((resolve) => setTimeout(resolve, 100))
          return undefined
        })
      }
      assert.ok(after, 'appends work again after the broker came back')
      assert.notEqual(after.epoch, before.epoch)
      assert.deepEqual(after.offsets, [1])
      if (backend.broker !== undefined) {
        // Each node found its feed live again and asked for a resync.
        await until(() => feeds.every((feed) => feed.resyncs > 0), 20_000, 'resyncs')
      }
    })
  })
}

describe('history stores connect loudly', { timeout: 30_000 }, () => {
  test('JetStream on a server without JetStream: rejects saying so; Redis that refuses: rejects naming the URL', async () => {
    const plain = await startBroker('nats')
    cleanups.push(() => plain.stop())
    await assert.rejects(JetStreamHistory.connect({ servers: plain.url }), /JetStream is not enabled on that server \(run nats-server -js\)/)
    const refused = await startBroker('redis')
    await refused.stop()
    await assert.rejects(RedisHistory.connect({ url: refused.url, connectTimeout: 2_000 }), new RegExp(`Could not connect the Redis history to ${refused.url.replace(/[./]/g, '\\$&')}`))
  })
})

describe('the in-process store is bounded in bytes (maxBytes)', () => {
  test('past maxBytes the least recently appended topics go (a later use starts a new epoch); the one just appended to stays', async () => {
    const store = new MemoryHistory({ maxBytes: 10_000 })
    const feed = new Recorder()
    store.attach(feed)
    const kilobyte = (value: string) => ({ data: new TextEncoder().encode(value.padEnd(1000, '.')), binary: false })
    const first = store.appendNow('old', [kilobyte('a'), kilobyte('b')], POLICY)
    store.appendNow('kept', [kilobyte('c')], POLICY)
    assert.equal(store.size, 2)
    // 2 + 1 + 7 entries of about 1 KB: past 10,000 bytes with the last, and 'old' is the least recently appended.
    for (let i = 0; i < 7; i++) store.appendNow('busy', [kilobyte(`d${i}`)], POLICY)
    assert.ok(store.bytes <= 10_000, `${store.bytes} bytes kept`)
    const old = await store.read('old', undefined, POLICY)
    assert.notEqual(old.epoch, first.epoch, 'its history was lost, and the epoch says so')
    assert.deepEqual(old.entries, [])
    assert.equal((await store.read('busy', undefined, POLICY)).entries.length, 7)
    // One topic alone over the limit keeps what its policy keeps: nothing else is left to drop.
    const alone = new MemoryHistory({ maxBytes: 2_000 })
    for (let i = 0; i < 5; i++) alone.appendNow('big', [kilobyte(`e${i}`)], POLICY)
    assert.equal((await alone.read('big', undefined, POLICY)).entries.length, 5)
    // Trimmed entries are no longer counted.
    const trimmed = new MemoryHistory({ maxBytes: 1_000_000 })
    for (let i = 0; i < 50; i++) trimmed.appendNow('t', [kilobyte(`f${i}`)], { maxCount: 10, maxAge: 60_000 })
    assert.ok(trimmed.bytes < 11 * 1_100, `${trimmed.bytes} bytes for 10 retained entries`)
  })
})

// Found by the browser test: two appends of one topic in flight at once could be stored out of order (Redis
// ran a script sent by EVALSHA before an earlier one resent as EVAL after NOSCRIPT), so a publisher's m3 and
// m4 got offsets 4 and 3. The engine keeps one append per topic in flight; later publishes gather meanwhile.
describe('the delivery engine and a store that may reorder concurrent appends', () => {
  test('offsets follow publish order: one append per topic in flight, the rest batched behind it', async () => {
    const { Delivery } = await import('../../src/pubsub/index.js')
    const inner = new MemoryHistory()
    const held: Array<() => void> = []
    let inFlight = 0
    let mostInFlight = 0
    const store: HistoryStore = {
      kind: 'reordering',
      attach: (feed) => inner.attach(feed),
      append(topic, requests, policy) {
        inFlight++
        mostInFlight = Math.max(mostInFlight, inFlight)
        return new Promise((resolve, reject) => {
          held.push(() => {
            inFlight--
            try {
              resolve(inner.appendNow(topic, requests, policy))
            } catch (error) {
              reject(error)
            }
          })
          // Whatever is in flight completes newest first, as a store may run concurrent appends.
          setTimeout(() => {
            while (held.length > 0) held.pop()!()
          }, 5)
        })
      },
      read: (topic, after, policy) => inner.read(topic, after, policy),
      close: () => inner.close(),
    }
    const delivery = new Delivery({ store, policyFor: () => POLICY, hooks: { deliver() {}, gap() {} } })
    cleanups.push(() => delivery.close())
    const positions: Array<Promise<{ offset: number }>> = []
    for (let n = 1; n <= 40; n++) {
      positions.push(delivery.publish('ordered', text(`m${n}`)))
      if (n % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    }
    const offsets = (await Promise.all(positions)).map((position) => position.offset)
    assert.deepEqual(offsets, Array.from({ length: 40 }, (_, i) => i + 1))
    assert.equal(mostInFlight, 1)
    const { entries } = await inner.read('ordered', undefined, POLICY)
    assert.deepEqual(texts(entries), Array.from({ length: 40 }, (_, i) => `m${i + 1}`))
  })
})
