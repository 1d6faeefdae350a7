/**
 * The client over HTTP/2 (RFC 8441): `new WebSocket(url, { http2: true })`
 * and `'auto'`, against tether's HTTP/2 server and against servers that do
 * not offer WebSockets over HTTP/2; one shared session per origin, closed
 * after an idle delay without holding the process; refusals, resets,
 * GOAWAY, timeouts and close() while connecting.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import http2 from 'node:http2'
import https from 'node:https'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import { http2SessionStats } from '../../src/node/http2-client.js'
import { HOST, Inbox, ROOT, closeServer, closed, listen, opened, selfSignedCertificate, until, waitFor, withTimeout } from '../helpers/net.js'
import { h2Server, stopServer } from '../helpers/http2.js'

const CA = selfSignedCertificate().cert
const servers: WebSocketServer[] = []
const clients: WebSocket[] = []
after(async () => {
  for (const ws of clients) if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
  for (const wss of servers) await stopServer(wss).catch(() => {})
})

/** The 'error' and the 'close' that follow a failed handshake (they come in one tick). */
function failure(ws: WebSocket): Promise<[Error & { code: string; status?: number }, number]> {
  return Promise.all([waitFor<[Error & { code: string }]>(ws, 'error').then(([error]) => error), closed(ws).then(([code]) => code)])
}

/** A tether HTTP/2 server that echoes, counting its HTTP/2 connections (sessions). */
async function echoServer(options: Parameters<typeof h2Server>[0] = {}, tls = true) {
  const started = await h2Server(options, { tls })
  servers.push(started.wss)
  const sessions = new Set<unknown>()
  const requests: import('node:http').IncomingMessage[] = []
  started.wss.on('connection', (ws, request) => {
    ws.on('error', () => {})
    requests.push(request)
    const session = (ws._socket as unknown as { session?: unknown }).session
    if (session !== undefined) sessions.add(session)
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  return { ...started, sessions, requests }
}

function client(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}, protocols?: string[]): WebSocket {
  const ws = new WebSocket(url, protocols, { ca: CA, http2: true, http2IdleTimeout: 200, ...options })
  ws.on('error', () => {})
  clients.push(ws)
  return ws
}

describe('http2: true', () => {
  it('opens as a stream of an HTTP/2 connection: messages both ways, then a clean close (1000)', async () => {
    const { url, requests } = await echoServer()
    const ws = await opened(client(`${url}/echo`))
    assert.equal((ws._socket as unknown as { alpnProtocol: string }).alpnProtocol, 'h2')
    assert.equal(requests[0]!.httpVersion, '2.0')
    const inbox = new Inbox(ws)
    ws.send('text ✓')
    ws.send(Buffer.from([1, 2, 3]))
    const [text, binary] = await inbox.next(2)
    assert.deepEqual([String(text!.data), text!.isBinary], ['text ✓', false])
    assert.deepEqual([[...binary!.data], binary!.isBinary], [[1, 2, 3], true])
    ws.close(1000, 'bye')
    assert.deepEqual(await closed(ws), [1000, 'bye'])
    assert.equal(ws.wasClean, true)
  })

  it('negotiates a subprotocol and permessage-deflate, and round-trips compressed messages', async () => {
    const { url } = await echoServer({ perMessageDeflate: { threshold: 0 } })
    const ws = await opened(client(url, {}, ['v1', 'v2']))
    assert.equal(ws.protocol, 'v1')
    assert.equal(ws.extensions, 'permessage-deflate')
    const inbox = new Inbox(ws)
    const big = 'compressible '.repeat(10_000)
    ws.send(big)
    assert.equal(String((await inbox.one()).data), big)
    ws.terminate()
  })

  it('emits upgrade with the 200 (httpVersion 2.0) before open', async () => {
    const { url } = await echoServer()
    const ws = client(url)
    const order: string[] = []
    let response: import('node:http').IncomingMessage | undefined
    ws.on('open', () => order.push('open'))
    ws.on('upgrade', (answer) => {
      order.push('upgrade')
      response = answer
    })
    await opened(ws)
    assert.ok(response)
    assert.equal(response.statusCode, 200)
    assert.equal(response.httpVersion, '2.0')
    assert.deepEqual(order, ['upgrade', 'open'])
    ws.terminate()
  })

  it('speaks h2c (clear text, prior knowledge) for ws: URLs', async () => {
    const { url, requests } = await echoServer({}, false)
    const ws = await opened(client(url))
    assert.equal((ws._socket as unknown as { alpnProtocol: string }).alpnProtocol, 'h2c')
    assert.equal(requests[0]!.httpVersion, '2.0')
    ws.terminate()
  })

  it('fails with the status of a refusal (403) and closes 1006; the session, its stream gone, still closes once idle', async () => {
    const { url, origin } = await echoServer({ authenticate: () => ({ status: 403, message: 'no' }) })
    const ws = client(url, { http2IdleTimeout: 200 })
    const [error, code] = await failure(ws)
    assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_STATUS')
    assert.match(error.message, /403/)
    assert.equal(code, 1006)
    // Outsider (issue 19): a refusal with a body (tether's have one) left its stream, and so the session, open for ever.
    await until(() => http2SessionStats().every((s) => s.origin !== origin), 5000, 'the idle session to leave the pool')
  })

  it('fails (TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED) against an HTTP/2 server without SETTINGS_ENABLE_CONNECT_PROTOCOL', async () => {
    const server = http2.createSecureServer({ ...selfSignedCertificate() }, (_request, response) => response.end())
    const port = await listen(server as never)
    try {
      const [error, code] = await failure(client(`wss://${HOST}:${port}/`))
      assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED')
      assert.equal(code, 1006)
    } finally {
      await closeServer(server as never)
    }
  })

  it('fails (TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED) against a TLS server that speaks only HTTP/1.1', async () => {
    const server = https.createServer(selfSignedCertificate())
    const wss = new WebSocketServer({ server })
    let connections = 0
    wss.on('connection', () => connections++)
    const port = await listen(server)
    try {
      const [error, code] = await failure(client(`wss://${HOST}:${port}/`))
      assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED')
      assert.match(error.message, /ALPN/)
      assert.equal(code, 1006)
      assert.equal(connections, 0)
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await closeServer(server)
    }
  })

  it('throws for a proxy, as it cannot tunnel HTTP/2', () => {
    assert.throws(() => new WebSocket('wss://example.test/', { http2: true, proxy: 'http://127.0.0.1:1' }), SyntaxError)
  })

  it('gives up on handshakeTimeout when the server never answers the CONNECT', async () => {
    const server = http2.createServer({ settings: { enableConnectProtocol: true } })
    server.on('stream', () => {}) // never answers
    const port = await listen(server as never)
    try {
      const [error, code] = await failure(client(`ws://${HOST}:${port}/`, { handshakeTimeout: 200 }))
      assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_TIMEOUT')
      assert.equal(code, 1006)
    } finally {
      await closeServer(server as never)
    }
  })

  it('close() while connecting cancels the stream: error, then close 1006, no open', async () => {
    let streams = 0
    const resets: number[] = []
    const server = http2.createServer({ settings: { enableConnectProtocol: true } })
    server.on('stream', (stream) => {
      streams++
      stream.on('error', () => {})
      stream.on('close', () => resets.push(stream.rstCode ?? -1))
    })
    const port = await listen(server as never)
    try {
      const ws = client(`ws://${HOST}:${port}/`)
      let openedEvent = false
      ws.on('open', () => (openedEvent = true))
      await until(() => streams === 1)
      ws.close()
      assert.equal((await closed(ws))[0], 1006)
      await until(() => resets.length === 1)
      assert.equal(resets[0], http2.constants.NGHTTP2_CANCEL)
      assert.equal(openedEvent, false)
    } finally {
      await closeServer(server as never)
    }
  })
})

describe('one shared session per origin', () => {
  it('opens ten WebSockets to one origin over one connection, and a second set of TLS options gets its own', async () => {
    const { url, origin, sessions } = await echoServer()
    const many = await Promise.all(Array.from({ length: 10 }, (_, i) => opened(client(`${url}/n${i}`))))
    assert.equal(sessions.size, 1)
    assert.deepEqual(http2SessionStats().filter((s) => s.origin === origin).map((s) => s.webSockets), [10])
    const other = await opened(client(url, { ca: [CA] }))
    assert.equal(sessions.size, 2, 'different trust, different connection')
    for (const ws of [...many, other]) ws.terminate()
  })

  it('keeps the session while WebSockets come and go, and closes it once idle (http2IdleTimeout)', async () => {
    const { url, origin, wss } = await echoServer()
    const serverSessions: Array<{ closed: boolean }> = []
    ;(wss as unknown as { address(): unknown }).address()
    const first = await opened(client(url, { http2IdleTimeout: 300 }))
    const session = (first._socket as unknown as { session: import('node:http2').ClientHttp2Session }).session
    first.close()
    await closed(first)
    // Right after the last close the session is still there for the next WebSocket...
    assert.equal(session.closed, false)
    const second = await opened(client(url, { http2IdleTimeout: 300 }))
    assert.equal((second._socket as unknown as { session: unknown }).session, session, 'reused')
    second.close()
    await closed(second)
    // ...and once idle it closes and leaves the pool.
    await until(() => session.closed || session.destroyed, 5000, 'the idle session to close')
    assert.equal(http2SessionStats().filter((s) => s.origin === origin).length, 0)
    void serverSessions
  })

  it('does not keep the process alive while a session is idle', async () => {
    const { url } = await echoServer()
    const script = `
      const { WebSocket } = require(${JSON.stringify(join(ROOT, 'dist', 'cjs', 'main.js'))})
      const ws = new WebSocket(${JSON.stringify(url)}, { http2: true, ca: ${JSON.stringify(CA)}, http2IdleTimeout: 60000 })
      ws.on('open', () => ws.close(1000))
      ws.on('close', (code) => console.log('closed ' + code))
      ws.on('error', (e) => console.log('error ' + e.message))`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk) => (out += chunk))
    const code = await withTimeout(new Promise<number | null>((resolve) => child.on('exit', resolve)), 15_000, 'the child to exit with an idle session').catch((error) => {
      child.kill('SIGKILL')
      throw error
    })
    assert.equal(code, 0)
    assert.equal(out.trim(), 'closed 1000')
  })

  it('a GOAWAY (server close) lets the open WebSocket finish, and the next one takes a new connection', async () => {
    const { url, sessions, wss } = await echoServer()
    const first = await opened(client(url))
    wss.close()
    const session = (first._socket as unknown as { session: import('node:http2').ClientHttp2Session }).session
    await waitFor(session, 'goaway')
    const inbox = new Inbox(first)
    first.send('still open')
    assert.equal(String((await inbox.one()).data), 'still open')
    // The server no longer listens: a new WebSocket does not reuse the closing session (it fails to connect).
    const [error] = await failure(client(url))
    assert.equal(error.code, 'ECONNREFUSED')
    first.close()
    await closed(first)
    assert.equal(sessions.size, 1)
  })

  it('ends every WebSocket of a session with 1006 when the connection drops', async () => {
    const { url, wss } = await echoServer()
    const sockets = await Promise.all([opened(client(url)), opened(client(url))])
    const all = sockets.map((ws) => closed(ws))
    const serverSide = [...wss.clients][0]!
    ;(serverSide._socket as unknown as { session: import('node:http2').Http2Session }).session.destroy()
    assert.deepEqual((await Promise.all(all)).map(([code]) => code), [1006, 1006])
  })

  it('reports a reset of its stream as 1006; the other WebSocket of the session goes on', async () => {
    const { url, wss } = await echoServer()
    const [a, b] = await Promise.all([opened(client(`${url}/a`)), opened(client(`${url}/b`))])
    await until(() => wss.clients.size === 2)
    const serverA = [...wss.clients].find((ws) => (ws as unknown as { _socket: { stream: { id: number } } })._socket.stream.id === (a!._socket as unknown as { stream: { id: number } }).stream.id)!
    const gone = closed(a!)
    serverA.terminate()
    assert.equal((await gone)[0], 1006)
    const inbox = new Inbox(b!)
    b!.send('b lives')
    assert.equal(String((await inbox.one()).data), 'b lives')
    b!.terminate()
  })

  it('backpressure: bufferedAmount grows while the server does not read, drain when it does', async () => {
    const { url, wss } = await echoServer()
    const ws = await opened(client(url))
    await until(() => wss.clients.size === 1)
    const server = [...wss.clients][0]!
    server.removeAllListeners('message')
    server.pause()
    for (let i = 0; i < 16; i++) ws.send(Buffer.alloc(64 * 1024))
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.ok(ws.bufferedAmount > 512 * 1024, `bufferedAmount ${ws.bufferedAmount}`)
    const drained = waitFor(ws, 'drain', 5000)
    server.resume()
    await drained
    assert.equal(ws.bufferedAmount, 0)
    ws.terminate()
  })
})

describe("http2: 'auto'", () => {
  it('uses HTTP/2 where the server offers WebSockets over it', async () => {
    const { url, requests } = await echoServer()
    const ws = await opened(client(url, { http2: 'auto' }))
    assert.equal(requests[0]!.httpVersion, '2.0')
    ws.terminate()
  })

  it('falls back to HTTP/1.1 on the same TLS connection when ALPN chose HTTP/1.1', async () => {
    const server = https.createServer(selfSignedCertificate())
    const wss = new WebSocketServer({ server })
    let tlsConnections = 0
    server.on('secureConnection', () => tlsConnections++)
    const port = await listen(server)
    try {
      const connection = waitFor<[WebSocket, import('node:http').IncomingMessage]>(wss, 'connection')
      const ws = await opened(client(`wss://${HOST}:${port}/`, { http2: 'auto' }))
      const [, request] = await connection
      assert.equal(request.httpVersion, '1.1')
      assert.equal(tlsConnections, 1, 'one TLS handshake: the probe became the HTTP/1.1 connection')
      const inbox = new Inbox(ws)
      ;(await connection)[0].send('over 1.1')
      assert.equal(String((await inbox.one()).data), 'over 1.1')
      ws.terminate()
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await closeServer(server)
    }
  })

  it('falls back to HTTP/1.1 when an HTTP/2 server does not send SETTINGS_ENABLE_CONNECT_PROTOCOL', async () => {
    const server = http2.createSecureServer({ ...selfSignedCertificate(), allowHTTP1: true })
    const wss = new WebSocketServer({ noServer: true })
    server.on('upgrade', (request: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) =>
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)))
    const port = await listen(server as never)
    try {
      const connection = waitFor<[WebSocket, import('node:http').IncomingMessage]>(wss, 'connection')
      const ws = await opened(client(`wss://${HOST}:${port}/`, { http2: 'auto' }))
      assert.equal((await connection)[1].httpVersion, '1.1')
      ws.terminate()
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await closeServer(server as never)
    }
  })

  it('is HTTP/1.1 for ws: URLs (browsers never use clear-text HTTP/2)', async () => {
    const wss = new WebSocketServer({ host: HOST, port: 0 })
    await waitFor(wss, 'listening')
    try {
      const connection = waitFor<[WebSocket, import('node:http').IncomingMessage]>(wss, 'connection')
      const ws = await opened(client(`ws://${HOST}:${(wss.address() as { port: number }).port}/`, { http2: 'auto' }))
      assert.equal((await connection)[1].httpVersion, '1.1')
      assert.equal((ws._socket as Socket).remoteAddress, HOST)
      ws.terminate()
    } finally {
      await stopServer(wss)
    }
  })
})
