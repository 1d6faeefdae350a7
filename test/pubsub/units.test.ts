/**
 * The pub/sub pieces on their own: the topic registry, slow-consumer
 * policies and conflation, the backplane envelope, and the hub with plain
 * object subscribers (no sockets).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  type BackplaneEvent,
  type BackplaneMessage,
  EnvelopeBackplane,
  LatestPending,
  MemoryBroker,
  type Subscriber,
  TopicHub,
  TopicRegistry,
  decodeEnvelope,
  encodeBatch,
  encodeEnvelope,
  splitBatch,
  kCloseSlow,
  kDeliver,
  kHeld,
  kWatchWritable,
  resolveTopicPolicy,
  DEFAULT_TOPIC_POLICY,
} from '../../src/pubsub/index.js'
import { delay, until } from '../helpers/net.js'

describe('TopicRegistry', () => {
  test('subscribe, unsubscribe and counts, both directions', () => {
    const registry = new TopicRegistry<object>()
    const a = {}
    const b = {}
    assert.equal(registry.subscribe(a, 'x'), true)
    assert.equal(registry.subscribe(a, 'x'), false, 'a second subscribe is a no-op')
    registry.subscribe(a, 'y')
    registry.subscribe(b, 'x')
    assert.equal(registry.subscriberCount('x'), 2)
    assert.deepEqual(registry.topicsOf(a), ['x', 'y'])
    assert.deepEqual(registry.topics.sort(), ['x', 'y'])
    assert.equal(registry.isSubscribed(b, 'y'), false)
    assert.equal(registry.unsubscribe(b, 'y'), false)
    assert.equal(registry.unsubscribe(b, 'x'), true)
    assert.equal(registry.subscriberCount('x'), 1)
    assert.equal(registry.unsubscribeAll(a), 2)
    assert.deepEqual(registry.topics, [], 'topics without subscribers are forgotten')
    assert.equal(registry.subscribersOf('x'), undefined)
  })

  test('stays consistent under random operations (model check)', () => {
    const op = fc.record({ kind: fc.constantFrom('sub', 'unsub', 'all'), who: fc.integer({ min: 0, max: 3 }), topic: fc.constantFrom('a', 'b', 'c') })
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const registry = new TopicRegistry<object>()
        const subscribers = [{}, {}, {}, {}]
        const model = subscribers.map(() => new Set<string>())
        for (const { kind, who, topic } of ops) {
          const s = subscribers[who]!
          if (kind === 'sub') assert.equal(registry.subscribe(s, topic), !model[who]!.has(topic)), model[who]!.add(topic)
          else if (kind === 'unsub') assert.equal(registry.unsubscribe(s, topic), model[who]!.delete(topic))
          else assert.equal(registry.unsubscribeAll(s), model[who]!.size), model[who]!.clear()
        }
        for (const topic of ['a', 'b', 'c']) {
          const expected = model.filter((set) => set.has(topic)).length
          assert.equal(registry.subscriberCount(topic), expected)
          assert.equal(registry.topics.includes(topic), expected > 0)
        }
        subscribers.forEach((s, i) => assert.deepEqual(new Set(registry.topicsOf(s)), model[i]))
      }),
    )
  })
})

describe('policies', () => {
  test('defaults: close with 1013 over 1 MiB', () => {
    assert.deepEqual({ ...DEFAULT_TOPIC_POLICY }, { policy: 'close', backpressureLimit: 1024 * 1024, closeCode: 1013 })
  })

  test('bad options are TypeErrors that say what to use', () => {
    assert.throws(() => resolveTopicPolicy({ policy: 'fast' as never }, DEFAULT_TOPIC_POLICY), /use 'drop', 'close' or 'latest'/)
    assert.throws(() => resolveTopicPolicy({ backpressureLimit: -1 }, DEFAULT_TOPIC_POLICY), TypeError)
    assert.throws(() => resolveTopicPolicy({ closeCode: 1000 as never }, DEFAULT_TOPIC_POLICY), /1013 .* or 1008/)
  })

  test('conflation keeps the newest per key, in publish order', () => {
    const pending = new LatestPending<string>()
    assert.equal(pending.hold('A', 'm1'), false)
    pending.hold('B', 'm2')
    assert.equal(pending.hold('A', 'm3'), true)
    assert.deepEqual(pending.takeAll(), ['m2', 'm3'])
    assert.equal(pending.size, 0)
  })
})

describe('backplane envelope', () => {
  test('round-trips every field', () => {
    const origin = new Uint8Array(16).fill(7)
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        fc.uint8Array({ maxLength: 300 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        (topic, key, data, binary, compress, seq) => {
          const envelope = decodeEnvelope(encodeEnvelope(origin, seq, { topic, key, data, binary, compress }))
          assert.equal(envelope.origin, '07'.repeat(16))
          assert.equal(envelope.seq, seq)
          assert.equal(envelope.topic, topic)
          assert.equal(envelope.key, key)
          assert.equal(envelope.binary, binary)
          assert.equal(envelope.compress, compress)
          assert.deepEqual(Buffer.from(envelope.data), Buffer.from(data))
        },
      ),
    )
  })

  test('batches split back into their envelopes, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }).map((b) => { b[0] = 1; return b }), { minLength: 2, maxLength: 10 }), (envelopes) => {
        assert.deepEqual(splitBatch(encodeBatch(envelopes)).map((e) => Buffer.from(e)), envelopes.map((e) => Buffer.from(e)))
      }),
    )
    assert.throws(() => splitBatch(Uint8Array.of(2, 0, 0, 0, 9, 1)), /Truncated backplane batch/)
  })

  test('rejects bytes it did not make, never returning garbage', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          const envelope = decodeEnvelope(bytes)
          assert.equal(typeof envelope.topic, 'string')
        } catch (error) {
          assert.ok(error instanceof RangeError || error instanceof TypeError, String(error))
        }
      }),
    )
    assert.throws(() => decodeEnvelope(new Uint8Array([2, 0])), /Not a tether backplane envelope/)
  })
})

/** A subscriber whose backlog the test sets. */
class FakeSubscriber implements Subscriber<string> {
  bufferedAmount = 0
  open = true
  readonly got: string[] = []
  closedWith: number | undefined
  watching = 0
  ;[kHeld]: LatestPending<string> | undefined = undefined;
  [kDeliver](message: string): boolean {
    if (!this.open) return false
    this.got.push(message)
    return true
  }
  [kCloseSlow](code: number): void {
    this.closedWith = code
    this.open = false
  }
  [kWatchWritable](): void {
    this.watching++
  }
}

const text = (topic: string, value: string, key?: string): BackplaneMessage => ({ topic, data: Buffer.from(value), binary: false, compress: false, key })

describe('TopicHub', () => {
  test('prepares once per publish and delivers to every subscriber in order', () => {
    let prepared = 0
    const hub = new TopicHub<FakeSubscriber, string>((m) => (prepared++, Buffer.from(m.data).toString()))
    const subs = [new FakeSubscriber(), new FakeSubscriber(), new FakeSubscriber()]
    for (const s of subs) hub.registry.subscribe(s, 't')
    for (let i = 0; i < 5; i++) assert.deepEqual(hub.publish(text('t', `m${i}`)), { subscribers: 3, delivered: 3, dropped: 0, conflated: 0, closed: 0, forwarded: false })
    assert.equal(prepared, 5)
    for (const s of subs) assert.deepEqual(s.got, ['m0', 'm1', 'm2', 'm3', 'm4'])
    assert.deepEqual(hub.publish(text('nobody', 'x')).subscribers, 0)
    assert.equal(prepared, 5, 'nothing is prepared for a topic without subscribers')
  })

  test('drop: a slow subscriber skips, is counted and reported; others still get it', () => {
    const reports: unknown[] = []
    const hub = new TopicHub<FakeSubscriber, string>((m) => Buffer.from(m.data).toString(), {
      policy: { policy: 'drop', backpressureLimit: 100 },
      onSlowConsumer: (_s, info) => reports.push(info),
    })
    const fast = new FakeSubscriber()
    const slow = new FakeSubscriber()
    slow.bufferedAmount = 101
    hub.registry.subscribe(fast, 't')
    hub.registry.subscribe(slow, 't')
    const result = hub.publish(text('t', 'a'))
    assert.equal(result.delivered, 1)
    assert.equal(result.dropped, 1)
    assert.deepEqual(slow.got, [])
    assert.deepEqual(reports, [{ topic: 't', action: 'drop', bufferedAmount: 101 }])
    assert.equal(hub.stats.dropped, 1)
    slow.bufferedAmount = 100
    hub.publish(text('t', 'b'))
    assert.deepEqual(slow.got, ['b'], 'at the limit it is delivered again')
  })

  test('close: the slow subscriber is closed with the configured code, once, and leaves its topics', () => {
    const hub = new TopicHub<FakeSubscriber, string>((m) => Buffer.from(m.data).toString(), { policy: { backpressureLimit: 10 } })
    hub.setPolicy('strict', { closeCode: 1008 })
    const slow = new FakeSubscriber()
    slow.bufferedAmount = 11
    hub.registry.subscribe(slow, 't')
    hub.registry.subscribe(slow, 'strict')
    assert.equal(hub.publish(text('strict', 'a')).closed, 1)
    assert.equal(slow.closedWith, 1008)
    assert.equal(hub.registry.isSubscribed(slow, 't'), false)
    assert.equal(hub.publish(text('t', 'b')).closed, 0, 'not closed (or counted) twice')
    assert.equal(hub.stats.closed, 1)
  })

  test('latest: holds the newest per key while slow, releases in publish order, later ones wait behind', () => {
    const hub = new TopicHub<FakeSubscriber, string>((m) => Buffer.from(m.data).toString(), { policy: { policy: 'latest', backpressureLimit: 10 } })
    const s = new FakeSubscriber()
    hub.registry.subscribe(s, 'scores')
    s.bufferedAmount = 50
    hub.publish(text('scores', 'A 1-0', 'A'))
    hub.publish(text('scores', 'B 0-0', 'B'))
    hub.publish(text('scores', 'A 2-0', 'A'))
    assert.equal(s.watching, 1, 'asks once to hear when writable')
    assert.deepEqual(s.got, [])
    s.bufferedAmount = 0
    // Still held: a new message must not overtake those held before it.
    hub.publish(text('scores', 'C 0-1', 'C'))
    assert.deepEqual(s.got, [])
    hub.release(s)
    assert.deepEqual(s.got, ['B 0-0', 'A 2-0', 'C 0-1'])
    assert.equal(s[kHeld], undefined)
    hub.publish(text('scores', 'A 3-0', 'A'))
    assert.deepEqual(s.got.at(-1), 'A 3-0')
    assert.equal(hub.stats.conflated, 4)
  })

  test('a subscriber that closed is not counted as delivered', () => {
    const hub = new TopicHub<FakeSubscriber, string>((m) => Buffer.from(m.data).toString())
    const s = new FakeSubscriber()
    s.open = false
    hub.registry.subscribe(s, 't')
    assert.equal(hub.publish(text('t', 'x')).delivered, 0)
  })
})

describe('MemoryBroker backplane', () => {
  test('nodes share messages, drop their own echo, and count what an outage lost', async () => {
    const broker = new MemoryBroker()
    const events: BackplaneEvent[][] = [[], []]
    const hubs = [0, 1].map((i) =>
      new TopicHub<FakeSubscriber, string>((m) => Buffer.from(m.data).toString(), {
        backplane: broker.backplane(),
        onBackplaneEvent: (e) => events[i]!.push(e),
      }),
    )
    const subs = hubs.map((hub) => {
      const s = new FakeSubscriber()
      hub.registry.subscribe(s, 't')
      return s
    })
    assert.equal(hubs[0]!.publish(text('t', 'one')).forwarded, true)
    await until(() => subs[1]!.got.length === 1)
    assert.deepEqual(subs[0]!.got, ['one'], 'delivered once locally, its echo dropped')
    assert.deepEqual(subs[1]!.got, ['one'])

    broker.setOnline(false)
    hubs[0]!.publish(text('t', 'lost-1'))
    hubs[0]!.publish(text('t', 'lost-2'))
    // Publishes of one turn leave as one batch, at the end of the turn: let it meet the outage.
    await delay(0)
    broker.setOnline(true)
    hubs[0]!.publish(text('t', 'after'))
    await until(() => subs[1]!.got.length === 2)
    assert.deepEqual(subs[1]!.got, ['one', 'after'])
    assert.deepEqual(subs[0]!.got, ['one', 'lost-1', 'lost-2', 'after'], 'local subscribers are not affected by the outage')
    assert.equal(hubs[0]!.stats.unsent, 2)
    assert.equal(hubs[1]!.stats.lost, 2)
    assert.deepEqual(
      [hubs[0]!.stats.forwarded, hubs[0]!.stats.sent, hubs[0]!.stats.unsent, hubs[0]!.stats.pending],
      [4, 2, 2, 0],
      'forwarded == sent + unsent + pending',
    )
    assert.deepEqual(events[1]!.map((e) => e.type), ['disconnected', 'reconnected', 'lost'])
    assert.ok(events[0]!.some((e) => e.type === 'unsent' && e.count === 2), 'one batch of two unsent')
    await Promise.all(hubs.map((hub) => hub.close()))
  })
})

/** A backplane whose sends the test settles by hand. */
class ManualBackplane extends EnvelopeBackplane {
  readonly sends: { bytes: Uint8Array; count: number; size: number }[] = []
  protected send(bytes: Uint8Array, count: number, size: number): void {
    this.sends.push({ bytes, count, size })
  }
  confirm(index: number, ok: boolean): void {
    const { count, size } = this.sends[index]!
    if (ok) this.sent(count, size)
    else this.sendFailed(count, undefined, size)
  }
  async close(): Promise<void> {}
  deliver(bytes: Uint8Array): void {
    this.received(bytes)
  }
}

class ManualBackplaneWithLimit extends ManualBackplane {
  constructor(limit: { messages?: number; bytes?: number }) {
    super(limit)
  }
}

describe('EnvelopeBackplane accounting', () => {
  test('published == sent + unsent + pending at every step', async () => {
    const backplane = new ManualBackplane()
    const events: BackplaneEvent[] = []
    backplane.attach({ deliver: () => {}, event: (event) => events.push(event) })
    backplane.publish(text('t', 'a'))
    backplane.publish(text('t', 'b'))
    assert.deepEqual([backplane.counts.published, backplane.counts.pending, backplane.sends.length], [2, 0, 0], 'a batch leaves at the end of the turn')
    await delay(0)
    assert.deepEqual(backplane.sends.map((send) => send.count), [2])
    assert.equal(backplane.counts.pending, 2)
    backplane.publish(text('t', 'c'))
    await delay(0)
    backplane.confirm(1, true)
    backplane.confirm(0, false)
    assert.deepEqual({ ...backplane.counts }, { published: 3, sent: 1, unsent: 2, pending: 0, pendingBytes: 0, received: 0, lost: 0, duplicates: 0 })
    assert.deepEqual(events, [{ type: 'unsent', count: 2 }])
  })

  // Issue 13, found by an outsider: a broker stopped with SIGSTOP kept the connection up while 186,095 publishes
  // waited for its answer (+730 MiB).
  test('what awaits the broker is bounded: past maxPending, batches are unsent at once, with one error per episode', async () => {
    const bounded = new ManualBackplaneWithLimit({ messages: 3 })
    const events: BackplaneEvent[] = []
    bounded.attach({ deliver: () => {}, event: (event) => events.push(event) })
    for (const round of [0, 1, 2, 3]) {
      bounded.publish(text('t', `m${round}`))
      await delay(0)
    }
    assert.deepEqual([bounded.counts.pending, bounded.counts.unsent, bounded.sends.length], [3, 1, 3])
    assert.match(String(events.find((event) => event.type === 'error')?.type === 'error' && (events[0] as { error: Error }).error.message), /not keeping up/)
    bounded.publish(text('t', 'm4'))
    await delay(0)
    assert.equal(events.filter((event) => event.type === 'error').length, 1, 'one error per episode')
    // The broker catches up: publishes go through again.
    for (let i = 0; i < 3; i++) bounded.confirm(i, true)
    bounded.publish(text('t', 'm5'))
    await delay(0)
    assert.equal(bounded.sends.length, 4)
    const { published, sent, unsent, pending } = bounded.counts
    assert.equal(published, sent + unsent + pending)
  })

  test('a batch leaves once it would pass 256 KiB, in order, so one burst cannot make an oversized broker message', async () => {
    const backplane = new ManualBackplane()
    const big = (i: number): BackplaneMessage => ({ ...text('t', ''), data: new Uint8Array(100 * 1024).fill(i) })
    for (let i = 0; i < 5; i++) backplane.publish(big(i))
    await delay(0)
    assert.deepEqual(backplane.sends.map((send) => send.count), [2, 2, 1])
    const firstBytes = backplane.sends.flatMap((send) => splitBatch(send.bytes)).map((bytes) => decodeEnvelope(bytes).data[0])
    assert.deepEqual(firstBytes, [0, 1, 2, 3, 4])
    assert.ok(backplane.sends.every((send) => send.bytes.length <= 256 * 1024))
  })

  test('a message that cannot be encoded is unsent and keeps its number: the other node counts it lost', async () => {
    const sender = new ManualBackplane()
    const receiver = new ManualBackplane()
    const events: BackplaneEvent[] = []
    sender.attach({ deliver: () => {}, event: (event) => events.push(event) })
    const got: string[] = []
    receiver.attach({ deliver: (message) => got.push(message.topic), event: () => {} })
    sender.publish(text('one', 'x'))
    await delay(0)
    sender.publish(text('k'.repeat(70_000), 'x'))
    sender.publish(text('three', 'x'))
    await delay(0)
    assert.deepEqual(events.map((event) => event.type), ['error', 'unsent'])
    assert.match((events[0] as { error: Error }).error.message, /longer than 65535 bytes/)
    for (const send of sender.sends) receiver.deliver(send.bytes)
    assert.deepEqual(got, ['one', 'three'])
    assert.equal(receiver.counts.lost, 1)
    assert.equal(receiver.counts.received + receiver.counts.lost, sender.counts.published)
  })
})
