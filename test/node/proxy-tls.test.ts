/**
 * TLS and proxies with real components on loopback: wss with certificates
 * made by openssl in the test; a client tunnelling through Debian's tinyproxy
 * (with and without basic auth, ws and wss), through an HTTPS proxy (nginx
 * terminating TLS in front of tinyproxy), or as the environment says; and a
 * tether server behind nginx as a reverse proxy.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket, type WebSocketServer } from '../../src/index.js'
import { bypassesProxy, resolveProxy } from '../../src/node/proxy.js'
import { type ForwardProxy, type Nginx, freePort, startNginx, startTinyproxy } from '../helpers/brokers.js'
import { HOST, Inbox, closed, opened, selfSignedCertificate, stopWss, tetherServer, waitFor } from '../helpers/net.js'

// Node 20 warns (DEP0123) where Node 26 throws when a TLS server name is an IP address.
const warnings: Error[] = []
process.on('warning', (warning) => warnings.push(warning))

const cleanups: Array<() => Promise<unknown>> = []
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
})

async function echoServer(options: Parameters<typeof tetherServer>[0] = {}) {
  const started = await tetherServer(options)
  cleanups.push(() => stopWss(started.wss))
  started.wss.on('connection', (ws, request) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    ws.send(`hello ${request.headers['x-forwarded-for'] ?? 'direct'}`)
  })
  return started
}

/** Opens, checks the greeting and one echo, closes. */
async function roundTrip(ws: WebSocket | WsClient): Promise<string> {
  const inbox = new Inbox(ws as never)
  await opened(ws as never)
  const greeting = String((await inbox.one()).data)
  ws.send('ping?')
  assert.equal(String((await inbox.one()).data), 'ping?')
  ws.close()
  return greeting
}

describe('which proxy (NO_PROXY and the environment)', () => {
  test('NO_PROXY matches hosts, domain suffixes, host:port and *', () => {
    const url = new URL('wss://api.example.com:8443/x')
    assert.equal(bypassesProxy(url, 'example.com'), true)
    assert.equal(bypassesProxy(url, '.example.com'), true)
    assert.equal(bypassesProxy(url, '*.example.com'), true)
    assert.equal(bypassesProxy(url, 'api.example.com:8443'), true)
    assert.equal(bypassesProxy(url, 'api.example.com:443'), false)
    assert.equal(bypassesProxy(url, 'ample.com, other.org'), false)
    assert.equal(bypassesProxy(url, '*'), true)
    assert.equal(bypassesProxy(new URL('ws://[::1]:80/'), '::1'), true)
  })

  test("'env' picks HTTPS_PROXY for wss, HTTP_PROXY for ws, lower case too, and honours NO_PROXY", () => {
    const env = { HTTPS_PROXY: 'http://secure-proxy:1', http_proxy: 'http://plain-proxy:2', NO_PROXY: 'internal.test' }
    assert.equal(resolveProxy(new URL('wss://a.test/'), 'env', env)?.url, 'http://secure-proxy:1')
    assert.equal(resolveProxy(new URL('ws://a.test/'), 'env', env)?.url, 'http://plain-proxy:2')
    assert.equal(resolveProxy(new URL('ws://internal.test/'), 'env', env), undefined)
    assert.equal(resolveProxy(new URL('ws://a.test/'), undefined, env), undefined, 'the environment only when asked')
  })
})

describe('wss with real certificates', () => {
  test('a server with the tls option, and a client that trusts its certificate through ca', async () => {
    const { key, cert } = selfSignedCertificate()
    const { port } = await echoServer({ tls: { key, cert } })
    const greeting = await roundTrip(new WebSocket(`wss://${HOST}:${port}/`, { ca: cert }))
    assert.equal(greeting, 'hello direct')
    // Without the CA, the certificate is refused, and that is an error event, not a crash.
    const untrusting = new WebSocket(`wss://${HOST}:${port}/`)
    const [error] = await waitFor<[Error & { code?: string }]>(untrusting, 'error')
    assert.match(error.code ?? error.message, /SELF_SIGNED|self.signed/i)
  })
})

describe('through a forward proxy (tinyproxy)', () => {
  let open: ForwardProxy
  let guarded: ForwardProxy
  before(async () => {
    open = await startTinyproxy()
    guarded = await startTinyproxy({ user: 'ada', password: 'pass-word_1' })
    cleanups.push(() => open.stop(), () => guarded.stop())
  })

  test('ws:// and wss:// through an HTTP CONNECT proxy', async () => {
    const plain = await echoServer()
    assert.equal(await roundTrip(new WebSocket(plain.url, { proxy: open.url })), 'hello direct')
    const { key, cert } = selfSignedCertificate()
    const secure = await echoServer({ tls: { key, cert } })
    assert.equal(await roundTrip(new WebSocket(`wss://${HOST}:${secure.port}/`, { proxy: open.url, ca: cert })), 'hello direct')
  })

  test('basic credentials from the proxy URL; a 407 is an error event with the status', async () => {
    const { url } = await echoServer()
    const withAuth = `http://ada:${encodeURIComponent('pass-word_1')}@${HOST}:${guarded.port}`
    assert.equal(await roundTrip(new WebSocket(url, { proxy: withAuth })), 'hello direct')
    const refused = new WebSocket(url, { proxy: `http://${HOST}:${guarded.port}` })
    const closing = closed(refused)
    const [error] = await waitFor<[Error & { code: string; status: number }]>(refused, 'error')
    assert.equal(error.code, 'TETHER_ERR_PROXY')
    assert.equal(error.status, 407)
    assert.equal((await closing)[0], 1006)
  })

  test("proxy: 'env' follows HTTP_PROXY and NO_PROXY", async () => {
    const { url } = await echoServer()
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY }
    try {
      process.env.HTTP_PROXY = open.url
      delete process.env.NO_PROXY
      assert.equal(await roundTrip(new WebSocket(url, { proxy: 'env' })), 'hello direct')
      // Proof that the environment's proxy is used: a dead one fails the connection...
      process.env.HTTP_PROXY = `http://${HOST}:${await freePort()}`
      const viaDead = new WebSocket(url, { proxy: 'env' })
      const [error] = await waitFor<[Error & { code: string }]>(viaDead, 'error')
      assert.equal(error.code, 'TETHER_ERR_PROXY')
      // ...unless NO_PROXY exempts the host.
      process.env.NO_PROXY = HOST
      assert.equal(await roundTrip(new WebSocket(url, { proxy: 'env' })), 'hello direct')
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
  })

  test('through an HTTPS proxy (nginx terminating TLS in front of tinyproxy)', async () => {
    const { key, cert } = selfSignedCertificate()
    const relay = await startNginx({ upstreamPort: await freePort(), streamTo: open.port, tls: { key, cert } })
    cleanups.push(() => relay.stop())
    const { url } = await echoServer()
    const proxy = { url: `https://${HOST}:${relay.streamPort}`, tls: { ca: cert } }
    assert.equal(await roundTrip(new WebSocket(url, { proxy })), 'hello direct')
  })

  test('SNI never names an IP address (RFC 6066 §3): no TLS warning from any of the above', () => {
    const sni = warnings.filter((warning) => /ServerName|DEP0123/.test(`${warning.message} ${(warning as { code?: string }).code}`))
    assert.deepEqual(sni.map((warning) => warning.message), [])
  })
})

describe('behind nginx as a reverse proxy', () => {
  let nginx: Nginx
  let wss: WebSocketServer
  before(async () => {
    const started = await echoServer({ perMessageDeflate: true })
    wss = started.wss
    nginx = await startNginx({ upstreamPort: started.port })
    cleanups.push(() => nginx.stop())
  })

  test('the upgrade passes; X-Forwarded-For names the client; large messages and compression work', async () => {
    const ws = new WsClient(`ws://${HOST}:${nginx.port}/`, { perMessageDeflate: true })
    const inbox = new Inbox(ws)
    await opened(ws)
    assert.equal(String((await inbox.one()).data), `hello ${HOST}`)
    assert.match(ws.extensions, /permessage-deflate/)
    const big = Buffer.alloc(1024 * 1024, 'tether ')
    ws.send(big)
    assert.ok((await inbox.one(20_000)).data.equals(big))
    ws.close()
  })

  test('close codes and reasons pass through both ways', async () => {
    wss.once('connection', (socket) => socket.once('message', () => socket.close(4001, 'server says bye')))
    const ws = await opened(new WsClient(`ws://${HOST}:${nginx.port}/`))
    ws.send('close me')
    assert.deepEqual(await closed(ws), [4001, 'server says bye'])
    const serverSide = new Promise<[number, string]>((resolve) =>
      wss.once('connection', (socket) => socket.once('close', (code, reason) => resolve([code, String(reason)]))),
    )
    const client = await opened(new WsClient(`ws://${HOST}:${nginx.port}/`))
    client.close(4002, 'client says bye')
    assert.deepEqual(await serverSide, [4002, 'client says bye'])
  })
})
