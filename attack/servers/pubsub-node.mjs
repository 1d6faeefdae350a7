#!/usr/bin/env node
// One tether node of a cluster for the broker attacks: a WebSocketServer with a NATS or
// Redis backplane, and one WebSocket client of its own subscribed to the test topic,
// which counts what subscribers on this node receive from each publishing node.
//
//   node attack/servers/pubsub-node.mjs <name> <nats|redis> <url>
//
// Prints {"ready": port} once the backplane is connected. Commands on stdin (JSON, with an id):
//   {"cmd": "publish", "rate": 200, "durationMs": 8000}   publishes "<name>:<seq>" at that
//        rate; answers when done with how many publish() calls were made (and how many threw)
//   {"cmd": "stats"}   what the subscriber received per origin, the server's topicStats,
//        the backplane's own counters (whatever numeric fields it has) and the backplane
//        events by type
// Counters are read at run time, so the script follows whatever the library exposes.
import { createInterface } from 'node:readline'
import { WebSocket as WsClient } from 'ws'

const [name, kind, url] = process.argv.slice(2)
const print = (message) => process.stdout.write(JSON.stringify(message) + '\n')
const TOPIC = 'attack'

const { WebSocketServer } = await import('tether-ws')
let backplane
try {
  backplane =
    kind === 'nats'
      ? await (await import('tether-ws/pubsub/nats')).NatsBackplane.connect({ servers: url })
      : await (await import('tether-ws/pubsub/redis')).RedisBackplane.connect({ url })
} catch (error) {
  print({ fatal: `backplane did not connect: ${error.message}` })
  process.exit(1)
}

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', topics: { backplane } })
await new Promise((resolve) => wss.once('listening', resolve))
const port = wss.address().port

const events = {}
const eventSamples = []
wss.on('backplane', (event) => {
  events[event.type] = (events[event.type] ?? 0) + (event.count ?? 1)
  if (eventSamples.length < 20) eventSamples.push({ at: Date.now(), type: event.type, stage: event.stage, count: event.count, message: event.error?.message })
})
wss.on('connection', (ws) => {
  ws.on('error', () => {})
  if (typeof ws.subscribe === 'function') ws.subscribe(TOPIC)
})

/** What the subscriber received, per origin: distinct sequence numbers, repeats, reorderings. */
const received = {}
function count(text) {
  const [origin, seqText] = String(text).split(':')
  const seq = Number(seqText)
  const entry = (received[origin] ??= { seen: new Set(), duplicates: 0, reordered: 0, last: 0 })
  if (entry.seen.has(seq)) entry.duplicates++
  else entry.seen.add(seq)
  if (seq < entry.last) entry.reordered++
  entry.last = Math.max(entry.last, seq)
}
const subscriber = new WsClient(`ws://127.0.0.1:${port}/subscriber`)
subscriber.on('message', (data) => count(data))
subscriber.on('error', () => {})
await new Promise((resolve, reject) => {
  subscriber.once('open', resolve)
  subscriber.once('error', reject)
})
// The server subscribes the socket on connection: wait until it has.
for (let i = 0; i < 100 && typeof wss.subscriberCount === 'function' && wss.subscriberCount(TOPIC) === 0; i++) {
  await new Promise((resolve) => setTimeout(resolve, 10))
}
print({ ready: port })

let seq = 0
let threw = 0
let threwMessage
async function publish(rate, durationMs) {
  const tickMs = 10
  const started = performance.now()
  let due = 0
  while (performance.now() - started < durationMs) {
    due += (rate * tickMs) / 1000
    while (due >= 1) {
      due--
      seq++
      try {
        wss.publish(TOPIC, `${name}:${seq}`)
      } catch (error) {
        threw++
        threwMessage ??= error.message
      }
    }
    await new Promise((resolve) => setTimeout(resolve, tickMs))
  }
  return { published: seq, threw, threwMessage }
}

/** The numeric fields of an object the library exposes (counters), whatever they are named. */
function numbers(object) {
  if (object === null || typeof object !== 'object') return undefined
  const out = {}
  for (const [key, value] of Object.entries(object)) if (typeof value === 'number') out[key] = value
  return Object.keys(out).length ? out : undefined
}

function stats() {
  const perOrigin = {}
  for (const [origin, entry] of Object.entries(received)) {
    perOrigin[origin] = { distinct: entry.seen.size, highest: entry.last, duplicates: entry.duplicates, reordered: entry.reordered }
  }
  return {
    name,
    published: seq,
    threw,
    received: perOrigin,
    topicStats: numbers(wss.topicStats),
    backplaneCounts: numbers(backplane.counts) ?? numbers(backplane.stats),
    events,
    eventSamples,
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  let command
  try {
    command = JSON.parse(line)
  } catch {
    continue
  }
  if (command.cmd === 'publish') {
    publish(command.rate, command.durationMs).then((result) => print({ id: command.id, ...result }))
  } else if (command.cmd === 'stats') {
    print({ id: command.id, ...stats() })
  }
}
subscriber.terminate()
await Promise.race([backplane.close(), new Promise((resolve) => setTimeout(resolve, 2_000))])
process.exit(0)
