/**
 * `{ server }` and `noServer`: once an upgrade over plain TCP is accepted,
 * tether moves the connection off Node's `net.Socket` onto its own transport
 * (server.ts SocketChannel, tcp.ts TcpTransport.takeOver; issue 18). What the
 * application sees must not change: every byte the client sent reaches the
 * WebSocket in order (those Node read with the request, those the socket read
 * while the upgrade was decided, those that come later), the close handshake
 * runs as on any connection, the request's socket still tells its addresses,
 * and where the connection cannot be taken (TLS, `useNodeHttp`, no bindings:
 * TETHER_TCP_HANDLES=0, which CI runs the whole suite with) it stays on `net`.
 *
 * Each case runs once per way of attaching: `{ server }` (the upgrade is
 * decided by an asynchronous `verifyClient`) and `noServer` (the application
 * calls `handleUpgrade` itself, after a delay).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { describe, it } from 'node:test'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import {
  HOST,
  Inbox,
  RawPeer,
  TCP_HANDLES,
  closePayload,
  closeServer,
  delay,
  listen,
  maskedFrame,
  opened,
  readFrame,
  selfSignedCertificate,
  stopWss,
  until,
  upgradeRequest,
  waitFor,
} from '../helpers/net.js'

type Mode = 'server' | 'noServer'
const MODES: Mode[] = ['server', 'noServer']

interface Attached {
  wss: WebSocketServer
  server: http.Server
  port: number
  /** Each connection's request, as 'connection' gave it. */
  requests: http.IncomingMessage[]
  /** Each connection's server side, in the order they opened. */
  sockets: WebSocket[]
  /** Each server side's 'close' (code, reason), in the order they closed. */
  closes: Array<[number, string]>
  stop(): Promise<void>
}

/**
 * An http.Server with a WebSocketServer attached the `mode` way; the upgrade
 * is decided `wait` ms after the request arrived (as an application that
 * authenticates first). Every server side echoes what it receives.
 */
async function attached(mode: Mode, options: { wait?: number; useNodeHttp?: boolean; server?: http.Server } = {}): Promise<Attached> {
  const server = options.server ?? http.createServer()
  const wait = options.wait ?? 0
  let wss: WebSocketServer
  if (mode === 'server') {
    const verifyClient = (_info: unknown, done: (verified: boolean) => void): void => {
      if (wait > 0) setTimeout(() => done(true), wait)
      else done(true)
    }
    wss = new WebSocketServer({ server, useNodeHttp: options.useNodeHttp, verifyClient: wait > 0 ? verifyClient : undefined })
  } else {
    wss = new WebSocketServer({ noServer: true, useNodeHttp: options.useNodeHttp })
    server.on('upgrade', (request, socket, head) => {
      const upgrade = (): void => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
      if (wait > 0) setTimeout(upgrade, wait)
      else upgrade()
    })
  }
  const requests: http.IncomingMessage[] = []
  const sockets: WebSocket[] = []
  const closes: Array<[number, string]> = []
  wss.on('connection', (ws, request) => {
    requests.push(request)
    sockets.push(ws)
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    ws.on('close', (code, reason) => closes.push([code, String(reason)]))
  })
  const port = await listen(server)
  return {
    wss, server, port, requests, sockets, closes,
    async stop() {
      await stopWss(wss)
      await closeServer(server)
    },
  }
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Fragments of one binary message (first frame opcode 2, then continuations), masked as a client sends them. */
function fragments(message: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let offset = 0; offset < message.length; offset += size) {
    const end = Math.min(offset + size, message.length)
    out.push(maskedFrame(offset === 0 ? 0x2 : 0x0, message.subarray(offset, end), end === message.length))
  }
  return out
}

/** Reads frames until one complete message: its opcode and bytes. */
async function readMessage(peer: RawPeer): Promise<{ opcode: number; payload: Buffer }> {
  const first = await readFrame(peer)
  const parts = [first.payload]
  let frame = first
  while (!frame.fin) {
    frame = await readFrame(peer)
    parts.push(frame.payload)
  }
  return { opcode: first.opcode, payload: Buffer.concat(parts) }
}

for (const mode of MODES) {
  describe(`taking an upgraded connection off net.Socket (${mode === 'server' ? '{ server }' : 'noServer + handleUpgrade'})`, () => {
    it('echoes; the WebSocket runs on tether\'s transport where the bindings are there, on net.Socket otherwise; the request keeps its addresses', async () => {
      const app = await attached(mode)
      const client = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      try {
        const inbox = new Inbox(client)
        client.send('one')
        assert.equal(String((await inbox.one()).data), 'one')
        const [ws] = app.sockets
        assert.equal(ws!._socket instanceof net.Socket, !TCP_HANDLES)
        assert.equal(ws!._socket!.remoteAddress, client._socket!.localAddress)
        assert.equal(ws!._socket!.remotePort, client._socket!.localPort)
        const request = app.requests[0]!
        assert.equal(request.socket.remoteAddress, client._socket!.localAddress)
        assert.equal(request.socket.remotePort, client._socket!.localPort)
        assert.equal(request.socket.localAddress, HOST)
        assert.equal(request.socket.localPort, app.port)
        // One object, as in ws, on either transport, with the members applications use of a net.Socket.
        assert.equal(request.socket, ws!._socket)
        const socket = ws!._socket! as unknown as Record<string, unknown>
        for (const member of ['ref', 'unref', 'pause', 'resume', 'cork', 'uncork', 'destroySoon', 'setTimeout', 'setNoDelay', 'setKeepAlive', 'end', 'destroy']) {
          assert.equal(typeof socket[member], 'function', member)
        }
        assert.deepEqual([socket.readyState, socket.bufferSize, socket.connecting, socket.pending], ['open', 0, false, false])
        // pause() stops reading: the echo waits for resume().
        ws!._socket!.pause()
        client.send('paused')
        await delay(100)
        assert.equal(inbox.messages.length, 1, 'nothing read while paused')
        ws!._socket!.resume()
        assert.equal(String((await inbox.one()).data), 'paused')
        ws!._socket!.unref()
        ws!._socket!.ref()
        client.send(Buffer.from([1, 2, 3]))
        const binary = await inbox.one()
        assert.deepEqual([...binary.data], [1, 2, 3])
        assert.equal(binary.isBinary, true)
      } finally {
        client.terminate()
        await app.stop()
      }
    })

    it('Node\'s server counts the connection until it closes: maxConnections, getConnections, close()\'s callback', async () => {
      const server = http.createServer()
      server.maxConnections = 3
      const app = await attached(mode, { server })
      const connections = (): Promise<number> =>
        new Promise((resolve, reject) => server.getConnections((error, n) => (error ? reject(error) : resolve(n))))
      const clients = Array.from({ length: 5 }, () => new WebSocket(`ws://${HOST}:${app.port}/`))
      const outcomes = await Promise.all(
        clients.map((client) => new Promise<string>((resolve) => {
          client.on('open', () => resolve('open'))
          client.on('error', () => resolve('refused'))
        })),
      )
      try {
        assert.deepEqual(outcomes.filter((o) => o === 'open').length, 3, `as Node's server refuses past maxConnections: ${outcomes}`)
        assert.equal(await connections(), 3)
        // close() waits for the WebSockets, as with ws: its callback comes once the last one closed.
        let closedAt = 0
        server.close(() => (closedAt = Date.now()))
        await delay(100)
        assert.equal(closedAt, 0, 'close() waited for the open WebSockets')
        for (const client of clients) client.close()
        await until(() => closedAt > 0, 10_000, 'close()\'s callback after the last WebSocket closed')
        assert.equal(await connections(), 0)
      } finally {
        for (const client of clients) client.terminate()
        await stopWss(app.wss)
      }
    })

    it('request.socket is ws._socket: its destroy() ends the connection, and the \'close\' the application listened for on it comes when the connection ends', async () => {
      const server = http.createServer()
      const heard: string[] = []
      // The application listens on the socket the upgrade came with, before the WebSocket exists.
      server.on('upgrade', (_request, socket) => socket.on('close', () => heard.push('close')))
      const app = await attached(mode, { server })
      const client = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      try {
        const inbox = new Inbox(client)
        client.send('ping')
        await inbox.one()
        await delay(50)
        assert.deepEqual(heard, [], 'no close while the connection is open')
        const request = app.requests[0]!
        assert.equal(request.socket, app.sockets[0]!._socket)
        assert.equal(request.socket.destroyed, false)
        request.socket.destroy()
        const code = await new Promise<number>((resolve) => client.on('close', resolve))
        assert.equal(code, 1006)
        await until(() => heard.length === 1, 5_000, 'the socket\'s close')
        assert.equal(app.sockets[0]!.readyState, WebSocket.CLOSED)
      } finally {
        client.terminate()
        await app.stop()
      }
    })

    it('a \'close\' listener put on the upgrade\'s socket after tether took it over hears the connection\'s end, once', async () => {
      const heard: Array<[string, unknown]> = []
      const app = await attached(mode)
      // Registered after the WebSocketServer's own 'upgrade' listener (or after handleUpgrade ran): the usual order.
      app.server.on('upgrade', (_request, socket) => socket.on('close', (hadError: unknown) => heard.push(['close', hadError])))
      const client = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      try {
        await delay(100)
        assert.deepEqual(heard, [], 'no close while the connection is open')
        client.close()
        await until(() => heard.length === 1, 5_000, 'the close')
        await delay(50)
        assert.deepEqual(heard, [['close', false]])
      } finally {
        client.terminate()
        await app.stop()
      }
    })

    it('the socket\'s setTimeout, writableEnded and isPaused behave as on a net.Socket', async () => {
      const app = await attached(mode)
      const client = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      try {
        const socket = app.sockets[0]!._socket! as unknown as {
          setTimeout(ms: number, callback?: () => void): unknown
          timeout: number | undefined
          writableEnded: boolean
          isPaused(): boolean
          pause(): void
          resume(): void
        }
        let timedOut = 0
        socket.setTimeout(150, () => timedOut++)
        assert.equal(socket.timeout, 150)
        await until(() => timedOut === 1, 5_000, "'timeout' after 150 ms idle")
        assert.equal(app.sockets[0]!.readyState, WebSocket.OPEN, 'a timeout only tells; the application decides')
        socket.setTimeout(0)
        assert.equal(socket.timeout, 0)
        assert.equal(socket.isPaused(), false)
        socket.pause()
        assert.equal(socket.isPaused(), true)
        socket.resume()
        assert.equal(socket.writableEnded, false)
        app.sockets[0]!.close()
        await new Promise((resolve) => client.on('close', resolve))
        await until(() => socket.writableEnded, 5_000, 'writableEnded once our end was shut')
      } finally {
        client.terminate()
        await app.stop()
      }
    })

    it('frames that came in the request\'s own packet are delivered first, in order, none lost or repeated', async () => {
      const app = await attached(mode)
      const peer = await RawPeer.connect(app.port)
      try {
        // One write: Node's server reads the head and hands what follows over as `head`.
        const frames = ['first', 'second', 'third'].map((text) => maskedFrame(0x1, text))
        peer.write(Buffer.concat([Buffer.from(upgradeRequest()), ...frames]))
        assert.match(await peer.readHead(), /^HTTP\/1\.1 101/)
        peer.write(maskedFrame(0x1, 'fourth'))
        const texts: string[] = []
        for (let i = 0; i < 4; i++) texts.push(String((await readFrame(peer)).payload))
        assert.deepEqual(texts, ['first', 'second', 'third', 'fourth'])
        await delay(50)
        assert.equal(peer.buffer.length, 0, 'nothing more than the four echoes')
      } finally {
        peer.destroy()
        await app.stop()
      }
    })

    it('the socket\'s byte counts go on from what Node\'s server read and wrote: the request head included, as on net', async () => {
      const app = await attached(mode)
      const peer = await RawPeer.connect(app.port)
      try {
        const request = Buffer.from(upgradeRequest())
        const frame = maskedFrame(0x1, 'counted')
        peer.write(Buffer.concat([request, frame]))
        const head = await peer.readHead()
        assert.equal(String((await readFrame(peer)).payload), 'counted')
        const socket = app.sockets[0]!._socket!
        assert.equal(socket.bytesRead, request.length + frame.length)
        // The 101 and the echoed frame (2-byte header, unmasked).
        assert.equal(socket.bytesWritten, Buffer.byteLength(head, 'latin1') + 2 + 'counted'.length)
      } finally {
        peer.destroy()
        await app.stop()
      }
    })

    it('bytes sent with the request, while the upgrade is decided, and after it reach the WebSocket in order', async () => {
      const app = await attached(mode, { wait: 150 })
      const peer = await RawPeer.connect(app.port)
      try {
        peer.write(Buffer.concat([Buffer.from(upgradeRequest()), maskedFrame(0x1, 'with the request')]))
        // While the application decides: the socket reads these itself, before the upgrade is accepted.
        await delay(50)
        peer.write(maskedFrame(0x1, 'while deciding 1'))
        await delay(20)
        peer.write(maskedFrame(0x1, 'while deciding 2'))
        assert.match(await peer.readHead(), /^HTTP\/1\.1 101/)
        peer.write(maskedFrame(0x1, 'after'))
        const texts: string[] = []
        for (let i = 0; i < 4; i++) texts.push(String((await readFrame(peer)).payload))
        assert.deepEqual(texts, ['with the request', 'while deciding 1', 'while deciding 2', 'after'])
      } finally {
        peer.destroy()
        await app.stop()
      }
    })

    it('one message whose fragments straddle the request, the decision and the open connection arrives whole', async () => {
      const app = await attached(mode, { wait: 150 })
      const peer = await RawPeer.connect(app.port)
      try {
        const message = Buffer.alloc(150_000)
        for (let i = 0; i < message.length; i++) message[i] = (i * 31 + (i >> 8)) & 0xff
        const parts = fragments(message, 40_000)
        assert.equal(parts.length, 4)
        // The first fragment cut in two: half with the request, half while deciding.
        const cut = 20_000
        peer.write(Buffer.concat([Buffer.from(upgradeRequest()), parts[0]!.subarray(0, cut)]))
        await delay(50)
        peer.write(Buffer.concat([parts[0]!.subarray(cut), parts[1]!]))
        await delay(20)
        peer.write(parts[2]!)
        assert.match(await peer.readHead(), /^HTTP\/1\.1 101/)
        peer.write(parts[3]!)
        const echoed = await readMessage(peer)
        assert.equal(echoed.opcode, 0x2)
        assert.equal(echoed.payload.length, message.length)
        assert.equal(sha256(echoed.payload), sha256(message))
      } finally {
        peer.destroy()
        await app.stop()
      }
    })

    it('the client starts the closing handshake: the server answers with its code, closes TCP, and hears 1000 once', async () => {
      const app = await attached(mode)
      const peer = await RawPeer.connect(app.port)
      try {
        peer.write(upgradeRequest())
        assert.match(await peer.readHead(), /^HTTP\/1\.1 101/)
        await until(() => app.sockets.length === 1)
        peer.write(maskedFrame(0x8, closePayload(1000, 'done')))
        const frame = await readFrame(peer)
        assert.equal(frame.opcode, 0x8)
        assert.equal(frame.payload.readUInt16BE(0), 1000)
        // RFC 6455 §7.1.1: the server closes the TCP connection first.
        await peer.waitEnded()
        await until(() => app.closes.length === 1)
        assert.deepEqual(app.closes, [[1000, 'done']])
        await until(() => app.wss.clients.size === 0)
      } finally {
        peer.destroy()
        await app.stop()
      }
    })

    it('the server starts the closing handshake: its close frame goes out, the client\'s answer completes it', async () => {
      const app = await attached(mode)
      const peer = await RawPeer.connect(app.port)
      try {
        peer.write(upgradeRequest())
        assert.match(await peer.readHead(), /^HTTP\/1\.1 101/)
        await until(() => app.sockets.length === 1)
        app.sockets[0]!.close(4001, 'bye')
        const frame = await readFrame(peer)
        assert.equal(frame.opcode, 0x8)
        assert.equal(frame.payload.readUInt16BE(0), 4001)
        assert.equal(String(frame.payload.subarray(2)), 'bye')
        peer.write(maskedFrame(0x8, closePayload(4001)))
        await peer.waitEnded()
        await until(() => app.closes.length === 1)
        assert.equal(app.closes[0]![0], 4001)
      } finally {
        peer.destroy()
        await app.stop()
      }
    })

    it('a ws-API client closing and the server closing another both end cleanly; the server\'s clients empty', async () => {
      const app = await attached(mode)
      const first = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      const second = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      await until(() => app.sockets.length === 2)
      const closedByServer = waitFor<[number, Buffer]>(second, 'close')
      app.sockets[1]!.close(4001, 'bye')
      const [code, reason] = await closedByServer
      assert.equal(code, 4001)
      assert.equal(String(reason), 'bye')
      const closedByClient = waitFor<[number, Buffer]>(first, 'close')
      first.close(1000)
      assert.equal((await closedByClient)[0], 1000)
      await until(() => app.wss.clients.size === 0)
      await app.stop()
    })

    it('a client that leaves while the upgrade is decided is not taken over, and nothing throws', async () => {
      const app = await attached(mode, { wait: 100 })
      const peer = await RawPeer.connect(app.port)
      try {
        peer.write(upgradeRequest())
        await delay(20)
        peer.destroy()
        await delay(200)
        assert.equal(app.wss.clients.size, 0)
        assert.equal(app.sockets.length, 0)
      } finally {
        await app.stop()
      }
    })

    it('useNodeHttp: true keeps every WebSocket on its net.Socket', async () => {
      const app = await attached(mode, { useNodeHttp: true })
      const client = await opened(new WebSocket(`ws://${HOST}:${app.port}/`))
      try {
        const inbox = new Inbox(client)
        client.send('kept')
        assert.equal(String((await inbox.one()).data), 'kept')
        assert.ok(app.sockets[0]!._socket instanceof net.Socket)
      } finally {
        client.terminate()
        await app.stop()
      }
    })

    it('an https server\'s connections stay on their TLS sockets, bytes with the request included', async () => {
      const { key, cert } = selfSignedCertificate()
      const app = await attached(mode, { server: https.createServer({ key, cert }) })
      const client = await opened(new WebSocket(`wss://${HOST}:${app.port}/`, { rejectUnauthorized: false }))
      try {
        const inbox = new Inbox(client)
        client.send('secure')
        assert.equal(String((await inbox.one()).data), 'secure')
        const socket = app.sockets[0]!._socket as net.Socket & { encrypted?: boolean }
        assert.ok(socket instanceof net.Socket)
        assert.equal(socket.encrypted, true)
        assert.equal(app.requests[0]!.socket.remotePort, client._socket!.localPort)
      } finally {
        client.terminate()
        await app.stop()
      }
    })
  })
}
