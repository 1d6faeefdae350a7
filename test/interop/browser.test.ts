/**
 * Interop with a real browser: Debian's chromium, driven by playwright-core,
 * loads test/interop/fixtures/browser-agent.html from a plain node:http or
 * node:https server that also hosts a tether WebSocketServer (attached with
 * `server`, or `noServer` with `handleUpgrade`), and talks to it with the
 * browser's own WebSocket over ws:// and wss:// (a self-signed certificate,
 * the browser started with --ignore-certificate-errors).
 *
 * Covered, both ways and checked on both ends: unicode text, binary as
 * ArrayBuffer and Blob (0 B to 16 MiB, compared by SHA-256 and byte for
 * byte), subprotocol selection (and chromium refusing a 101 that selects
 * none of the offered subprotocols), permessage-deflate (negotiated,
 * really compressing on the wire, exact round trips) in each of tether's
 * modes, close codes and reasons in the browser's CloseEvent and in the
 * server's 'close', terminate(), maxPayload (1009), ping/pong.
 *
 * The browser is launched once for the file. A missing chromium or
 * playwright-core fails every test with a message naming .ci/run: these
 * tests never skip.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import http, { type IncomingMessage, type Server as HttpServer } from 'node:http'
import https from 'node:https'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { TLSSocket } from 'node:tls'
import type { Browser, Page } from 'playwright-core'
import { WebSocket, WebSocketServer, type ServerOptions } from '../../src/index.js'
import { launchChromium } from '../helpers/browser.js'
import { closeServer, HOST, Inbox, listen, ROOT, selfSignedCertificate, sha256, TIMEOUT, until, withTimeout } from '../helpers/net.js'

const FIXTURE = join(ROOT, 'test', 'interop', 'fixtures', 'browser-agent.html')
const SOCKET_PATH = '/socket'
const KiB = 1024
const MiB = 1024 * 1024

// ------------------------------------------------------------ the browser

let browser: Browser | undefined
let launchError: Error | undefined

/** The launched browser; fails the calling test with the launch error if there is none. */
function theBrowser(): Browser {
  if (launchError) throw launchError
  if (!browser) throw new Error('chromium was not launched')
  return browser
}

// ------------------------------------------------------------ the page's agent

type BinaryType = 'blob' | 'arraybuffer'
type SendForm = 'arraybuffer' | 'blob' | 'view'

interface SocketState {
  url: string
  protocol: string
  extensions: string
  binaryType: string
  readyState: number
}
interface Opened extends SocketState {
  id: number
}
interface Digest {
  size: number
  sha256: string
}

/** What window.agent (fixtures/browser-agent.html) offers. */
interface Agent {
  open(url: string, options: { protocols?: string[]; binaryType?: BinaryType; echo?: boolean }): Opened
  sendText(id: number, text: string): void
  sendRandom(id: number, size: number, as: SendForm): Digest
  sendCompressible(id: number, size: number, seed: number, binary: boolean): Digest
  close(id: number, code?: number, reason?: string): void
  drained(id: number, ms: number): void
  state(id: number): SocketState & { bufferedAmount: number }
}

/** What the page reports through the exposed function, in order, per socket. */
interface Report {
  id: number
  type: 'message' | 'close' | 'error' | 'agent-error'
  kind?: string
  text?: string
  size?: number
  sha256?: string
  code?: number
  reason?: string
  wasClean?: boolean
  message?: string
}

/** The same text as compressibleText() in the page. */
function compressibleText(size: number, seed: number): string {
  const parts: string[] = []
  let length = 0
  for (let i = 0; length < size; i++) {
    const part = `{"id":${i},"seed":${seed},"name":"item-${i % 97}","tags":["alpha","beta","gamma"],"ok":true},`
    parts.push(part)
    length += part.length
  }
  return parts.join('').slice(0, size)
}

// ------------------------------------------------------------ the harness

type Scheme = 'ws' | 'wss'
type Mode = 'server' | 'noServer'

/** A server-side connection, recorded from the moment it exists. */
interface ServerConnection {
  ws: WebSocket
  request: IncomingMessage
  inbox: Inbox
  /** The server-side 'close' event's code and reason (a bounded wait). */
  closed(ms?: number): Promise<[number, string]>
  errors: Array<Error & { code?: string }>
  pongs: Buffer[]
}

type HarnessOptions = Omit<ServerOptions, 'port' | 'host' | 'server' | 'noServer' | 'path'>

/**
 * One http(s) server on 127.0.0.1 serving the agent page at `/` and a tether
 * WebSocketServer at /socket, and one browser page on that origin.
 */
class Harness {
  readonly reports: Report[] = []
  readonly connections: ServerConnection[] = []
  /** The 101 answers, as the 'headers' event saw them. */
  readonly responses: string[][] = []
  readonly pageErrors: string[] = []
  /** The page's console, where chromium explains failed handshakes. */
  readonly console: string[] = []
  /** WebSocket URLs as chromium's network layer reports them (playwright's 'websocket' event). */
  readonly networkSockets: string[] = []
  #taken = 0
  #consumed = new Map<number, number>()

  readonly scheme: Scheme
  readonly mode: Mode
  readonly server: HttpServer
  readonly wss: WebSocketServer
  readonly origin: string
  readonly page: Page

  private constructor(scheme: Scheme, mode: Mode, server: HttpServer, wss: WebSocketServer, origin: string, page: Page) {
    this.scheme = scheme
    this.mode = mode
    this.server = server
    this.wss = wss
    this.origin = origin
    this.page = page
  }

  static async start(scheme: Scheme, mode: Mode, options: HarnessOptions = {}): Promise<Harness> {
    // First, so that without a browser nothing is left listening.
    const chromium = theBrowser()
    const page = readFileSync(FIXTURE)
    const serve = (request: IncomingMessage, response: http.ServerResponse): void => {
      if (request.url === '/' || request.url === '/index.html') {
        response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': page.length, 'Cache-Control': 'no-store' })
        response.end(page)
      } else {
        response.writeHead(404, { 'Content-Length': 0 })
        response.end()
      }
    }
    const server: HttpServer = scheme === 'wss' ? https.createServer(selfSignedCertificate(), serve) : http.createServer(serve)
    let wss: WebSocketServer
    if (mode === 'server') {
      wss = new WebSocketServer({ ...options, server, path: SOCKET_PATH })
    } else {
      wss = new WebSocketServer({ ...options, noServer: true, path: SOCKET_PATH })
      server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (!wss.shouldHandle(request)) {
          socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
          return
        }
        wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
      })
    }
    const port = await listen(server)
    const origin = `${scheme === 'wss' ? 'https' : 'http'}://${HOST}:${port}`
    let harness: Harness | undefined
    let browserPage: Page | undefined
    try {
      browserPage = await withTimeout(chromium.newPage(), TIMEOUT, 'a new page')
      harness = new Harness(scheme, mode, server, wss, origin, browserPage)
      const h = harness
      wss.on('headers', (lines: string[]) => h.responses.push([...lines]))
      wss.on('connection', (ws: WebSocket, request: IncomingMessage) => {
        const errors: ServerConnection['errors'] = []
        const pongs: Buffer[] = []
        ws.on('error', (error: Error) => errors.push(error))
        ws.on('pong', (data: Buffer) => pongs.push(data))
        const closed = new Promise<[number, string]>((resolve) =>
          ws.once('close', (code: number, reason: Buffer) => resolve([code, String(reason)])))
        h.connections.push({
          ws,
          request,
          inbox: new Inbox(ws),
          closed: (ms = TIMEOUT) => withTimeout(closed, ms, "the server-side 'close'"),
          errors,
          pongs,
        })
      })
      browserPage.on('pageerror', (error) => h.pageErrors.push(String(error)))
      browserPage.on('console', (message) => h.console.push(message.text()))
      browserPage.on('websocket', (socket) => h.networkSockets.push(socket.url()))
      await withTimeout(browserPage.exposeFunction('tetherReport', (report: Report) => {
        h.reports.push(report)
      }), TIMEOUT, 'exposeFunction')
      const response = await browserPage.goto(`${origin}/`, { timeout: TIMEOUT })
      assert.equal(response?.status(), 200, 'the agent page loads')
      return harness
    } catch (error) {
      await browserPage?.close().catch(() => {})
      if (harness) await harness.#stopServers()
      else await closeServer(server)
      throw error
    }
  }

  /** The WebSocket URL of this server, as the page should reach it. */
  socketUrl(query = ''): string {
    return `${this.scheme}://${new URL(this.origin).host}${SOCKET_PATH}${query}`
  }

  /** Calls window.agent[method](...args) in the page, bounded in time. */
  async call<K extends keyof Agent>(method: K, ...args: Parameters<Agent[K]>): Promise<Awaited<ReturnType<Agent[K]>>> {
    const evaluation = this.page.evaluate(
      ([name, list]) => (globalThis as unknown as { agent: Record<string, (...a: unknown[]) => unknown> }).agent[name]!(...list),
      [method, args] as [string, unknown[]],
    )
    return (await withTimeout(evaluation, 20_000, `agent.${method} in the page`)) as Awaited<ReturnType<Agent[K]>>
  }

  /** Opens a socket in the page and waits for both ends: the browser's state and the server's connection. */
  async open(options: { query?: string; protocols?: string[]; binaryType?: BinaryType; echo?: boolean } = {}): Promise<{
    id: number
    state: Opened
    conn: ServerConnection
  }> {
    const { query, ...rest } = options
    const state = await this.call('open', this.socketUrl(query), rest)
    const conn = await this.nextConnection()
    return { id: state.id, state, conn }
  }

  async nextConnection(ms = TIMEOUT): Promise<ServerConnection> {
    await until(() => this.connections.length > this.#taken, ms, 'a server-side connection')
    return this.connections[this.#taken++]!
  }

  /** The next report of socket `id`; an error inside the page's agent fails the test. */
  async next(id: number, ms = TIMEOUT): Promise<Report> {
    const pending = (): Report[] => this.reports.filter((report) => report.id === id)
    const consumed = this.#consumed.get(id) ?? 0
    await until(() => pending().length > consumed, ms, `a report from browser socket ${id}`)
    const report = pending()[consumed]!
    this.#consumed.set(id, consumed + 1)
    if (report.type === 'agent-error') throw new Error(`the page's agent failed: ${report.message}`)
    return report
  }

  /** The next report of socket `id`, which must be a message. */
  async message(id: number, ms = TIMEOUT): Promise<Report> {
    const report = await this.next(id, ms)
    assert.equal(report.type, 'message', `expected a message in the browser, got ${JSON.stringify(report).slice(0, 300)}`)
    return report
  }

  /** The CloseEvent of socket `id` (skipping an 'error' event before it). */
  async closeEvent(id: number, ms = TIMEOUT): Promise<{ code: number; reason: string; wasClean: boolean; error: boolean }> {
    let report = await this.next(id, ms)
    let error = false
    if (report.type === 'error') {
      error = true
      report = await this.next(id, ms)
    }
    assert.equal(report.type, 'close', `expected a CloseEvent in the browser, got ${JSON.stringify(report).slice(0, 300)}`)
    return { code: report.code!, reason: report.reason!, wasClean: report.wasClean!, error }
  }

  /** Whether the 101 answer of connection `index` has the header (case-insensitive name), and its value. */
  responseHeader(index: number, name: string): string | undefined {
    const prefix = name.toLowerCase() + ':'
    const line = this.responses[index]?.find((l) => l.toLowerCase().startsWith(prefix))
    return line?.slice(prefix.length).trim()
  }

  async #stopServers(): Promise<void> {
    for (const conn of this.connections) conn.ws.terminate()
    await withTimeout(new Promise<void>((resolve) => this.wss.close(() => resolve())), TIMEOUT, 'wss close')
    await closeServer(this.server)
  }

  async stop(): Promise<void> {
    try {
      await withTimeout(this.page.close(), TIMEOUT, 'page close')
    } finally {
      await this.#stopServers()
    }
    assert.deepEqual(this.pageErrors, [], 'no uncaught errors in the page')
  }
}

/** Runs `body` with a fresh harness, always stopping it. */
async function withHarness(
  scheme: Scheme,
  mode: Mode,
  options: HarnessOptions,
  body: (h: Harness) => Promise<void>,
): Promise<void> {
  const h = await Harness.start(scheme, mode, options)
  try {
    await body(h)
  } finally {
    await h.stop()
  }
}

/** Asserts `actual` equals `expected` without printing megabytes on failure. */
function assertSameText(actual: string | undefined, expected: string, label: string): void {
  if (actual === expected) return
  if (actual === undefined) assert.fail(`${label}: no text`)
  let at = 0
  while (at < Math.min(actual.length, expected.length) && actual[at] === expected[at]) at++
  assert.fail(
    `${label}: text differs (length ${actual.length} vs ${expected.length}), first difference at UTF-16 index ${at}: ` +
      `${JSON.stringify(actual.slice(at, at + 20))} vs ${JSON.stringify(expected.slice(at, at + 20))}`,
  )
}

function assertSameBytes(actual: Buffer, expected: Buffer, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`)
  assert.ok(actual.equals(expected), `${label}: bytes differ (sha256 ${sha256(actual)} vs ${sha256(expected)})`)
}

// ------------------------------------------------------------ test data

const TEXTS = [
  '',
  'plain ASCII text',
  'emoji 😀 🎉 family 👩‍👩‍👧‍👦 skin tone 👍🏽 flag 🇯🇵 rainbow 🏳️‍🌈 keycap 1️⃣',
  'CJK 漢字 ひらがな カタカナ 한국어 中文 astral 𠜎𠜱𠝹 ideographic space\u3000end',
  'RTL עברית שלום עולם · العربية مرحبا بالعالم \u200fRLM\u200e LRM \u202eoverride\u202c ۱۲۳',
  'combining e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 Z\u0351\u0334\u0353\u031f \u1100\u1161\u11a8 NFC \u00e9 vs NFD e\u0301 (not normalized)',
  'edges NUL \u0000 DEL \u007f U+0080 \u0080 U+07FF \u07ff U+0800 \u0800 U+FFFD \ufffd U+FFFF \uffff U+10000 \u{10000} U+10FFFF \u{10ffff}',
  'a byte order mark in the middle \ufeff stays',
  '\ufeffa leading U+FEFF is content too',
]

/** About 2 MiB of UTF-8 mixing 1- to 4-byte sequences, so sequences straddle frames and reads. */
const LONG_TEXT = (() => {
  const unit = TEXTS.slice(1).join(' | ') + '\n'
  return unit.repeat(Math.ceil((2 * MiB) / Buffer.byteLength(unit)))
})()

/** A close reason of exactly 123 UTF-8 bytes (the most a close frame allows) with 2-, 3- and 4-byte characters. */
const REASON_123 = '🎉'.repeat(20) + 'ü'.repeat(20) + '✓'
assert.equal(Buffer.byteLength(REASON_123), 123)

const SIZES = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB]
/** The same without 16 MiB, for the combinations that 16 MiB would only make slower. */
const SMALLER_SIZES = SIZES.filter((size) => size <= MiB)

// ------------------------------------------------------------ the tests

/** Server → browser (with the browser echoing back) and browser → server binary messages of every size. */
async function binaryServerToBrowser(h: Harness, binaryType: BinaryType, sizes: number[]): Promise<void> {
  const { id, state, conn } = await h.open({ binaryType, echo: true })
  assert.equal(state.binaryType, binaryType)
  for (const size of sizes) {
    const payload = randomBytes(size)
    conn.ws.send(payload)
    const report = await h.message(id, 20_000)
    assert.equal(report.kind, binaryType, `${size} B arrives as ${binaryType}`)
    assert.equal(report.size, size, `${size} B: size in the browser`)
    assert.equal(report.sha256, sha256(payload), `${size} B: SHA-256 in the browser`)
    const echoed = await conn.inbox.one(20_000)
    assert.equal(echoed.isBinary, true, `${size} B: the echo is binary`)
    assertSameBytes(echoed.data, payload, `${size} B echoed by the browser (${binaryType})`)
  }
  await h.call('close', id, 1000)
  assert.deepEqual(await conn.closed(), [1000, ''])
}

async function binaryBrowserToServer(h: Harness, forms: Array<[SendForm, number[]]>): Promise<void> {
  const { id, conn } = await h.open()
  for (const [as, sizes] of forms) {
    for (const size of sizes) {
      const sent = await h.call('sendRandom', id, size, as)
      const received = await conn.inbox.one(20_000)
      assert.equal(received.isBinary, true, `${size} B sent as ${as}: binary on the server`)
      assert.equal(received.data.length, size, `${size} B sent as ${as}: length on the server`)
      assert.equal(sha256(received.data), sent.sha256, `${size} B sent as ${as}: SHA-256 on the server`)
    }
  }
  await h.call('close', id, 1000)
  assert.deepEqual(await conn.closed(), [1000, ''])
}

/** Opens a socket, lets `send` exceed the server's maxPayload, and expects 1009 in the browser and on the server. */
async function expect1009(h: Harness, label: string, send: (id: number) => Promise<unknown>): Promise<void> {
  const { id, conn } = await h.open()
  await send(id)
  const event = await h.closeEvent(id, 20_000)
  assert.equal(event.code, 1009, `${label}: the browser's CloseEvent code (${JSON.stringify(event)})`)
  // Not asserted: event.wasClean. Chromium is still sending the message when the close frame
  // arrives, and in a few percent of runs its read then ends in a reset instead of a clean EOF
  // (wasClean false, code still 1009). npm ws as the server shows the same rate, so it is not tether.
  await conn.closed()
  assert.equal(conn.inbox.messages.length, 0, `${label}: nothing delivered`)
  assert.deepEqual(conn.errors.map((error) => error.code), ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'], label)
}

/** The suite run for one scheme and server mode. */
function interopSuite(scheme: Scheme, mode: Mode): void {
  // 16 MiB goes both ways in each scheme: server → browser and back as ArrayBuffer (and, over ws://,
  // as Blob), browser → server as Blob (and, over ws://, as ArrayBuffer).
  const full = scheme === 'ws'
  const toBrowser = (binaryType: BinaryType): number[] => (binaryType === 'arraybuffer' || full ? SIZES : SMALLER_SIZES)
  const toServer: Array<[SendForm, number[]]> = [
    ['arraybuffer', full ? SIZES : SMALLER_SIZES],
    ['blob', SIZES],
    ['view', SMALLER_SIZES],
  ]

  describe(`${scheme}:// with the WebSocketServer in ${mode} mode`, () => {
    it('handshake: the page reaches the server over the expected scheme; no subprotocol, no extension by default', async () => {
      await withHarness(scheme, mode, {}, async (h) => {
        const { id, state, conn } = await h.open()
        assert.equal(state.url, h.socketUrl(), 'the browser socket URL')
        assert.equal(state.readyState, 1)
        assert.equal(state.protocol, '')
        assert.equal(state.extensions, '', 'no permessage-deflate unless the server enables it')
        assert.equal(conn.ws.protocol, '')
        assert.equal(conn.ws.extensions, '')
        assert.equal(h.responseHeader(0, 'sec-websocket-extensions'), undefined)
        assert.equal(h.responseHeader(0, 'sec-websocket-protocol'), undefined)
        assert.ok(h.responses[0]![0]!.startsWith('HTTP/1.1 101 '), h.responses[0]![0])
        assert.equal(conn.request.headers.origin, h.origin, 'the Origin header is the page origin')
        assert.equal(conn.request.headers['sec-websocket-version'], '13')
        assert.match(String(conn.request.headers['sec-websocket-extensions']), /permessage-deflate/, 'chromium offers permessage-deflate')
        const pageProtocol = await withTimeout(
          h.page.evaluate(() => (globalThis as unknown as { location: { protocol: string } }).location.protocol),
          TIMEOUT,
          'location.protocol',
        )
        if (scheme === 'wss') {
          assert.equal(pageProtocol, 'https:')
          assert.ok(state.url.startsWith('wss://'))
          assert.ok(conn.ws._socket instanceof TLSSocket, 'the server-side socket is a TLS socket')
          assert.equal((conn.request.socket as TLSSocket).encrypted, true)
          assert.ok((conn.ws._socket as TLSSocket).getProtocol()?.startsWith('TLSv1.'), 'TLS negotiated')
          assert.deepEqual(h.networkSockets, [h.socketUrl()], "chromium's network layer opened a wss:// socket")
          // The same port does not answer plain ws://: only TLS reached the WebSocketServer.
          await assert.rejects(h.call('open', `ws://${new URL(h.origin).host}${SOCKET_PATH}`, {}), /closed before open: 1006/)
          assert.equal(h.connections.length, 1, 'no connection over plain TCP')
        } else {
          assert.equal(pageProtocol, 'http:')
          assert.ok(state.url.startsWith('ws://'))
          assert.ok(!(conn.ws._socket instanceof TLSSocket), 'plain TCP')
          assert.deepEqual(h.networkSockets, [h.socketUrl()], "chromium's network layer opened a ws:// socket")
        }
        // One message each way proves the connection carries data.
        conn.ws.send('hello page')
        assert.equal((await h.message(id)).text, 'hello page')
        await h.call('sendText', id, 'hello server')
        assert.equal(String((await conn.inbox.one()).data), 'hello server')
        await h.call('close', id, 1000)
        assert.deepEqual(await conn.closed(), [1000, ''])
      })
    })

    it('text: unicode (emoji, CJK, RTL, combining, edges) and 2 MiB of mixed UTF-8, exact both ways', async () => {
      await withHarness(scheme, mode, {}, async (h) => {
        const { id, conn } = await h.open()
        for (const text of [...TEXTS, LONG_TEXT]) {
          const label = JSON.stringify(text.slice(0, 30))
          conn.ws.send(text)
          const report = await h.message(id)
          assert.equal(report.kind, 'text', `${label} arrives as text`)
          assertSameText(report.text, text, `server → browser ${label}`)
          await h.call('sendText', id, text)
          const received = await conn.inbox.one()
          assert.equal(received.isBinary, false, `${label} is a text message on the server`)
          assertSameBytes(received.data, Buffer.from(text, 'utf8'), `browser → server ${label}`)
        }
        await h.call('close', id, 1000)
        assert.deepEqual(await conn.closed(), [1000, ''])
      })
    })

    for (const binaryType of ['arraybuffer', 'blob'] as const) {
      it(`binary server → browser (binaryType '${binaryType}') and echoed back: ${toBrowser(binaryType).join(', ')} bytes, exact`, async () => {
        await withHarness(scheme, mode, {}, (h) => binaryServerToBrowser(h, binaryType, toBrowser(binaryType)))
      })
    }

    const forms = toServer.map(([as, sizes]) => `${as} (${sizes.join(', ')})`).join('; ')
    it(`binary browser → server, bytes as: ${forms}; exact`, async () => {
      await withHarness(scheme, mode, {}, (h) => binaryBrowserToServer(h, toServer))
    })

    it("subprotocols: handleProtocols picks 'v1.tether' of ['v2.tether', 'v1.tether']; declined or not offered → ''", async () => {
      const offers: string[][] = []
      const handleProtocols = (protocols: Set<string>, request: IncomingMessage): string | false => {
        offers.push([...protocols])
        if (request.url?.endsWith('?decline')) return false
        return protocols.has('v1.tether') ? 'v1.tether' : false
      }
      await withHarness(scheme, mode, { handleProtocols }, async (h) => {
        const chosen = await h.open({ protocols: ['v2.tether', 'v1.tether'] })
        assert.deepEqual(offers[0], ['v2.tether', 'v1.tether'], 'the offer, in the browser order')
        assert.equal(chosen.state.protocol, 'v1.tether', 'the browser sees the protocol the server picked')
        assert.equal(chosen.conn.ws.protocol, 'v1.tether')
        assert.equal(h.responseHeader(0, 'sec-websocket-protocol'), 'v1.tether')
        chosen.conn.ws.send('on v1')
        assert.equal((await h.message(chosen.id)).text, 'on v1')
        await h.call('sendText', chosen.id, 'on v1 too')
        assert.equal(String((await chosen.conn.inbox.one()).data), 'on v1 too')

        // Declined: tether answers 101 without Sec-WebSocket-Protocol (as ws does, and RFC 6455 §4.2.2
        // allows). Chromium, stricter than RFC 6455 §4.1 and WHATWG fetch, fails such a handshake
        // ("Sent non-empty 'Sec-WebSocket-Protocol' header but no response was received"): 1006.
        await assert.rejects(
          h.call('open', h.socketUrl('?decline'), { protocols: ['v2.tether', 'v1.tether'] }),
          /closed before open: 1006/,
        )
        assert.deepEqual(offers[1], ['v2.tether', 'v1.tether'])
        assert.equal(h.responseHeader(1, 'sec-websocket-protocol'), undefined, 'no Sec-WebSocket-Protocol in the answer')
        const declined = await h.nextConnection()
        assert.equal(declined.ws.protocol, '', "the server side's protocol")
        assert.equal((await declined.closed())[0], 1006)
        assert.deepEqual(declined.errors, [], 'the browser dropping the connection is not an error on the server')
        await until(() => h.console.some((line) => line.includes('Sec-WebSocket-Protocol')), TIMEOUT, "chromium's console message")

        // Without an offer, handleProtocols is not consulted and the protocol is ''.
        const none = await h.open()
        assert.equal(offers.length, 2)
        assert.equal(none.state.protocol, '')
        assert.equal(none.conn.ws.protocol, '')
        assert.equal(h.responseHeader(2, 'sec-websocket-protocol'), undefined)
        await h.call('sendText', none.id, 'no protocol')
        assert.equal(String((await none.conn.inbox.one()).data), 'no protocol')
        for (const { id, conn } of [chosen, none]) {
          await h.call('close', id, 1000)
          assert.deepEqual(await conn.closed(), [1000, ''])
        }
      })
    })

    const deflateConfigs: Array<{ label: string; option: NonNullable<ServerOptions['perMessageDeflate']>; response: RegExp }> = [
      { label: 'true (context takeover)', option: true, response: /^permessage-deflate(;|$)/ },
      { label: "mode 'shared'", option: { mode: 'shared' }, response: /server_no_context_takeover/ },
      { label: "mode 'small'", option: { mode: 'small' }, response: /server_max_window_bits=9/ },
      {
        label: 'no context takeover, window bits 10/11',
        option: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 11 },
        response: /client_max_window_bits=11/,
      },
    ]
    for (const { label, option, response } of deflateConfigs) {
      it(`permessage-deflate, perMessageDeflate: ${label}: negotiated, compressed on the wire, exact round trips`, async () => {
        await withHarness(scheme, mode, { perMessageDeflate: option }, async (h) => {
          const { id, state, conn } = await h.open({ binaryType: 'arraybuffer' })
          assert.match(state.extensions, /^permessage-deflate/, `the browser's ws.extensions: ${state.extensions}`)
          assert.equal(conn.ws.extensions, 'permessage-deflate')
          const answer = h.responseHeader(0, 'sec-websocket-extensions') ?? ''
          assert.match(answer, response, `the server's answer: ${answer}`)
          const socket = conn.ws._socket!

          // Server → browser: 4 MiB of compressible text must cross the wire in far fewer bytes.
          const big = compressibleText(4 * MiB, 1)
          const writtenBefore = socket.bytesWritten
          conn.ws.send(big)
          const report = await h.message(id, 20_000)
          assertSameText(report.text, big, 'compressed server → browser text')
          const written = socket.bytesWritten - writtenBefore
          assert.ok(written > 0 && written < big.length / 10, `4 MiB of compressible text took ${written} bytes on the wire`)

          // Browser → server: chromium compresses too.
          const readBefore = socket.bytesRead
          const sent = await h.call('sendCompressible', id, 4 * MiB, 2, false)
          const received = await conn.inbox.one(20_000)
          assert.equal(received.isBinary, false)
          assert.equal(sha256(received.data), sent.sha256, 'compressed browser → server text')
          const read = socket.bytesRead - readBefore
          assert.ok(read > 0 && read < sent.size / 10, `4 MiB of compressible text from the browser took ${read} bytes on the wire`)

          // Similar messages in a row (context takeover when negotiated), around the 1 KiB threshold,
          // compressible binary, and random data that does not shrink: all exact, both ways.
          const messages: Array<{ data: Buffer; binary: boolean }> = []
          for (const [i, size] of [1, 100, 1023, 1024, 1025, 5000, 5000, 5000, 70_000, 300_000].entries()) {
            messages.push({ data: Buffer.from(compressibleText(size, 10 + (i % 2))), binary: i % 3 === 0 })
          }
          messages.push({ data: randomBytes(256 * KiB), binary: true }, { data: randomBytes(2000), binary: true })
          messages.push({ data: Buffer.from(LONG_TEXT.slice(0, 300_000)), binary: false })
          for (const [i, { data, binary }] of messages.entries()) {
            conn.ws.send(data, { binary })
            const got = await h.message(id)
            if (binary) {
              assert.equal(got.kind, 'arraybuffer', `message ${i}`)
              assert.equal(got.size, data.length, `message ${i}: size in the browser`)
              assert.equal(got.sha256, sha256(data), `message ${i}: SHA-256 in the browser`)
            } else {
              assertSameText(got.text, data.toString('utf8'), `message ${i} in the browser`)
            }
          }
          for (const [i, size] of [1, 1500, 1500, 1500, 100_000].entries()) {
            const text = await h.call('sendCompressible', id, size, 20 + i, i % 2 === 1)
            const got = await conn.inbox.one()
            assert.equal(got.isBinary, i % 2 === 1)
            assert.equal(sha256(got.data), text.sha256, `compressible message ${i} from the browser`)
          }
          for (const as of ['arraybuffer', 'blob'] as const) {
            const random = await h.call('sendRandom', id, 300 * KiB, as)
            const got = await conn.inbox.one()
            assert.equal(sha256(got.data), random.sha256, `random ${as} from the browser`)
          }
          assert.deepEqual(conn.errors, [])
          await h.call('close', id, 1000)
          assert.deepEqual(await conn.closed(), [1000, ''])
        })
      })
    }

    it('close initiated by the server: 1000, 1001, 4000 "bye", 4999 with a 123-byte reason, no code (1005) → CloseEvent, wasClean', async () => {
      await withHarness(scheme, mode, {}, async (h) => {
        const cases: Array<[number | undefined, string | undefined, number, string]> = [
          [1000, undefined, 1000, ''],
          [1001, undefined, 1001, ''],
          [4000, 'bye', 4000, 'bye'],
          [4999, REASON_123, 4999, REASON_123],
          [undefined, undefined, 1005, ''],
        ]
        for (const [code, reason, expectedCode, expectedReason] of cases) {
          const { id, conn } = await h.open()
          conn.ws.close(code, reason)
          const event = await h.closeEvent(id)
          assert.deepEqual(event, { code: expectedCode, reason: expectedReason, wasClean: true, error: false }, `server close(${code}, ${reason})`)
          const [serverCode] = await conn.closed()
          // The browser echoes the status code in its answering close frame.
          assert.equal(serverCode, expectedCode, `the server's 'close' after close(${code})`)
          assert.equal(conn.ws.wasClean, true)
          assert.deepEqual(conn.errors, [])
        }
      })
    })

    it('close initiated by the browser: 1000, 3000 "from page", 4999 with a 123-byte reason, no code → the server sees code and reason', async () => {
      await withHarness(scheme, mode, {}, async (h) => {
        const cases: Array<[number | undefined, string | undefined, number, string]> = [
          [1000, undefined, 1000, ''],
          [3000, 'from page', 3000, 'from page'],
          [4999, REASON_123, 4999, REASON_123],
          [undefined, undefined, 1005, ''],
        ]
        for (const [code, reason, expectedCode, expectedReason] of cases) {
          const { id, conn } = await h.open()
          await h.call('close', id, code, reason)
          assert.deepEqual(await conn.closed(), [expectedCode, expectedReason], `page close(${code}, ${reason})`)
          const event = await h.closeEvent(id)
          assert.deepEqual(event, { code: expectedCode, reason: expectedReason, wasClean: true, error: false }, `the page's own CloseEvent`)
          assert.equal(conn.ws.wasClean, true)
          assert.deepEqual(conn.errors, [])
        }
      })
    })

    it('terminate() on the server: the browser sees 1006, wasClean false', async () => {
      await withHarness(scheme, mode, {}, async (h) => {
        const { id, conn } = await h.open()
        conn.ws.send('before terminate')
        assert.equal((await h.message(id)).text, 'before terminate')
        conn.ws.terminate()
        const event = await h.closeEvent(id)
        assert.equal(event.code, 1006)
        assert.equal(event.wasClean, false)
        assert.equal((await conn.closed())[0], 1006)
      })
    })

    it('maxPayload: a browser message over the limit closes with 1009 (one byte over, far over, text); at the limit passes', async () => {
      const limit = 64 * KiB
      await withHarness(scheme, mode, { maxPayload: limit }, async (h) => {
        const atLimit = await h.open()
        const sent = await h.call('sendRandom', atLimit.id, limit, 'arraybuffer')
        assert.equal(sha256((await atLimit.conn.inbox.one()).data), sent.sha256, 'a message of exactly maxPayload bytes')
        await h.call('close', atLimit.id, 1000)
        await atLimit.conn.closed()

        const overs: Array<[string, (id: number) => Promise<unknown>]> = [
          ['one byte over, binary', (id) => h.call('sendRandom', id, limit + 1, 'arraybuffer')],
          ['4 MiB over a 64 KiB limit, Blob', (id) => h.call('sendRandom', id, 4 * MiB, 'blob')],
          ['text over', (id) => h.call('sendText', id, '\u00fc'.repeat(limit / 2 + 1))],
        ]
        for (const [label, send] of overs) await expect1009(h, label, send)
      })
    })

    it('maxPayload with permessage-deflate: the inflated size counts (a few KiB inflating to 1 MiB → 1009)', async () => {
      const limit = 64 * KiB
      await withHarness(scheme, mode, { maxPayload: limit, perMessageDeflate: true }, async (h) => {
        const atLimit = await h.open()
        assert.match(atLimit.state.extensions, /permessage-deflate/)
        const sent = await h.call('sendCompressible', atLimit.id, limit, 4, false)
        assert.equal(sha256((await atLimit.conn.inbox.one()).data), sent.sha256, 'compressible, exactly maxPayload bytes inflated')
        await h.call('close', atLimit.id, 1000)
        await atLimit.conn.closed()
        await expect1009(h, 'compressed, inflating past the limit', (id) => h.call('sendCompressible', id, MiB, 3, false))
        await expect1009(h, 'compressed binary, one byte past the limit', (id) => h.call('sendCompressible', id, limit + 1, 5, true))
      })
    })

    it('ping from the server: the browser answers with a pong carrying the same payload', async () => {
      await withHarness(scheme, mode, {}, async (h) => {
        const { id, conn } = await h.open()
        for (const payload of [Buffer.alloc(0), Buffer.from('ping ✓'), randomBytes(125)]) {
          const count = conn.pongs.length
          conn.ws.ping(payload)
          await until(() => conn.pongs.length > count, TIMEOUT, 'a pong')
          assertSameBytes(conn.pongs[count]!, payload, 'the pong payload')
        }
        await h.call('close', id, 1000)
        await conn.closed()
      })
    })
  })
}

describe('browser interop (chromium via playwright-core)', () => {
  before(async () => {
    try {
      browser = await launchChromium()
    } catch (error) {
      // Kept, so that every test fails with this message rather than the hook alone.
      launchError = error as Error
    }
  })
  after(async () => {
    // Bounded: playwright also kills the browser when this process exits.
    if (browser) await withTimeout(browser.close(), TIMEOUT, 'chromium to close').catch(() => {})
  })

  interopSuite('ws', 'server')
  interopSuite('wss', 'noServer')

  describe('the other two combinations', () => {
    for (const [scheme, mode] of [['ws', 'noServer'], ['wss', 'server']] as const) {
      it(`${scheme}:// in ${mode} mode: text, binary and a subprotocol, both ways`, async () => {
        const handleProtocols = (protocols: Set<string>): string | false => (protocols.has('v2.tether') ? 'v2.tether' : false)
        await withHarness(scheme, mode, { handleProtocols }, async (h) => {
          const { id, state, conn } = await h.open({ protocols: ['v2.tether', 'v1.tether'], binaryType: 'arraybuffer', echo: true })
          assert.ok(state.url.startsWith(`${scheme}://`))
          assert.equal(state.protocol, 'v2.tether')
          assert.equal(conn.ws._socket instanceof TLSSocket, scheme === 'wss')
          conn.ws.send(TEXTS[2]!)
          assert.equal((await h.message(id)).text, TEXTS[2])
          assert.equal(String((await conn.inbox.one()).data), TEXTS[2])
          const payload = randomBytes(70_000)
          conn.ws.send(payload)
          assert.equal((await h.message(id)).sha256, sha256(payload))
          assertSameBytes((await conn.inbox.one()).data, payload, 'echo')
          await h.call('close', id, 3000, 'from page')
          assert.deepEqual(await conn.closed(), [3000, 'from page'])
        })
      })
    }
  })
})
