#!/usr/bin/env node
// A benchmark server with the same endpoints for every library under test:
//   /echo       every message is sent back to its sender, same type
//   /broadcast  every message is sent to every connected client, the sender included
//   /broadcast-history  (tether) the same on a topic with in-process history (tether.v1): each
//               client is subscribed on connect (its first message is the `subscribed` answer),
//               each message is appended to the history and delivered with its position
//
//   node bench/servers/node-server.mjs <tether|tether-noserver|ws> <port> [--deflate] [--redis URL | --nats URL] [--http2]
//
// tether-noserver is tether as most applications attach it: `noServer` on an http.Server of
// the application's, each upgrade handed over with `handleUpgrade` (the path `{ server }` takes
// too); tether and ws are given a `port` (tether then reads the requests on its own handles).
//
// --http2 (tether): the port speaks clear-text HTTP/2 (h2c), WebSockets arriving as extended
// CONNECT streams (RFC 8441), for bench/http2.mjs.
// It prints "ready <port>" once listening. On stdin, "rss" answers
// "rss <bytes> <clients> <young> <heapUsed> <external>" after a full GC (run node with --expose-gc), "mem" answers "mem <rss> <young> <clients>" at
// once, and "exit" ends it. Each library uses its
// natural way to broadcast: tether publishes on a topic every /broadcast client subscribed
// to (framed once; with --redis or --nats, shared with the other nodes of a cluster), ws
// sends in the usual wss.clients.forEach loop.
import { createInterface } from 'node:readline'
import { getHeapSpaceStatistics } from 'node:v8'

const [impl, portArg, ...flags] = process.argv.slice(2)
const deflate = flags.includes('--deflate')
const flagValue = (name) => (flags.includes(name) ? flags[flags.indexOf(name) + 1] : undefined)
const tether = impl === 'tether' || impl === 'tether-noserver'
const library = tether ? await import('tether-ws') : impl === 'ws' ? await import('ws') : undefined
if (!library) {
  console.error(`unknown implementation: ${impl}`)
  process.exit(2)
}
const { WebSocketServer } = library
const { DeliveryServer } = tether ? await import('tether-ws/pubsub') : {}
const { serializeClientMessage } = tether ? await import('tether-ws/client') : {}
let backplane
if (flagValue('--redis')) backplane = await (await import('tether-ws/pubsub/redis')).RedisBackplane.connect({ url: flagValue('--redis') })
if (flagValue('--nats')) backplane = await (await import('tether-ws/pubsub/nats')).NatsBackplane.connect({ servers: flagValue('--nats') })
const noServer = impl === 'tether-noserver'
const httpServer = noServer ? (await import('node:http')).createServer((request, response) => response.writeHead(426).end()) : undefined
const wss = new WebSocketServer({
  ...(noServer ? { noServer: true } : { port: Number(portArg), host: '127.0.0.1', backlog: 4096 }),
  maxPayload: 64 * 1024 * 1024,
  // Compress every message, however small, so both libraries do the same work.
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  ...(tether ? { topics: { backplane } } : {}),
  ...(impl === 'tether' && flags.includes('--http2') ? { http2: true } : {}),
})

const broadcast =
  tether
    ? (data, isBinary) => wss.publish('broadcast', data, { binary: isBinary })
    : (data, isBinary) => {
        for (const client of wss.clients) if (client.readyState === 1) client.send(data, { binary: isBinary })
      }

// Created in the same turn as the server (before 'listening' can fire), modules loaded above.
const delivery = DeliveryServer ? new DeliveryServer(wss, { history: { maxCount: 100, maxAge: 300_000 } }) : undefined
const subscribeFrame = serializeClientMessage?.({ type: 'subscribe', id: 1, topic: 'broadcast' })

// Listeners are shared functions (`this` is the socket), not closures made per connection: what a
// server that holds many connections does, and what uWebSockets.js and Bun impose (one behaviour
// object for all). Both Node libraries get the same.
function echoMessage(data, isBinary) {
  this.send(data, { binary: isBinary })
}
function broadcastMessage(data, isBinary) {
  broadcast(data, isBinary)
}
function ignoreError() {}

wss.on('connection', (ws, request) => {
  if (request.url === '/broadcast-history' && delivery) {
    const session = delivery.accept(ws, {}, 'binary')
    session.receive(subscribeFrame, true)
    ws.on('message', (data, isBinary) => void delivery.publish('broadcast', data, { binary: isBinary }).catch(() => {}))
    ws.on('close', () => session.close())
  } else if (request.url === '/broadcast') {
    if (tether) ws.subscribe('broadcast')
    ws.on('message', broadcastMessage)
  }
  else ws.on('message', echoMessage)
  ws.on('error', ignoreError)
})
if (httpServer) {
  httpServer.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)))
  httpServer.listen(Number(portArg), '127.0.0.1', 4096, () => console.log(`ready ${httpServer.address().port}`))
} else wss.on('listening', () => console.log(`ready ${wss.address().port}`))

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'rss') {
    for (let i = 0; i < 3; i++) {
      globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0
    const memory = process.memoryUsage()
    console.log(`rss ${memory.rss} ${wss.clients.size} ${young} ${memory.heapUsed} ${memory.external}`)
  } else if (line === 'mem') {
    // Without a GC: for sampling during traffic. The young generation is reported apart:
    // V8 grows it under sustained load and keeps it, which is not memory held per connection.
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0
    console.log(`mem ${process.memoryUsage().rss} ${young} ${wss.clients.size}`)
  } else if (line === 'exit') {
    process.exit(0)
  }
}
