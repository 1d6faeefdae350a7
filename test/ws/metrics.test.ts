/**
 * `wss.metrics()` and the handshake-refused diagnostics channel (issue 16):
 * every number checked against what the test did, over real sockets on
 * loopback, in port mode (tether's own TCP, or Node's server with
 * TETHER_TCP_HANDLES=0) and attached to an HTTP server.
 */
import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { createServer } from 'node:http'
import { describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { HANDSHAKE_REFUSAL_REASONS, HANDSHAKE_REFUSED_CHANNEL, type HandshakeRefusedMessage, WebSocketServer } from '../../src/index.js'
import { HOST, Inbox, closed, closeServer, listen, opened, rawExchange, serverPool, until, upgradeRequest, waitFor } from '../helpers/net.js'

const server = serverPool()

/** The refusals of `wss` heard on the channel while `work` runs. */
async function refusalsDuring(wss: object, work: () => Promise<void>): Promise<HandshakeRefusedMessage[]> {
  const heard: HandshakeRefusedMessage[] = []
  const listener = (message: unknown): void => {
    if ((message as HandshakeRefusedMessage).server === wss) heard.push(message as HandshakeRefusedMessage)
  }
  diagnostics.subscribe(HANDSHAKE_REFUSED_CHANNEL, listener)
  try {
    await work()
  } finally {
    diagnostics.unsubscribe(HANDSHAKE_REFUSED_CHANNEL, listener)
  }
  return heard
}

async function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WsClient(url, { headers })
  ws.on('error', () => {})
  const [, response] = await waitFor<[unknown, import('node:http').IncomingMessage]>(ws, 'unexpected-response')
  ws.terminate()
  return response.statusCode!
}

describe('wss.metrics()', () => {
  test('connections, messages in and out, and wire bytes match the traffic', async () => {
    const { wss, url } = await server()
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    const empty = wss.metrics()
    assert.deepEqual([empty.connections, empty.messages, empty.bytes], [{ open: 0, accepted: 0, closed: 0 }, { received: 0, sent: 0 }, { received: 0, sent: 0 }])
    const clients = await Promise.all([1, 2, 3].map(() => opened(new WsClient(url, { perMessageDeflate: false }))))
    const inboxes = clients.map((ws) => new Inbox(ws))
    for (const ws of clients) for (let i = 0; i < 5; i++) ws.send(`message ${i}`)
    for (const inbox of inboxes) await inbox.next(5)
    const open = wss.metrics()
    assert.deepEqual(open.connections, { open: 3, accepted: 3, closed: 0 })
    assert.deepEqual(open.handshakes.accepted, 3)
    assert.deepEqual(open.messages, { received: 15, sent: 15 })
    // 'message N' is 9 bytes: a client frame of it is 15 bytes (2 header, 4 mask), a server frame 11.
    assert.ok(open.bytes.received >= 15 * 15, `${open.bytes.received} received`)
    assert.ok(open.bytes.sent >= 15 * 11, `${open.bytes.sent} sent`)
    for (const ws of clients) {
      ws.close(1000)
      await closed(ws)
    }
    await until(() => wss.metrics().connections.open === 0)
    const after = wss.metrics()
    assert.deepEqual(after.connections, { open: 0, accepted: 3, closed: 3 })
    // The closed connections' bytes stay counted, with their close frames.
    assert.ok(after.bytes.received >= open.bytes.received + 3 * 8, 'close frames from the clients')
    assert.ok(after.bytes.sent >= open.bytes.sent + 3 * 4, 'close frames to the clients')
  })

  test('topic deliveries count as messages sent; slow-consumer actions and send-buffer overflows by policy', async () => {
    const { wss, url } = await server({ sendBuffer: { limit: 1, policy: 'drop' } })
    wss.on('connection', (ws) => ws.subscribe('news'))
    const subscribers = await Promise.all([1, 2].map(() => opened(new WsClient(url))))
    const inboxes = subscribers.map((ws) => new Inbox(ws))
    await until(() => wss.subscriberCount('news') === 2)
    wss.publish('news', 'one')
    for (const inbox of inboxes) await inbox.one()
    const metrics = wss.metrics()
    assert.equal(metrics.messages.sent, 2)
    assert.equal(metrics.topics.published, 1)
    assert.equal(metrics.topics.delivered, 2)
    assert.equal(metrics.topics.active, 1)
    assert.deepEqual(metrics.backplane, { state: 'none' })
    assert.deepEqual(metrics.sendBuffer, { dropped: 0, closed: 0 })
    for (const ws of subscribers) ws.terminate()
  })

  test('refused handshakes are counted by reason, and told on the diagnostics channel without headers', async () => {
    const { wss, url, port } = await server({
      allowOrigins: ['https://good.example'],
      maxConnections: 1,
      authenticate: (request) => (request.url === '/private' ? { status: 401, message: 'no token' } : true),
    })
    const first = await opened(new WsClient(url, { headers: { Origin: 'https://good.example' } }))
    const heard = await refusalsDuring(wss, async () => {
      assert.equal(await refusedStatus(url, { Origin: 'https://evil.example' }), 403)
      assert.equal(await refusedStatus(`${url}/private`, { Authorization: 'Bearer s3cret-token' }), 401)
      assert.equal(await refusedStatus(url), 503)
      assert.match(await rawExchange(port, upgradeRequest({ headers: { 'Sec-WebSocket-Version': '7' } })), /^HTTP\/1.1 426/)
    })
    const refused = wss.metrics().handshakes.refused
    assert.deepEqual(Object.keys(refused), [...HANDSHAKE_REFUSAL_REASONS])
    assert.deepEqual(
      Object.fromEntries(Object.entries(refused).filter(([, count]) => count > 0)),
      { origin: 1, authenticate: 1, 'too-many-connections': 1, 'invalid-request': 1 },
    )
    assert.deepEqual(
      heard.map(({ reason, status }) => [reason, status]),
      [['origin', 403], ['authenticate', 401], ['too-many-connections', 503], ['invalid-request', 426]],
    )
    assert.equal(heard[1]!.message, 'no token')
    for (const message of heard) {
      assert.equal(message.remoteAddress?.replace(/^::ffff:/, ''), HOST)
      assert.doesNotMatch(JSON.stringify({ ...message, server: undefined }), /s3cret-token/)
      // Nor the Origin's value: a subscriber logs the message, and a client chooses its Origin (issue 16).
      assert.doesNotMatch(JSON.stringify({ ...message, server: undefined }), /evil\.example/)
    }
    assert.equal(wss.metrics().limits.originRefused, 1, 'limitStats agrees')
    first.terminate()
  })

  test("authenticate's refusals count under the reason it names: path and host are not failed authentications (issue 16)", async () => {
    const { wss, url } = await server({
      authenticate: (request) =>
        request.url === '/nowhere'
          ? { status: 404, message: 'no endpoint', reason: 'path' }
          : request.headers.host === 'rebound.example'
            ? { status: 403, reason: 'host' }
            : { status: 401 },
    })
    const heard = await refusalsDuring(wss, async () => {
      assert.equal(await refusedStatus(`${url}/nowhere`), 404)
      assert.equal(await refusedStatus(url, { Host: 'rebound.example' }), 403)
      assert.equal(await refusedStatus(url), 401)
    })
    assert.deepEqual(heard.map(({ reason, status }) => [reason, status]), [['path', 404], ['host', 403], ['authenticate', 401]])
    const { refused } = wss.metrics().handshakes
    assert.deepEqual([refused.path, refused.host, refused.authenticate], [1, 1, 1])
    assert.equal(wss.limitStats.authRefused, 1, 'only the real one')
  })

  test('refusals before the upgrade is read: a silent client (408), a huge head (431)', async () => {
    const { wss, port } = await server({ handshakeTimeout: 200, maxHeaderSize: 1024 })
    const heard = await refusalsDuring(wss, async () => {
      assert.match(await rawExchange(port, ''), /^HTTP\/1.1 408/)
      assert.match(await rawExchange(port, upgradeRequest({ headers: { 'X-Big': 'x'.repeat(2048) } })), /^HTTP\/1.1 431/)
    })
    const refused = wss.metrics().handshakes.refused
    assert.deepEqual([refused.timeout, refused['headers-too-large']], [1, 1])
    assert.deepEqual(heard.map(({ reason, status }) => [reason, status]), [['timeout', 408], ['headers-too-large', 431]])
  })

  test('attached to an HTTP server: the same counters', async () => {
    const http = createServer()
    const port = await listen(http)
    const wss = new WebSocketServer({ server: http, path: '/ws' })
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)))
    try {
      const ws = await opened(new WsClient(`ws://${HOST}:${port}/ws`))
      const inbox = new Inbox(ws)
      ws.send('hi')
      await inbox.one()
      assert.equal(await refusedStatus(`ws://${HOST}:${port}/elsewhere`), 400)
      const metrics = wss.metrics()
      assert.deepEqual([metrics.connections.open, metrics.messages.received, metrics.messages.sent], [1, 1, 1])
      assert.equal(metrics.handshakes.refused.path, 1)
      ws.terminate()
    } finally {
      await new Promise((resolve) => wss.close(resolve))
      await closeServer(http)
    }
  })
})
