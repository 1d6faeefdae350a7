/**
 * The client's constructor and options over real sockets: URL schemes
 * (ws, wss, ws+unix), headers, origin, handshakeTimeout, redirects, agent,
 * createConnection, unexpected responses, argument validation, maxPayload.
 */
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { WebSocket as WsClient, WebSocketServer as WsServer } from 'ws'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import {
  acceptHead,
  closed,
  closeServer,
  HOST,
  Inbox,
  listen,
  opened,
  selfSignedCertificate,
  stopWss,
  tetherServer,
  until,
  waitFor,
  wsServer,
} from '../helpers/net.js'

/** Resolves with [error, close code] once a failing client reported both. */
async function failure(ws: WebSocket): Promise<[Error, number]> {
  const error = waitFor<[Error]>(ws, 'error')
  const close = closed(ws)
  return [(await error)[0], (await close)[0]]
}

describe('client URLs', () => {
  it('wss:// against the npm ws server over https (ca, or rejectUnauthorized: false)', async () => {
    const { key, cert } = selfSignedCertificate()
    const server = https.createServer({ key, cert })
    const wss = new WsServer({ server })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    try {
      const port = await listen(server)
      for (const options of [{ ca: cert }, { rejectUnauthorized: false }]) {
        const ws = await opened(new WebSocket(`wss://${HOST}:${port}/secure`, options))
        const inbox = new Inbox(ws)
        ws.send('over TLS')
        assert.equal(String((await inbox.one()).data), 'over TLS')
        assert.equal(ws.url, `wss://${HOST}:${port}/secure`)
        ws.close()
        await closed(ws)
      }
      const [error, code] = await failure(new WebSocket(`wss://${HOST}:${port}`))
      assert.equal((error as Error & { code?: string }).code, 'DEPTH_ZERO_SELF_SIGNED_CERT')
      assert.equal(code, 1006)
    } finally {
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('ws+unix: reaches a server on a unix socket, with the path after the colon', async () => {
    const socketPath = join(tmpdir(), `tether-${process.pid}-${Date.now()}.sock`)
    const server = http.createServer()
    const wss = new WebSocketServer({ server })
    const requests: string[] = []
    wss.on('connection', (ws, request: IncomingMessage) => {
      requests.push(request.url!)
      ws.send('over a unix socket')
    })
    try {
      server.listen(socketPath)
      await waitFor(server, 'listening')
      for (const url of [`ws+unix:${socketPath}:/chat?room=1`, `ws+unix:${socketPath}`]) {
        const ws = new WebSocket(url)
        const inbox = new Inbox(ws)
        await opened(ws)
        assert.equal(String((await inbox.one()).data), 'over a unix socket')
        ws.terminate()
      }
      assert.deepEqual(requests, ['/chat?room=1', '/'])
    } finally {
      await stopWss(wss)
      await closeServer(server)
      rmSync(socketPath, { force: true })
    }
  })

  it('http:// and https:// URLs are accepted as ws:// and wss://', async () => {
    const { wss, port } = await tetherServer()
    try {
      const ws = await opened(new WebSocket(`http://${HOST}:${port}/x`))
      assert.equal(ws.url, `ws://${HOST}:${port}/x`)
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('ws.url is the normalized URL, as ws reports it, for strings and URL objects', async () => {
    const { wss, port } = await tetherServer()
    try {
      for (const address of [`ws://${HOST}:${port}`, `http://${HOST}:${port}/a/b?c=d`, new URL(`ws://${HOST}:${port}/u?x=1`)]) {
        const mine = new WebSocket(address)
        const theirs = new WsClient(address)
        assert.equal(mine.url, theirs.url)
        await opened(mine)
        await opened(theirs)
        mine.terminate()
        theirs.terminate()
      }
    } finally {
      await stopWss(wss)
    }
  })

  it('an invalid URL throws SyntaxError synchronously', () => {
    for (const url of ['not a url', 'ftp://127.0.0.1/', 'ws://127.0.0.1/#fragment']) {
      assert.throws(() => new WebSocket(url), SyntaxError, url)
    }
  })

  it('invalid or duplicated subprotocols throw SyntaxError', () => {
    for (const protocols of [['chat', 'chat'], ['a b'], [''], ['ok', 'bad,comma']]) {
      assert.throws(() => new WebSocket(`ws://${HOST}:1`, protocols), {
        name: 'SyntaxError',
        message: 'An invalid or duplicated subprotocol was specified',
      })
    }
  })
})

describe('client request options', () => {
  it('headers and origin reach the server', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket, IncomingMessage]>(wss, 'connection')
      const ws = await opened(new WebSocket(url, { headers: { 'X-Custom': 'yes', Authorization: 'Bearer t' }, origin: 'https://origin.example' }))
      const [, request] = await connection
      assert.equal(request.headers['x-custom'], 'yes')
      assert.equal(request.headers.authorization, 'Bearer t')
      assert.equal(request.headers.origin, 'https://origin.example')
      assert.equal(request.headers['sec-websocket-version'], '13')
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it("handshakeTimeout: a server that never answers -> 'Opening handshake has timed out', then 1006", async () => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.resume()
    })
    const port = await listen(server)
    try {
      const started = Date.now()
      const [error, code] = await failure(new WebSocket(`ws://${HOST}:${port}`, { handshakeTimeout: 200 }))
      assert.equal(error.message, 'Opening handshake has timed out')
      assert.equal(code, 1006)
      assert.ok(Date.now() - started >= 150, 'timed out too early')
      // The abandoned connection is closed.
      await until(() => sockets.size === 1 && [...sockets].every((socket) => socket.destroyed), 2000, 'the abandoned socket to close')
    } finally {
      for (const socket of sockets) socket.destroy()
      await closeServer(server)
    }
  })

  it('user info in the URL becomes Basic authorization', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket, IncomingMessage]>(wss, 'connection')
      const ws = await opened(new WebSocket(`ws://us%40er:p%3Ass@${HOST}:${port}/`))
      const [, request] = await connection
      assert.equal(request.headers.authorization, `Basic ${Buffer.from('us@er:p:ss').toString('base64')}`)
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('finishRequest gets the request and the WebSocket, and finishes the request itself', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket, IncomingMessage]>(wss, 'connection')
      let context: unknown
      const ws = new WebSocket(url, {
        finishRequest: (request: ClientRequest, websocket: unknown) => {
          context = websocket
          request.setHeader('X-Finished-By', 'finishRequest')
          request.end()
        },
      })
      await opened(ws)
      assert.equal(context, ws)
      assert.equal((await connection)[1].headers['x-finished-by'], 'finishRequest')
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it("a custom agent's createConnection is used", async () => {
    const { wss, url } = await tetherServer()
    class SpyAgent extends http.Agent {
      calls = 0
      override createConnection(...args: Parameters<http.Agent['createConnection']>) {
        this.calls++
        return super.createConnection(...args)
      }
    }
    const agent = new SpyAgent()
    try {
      const ws = await opened(new WebSocket(url, { agent }))
      assert.equal(agent.calls, 1)
      ws.terminate()
    } finally {
      agent.destroy()
      await stopWss(wss)
    }
  })

  it('the createConnection option makes the socket', async () => {
    const { wss, url, port } = await tetherServer()
    const calls: unknown[] = []
    try {
      const ws = await opened(
        new WebSocket(url, {
          createConnection: ((options: net.NetConnectOpts) => {
            calls.push(options)
            return net.connect(port, HOST)
          }) as never,
        }),
      )
      assert.equal(calls.length, 1)
      const inbox = new Inbox(ws)
      for (const client of wss.clients) client.send('via createConnection')
      assert.equal(String((await inbox.one()).data), 'via createConnection')
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('maxPayload on the client: a bigger message fails it with 1009', async () => {
    const { wss, url } = await wsServer()
    try {
      const connection = waitFor<[import('ws').WebSocket]>(wss, 'connection')
      const ws = await opened(new WebSocket(url, { maxPayload: 100 }))
      const [serverSide] = await connection
      const inbox = new Inbox(ws)
      const error = waitFor<[Error & { code: string; closeCode: number }]>(ws, 'error')
      const serverClosed = waitFor<[number]>(serverSide, 'close')
      serverSide.send(Buffer.alloc(100))
      assert.equal((await inbox.one()).data.length, 100)
      serverSide.send(Buffer.alloc(101))
      const [e] = await error
      assert.deepEqual([e.code, e.closeCode, e.message], ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009, 'Max payload size exceeded'])
      assert.equal((await serverClosed)[0], 1009)
      assert.equal(inbox.messages.length, 1)
    } finally {
      await stopWss(wss)
    }
  })

  it("a frame sent with the 101 answer arrives after 'open'", async () => {
    const server = net.createServer((socket) => {
      socket.once('data', (request: Buffer) => {
        const key = /sec-websocket-key:\s*(\S+)/i.exec(String(request))![1]!
        socket.write(Buffer.concat([Buffer.from(acceptHead(key)), Buffer.from([0x81, 0x05, ...Buffer.from('early')])]))
      })
    })
    const port = await listen(server)
    const ws = new WebSocket(`ws://${HOST}:${port}`)
    try {
      const seen: string[] = []
      ws.on('message', (data: Buffer) => seen.push(`message ${data} in state ${ws.readyState}`))
      ws.on('open', () => seen.push('open'))
      const inbox = new Inbox(ws)
      await inbox.one()
      assert.deepEqual(seen, ['open', 'message early in state 1'])
    } finally {
      ws.terminate()
      await closeServer(server)
    }
  })
})
