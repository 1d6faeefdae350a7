/**
 * Scale-out over real brokers, started by the tests on loopback: three
 * tether nodes share topics through Redis pub/sub and through NATS, with
 * clients spread over the nodes. Then the broker is killed and restarted
 * while every node keeps publishing: nothing crashes, the nodes reconnect,
 * publishing resumes, and every message a node did not receive is counted.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import type { WebSocketServer } from '../../src/index.js'
import type { Backplane, BackplaneEvent } from '../../src/pubsub/index.js'
import { NatsBackplane } from '../../src/pubsub/nats.js'
import { RedisBackplane } from '../../src/pubsub/redis.js'
import { type Broker, startBroker } from '../helpers/brokers.js'
import { Inbox, delay, kill, opened, stopWss, tetherServer, until } from '../helpers/net.js'

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
      for (const node of nodes) {
        const stats = node.wss.topicStats
        assert.equal(stats.received, perNode * (nodes.length - 1), 'a node drops its own echo')
        assert.equal(stats.lost, 0)
        assert.equal(stats.unsent, 0)
      }
      kill(...clients.map((c) => c.ws))
    })

    test('a broker restart during traffic: no crash, nodes reconnect, publishing resumes, losses are counted', async (t) => {
      const broker = await startBroker(kind)
      cleanups.push(() => broker.stop())
      const nodes = await cluster(broker)
      const clients = await subscribers(nodes, 1, 'scores')
      const published = [0, 0, 0]
      let publishing = true
      const publisher = (async () => {
        // Every node publishes every 5 ms until told to stop (bounded below).
        for (let round = 0; publishing && round < 4_000; round++) {
          nodes.forEach((node, origin) => node.wss.publish('scores', `${origin}:${published[origin]!++}`))
          await delay(5)
        }
      })()
      await delay(300)
      await broker.stop()
      await until(() => nodes.every((node) => node.events.some((e) => e.type === 'disconnected')), 15_000, 'every node to see the outage')
      await delay(300)
      await broker.start()
      await until(() => nodes.every((node) => node.events.some((e) => e.type === 'reconnected')), 20_000, 'every node to reconnect')
      // Publishing resumes: wait until a message published after the reconnect reached every client from every node.
      const mark = [...published]
      await until(
        () => clients.every(({ inbox }) => {
          const origins = byOrigin(inbox.messages)
          return [0, 1, 2].every((origin) => (origins.get(origin)?.at(-1) ?? -1) > mark[origin]! + 20)
        }),
        20_000,
        'messages published after the reconnect to arrive everywhere',
      )
      publishing = false
      await publisher
      const final = [...published]
      // Let the last ones arrive, then account for every message.
      await until(() => clients.every(({ inbox }) => {
        const origins = byOrigin(inbox.messages)
        return [0, 1, 2].every((origin) => origins.get(origin)?.at(-1) === final[origin]! - 1)
      }), 10_000, 'the last message of every node')
      let totalLost = 0
      clients.forEach(({ inbox, node }, index) => {
        const origins = byOrigin(inbox.messages)
        for (const [origin, seqs] of origins) {
          assert.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!), `client ${index}, from node ${origin}: in order, no duplicates`)
        }
        assert.equal(origins.get(index)!.length, final[index], 'local subscribers get every local publish, outage or not')
        const remote = [0, 1, 2].filter((origin) => origin !== index)
        const receivedRemote = remote.reduce((sum, origin) => sum + (origins.get(origin)?.length ?? 0), 0)
        const publishedRemote = remote.reduce((sum, origin) => sum + final[origin]!, 0)
        const stats = node.wss.topicStats
        // Exact accounting: what a node did not receive from the others is what it counted as lost.
        assert.equal(receivedRemote + stats.lost, publishedRemote, `node ${index}: received ${receivedRemote} + lost ${stats.lost} = published ${publishedRemote}`)
        assert.equal(stats.received, receivedRemote)
        const lostEvents = node.events.filter((e) => e.type === 'lost').reduce((sum, e) => sum + (e as { count: number }).count, 0)
        assert.equal(lostEvents, stats.lost, 'every loss was reported as an event')
        totalLost += stats.lost
        t.diagnostic(`node ${index}: published ${final[index]}, received ${receivedRemote} of ${publishedRemote} from the others, lost ${stats.lost}, unsent ${stats.unsent}`)
      })
      if (kind === 'redis') {
        // Redis: publishes during the outage fail at once (no offline queue), so they are lost and counted.
        assert.ok(totalLost > 0, 'the outage lost messages, and they were counted')
        assert.ok(nodes.every((node) => node.wss.topicStats.unsent > 0), 'each node counted what it could not send')
      }
      kill(...clients.map((c) => c.ws))
    })
  })
}
