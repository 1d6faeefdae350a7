import type { EventEmitter } from 'node:events'
/**
 * The server's handshake policy over real sockets: verifyClient (sync and
 * async), handleProtocols, the 'headers' event, 'wsClientError', and
 * maxPayload once connected.
 */
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket, type VerifyClientCallback, type VerifyClientInfo } from '../../src/index.js'
import {
  closed,
  delay,
  Inbox,
  opened,
  rawExchange,
  stopWss,
  tetherServer,
  until,
  upgradeRequest,
  waitFor,
} from '../helpers/net.js'

/** The refused handshake as a client's 'unexpected-response' sees it: status, headers, body. */
async function refusal(ws: WebSocket | WsClient): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  ;(ws as unknown as EventEmitter).on('error', () => {})
  const [, response] = await waitFor<[unknown, IncomingMessage]>(ws, 'unexpected-response')
  let body = ''
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => (body += chunk))
  await waitFor(response, 'end')
  ws.terminate()
  return { status: response.statusCode!, headers: response.headers, body }
}

describe('verifyClient', () => {
  it('sync: sees origin, secure and the request; false answers 401', async () => {
    const seen: VerifyClientInfo[] = []
    const { wss, url } = await tetherServer({
      verifyClient: (info: VerifyClientInfo) => {
        seen.push(info)
        return info.req.headers['x-token'] === 'letmein'
      },
    })
    try {
      const ok = await opened(new WebSocket(url, { origin: 'https://app.example', headers: { 'X-Token': 'letmein' } }))
      ok.terminate()
      assert.equal(seen[0]!.origin, 'https://app.example')
      assert.equal(seen[0]!.secure, false)
      assert.equal(seen[0]!.req.url, '/')
      const refused = await refusal(new WebSocket(url))
      assert.equal(refused.status, 401)
      assert.equal(refused.body, 'Unauthorized')
      assert.equal(wss.clients.size, 0)
    } finally {
      await stopWss(wss)
    }
  })

  it("async: (false, 403, 'nope', {'X-Why': 'test'}) reaches the client's 'unexpected-response'", async () => {
    const { wss, url } = await tetherServer({
      verifyClient: (info: VerifyClientInfo, done: VerifyClientCallback) => {
        setTimeout(() => {
          if (info.req.url === '/welcome') done(true)
          else done(false, 403, 'nope', { 'X-Why': 'test' })
        }, 20)
      },
    })
    try {
      for (const refused of [await refusal(new WebSocket(url)), await refusal(new WsClient(url))]) {
        assert.equal(refused.status, 403)
        assert.equal(refused.headers['x-why'], 'test')
        assert.equal(refused.body, 'nope')
      }
      const ok = await opened(new WebSocket(`${url}/welcome`))
      ok.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('async: (false) with no code answers 401; without any listener the error says so', async () => {
    const { wss, url } = await tetherServer({ verifyClient: (_info: VerifyClientInfo, done: VerifyClientCallback) => done(false) })
    try {
      const ws = new WebSocket(url)
      const failed = waitFor<[Error]>(ws, 'error')
      const close = closed(ws)
      assert.equal((await failed)[0].message, 'Unexpected server response: 401')
      assert.deepEqual(await close, [1006, ''])
    } finally {
      await stopWss(wss)
    }
  })

  it('async: a client that leaves before the verdict is not upgraded, and nothing breaks', async () => {
    let verdict: VerifyClientCallback | undefined
    const { wss, url } = await tetherServer({
      verifyClient: (_info: VerifyClientInfo, done: VerifyClientCallback) => {
        verdict = done
      },
    })
    try {
      let connections = 0
      wss.on('connection', () => connections++)
      const ws = new WebSocket(url)
      ws.on('error', () => {})
      await until(() => verdict !== undefined)
      ws.terminate()
      await closed(ws)
      await delay(20)
      verdict!(true)
      await delay(20)
      assert.equal(connections, 0)
      assert.equal(wss.clients.size, 0)
      // The next client is served normally.
      verdict = undefined
      const next = new WebSocket(url)
      await until(() => verdict !== undefined)
      verdict!(true)
      await opened(next)
      assert.equal(connections, 1)
      next.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('a verifyClient that throws answers 500 and reports the error without crashing', async () => {
    const { wss, url } = await tetherServer({
      verifyClient: () => {
        throw new Error('policy bug')
      },
    })
    try {
      const reported = waitFor<[Error]>(wss, 'error')
      const refused = await refusal(new WebSocket(url))
      assert.equal(refused.status, 500)
      assert.equal((await reported)[0].message, 'policy bug')
    } finally {
      await stopWss(wss)
    }
  })
})

describe('handleProtocols', () => {
  it('chooses among the offered protocols; both ends see the choice in ws.protocol', async () => {
    let offered: Set<string> | undefined
    let request: IncomingMessage | undefined
    const { wss, url } = await tetherServer({
      handleProtocols: (protocols, req) => {
        offered = protocols
        request = req
        return protocols.has('chat.v2') ? 'chat.v2' : false
      },
    })
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const ws = await opened(new WebSocket(url, ['chat.v1', 'chat.v2']))
      const [serverSide] = await connection
      assert.deepEqual([...offered!], ['chat.v1', 'chat.v2'])
      assert.equal(request!.headers['sec-websocket-protocol'], 'chat.v1,chat.v2')
      assert.equal(ws.protocol, 'chat.v2')
      assert.equal(serverSide.protocol, 'chat.v2')
      ws.terminate()
      const reference = await opened(new WsClient(url, ['chat.v2']))
      assert.equal(reference.protocol, 'chat.v2')
      reference.terminate()
      // false selects none; tether's client accepts that (RFC 6455 §4.1).
      const none = await opened(new WebSocket(url, 'chat.v1'))
      assert.equal(none.protocol, '')
      none.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('without handleProtocols the first offered protocol is selected', async () => {
    const { wss, url } = await tetherServer()
    try {
      const ws = await opened(new WsClient(url, ['b', 'a']))
      assert.equal(ws.protocol, 'b')
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })
})

describe("the 'headers' event", () => {
  it('can add a header the client sees in its upgrade response', async () => {
    const { wss, url } = await tetherServer()
    wss.on('headers', (headers: string[], request: IncomingMessage) => {
      headers.push(`X-Request-Path: ${request.url}`, 'Set-Cookie: session=abc')
    })
    try {
      for (const ws of [new WebSocket(`${url}/p?q=1`), new WsClient(`${url}/p?q=1`)]) {
        const upgrade = waitFor<[IncomingMessage]>(ws, 'upgrade')
        await opened(ws as WebSocket)
        const [response] = await upgrade
        assert.equal(response.headers['x-request-path'], '/p?q=1')
        assert.deepEqual(response.headers['set-cookie'], ['session=abc'])
        ws.terminate()
      }
    } finally {
      await stopWss(wss)
    }
  })
})

describe("'wsClientError'", () => {
  it('receives malformed handshakes instead of the default answer', async () => {
    const { wss, port } = await tetherServer()
    const errors: Array<[Error, IncomingMessage]> = []
    wss.on('wsClientError', (error: Error, socket: Duplex, request: IncomingMessage) => {
      errors.push([error, request])
      socket.end('HTTP/1.1 418 I\'m a Teapot\r\nConnection: close\r\n\r\n')
    })
    try {
      const answer = await rawExchange(port, upgradeRequest({ headers: { 'Sec-WebSocket-Key': 'short' } }))
      assert.match(answer, /^HTTP\/1\.1 418 /)
      assert.equal(errors.length, 1)
      assert.equal(errors[0]![0].message, 'Missing or invalid Sec-WebSocket-Key header')
      assert.equal(errors[0]![1].headers['sec-websocket-key'], 'short')
      const post = await rawExchange(port, upgradeRequest({ method: 'POST' }))
      assert.match(post, /^HTTP\/1\.1 418 /)
      assert.equal(errors[1]![0].message, 'Invalid HTTP method')
      // A good client is unaffected.
      const ws = await opened(new WebSocket(`ws://127.0.0.1:${port}`))
      ws.terminate()
      assert.equal(errors.length, 2)
    } finally {
      await stopWss(wss)
    }
  })
})

describe('maxPayload', () => {
  it('a message over the limit: the sender gets close 1009, the server an error; at the limit it passes', async () => {
    const { wss, url } = await tetherServer({ maxPayload: 1024 })
    try {
      for (const make of [(u: string) => new WsClient(u), (u: string) => new WebSocket(u)]) {
        const connection = waitFor<[WebSocket]>(wss, 'connection')
        const ws = await opened(make(url) as WebSocket)
        const [serverSide] = await connection
        const inbox = new Inbox(serverSide)
        const failed = waitFor<[Error & { code: string; closeCode: number }]>(serverSide, 'error')
        const serverClosed = closed(serverSide)
        const clientClosed = closed(ws)
        ws.send(Buffer.alloc(1024))
        assert.equal((await inbox.one()).data.length, 1024)
        ws.send(Buffer.alloc(600), { fin: false })
        ws.send(Buffer.alloc(600), { fin: true })
        const [error] = await failed
        assert.equal(error.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
        assert.equal(error.closeCode, 1009)
        assert.ok(error instanceof RangeError)
        assert.deepEqual(await clientClosed, [1009, ''])
        assert.deepEqual(await serverClosed, [1006, ''])
        assert.equal(inbox.messages.length, 1)
      }
    } finally {
      await stopWss(wss)
    }
  })
})
