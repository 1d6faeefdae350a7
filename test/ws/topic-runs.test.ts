/**
 * Runs of published messages (src/pubsub/hub.ts Rule 2, src/core/writer.ts
 * Rule 3): the messages a topic gets in one turn travel to its subscribers as
 * one shared write. Nothing a client can see may change: every subscriber
 * gets every message once, in the order of the calls, whatever direct sends,
 * queued sends (Blobs), subscriptions and closes come between them, and the
 * counts and `bufferedAmount` are what they would be message by message.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import { WebSocket as WsClient } from 'ws'
import type { WebSocket, WebSocketServer } from '../../src/index.js'
import { FrameWriter, type SharedRun } from '../../src/core/writer.js'
import { RUN_LIMIT } from '../../src/node/published-run.js'
import { prepareFrame } from '../../src/core/prepare.js'
import { opened, stopWss, tetherServer, until } from '../helpers/net.js'

/** A run over fixed chunks, for the writer alone. */
class TestRun implements SharedRun {
  bytes = 0
  joinAt = 0
  sealed = false
  readonly parts: Uint8Array[] = []
  add(bytes: Uint8Array): boolean {
    if (this.sealed) return false
    this.parts.push(bytes)
    this.joinAt = this.bytes
    this.bytes += bytes.length
    return true
  }
  seal(): void {
    this.sealed = true
  }
  slice(start: number, end: number): Uint8Array {
    assert.equal(this.sealed, true, 'only a sealed run is sliced')
    return Buffer.concat(this.parts).subarray(start, end)
  }
}

const bytesOf = (chunks: Uint8Array[]): number[] => [...Buffer.concat(chunks)]

describe('a shared run in a frame queue (writer.ts Rule 3)', () => {
  test('the run is the open tail: what it gains before the queue is taken is sent, from the joining message on', () => {
    const writer = new FrameWriter('server')
    const run = new TestRun()
    run.add(Uint8Array.of(1, 1))
    run.add(Uint8Array.of(2, 2))
    writer.writeRun(run)
    run.add(Uint8Array.of(3))
    assert.equal(writer.queuedBytes, 3, 'bufferedAmount counts the open run')
    assert.deepEqual(bytesOf(writer.take()), [2, 2, 3])
    assert.equal(run.sealed, true, 'taking the queue seals the run')
    assert.equal(run.add(Uint8Array.of(4)), false)
    assert.equal(writer.resting, true)
  })

  test('anything queued behind the run seals it, for every queue that holds it', () => {
    const a = new FrameWriter('server')
    const b = new FrameWriter('server')
    const run = new TestRun()
    run.add(Uint8Array.of(1))
    a.writeRun(run)
    b.writeRun(run)
    run.add(Uint8Array.of(2))
    a.writeFrame(0x81, Uint8Array.of(9))
    assert.equal(run.add(Uint8Array.of(3)), false, 'a direct send on one member ends the run for all')
    assert.deepEqual(bytesOf(a.take()), [1, 2, 0x81, 1, 9])
    assert.deepEqual(bytesOf(b.take()), [1, 2])
  })

  test('a second run closes the first; closeRun ends it with nothing after', () => {
    const writer = new FrameWriter('server')
    const first = new TestRun()
    const second = new TestRun()
    first.add(Uint8Array.of(1))
    writer.writeRun(first)
    second.add(Uint8Array.of(2))
    writer.writeRun(second)
    assert.equal(first.sealed, true)
    second.add(Uint8Array.of(3))
    writer.closeRun()
    assert.equal(second.sealed, true)
    assert.deepEqual(bytesOf(writer.take()), [1, 2, 3])
  })
})

const TOPICS = ['red', 'blue'] as const
const CLIENTS = 3

type Op =
  | { kind: 'publish'; topic: number; compress: boolean }
  | { kind: 'send'; socket: number }
  | { kind: 'blob'; socket: number }
  | { kind: 'ping'; socket: number }
  | { kind: 'subscribe'; socket: number; topic: number }
  | { kind: 'unsubscribe'; socket: number; topic: number }
  | { kind: 'turn' }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('publish' as const), topic: fc.nat(TOPICS.length - 1), compress: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('send' as const), socket: fc.nat(CLIENTS - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('blob' as const), socket: fc.nat(CLIENTS - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ping' as const), socket: fc.nat(CLIENTS - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('subscribe' as const), socket: fc.nat(CLIENTS - 1), topic: fc.nat(TOPICS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unsubscribe' as const), socket: fc.nat(CLIENTS - 1), topic: fc.nat(TOPICS.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'turn' as const }) },
)

/** Which client starts subscribed to which topic: mostly subscribed, so runs have several members. */
const subscriptionsArb = fc.array(fc.array(fc.boolean(), { minLength: TOPICS.length, maxLength: TOPICS.length }), { minLength: CLIENTS, maxLength: CLIENTS })

/** Connects CLIENTS clients; fills in the server's sockets, the clients and, per client, the name of each message it got. */
async function connectClients(
  wss: WebSocketServer,
  url: string,
  options: ConstructorParameters<typeof WsClient>[2],
  nameOf: (text: string) => string,
  into: { sockets: WebSocket[]; clients: WsClient[]; received: string[][] },
): Promise<void> {
  wss.on('connection', (ws) => into.sockets.push(ws))
  for (let i = 0; i < CLIENTS; i++) {
    const client = await opened(new WsClient(url, options))
    const inbox: string[] = []
    client.on('message', (data) => inbox.push(nameOf(String(data))))
    into.clients.push(client)
    into.received.push(inbox)
  }
  await until(() => into.sockets.length === CLIENTS)
}

for (const deflate of [false, true]) {
  describe(`publishes, direct sends and subscriptions in one turn, in any order${deflate ? ' (permessage-deflate)' : ''}`, () => {
    let wss: WebSocketServer
    let url: string
    const sockets: WebSocket[] = []
    const clients: WsClient[] = []
    const received: string[][] = []

    before(async () => {
      ;({ wss, url } = await tetherServer({ perMessageDeflate: deflate ? { threshold: 0 } : false }))
      await connectClients(wss, url, { perMessageDeflate: deflate }, String, { sockets, clients, received })
    })
    after(async () => {
      for (const client of clients) client.terminate()
      await stopWss(wss)
    })

    test('every client gets exactly what a message-by-message model says, in order; counts match', async () => {
      let round = 0
      await fc.assert(
        fc.asyncProperty(subscriptionsArb, fc.array(opArb, { minLength: 1, maxLength: 40 }), async (initial, ops) => {
          round++
          for (const inbox of received) inbox.length = 0
          const model: Array<Set<number>> = sockets.map(() => new Set())
          sockets.forEach((socket, i) => {
            TOPICS.forEach((topic, t) => {
              if (initial[i]![t]) {
                socket.subscribe(topic)
                model[i]!.add(t)
              } else {
                socket.unsubscribe(topic)
              }
            })
          })
          const expected: string[][] = sockets.map(() => [])
          let id = 0
          for (const op of ops) {
            const name = `${round}:${id++}`
            switch (op.kind) {
              case 'publish': {
                const result = wss.publish(TOPICS[op.topic]!, name, { compress: op.compress })
                let subscribed = 0
                model.forEach((topics, i) => {
                  if (topics.has(op.topic)) {
                    subscribed++
                    expected[i]!.push(name)
                  }
                })
                assert.equal(result.delivered, subscribed, `delivered count of ${name}`)
                break
              }
              case 'send':
                sockets[op.socket]!.send(name)
                expected[op.socket]!.push(name)
                break
              case 'blob':
                // A Blob waits in the socket's queue while it is read: what is published meanwhile goes behind it.
                sockets[op.socket]!.send(new Blob([name]) as never)
                expected[op.socket]!.push(name)
                break
              case 'ping':
                sockets[op.socket]!.ping()
                break
              case 'subscribe':
                sockets[op.socket]!.subscribe(TOPICS[op.topic]!)
                model[op.socket]!.add(op.topic)
                break
              case 'unsubscribe':
                sockets[op.socket]!.unsubscribe(TOPICS[op.topic]!)
                model[op.socket]!.delete(op.topic)
                break
              case 'turn':
                await new Promise((resolve) => setImmediate(resolve))
                break
            }
          }
          const end = `${round}:end`
          sockets.forEach((socket, i) => {
            socket.send(end)
            expected[i]!.push(end)
          })
          await until(() => received.every((inbox) => inbox.at(-1) === end), 10_000, 'every end marker')
          assert.deepEqual(received, expected)
        }),
        { numRuns: 200 },
      )
    })
  })
}

/** Bytes of a server's unmasked text frame with an `n`-byte payload. */
const frameSize = (n: number): number => n + (n <= 125 ? 2 : n <= 0xffff ? 4 : 10)

describe('runs under the backpressure limit: each message judged as if sent one by one', () => {
  const LIMITS = [1500, 4000] as const
  let wss: WebSocketServer
  const sockets: WebSocket[] = []
  const clients: WsClient[] = []
  const received: string[][] = []

  before(async () => {
    ;({ wss } = await tetherServer({ topics: { policy: 'drop' } }))
    TOPICS.forEach((topic, t) => wss.setTopicPolicy(topic, { policy: 'drop', backpressureLimit: LIMITS[t]! }))
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`
    await connectClients(wss, url, {}, (text) => text.slice(0, text.indexOf('|')), { sockets, clients, received })
  })
  after(async () => {
    for (const client of clients) client.terminate()
    await stopWss(wss)
  })

  type LimitOp = { kind: 'publish'; topic: number; size: number } | { kind: 'send'; socket: number; size: number } | { kind: 'turn' }
  const limitOpArb: fc.Arbitrary<LimitOp> = fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('publish' as const), topic: fc.nat(TOPICS.length - 1), size: fc.integer({ min: 20, max: 900 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('send' as const), socket: fc.nat(CLIENTS - 1), size: fc.integer({ min: 20, max: 900 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'turn' as const }) },
  )

  test('drop: who gets a message, and the counts, are those of message-by-message delivery (limits differ by topic)', async () => {
    let round = 0
    await fc.assert(
      fc.asyncProperty(subscriptionsArb, fc.array(limitOpArb, { minLength: 1, maxLength: 60 }), async (initial, ops) => {
        round++
        for (const inbox of received) inbox.length = 0
        await until(() => sockets.every((socket) => socket.bufferedAmount === 0), 10_000, 'empty send buffers')
        const subscribed = sockets.map((socket, i) =>
          TOPICS.map((topic, t) => {
            if (initial[i]![t]) socket.subscribe(topic)
            else socket.unsubscribe(topic)
            return initial[i]![t]!
          }),
        )
        const buffered = sockets.map(() => 0)
        const expected: string[][] = sockets.map(() => [])
        let id = 0
        for (const op of ops) {
          const name = `${round}:${id++}`
          if (op.kind === 'turn') {
            await until(() => sockets.every((socket) => socket.bufferedAmount === 0), 10_000, 'empty send buffers')
            buffered.fill(0)
            continue
          }
          const payload = `${name}|`.padEnd(op.size, '.')
          if (op.kind === 'send') {
            sockets[op.socket]!.send(payload)
            expected[op.socket]!.push(name)
            buffered[op.socket]! += frameSize(payload.length)
            continue
          }
          sockets.forEach((socket, i) => assert.equal(socket.bufferedAmount, buffered[i], `bufferedAmount of socket ${i} before ${name}`))
          const result = wss.publish(TOPICS[op.topic]!, payload)
          let delivered = 0
          let dropped = 0
          sockets.forEach((socket, i) => {
            if (!subscribed[i]![op.topic]) return
            if (buffered[i]! <= LIMITS[op.topic]!) {
              delivered++
              expected[i]!.push(name)
              buffered[i]! += frameSize(payload.length)
            } else {
              dropped++
            }
          })
          assert.deepEqual([result.delivered, result.dropped], [delivered, dropped], `counts of ${name}`)
        }
        const end = `${round}:end`
        sockets.forEach((socket, i) => {
          socket.send(`${end}|`)
          expected[i]!.push(end)
        })
        await until(() => received.every((inbox) => inbox.at(-1) === end), 10_000, 'every end marker')
        assert.deepEqual(received, expected)
      }),
      { numRuns: 150 },
    )
  })
})

describe('runs and held messages (latest)', () => {
  test('a subscriber that has messages held back never gets a later message of another topic before them', async () => {
    // Topic b's limit is below what topic a's run puts in the queue; a's is above it, so a's run could go on.
    const { wss, url } = await tetherServer({ topics: { policy: 'latest', backpressureLimit: 64 * 1024 } })
    wss.setTopicPolicy('b', { backpressureLimit: 2048 })
    const sockets: WebSocket[] = []
    wss.on('connection', (ws) => sockets.push(ws))
    const clients = [await opened(new WsClient(url)), await opened(new WsClient(url))]
    const inboxes = clients.map((client) => {
      const inbox: string[] = []
      client.on('message', (data) => inbox.push(String(data).slice(0, String(data).indexOf('|'))))
      return inbox
    })
    await until(() => sockets.length === 2)
    sockets[0]!.subscribe('a')
    sockets[1]!.subscribe('a')
    sockets[0]!.subscribe('b')
    const order: string[] = []
    const publish = (topic: string, i: number) => {
      const name = `${topic}${i}`
      order.push(name)
      wss.publish(topic, `${name}|`.padEnd(1024, '.'))
    }
    for (let i = 0; i < 30; i++) publish('a', i)
    for (let i = 0; i < 3; i++) publish('b', i)
    for (let i = 30; i < 33; i++) publish('a', i)
    for (const socket of sockets) socket.send('end|')
    await until(() => inboxes.every((inbox) => inbox.at(-1) === 'end'))
    for (const inbox of inboxes) {
      const positions = inbox.slice(0, -1).map((name) => order.indexOf(name))
      assert.deepEqual(positions, [...positions].sort((x, y) => x - y), `publish order kept: ${inbox.join(' ')}`)
    }
    assert.ok(inboxes[0]!.includes('b2'), 'the newest held message arrives')
    for (const client of clients) client.terminate()
    await stopWss(wss)
  })
})

describe('what a run changes for the application: nothing', () => {
  /** Three clients whose server sockets are subscribed to `t`, and what each receives. */
  async function threeSubscribers() {
    const { wss, url } = await tetherServer()
    const sockets: WebSocket[] = []
    wss.on('connection', (ws) => {
      sockets.push(ws)
      ws.subscribe('t')
    })
    const clients = [await opened(new WsClient(url)), await opened(new WsClient(url)), await opened(new WsClient(url))]
    const inboxes = clients.map((client) => {
      const inbox: string[] = []
      client.on('message', (data) => inbox.push(String(data)))
      return inbox
    })
    await until(() => wss.subscriberCount('t') === 3)
    const stop = async () => {
      for (const client of clients) client.terminate()
      await stopWss(wss)
    }
    return { wss, sockets, inboxes, stop }
  }

  test('a Blob sent between two publishes of one turn arrives between them', async () => {
    const { wss, sockets, inboxes, stop } = await threeSubscribers()
    wss.publish('t', 'first')
    sockets[1]!.send(new Blob(['blob']) as never)
    wss.publish('t', 'second')
    for (const socket of sockets) socket.send('end')
    await until(() => inboxes.every((inbox) => inbox.at(-1) === 'end'))
    assert.deepEqual(inboxes, [
      ['first', 'second', 'end'],
      ['first', 'blob', 'second', 'end'],
      ['first', 'second', 'end'],
    ])
    await stop()
  })

  test('a ping asked for while a Blob is read follows the Blob, as in ws (outsider finding)', async () => {
    const { wss, url } = await tetherServer()
    const sockets: WebSocket[] = []
    wss.on('connection', (ws) => sockets.push(ws))
    const client = await opened(new WsClient(url))
    const events: string[] = []
    client.on('message', (data) => events.push(`message:${String(data)}`))
    client.on('ping', (data) => events.push(`ping:${String(data)}`))
    await until(() => sockets.length === 1)
    let pinged: Error | null | undefined
    sockets[0]!.send(new Blob(['A']) as never)
    sockets[0]!.ping('P', undefined, (error) => (pinged = error ?? null))
    sockets[0]!.send('B')
    await until(() => events.length === 3)
    assert.deepEqual(events, ['message:A', 'ping:P', 'message:B'])
    assert.equal(pinged, null, "the ping's callback hears it went")
    client.terminate()
    await stopWss(wss)
  })

  test('subscribing or unsubscribing between two publishes of one turn counts from the next', async () => {
    const { wss, sockets, inboxes, stop } = await threeSubscribers()
    sockets[2]!.unsubscribe('t')
    assert.equal(wss.publish('t', 'first').delivered, 2)
    sockets[2]!.subscribe('t')
    sockets[0]!.unsubscribe('t')
    assert.equal(wss.publish('t', 'second').delivered, 2)
    for (const socket of sockets) socket.send('end')
    await until(() => inboxes.every((inbox) => inbox.at(-1) === 'end'))
    assert.deepEqual(inboxes, [['first', 'end'], ['first', 'second', 'end'], ['second', 'end']])
    await stop()
  })

  test('bufferedAmount counts published messages not yet written, as message by message', async () => {
    const { wss, sockets, stop } = await threeSubscribers()
    const payloads = ['a', 'bb', 'c'.repeat(200)]
    for (const payload of payloads) wss.publish('t', payload)
    const frameBytes = payloads.reduce((sum, payload) => sum + prepareFrame(false, Buffer.from(payload)).length, 0)
    for (const socket of sockets) assert.equal(socket.bufferedAmount, frameBytes)
    await until(() => sockets.every((socket) => socket.bufferedAmount === 0))
    await stop()
  })

  test(`a burst larger than a run (${RUN_LIMIT} B) arrives whole and in order; a terminated subscriber is not counted`, async () => {
    const { wss, sockets, inboxes, stop } = await threeSubscribers()
    const count = Math.ceil((3 * RUN_LIMIT) / 1000)
    const sent: string[] = []
    let delivered = 0
    for (let i = 0; i < count; i++) {
      const message = `${i}:`.padEnd(1000, 'x')
      sent.push(message)
      if (i === 10) sockets[2]!.terminate()
      delivered += wss.publish('t', message).delivered
    }
    // Ten messages reached all three; the rest only the two still open.
    assert.equal(delivered, 10 * 3 + (count - 10) * 2)
    await until(() => inboxes[0]!.length === count && inboxes[1]!.length === count, 10_000, 'every message')
    assert.deepEqual(inboxes[0], sent)
    assert.deepEqual(inboxes[1], sent)
    await stop()
  })
})
