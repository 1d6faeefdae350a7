/**
 * Socket.IO on tether (issue 15): a real socket.io server whose engine runs
 * on tether's WebSocketServer (`wsEngine`), and real socket.io-client
 * clients (WebSocket transport), from the npm registry. Connect with an ack,
 * rooms and broadcasts (socket.io-adapter frames each broadcast once with
 * `WebSocket.Sender.frame`; engine.io writes it with `ws._sender.sendFrame`,
 * which tether offers), refusals by middleware and by `allowRequest`, and
 * engine.io's own keep-alive: a client that answers stays, one that stops
 * answering is dropped with "ping timeout".
 */
import assert from 'node:assert/strict'
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { Server, type Socket as ServerSocket } from 'socket.io'
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client'
import { WebSocket, WebSocketServer } from 'tether-ws'
import { HOST, delay, withTimeout } from '../helpers/net.js'

interface Started {
  http: HttpServer
  io: Server
  url: string
}

async function startSocketIo(options: ConstructorParameters<typeof Server>[1] = {}): Promise<Started> {
  const http = createServer()
  const io = new Server(http, { wsEngine: WebSocketServer, transports: ['websocket'], ...options })
  await new Promise<void>((resolve) => http.listen(0, HOST, resolve))
  return { http, io, url: `http://${HOST}:${(http.address() as AddressInfo).port}` }
}

async function stopSocketIo(started: Started): Promise<void> {
  await new Promise<void>((resolve) => started.io.close(() => resolve()))
}

const clients: ClientSocket[] = []
function client(url: string, options: Parameters<typeof connectClient>[1] = {}): ClientSocket {
  const socket = connectClient(url, { transports: ['websocket'], reconnection: false, forceNew: true, ...options })
  clients.push(socket)
  return socket
}

function connected(socket: ClientSocket): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('connect_error', reject)
    }),
    10_000,
    'socket.io connect',
  )
}

function next<T = unknown>(socket: ClientSocket, event: string): Promise<T> {
  return withTimeout(new Promise<T>((resolve) => socket.once(event, (value: T) => resolve(value))), 10_000, `the "${event}" event`)
}

/** The tether WebSocket under an engine.io connection. */
function tetherSocketOf(socket: ServerSocket): WebSocket {
  const transport = (socket.conn as unknown as { transport: { name: string; socket: unknown } }).transport
  assert.equal(transport.name, 'websocket')
  assert.ok(transport.socket instanceof WebSocket, 'the engine.io transport runs on a tether WebSocket')
  return transport.socket
}

after(() => {
  for (const socket of clients) socket.disconnect()
})

describe('Socket.IO with wsEngine: tether WebSocketServer', () => {
  let started: Started
  before(async () => {
    started = await startSocketIo()
  })
  after(() => stopSocketIo(started))

  it('connects a socket.io-client over tether and answers an emit with an ack', async () => {
    const seen: ServerSocket[] = []
    started.io.on('connection', (socket) => {
      seen.push(socket)
      socket.on('echo', (value: unknown, ack: (value: unknown) => void) => ack({ echoed: value }))
    })
    const socket = client(started.url)
    await connected(socket)
    const answer = await withTimeout(socket.timeout(5000).emitWithAck('echo', { text: 'héllo', n: 1 }), 10_000, 'the ack')
    assert.deepEqual(answer, { echoed: { text: 'héllo', n: 1 } })
    assert.equal(seen.length, 1)
    tetherSocketOf(seen[0]!)
    started.io.removeAllListeners('connection')
  })

  it('rooms and broadcasts reach exactly the sockets they should; broadcasts go out as frames built once (Sender.frame + _sender.sendFrame)', async () => {
    started.io.on('connection', (socket) => {
      socket.on('join', (room: string, ack: () => void) => {
        void socket.join(room)
        ack()
      })
      socket.on('shout', (text: string) => socket.broadcast.emit('shouted', text))
    })
    const [a, b, c] = [client(started.url), client(started.url), client(started.url)]
    await Promise.all([a, b, c].map(connected))
    await a.emitWithAck('join', 'red')
    await b.emitWithAck('join', 'red')
    await c.emitWithAck('join', 'blue')

    // Count the frames engine.io writes through tether's _sender (socket.io-adapter's precomputed frames).
    const [serverSocket] = await started.io.in('red').fetchSockets()
    const writer = Object.getPrototypeOf(tetherSocketOf(started.io.sockets.sockets.get(serverSocket!.id)!)._sender) as {
      sendFrame(this: unknown, list: Buffer[], callback?: () => void): void
    }
    const original = writer.sendFrame
    let framesWritten = 0
    writer.sendFrame = function (this: unknown, list: Buffer[], callback?: () => void) {
      framesWritten++
      return original.call(this, list, callback)
    }
    try {
      const got: Record<string, unknown[]> = { a: [], b: [], c: [] }
      for (const [name, socket] of Object.entries({ a, b, c })) socket.on('news', (value: unknown) => got[name]!.push(value))
      started.io.to('red').emit('news', { room: 'red', n: 1 })
      started.io.to('blue').emit('news', { room: 'blue', n: 2 })
      started.io.emit('news', { room: 'all', n: 3 })
      const shouted = [next<string>(b, 'shouted'), next<string>(c, 'shouted')]
      a.emit('shout', 'from a')
      assert.deepEqual(await Promise.all(shouted), ['from a', 'from a'])
      await withTimeout(
        (async () => {
          while (got.a!.length < 2 || got.b!.length < 2 || got.c!.length < 2) await delay(10)
        })(),
        10_000,
        'the room messages',
      )
      assert.deepEqual(got.a, [{ room: 'red', n: 1 }, { room: 'all', n: 3 }])
      assert.deepEqual(got.b, [{ room: 'red', n: 1 }, { room: 'all', n: 3 }])
      assert.deepEqual(got.c, [{ room: 'blue', n: 2 }, { room: 'all', n: 3 }])
      // Every room, global and broadcast delivery went out as a prebuilt frame (sockets of earlier tests get the global one too).
      const everyone = started.io.sockets.sockets.size
      assert.equal(framesWritten, 2 + 1 + everyone + (everyone - 1))
    } finally {
      writer.sendFrame = original
      started.io.removeAllListeners('connection')
    }
  })

  it('binary payloads and large messages cross intact', async () => {
    started.io.on('connection', (socket) => socket.on('bytes', (data: Buffer, ack: (value: Buffer) => void) => ack(Buffer.from(data).reverse())))
    const socket = client(started.url)
    await connected(socket)
    const big = Buffer.alloc(300_000, 7)
    big[0] = 1
    const answer = (await socket.timeout(5000).emitWithAck('bytes', big)) as ArrayBuffer | Buffer
    const bytes = Buffer.from(answer as ArrayBuffer)
    assert.equal(bytes.length, big.length)
    assert.equal(bytes.at(-1), 1)
    started.io.removeAllListeners('connection')
  })
})

describe('Socket.IO refusals on tether', () => {
  it('a middleware refusal reaches the client as connect_error with its message', async () => {
    const started = await startSocketIo()
    try {
      started.io.use((socket, next) => next(socket.handshake.auth.token === 'good' ? undefined : new Error('unauthorized')))
      const refused = client(started.url, { auth: { token: 'bad' } })
      const error = await next<Error>(refused, 'connect_error')
      assert.equal(error.message, 'unauthorized')
      const admitted = client(started.url, { auth: { token: 'good' } })
      await connected(admitted)
    } finally {
      await stopSocketIo(started)
    }
  })

  it("engine.io's allowRequest refuses the upgrade: connect_error, and no connection on the server", async () => {
    const started = await startSocketIo({ allowRequest: (request, callback) => callback(null, request.headers['x-allow'] === 'yes') })
    try {
      let connections = 0
      started.io.on('connection', () => connections++)
      const refused = client(started.url)
      await next<Error>(refused, 'connect_error')
      const allowed = client(started.url, { extraHeaders: { 'x-allow': 'yes' } })
      await connected(allowed)
      assert.equal(connections, 1)
    } finally {
      await stopSocketIo(started)
    }
  })

  it('a WebSocket that is not socket.io (wrong path) is refused by the HTTP server, not crashed', async () => {
    const started = await startSocketIo()
    try {
      const raw = new WebSocket(`${started.url.replace('http', 'ws')}/not-socket-io/`)
      const [error] = await withTimeout(new Promise<[Error]>((resolve) => raw.once('error', (e) => resolve([e]))), 10_000, 'the refusal')
      assert.match(error.message, /Unexpected server response|socket hang up|ECONNRESET/)
    } finally {
      await stopSocketIo(started)
    }
  })
})

describe('Socket.IO keep-alive on tether', () => {
  it('a client that answers pings stays connected over many ping intervals; one that stops is dropped with "ping timeout"', async () => {
    const started = await startSocketIo({ pingInterval: 100, pingTimeout: 200 })
    try {
      const reasons: string[] = []
      started.io.on('connection', (socket) => socket.on('disconnect', (reason) => reasons.push(reason)))
      const steady = client(started.url)
      const silent = client(started.url)
      await Promise.all([connected(steady), connected(silent)])
      // The silent client stops answering: engine.io-client answers each ping ("2") with a pong packet.
      const engine = (silent.io as unknown as { engine: { _sendPacket: (...args: unknown[]) => void } }).engine
      const sendPacket = engine._sendPacket
      engine._sendPacket = function (this: unknown, type: unknown, ...rest: unknown[]) {
        if (type === 'pong') return
        return sendPacket.call(this, type, ...rest)
      }
      await withTimeout(
        (async () => {
          while (reasons.length === 0) await delay(20)
        })(),
        5_000,
        'the ping timeout',
      )
      assert.deepEqual(reasons, ['ping timeout'])
      await delay(600)
      assert.ok(steady.connected, 'the client that answers is still connected')
      assert.equal(reasons.length, 1)
    } finally {
      await stopSocketIo(started)
    }
  })
})
