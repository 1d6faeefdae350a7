/**
 * Scale-out over real brokers, started by the tests on loopback: three
 * tether nodes share topics through Redis pub/sub and through NATS, with
 * clients spread over the nodes. Then the broker is killed (SIGKILL) and
 * restarted on its port while every node keeps publishing: nothing crashes,
 * the nodes reconnect, and the accounting of backplane.ts is exact on every
 * node (forwarded == sent + unsent; received + lost == published by the
 * others). A relay that swallows and then cuts a connection shows what
 * "delivered to the broker" means: only what the broker confirmed.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import type { WebSocketServer } from '../../src/index.js'
import type { Backplane, BackplaneEvent } from '../../src/pubsub/index.js'
import { NatsBackplane } from '../../src/pubsub/nats.js'
import { RedisBackplane } from '../../src/pubsub/redis.js'
import { type Broker, startBroker, startRelay } from '../helpers/brokers.js'
import { Inbox, TIMEOUT, delay, kill, opened, stopWss, tetherServer, until } from '../helpers/net.js'

const cleanups: Array<() => Promise<void>> = []
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
})

function connect(broker: Broker): Promise<Backplane> {
  return broker.kind === 'redis' ? RedisBackplane.connect({ url: broker.url }) : NatsBackplane.connect({ servers: broker.url })
}

interface Node {
  wss: WebSocketServer
  url: string
  events: BackplaneEvent[]
}

async function cluster(broker: Broker, size = 3): Promise<Node[]> {
  const nodes: Node[] = []
  for (let i = 0; i < size; i++) {
    const backplane = await connect(broker)
    const { wss, url } = await tetherServer({ topics: { backplane } })
    const events: BackplaneEvent[] = []
    wss.on('backplane', (event) => events.push(event))
    wss.on('connection', (ws, request) => ws.subscribe(request.url!.slice(1)))
    cleanups.push(() => stopWss(wss))
    nodes.push({ wss, url, events })
  }
  return nodes
}

async function subscribers(nodes: Node[], perNode: number, topic: string) {
  const clients = []
  for (const node of nodes) {
    for (let i = 0; i < perNode; i++) {
      const ws = await opened(new WsClient(`${node.url}/${topic}`))
      clients.push({ ws, inbox: new Inbox(ws), node })
    }
  }
  for (const node of nodes) await until(() => node.wss.subscriberCount(topic) === perNode)
  return clients
}

/** Messages are "origin:seq"; returns, per origin, the sequence numbers in arrival order. */
function byOrigin(messages: { data: Buffer }[]): Map<number, number[]> {
  const map = new Map<number, number[]>()
  for (const { data } of messages) {
    const [origin, seq] = String(data).split(':').map(Number)
    if (!map.has(origin!)) map.set(origin!, [])
    map.get(origin!)!.push(seq!)
  }
  return map
}

for (const kind of ['redis', 'nats'] as const) {
  describe(`${kind} backplane, three nodes`, { timeout: 90_000 }, () => {
    test('every subscriber on every node receives each message exactly once, in order per publisher', async () => {
      const broker = await startBroker(kind)
      cleanups.push(() => broker.stop())
      const nodes = await cluster(broker)
      const clients = await subscribers(nodes, 3, 'chat')
      const perNode = 200
      for (let seq = 0; seq < perNode; seq++) {
        nodes.forEach((node, origin) => {
          const result = node.wss.publish('chat', `${origin}:${seq}`)
          assert.equal(result.forwarded, true)
        })
        if (seq % 50 === 0) await delay(1)
      }
      for (const { inbox } of clients) {
        const received = await inbox.next(perNode * nodes.length, 30_000)
        const origins = byOrigin(received)
        for (let origin = 0; origin < nodes.length; origin++) {
          assert.deepEqual(origins.get(origin), Array.from({ length: perNode }, (_, i) => i), `from node ${origin}: all, once, in order`)
        }
      }
      await delay(200)
      for (const { inbox } of clients) assert.equal(inbox.messages.length, perNode * nodes.length, 'nothing arrives twice later')
      await until(() => nodes.every((node) => node.wss.topicStats.pending === 0), TIMEOUT, 'every confirmation to come in')
      for (const node of nodes) {
        const stats = node.wss.topicStats
        assert.equal(stats.received, perNode * (nodes.length - 1), 'a node drops its own echo')
        assert.equal(stats.lost, 0)
        assert.deepEqual([stats.forwarded, stats.sent, stats.unsent], [perNode, perNode, 0], 'every publish delivered to the broker')
      }
      kill(...clients.map((c) => c.ws))
    })

    test('SIGKILL of the broker during traffic: both identities hold on every node, exactly', async (t) => {
      // Issue 13, part 5: with NATS, what was published during an outage vanished with `unsent: 0`.
      const broker = await startBroker(kind)
      cleanups.push(() => broker.stop())
      const nodes = await cluster(broker)
      // What each node saw of the others: per origin, the sequence numbers in arrival order.
      const seen = nodes.map(() => new Map<number, number[]>())
      nodes.forEach((node, index) =>
        node.wss.onPublish('scores', (data) => {
          const [origin, seq] = String(data).split(':').map(Number)
          if (origin === index) return
          if (!seen[index]!.has(origin!)) seen[index]!.set(origin!, [])
          seen[index]!.get(origin!)!.push(seq!)
        }),
      )
      const published = nodes.map(() => 0)
      const publishRound = (): void => nodes.forEach((node, origin) => node.wss.publish('scores', `${origin}:${published[origin]!++}`))
      let publishing = true
      const publisher = (async () => {
        // Every node publishes every 5 ms until told to stop (bounded).
        for (let round = 0; publishing && round < 6_000; round++) {
          publishRound()
          await delay(5)
        }
      })()
      await delay(300)
      await broker.stop()
      await until(() => nodes.every((node) => node.events.some((e) => e.type === 'disconnected')), 15_000, 'every node to see the outage')
      // Publishing goes on while the broker is away.
      const duringOutage = [...published]
      await until(() => published.every((count, origin) => count > duringOutage[origin]! + 50), 15_000, 'publishes during the outage')
      await broker.start()
      await until(() => nodes.every((node) => node.events.some((e) => e.type === 'reconnected')), 20_000, 'every node to reconnect')
      assert.ok(publishing, 'the bounded publishing loop was still running when the broker came back')
      publishing = false
      await publisher
      // A trailing message from every node makes a gap at the end visible; repeated until each one arrived everywhere.
      for (let round = 0; ; round++) {
        assert.ok(round < 20, 'trailing messages arrive within 20 rounds')
        publishRound()
        const last = published.map((count) => count - 1)
        const arrived = (): boolean =>
          nodes.every((_, index) => last.every((seq, origin) => origin === index || seen[index]!.get(origin)?.at(-1) === seq))
        if (await until(arrived, 2_000).then(() => true, () => false)) break
      }
      await until(() => nodes.every((node) => node.wss.topicStats.pending === 0), 10_000, 'every confirmation to come in')
      let totalLost = 0
      nodes.forEach((node, index) => {
        const stats = node.wss.topicStats
        const sum = (type: 'unsent' | 'lost'): number =>
          node.events.filter((e) => e.type === type).reduce((total, e) => total + (e as { count: number }).count, 0)
        for (const [origin, seqs] of seen[index]!) {
          assert.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!), `node ${index}, from node ${origin}: in order, no duplicates`)
        }
        const received = [...seen[index]!.values()].reduce((total, seqs) => total + seqs.length, 0)
        const publishedByOthers = published.reduce((total, count, origin) => total + (origin === index ? 0 : count), 0)
        t.diagnostic(`node ${index}: forwarded ${stats.forwarded} = sent ${stats.sent} + unsent ${stats.unsent}; received ${stats.received} + lost ${stats.lost} of ${publishedByOthers}`)
        assert.equal(stats.forwarded, published[index], `node ${index}: every publish was forwarded`)
        assert.equal(stats.sent + stats.unsent, stats.forwarded, `node ${index}: published == delivered to the broker + unsent`)
        assert.equal(stats.received + stats.lost, publishedByOthers, `node ${index}: received + lost == published by the others`)
        assert.equal(stats.received, received, `node ${index}: received counts what arrived`)
        assert.equal(sum('unsent'), stats.unsent, `node ${index}: every unsent message was reported in an event`)
        assert.equal(sum('lost'), stats.lost, `node ${index}: every lost message was reported in an event`)
        assert.ok(stats.unsent > 0, `node ${index}: what it published during the outage was counted unsent`)
        totalLost += stats.lost
      })
      assert.ok(totalLost > 0, 'the outage lost messages, and they were counted')
    })

    test('a connection cut with publishes in flight: unconfirmed ones are unsent, and the other node counts them lost', async () => {
      const broker = await startBroker(kind)
      cleanups.push(() => broker.stop())
      const relay = await startRelay(broker.port)
      cleanups.push(() => relay.stop())
      const url = broker.url.replace(`:${broker.port}`, `:${relay.port}`)
      const behindRelay = await (kind === 'redis' ? RedisBackplane.connect({ url }) : NatsBackplane.connect({ servers: url }))
      const direct = await connect(broker)
      cleanups.push(() => behindRelay.close(), () => direct.close())
      const events: BackplaneEvent[] = []
      behindRelay.attach({ deliver: () => {}, event: (event) => events.push(event) })
      const got: string[] = []
      direct.attach({ deliver: (message) => got.push(Buffer.from(message.data).toString()), event: () => {} })
      const message = (text: string) => ({ topic: 't', data: Buffer.from(text), binary: false, compress: false })

      behindRelay.publish(message('first'))
      await until(() => got.length === 1 && behindRelay.counts.pending === 0)
      assert.equal(behindRelay.counts.sent, 1)

      relay.hold()
      for (let i = 0; i < 3; i++) behindRelay.publish(message(`held ${i}`))
      await delay(0)
      behindRelay.publish(message('held 3'))
      behindRelay.publish(message('held 4'))
      await until(() => behindRelay.counts.pending === 5, TIMEOUT, 'five messages handed to the client')
      assert.equal(behindRelay.counts.sent, 1, 'no confirmation while the broker gets nothing')
      relay.cut()
      await until(() => behindRelay.counts.pending === 0, TIMEOUT, 'the unconfirmed messages to be settled')
      assert.deepEqual(
        { ...behindRelay.counts },
        { published: 6, sent: 1, unsent: 5, pending: 0, pendingBytes: 0, received: 0, lost: 0, duplicates: 0 },
      )
      assert.equal(events.filter((e) => e.type === 'unsent').reduce((total, e) => total + (e as { count: number }).count, 0), 5)

      await until(() => events.some((e) => e.type === 'reconnected'), 20_000, 'the reconnect through the relay')
      behindRelay.publish(message('after'))
      await until(() => got.includes('after'), TIMEOUT, 'the message after the reconnect')
      assert.deepEqual(got, ['first', 'after'], 'none of the unsent messages reached the broker')
      assert.equal(direct.counts!.lost, 5, 'the other node counted the five as lost')
      assert.equal(direct.counts!.received, 2)
    })
  })
}
