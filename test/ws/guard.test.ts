/**
 * Who may connect, and leaving gracefully: origin allow-lists (and
 * same-origin), the `authenticate` hook with the four usual ways to carry a
 * token (header, cookie, subprotocol, query), and `shutdown()` under traffic.
 */
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { Inbox, closed, delay, opened, serverPool, until, waitFor } from '../helpers/net.js'

const server = serverPool()

/** Resolves with the HTTP status of a refused upgrade, or 101 when it opened. */
async function statusOf(url: string, options: ConstructorParameters<typeof WsClient>[2] = {}, protocols?: string[]): Promise<number> {
  const ws = new WsClient(url, protocols, options)
  const outcome = await Promise.race([
    waitFor<[unknown, IncomingMessage]>(ws, 'unexpected-response').then(([, response]) => response.statusCode!),
    waitFor(ws, 'open').then(() => 101),
    waitFor(ws, 'error').then(() => -1),
  ])
  ws.terminate()
  return outcome
}

describe('origins', () => {
  test('an allow-list admits listed origins, refuses others with 403 (counted), admits non-browser clients', async () => {
    const { wss, url } = await server({ allowOrigins: ['https://app.example'] })
    assert.equal(await statusOf(url, { origin: 'https://app.example' }), 101)
    assert.equal(await statusOf(url, { origin: 'https://evil.example' }), 403)
    assert.equal(await statusOf(url), 101, 'no Origin: not a browser')
    assert.equal(wss.limitStats.originRefused, 1)
  })

  test('allowMissingOrigin: false requires an Origin', async () => {
    const { url } = await server({ allowOrigins: ['https://app.example'], allowMissingOrigin: false })
    assert.equal(await statusOf(url), 403)
  })

  test("'same-origin' admits only an Origin whose host is the request's Host", async () => {
    const { url, port } = await server({ allowOrigins: 'same-origin' })
    assert.equal(await statusOf(url, { origin: `http://127.0.0.1:${port}` }), 101)
    assert.equal(await statusOf(url, { origin: `http://127.0.0.1:${port + 1}` }), 403)
    assert.equal(await statusOf(url, { origin: 'null' }), 403)
  })
})

describe('authenticate', () => {
  const users: Record<string, string> = { 'tok-ada': 'ada', 'tok-bob': 'bob' }

  test('a header token (Authorization: Bearer): 401 without, 403 with a bad one, user set with a good one', async () => {
    const { wss, url } = await server({
      authenticate: async (request) => {
        const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
        if (token === undefined) return false
        const user = users[token]
        return user ? { user } : { status: 403, message: 'Unknown token' }
      },
    })
    const seen: unknown[] = []
    wss.on('connection', (ws) => seen.push(ws.user))
    assert.equal(await statusOf(url), 401)
    assert.equal(await statusOf(url, { headers: { Authorization: 'Bearer nope' } }), 403)
    assert.equal(await statusOf(url, { headers: { Authorization: 'Bearer tok-ada' } }), 101)
    await until(() => seen.length === 1)
    assert.deepEqual(seen, ['ada'])
    assert.equal(wss.limitStats.authRefused, 2)
  })

  test('a cookie, a query token, and a token carried as a subprotocol (what browsers can send)', async () => {
    const { wss, url } = await server({
      // Browsers cannot set headers: the token rides as a second subprotocol, and the server answers with the first.
      handleProtocols: (protocols) => (protocols.has('access_token') ? 'access_token' : false),
      authenticate: (request, info) => {
        const cookie = /(?:^|; )session=([^;]+)/.exec(request.headers.cookie ?? '')?.[1]
        const query = new URL(request.url ?? '/', 'http://x').searchParams.get('token') ?? undefined
        const protocol = info.protocols[0] === 'access_token' ? info.protocols[1] : undefined
        const user = users[cookie ?? query ?? protocol ?? '']
        return user ? { user } : false
      },
    })
    const seen: unknown[] = []
    wss.on('connection', (ws) => seen.push([ws.user, ws.protocol]))
    assert.equal(await statusOf(url, { headers: { Cookie: 'theme=dark; session=tok-bob' } }), 101)
    assert.equal(await statusOf(`${url}/?token=tok-ada`), 101)
    assert.equal(await statusOf(url, {}, ['access_token', 'tok-ada']), 101)
    assert.equal(await statusOf(`${url}/?token=wrong`), 401)
    await until(() => seen.length === 3)
    assert.deepEqual(seen, [['bob', ''], ['ada', ''], ['ada', 'access_token']])
  })

  test('a hook that throws or rejects refuses with 500 and reports the error', async () => {
    const { wss, url } = await server({
      authenticate: (request) => {
        if (request.url === '/sync') throw new Error('auth backend down')
        return Promise.reject(new Error('auth backend down (async)'))
      },
    })
    const errors: Error[] = []
    wss.on('error', (error) => errors.push(error))
    assert.equal(await statusOf(`${url}/sync`), 500)
    assert.equal(await statusOf(`${url}/async`), 500)
    assert.deepEqual(errors.map((e) => e.message), ['auth backend down', 'auth backend down (async)'])
    assert.equal(wss.load.pendingHandshakes, 0)
  })
})

describe('shutdown', () => {
  test('under traffic: every message sent before it arrives, then 1001; a client that does not read is terminated', async () => {
    const { wss, url } = await server()
    const sockets: import('../../src/index.js').WebSocket[] = []
    wss.on('connection', (ws) => sockets.push(ws))
    const readers = await Promise.all([1, 2, 3].map(() => opened(new WsClient(url))))
    const inboxes = readers.map((ws) => new Inbox(ws))
    const stuck = await opened(new WsClient(url))
    ;(stuck as unknown as { _socket: { pause(): void } })._socket.pause()
    await until(() => sockets.length === 4)
    const failedSends: Error[] = []
    // Enough for the stuck client's buffers to fill: its closing handshake cannot complete.
    const big = Buffer.alloc(256 * 1024, 7)
    for (let i = 0; i < 40; i++) {
      for (const ws of sockets) ws.send(i === 39 ? `last ${i}` : big, (error) => error && ws === sockets[3] && failedSends.push(error))
    }
    const closes = readers.map((ws) => closed(ws, 10_000))
    const result = await wss.shutdown({ timeout: 1_000 })
    assert.deepEqual(result, { closed: 3, terminated: 1 })
    for (const [i, inbox] of inboxes.entries()) {
      assert.equal(inbox.messages.length, 40, `reader ${i} got everything sent before shutdown`)
      assert.equal(String(inbox.messages[39]!.data), 'last 39')
      assert.deepEqual(await closes[i], [1001, 'server shutting down'])
    }
    await delay(50)
    assert.ok(failedSends.length > 0, 'sends the terminated client never got are reported to their callbacks')
    assert.equal(wss.load.connections, 0)
    assert.equal(await statusOf(url), -1, 'no longer accepting')
    stuck.terminate()
  })

  // Outsider (issue 18, third round): Infinity and timeouts past 2^31 ms overflowed setTimeout and terminated at once.
  test('timeout: Infinity waits for a peer that answers the close late', async () => {
    const { wss, url } = await server()
    const late = await opened(new WsClient(url))
    const socket = (late as unknown as { _socket: { pause(): void; resume(): void } })._socket
    socket.pause()
    await until(() => wss.clients.size === 1)
    const lateClosed = closed(late)
    const result = wss.shutdown({ timeout: Infinity })
    await delay(300)
    socket.resume()
    assert.deepEqual(await result, { closed: 1, terminated: 0 })
    assert.deepEqual(await lateClosed, [1001, 'server shutting down'])
  })

  // Outsider: two overlapping calls each counted the same peer, once as closed and once as terminated.
  test('a second call while one runs gets the same result, the peer counted once', async () => {
    const { wss, url } = await server()
    const stuck = await opened(new WsClient(url))
    ;(stuck as unknown as { _socket: { pause(): void } })._socket.pause()
    await until(() => wss.clients.size === 1)
    const [first, second] = await Promise.all([wss.shutdown({ timeout: 300 }), wss.shutdown({ timeout: 50 })])
    assert.deepEqual(first, { closed: 0, terminated: 1 })
    assert.deepEqual(second, first)
    assert.deepEqual(await wss.shutdown(), first, 'and so does a call after it')
    stuck.terminate()
  })

  test('a timeout that is not a number is refused, and the server goes on', async () => {
    const { wss, url } = await server()
    await assert.rejects(wss.shutdown({ timeout: '300' as unknown as number }), /timeout must be a number/)
    await assert.rejects(wss.shutdown({ timeout: Number.NaN }), /timeout must be a number/)
    assert.equal(await statusOf(url), 101, 'still accepting')
  })
})
