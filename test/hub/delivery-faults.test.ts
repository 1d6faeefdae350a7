/**
 * Reliable delivery under faults (issue 17): three `tether serve` nodes
 * behind a real nginx upstream on loopback, history in Redis Streams (AOF on)
 * and again in NATS JetStream (file storage). 100 clients subscribe to
 * several topics through nginx while publishers run (through nginx too);
 * one node is killed with SIGKILL (its clients reconnect through nginx to
 * the others), then the broker is killed and restarted on its port. At the
 * end every topic's acknowledged positions are exactly 1..N (each publish
 * appended once, whatever was retried), and every client has, for every
 * topic, exactly that sequence: no loss, no repeat, in order, no gap. A
 * client kept away while more than the window is published gets one gap
 * with the right count, then the retained messages, then goes on live.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { type GapInfo, TetherClient } from '../../src/client/index.js'
import { WebSocket } from '../../src/index.js'
import { type Broker, type Nginx, startBroker, startNginx, startRelay } from '../helpers/brokers.js'
import { type ServeProcess, startServe } from '../helpers/cli.js'
import { HOST, delay, until } from '../helpers/net.js'

const CLIENTS = 100
const PUBLISHERS = 4
const TOPICS = ['f-a', 'f-b', 'f-c', 'f-d', 'f-e']
/** The history window of every topic, by count (the age window, 600 s, is never reached here). */
const WINDOW = 500

const stops: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => {})
})

interface Received {
  offsets: number[]
  data: string[]
  epochs: Set<string>
  gaps: GapInfo[]
}

function watch(client: TetherClient, topic: string, options: { recent?: number } = {}): Received {
  const received: Received = { offsets: [], data: [], epochs: new Set(), gaps: [] }
  const subscription = client.subscribe(topic, options)
  subscription.on('message', (data, { position }) => {
    received.offsets.push(position.offset)
    received.data.push(String(data))
    received.epochs.add(position.epoch)
  })
  subscription.on('gap', (gap) => received.gaps.push(gap))
  return received
}

function newClient(url: string | (() => string)): TetherClient {
  const client = new TetherClient(url, { WebSocket, backoff: { initial: 50, max: 1_000 }, maxQueued: 10_000 })
  stops.push(() => client.close())
  return client
}

async function cluster(kind: 'redis' | 'jetstream'): Promise<{ broker: Broker; nodes: ServeProcess[]; nginx: Nginx; url: string }> {
  const broker = await startBroker(kind === 'redis' ? 'redis' : 'nats', kind === 'redis' ? { persist: true } : { jetstream: true })
  stops.push(() => broker.stop())
  const nodes: ServeProcess[] = []
  for (let i = 0; i < 3; i++) {
    const node = await startServe([
      kind === 'redis' ? '--redis' : '--nats',
      broker.url,
      '--history',
      'f-*',
      '--history-size',
      String(WINDOW),
      '--history-age',
      '600',
      '--publish-rate',
      '1000',
    ])
    stops.push(() => node.stop('SIGKILL'))
    nodes.push(node)
  }
  const nginx = await startNginx({ upstreamPorts: nodes.map((node) => node.port) })
  stops.push(() => nginx.stop())
  return { broker, nodes, nginx, url: `ws://${HOST}:${nginx.port}/v1` }
}

for (const kind of ['redis', 'jetstream'] as const) {
  describe(`reliable delivery through nginx, three nodes, ${kind}`, { timeout: 240_000 }, () => {
    test('kill -9 a node, then restart the broker: every client has every topic exactly, in order; a client away past the window gets one gap with the count', async () => {
      const { broker, nodes, url } = await cluster(kind)

      // 100 clients, each on four of the five topics.
      const readers: Array<{ client: TetherClient; topics: Map<string, Received> }> = []
      for (let i = 0; i < CLIENTS; i++) {
        const client = newClient(url)
        const topics = new Map<string, Received>()
        for (let t = 0; t < TOPICS.length; t++) if (t !== i % TOPICS.length) topics.set(TOPICS[t]!, watch(client, TOPICS[t]!))
        readers.push({ client, topics })
      }
      await until(() => readers.every(({ client }) => [...TOPICS].every((topic) => client.subscription(topic)?.state !== 'subscribing')), 30_000, 'every subscription answered')

      // Publishers through nginx: each publish is retried (same key) until the broker has it.
      const acked = new Map<string, Map<number, string>>(TOPICS.map((topic) => [topic, new Map()]))
      const epochs = new Set<string>()
      const pending: Array<Promise<void>> = []
      let publishing = true
      let published = 0
      const publishers = Array.from({ length: PUBLISHERS }, () => newClient(url))
      const loops = publishers.map(async (publisher, p) => {
        for (let n = 0; publishing; n++) {
          const topic = TOPICS[(n + p) % TOPICS.length]!
          const data = `p${p}:${n}`
          published++
          pending.push(
            publisher.publish(topic, data).then((position) => {
              const byOffset = acked.get(topic)!
              assert.equal(byOffset.get(position.offset) ?? data, data, `offset ${position.offset} of ${topic} given to two messages`)
              byOffset.set(position.offset, data)
              epochs.add(`${topic}@${position.epoch}`)
            }),
          )
          await delay(40)
        }
      })

      await delay(2_000)
      // A node dies without a word; its clients come back through nginx on the other two.
      const victim = nodes[1]!
      victim.proc.kill('SIGKILL')
      await delay(2_500)
      // The broker dies and comes back on its port with what it had written.
      await broker.stop()
      await delay(1_000)
      await broker.start()
      await delay(3_000)
      publishing = false
      await Promise.all(loops)
      await Promise.race([Promise.all(pending), delay(60_000).then(() => assert.fail('publishes not all acknowledged within 60 s'))])

      // Each topic: offsets 1..N, each acknowledged once, one epoch (the broker kept its data).
      const expected = new Map<string, string[]>()
      for (const topic of TOPICS) {
        const byOffset = acked.get(topic)!
        const offsets = [...byOffset.keys()].sort((a, b) => a - b)
        assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => i + 1), `${topic}: acknowledged offsets are 1..N`)
        assert.equal(new Set(byOffset.values()).size, byOffset.size, `${topic}: no message appended twice`)
        expected.set(topic, offsets.map((offset) => byOffset.get(offset)!))
      }
      assert.equal(epochs.size, TOPICS.length, 'one epoch per topic')
      const total = [...expected.values()].reduce((sum, list) => sum + list.length, 0)
      assert.equal(total, published, 'every publish was appended once')
      assert.ok(Math.min(...[...expected.values()].map((list) => list.length)) < WINDOW, 'the test stays within the history window')

      await until(
        () => readers.every(({ topics }) => [...topics].every(([topic, received]) => received.data.length >= expected.get(topic)!.length)),
        60_000,
        'every client caught up',
      )
      let reconnected = 0
      for (const { client, topics } of readers) {
        if (client.stats.reconnects > 0) reconnected++
        for (const [topic, received] of topics) {
          assert.deepEqual(received.data, expected.get(topic), `a client's ${topic}: exactly the published sequence`)
          assert.deepEqual(received.gaps, [])
          assert.equal(received.epochs.size, 1)
        }
      }
      assert.ok(reconnected >= CLIENTS / 5, `${reconnected} clients reconnected after the node was killed`)
      console.log(`# ${kind}: ${total} messages on ${TOPICS.length} topics, ${CLIENTS} clients x 4 topics exact; ${reconnected} clients reconnected`)

      // A client kept away (its connection cut, and nothing to connect to) while more than the window is published.
      const relay = await startRelay(Number(new URL(url).port))
      stops.push(() => relay.stop())
      let away = false
      const wanderer = newClient(() => (away ? `ws://${HOST}:1/v1` : `ws://${HOST}:${relay.port}/v1`))
      const watched = watch(wanderer, 'f-a')
      await until(() => wanderer.subscription('f-a')?.state === 'subscribed', 20_000, 'the wanderer subscribed')
      const writer = newClient(url)
      await writer.publish('f-a', 'before')
      await until(() => watched.data.length === 1)
      away = true
      relay.cut()
      await until(() => wanderer.state !== 'open')
      const extra = WINDOW + 37
      for (let i = 0; i < extra; i++) await writer.publish('f-a', `away-${i}`)
      away = false
      await until(() => watched.data.length === 1 + WINDOW, 30_000, 'the retained window delivered')
      assert.equal(watched.gaps.length, 1)
      assert.equal(watched.gaps[0]!.reason, 'expired')
      assert.equal(watched.gaps[0]!.count, 37, 'exactly the messages no longer retained')
      assert.deepEqual(watched.data.slice(1), Array.from({ length: WINDOW }, (_, i) => `away-${i + 37}`))
      await writer.publish('f-a', 'after')
      await until(() => watched.data.length === 2 + WINDOW)
      assert.equal(watched.data.at(-1), 'after')
      assert.equal(watched.gaps.length, 1)
      for (const node of [nodes[0]!, nodes[2]!]) {
        assert.equal(node.proc.exitCode, null, 'the surviving nodes are still up')
        // The broker's restart was seen (and survived) by the nodes' history stores.
        assert.match(node.logs().join('\n'), /history disconnected/, 'the store outage is logged')
        assert.match(node.logs().join('\n'), /history reconnected/)
      }
    })
  })
}
