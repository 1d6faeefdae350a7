/**
 * Chromium (Debian's, via playwright-core) opening WebSockets over HTTP/2
 * (RFC 8441) to tether: Chromium uses an extended CONNECT only on an HTTP/2
 * connection it already has to the origin, over TLS, when the server's
 * SETTINGS carry SETTINGS_ENABLE_CONNECT_PROTOCOL. So the page comes from
 * the same port (tether in port mode with `http2`, `tls` and a
 * `requestListener`), and the server side checks that each WebSocket really
 * is a stream of the connection the page came over. Then the hub of
 * `tether serve --http2`: its pages and their WebSockets on one connection.
 *
 * The browser runs headless with --ignore-certificate-errors (a self-signed
 * certificate); a missing chromium fails the tests, they never skip.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import { createHub, type Hub } from '../../src/hub/index.js'
import { launchChromium } from '../helpers/browser.js'
import { HOST, Inbox, ROOT, TIMEOUT, closed, selfSignedCertificate, sha256, until, waitFor, withTimeout } from '../helpers/net.js'
import { stopServer } from '../helpers/http2.js'

const FIXTURE = readFileSync(join(ROOT, 'test', 'interop', 'fixtures', 'browser-agent.html'))
const MiB = 1024 * 1024
/** Runs in the page: the protocol its navigation used ('h2' over HTTP/2); the test build has no DOM types. */
const NEXT_HOP_PROTOCOL = `performance.getEntriesByType('navigation')[0].nextHopProtocol`

let browser: Browser | undefined
let launchError: Error | undefined
before(async () => {
  try {
    browser = await launchChromium()
  } catch (error) {
    launchError = error as Error
  }
})
after(async () => {
  await browser?.close()
})
function theBrowser(): Browser {
  if (launchError) throw launchError
  return browser!
}

interface Report {
  id: number
  type: string
  kind?: string
  text?: string
  size?: number
  sha256?: string
  code?: number
  reason?: string
  wasClean?: boolean
}

describe('Chromium opens its WebSockets as streams of the HTTP/2 connection its page came over', { timeout: 120_000 }, () => {
  let wss: WebSocketServer | undefined
  let page: Page | undefined
  const pageSessions = new Set<Http2Session>()
  const pageVersions: string[] = []
  const connections: Array<{ ws: WebSocket; request: IncomingMessage; inbox: Inbox; closed: Promise<[number, string]> }> = []
  const reports: Report[] = []
  let origin = ''

  before(async () => {
    const chromium = theBrowser()
    wss = new WebSocketServer({
      host: HOST,
      port: 0,
      http2: true,
      tls: selfSignedCertificate(),
      perMessageDeflate: true,
      handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
      requestListener: (request, response) => {
        pageVersions.push(request.httpVersion)
        const session = (request as unknown as Http2ServerRequest).stream?.session
        if (session !== undefined) pageSessions.add(session)
        if (request.url === '/') {
          response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
          response.end(FIXTURE)
        } else {
          response.writeHead(404)
          response.end()
        }
      },
    })
    await waitFor(wss, 'listening')
    origin = `https://${HOST}:${(wss.address() as { port: number }).port}`
    wss.on('connection', (ws, request) => {
      ws.on('error', () => {})
      connections.push({ ws, request, inbox: new Inbox(ws), closed: closed(ws, 60_000) })
    })
    page = await chromium.newPage()
    await page.exposeFunction('tetherReport', (report: Report) => {
      reports.push(report)
    })
    const response = await page.goto(`${origin}/`, { timeout: TIMEOUT })
    assert.equal(response?.status(), 200)
  })
  after(async () => {
    await page?.close().catch(() => {})
    if (wss) await stopServer(wss)
  })

  const call = <T>(method: string, ...args: unknown[]): Promise<T> =>
    withTimeout(
      page!.evaluate(([name, list]) => (globalThis as any).agent[name as string](...(list as unknown[])), [method, args] as [string, unknown[]]),
      20_000,
      `agent.${method}`,
    ) as Promise<T>
  const reportsOf = (id: number) => reports.filter((report) => report.id === id)
  async function nextReport(id: number, taken: number): Promise<Report> {
    await until(() => reportsOf(id).length > taken, TIMEOUT, `report ${taken + 1} of browser socket ${id}`)
    return reportsOf(id)[taken]!
  }

  it('loads the page over HTTP/2, then opens a WebSocket on the same connection (server side: same session)', async () => {
    const protocol = await page!.evaluate(NEXT_HOP_PROTOCOL)
    assert.equal(protocol, 'h2')
    assert.deepEqual([...new Set(pageVersions)], ['2.0'], 'the page came over HTTP/2')
    const opened = await call<{ id: number; protocol: string; extensions: string }>('open', `${origin.replace('https', 'wss')}/socket`, { protocols: ['chat'], binaryType: 'arraybuffer' })
    await until(() => connections.length === 1)
    const { ws, request } = connections[0]!
    assert.equal(request.httpVersion, '2.0')
    assert.equal(request.method, 'CONNECT')
    assert.equal(request.headers[':protocol'], 'websocket')
    assert.equal(request.headers.origin, origin)
    const session = (ws._socket as unknown as { session: Http2Session }).session
    assert.ok(pageSessions.has(session), "the WebSocket's stream belongs to the page's HTTP/2 connection")
    assert.equal(pageSessions.size, 1, 'one connection for the page and its WebSocket')
    assert.equal(opened.protocol, 'chat')
    assert.equal(ws.protocol, 'chat')
    assert.match(opened.extensions, /^permessage-deflate/)
    assert.equal(ws.extensions, 'permessage-deflate')
    ;(globalThis as { socketId?: number }).socketId = opened.id
  })

  it('carries text and binary both ways (1 MiB compared by SHA-256) and closes with the browser\'s code', async () => {
    const id = (globalThis as { socketId?: number }).socketId!
    const { ws, inbox, closed: serverClosed } = connections[0]!
    await call('sendText', id, 'héllo from chromium over h2 ✓')
    assert.deepEqual(await inbox.one().then((m) => [String(m.data), m.isBinary]), ['héllo from chromium over h2 ✓', false])
    const digest = await call<{ size: number; sha256: string }>('sendRandom', id, MiB, 'arraybuffer')
    const received = await inbox.one(20_000)
    assert.deepEqual([received.data.length, sha256(received.data), received.isBinary], [digest.size, digest.sha256, true])
    let taken = 0
    ws.send('from tether ✓')
    assert.deepEqual(await nextReport(id, taken++).then((r) => [r.type, r.text]), ['message', 'from tether ✓'])
    const bytes = Buffer.alloc(256 * 1024)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff
    ws.send(bytes)
    assert.deepEqual(await nextReport(id, taken++).then((r) => [r.type, r.size, r.sha256]), ['message', bytes.length, sha256(bytes)])
    await call('close', id, 4000, 'bye from chromium')
    assert.deepEqual(await serverClosed, [4000, 'bye from chromium'])
    assert.deepEqual(await nextReport(id, taken++).then((r) => [r.type, r.code, r.reason, r.wasClean]), ['close', 4000, 'bye from chromium', true])
  })

  it("opens several WebSockets at once on that connection; the server's close code and a reset (1006) reach the page", async () => {
    const url = `${origin.replace('https', 'wss')}/socket`
    const before = connections.length
    const [closing, resetting, third] = await Promise.all([0, 1, 2].map(() => call<{ id: number }>('open', url, {})))
    await until(() => connections.length === before + 3)
    const mine = connections.slice(before)
    const sessions = new Set(mine.map(({ ws }) => (ws._socket as unknown as { session: Http2Session }).session))
    assert.equal(sessions.size, 1)
    assert.ok(pageSessions.has([...sessions][0]!))
    // The page's ids follow the order of the opens; the server's sockets the order of the streams' arrival.
    const byStream = mine.sort((a, b) => (a.ws._socket as unknown as { stream: { id: number } }).stream.id - (b.ws._socket as unknown as { stream: { id: number } }).stream.id)
    byStream[0]!.ws.close(1001, 'going away')
    assert.deepEqual(await nextReport(closing!.id, 0).then((r) => [r.type, r.code, r.reason, r.wasClean]), ['close', 1001, 'going away', true])
    byStream[1]!.ws.terminate()
    let report = await nextReport(resetting!.id, 0)
    if (report.type === 'error') report = await nextReport(resetting!.id, 1)
    assert.deepEqual([report.type, report.code], ['close', 1006])
    // The connection and the last WebSocket on it live on.
    await call('sendText', third!.id, 'still here')
    assert.equal(String((await byStream[2]!.inbox.one()).data), 'still here')
    byStream[2]!.ws.close()
  })
})

describe('tether serve --http2 (the hub): pages over HTTP/2 and their WebSockets on the same connection', { timeout: 120_000 }, () => {
  let hub: Hub | undefined
  after(async () => {
    await hub?.close()
  })

  it('serves the chat page over h2, and its WebSockets are later streams of that connection', async () => {
    const chromium = theBrowser()
    hub = await createHub({ port: 0, tls: selfSignedCertificate(), http2: true, log: () => {} })
    const context = await chromium.newContext()
    try {
      const page = await context.newPage()
      const response = await page.goto(`${hub.url}/chat?room=h2`, { timeout: TIMEOUT })
      assert.equal(response?.status(), 200)
      await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
      const protocol = await page.evaluate(NEXT_HOP_PROTOCOL)
      assert.equal(protocol, 'h2')
      // The chat page has two WebSockets (/chat/ws for presence, /v1 for the room's messages): both on the page's connection.
      for (let i = 0; i < 100 && hub.wss.clients.size < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      const sockets = [...hub.wss.clients].map((ws) => ws._socket as unknown as { alpnProtocol: string; stream: { id: number; session: unknown } })
      assert.equal(sockets.length, 2)
      for (const socket of sockets) {
        assert.equal(socket.alpnProtocol, 'h2')
        // Client streams are numbered 1, 3, 5... in order on one connection: a WebSocket past stream 1 rode the
        // connection that carried the page, its style and its script before it.
        assert.ok(socket.stream.id > 1, `a WebSocket is stream ${socket.stream.id}`)
      }
      assert.ok(sockets[0]!.stream.session !== undefined)
      assert.equal(sockets[0]!.stream.session, sockets[1]!.stream.session, 'one HTTP/2 connection for both')
      // The chat works over it.
      await page.fill('#nick', 'ada')
      await page.click('#join button')
      await page.locator('#log li.notice', { hasText: 'You joined #h2 as ada' }).waitFor({ timeout: 10_000 })
    } finally {
      await context.close()
    }
  })

  it('refuses --http2 without TLS (browsers speak HTTP/2 only over TLS)', async () => {
    await assert.rejects(createHub({ port: 0, http2: true, log: () => {} }), /http2 needs tls/)
  })
})
