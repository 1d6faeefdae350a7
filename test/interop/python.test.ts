/**
 * Interop with Python's `websockets` (10.x, Debian's python3-websockets),
 * an implementation no one on this project wrote, both ways:
 * (a) tether's client against test/interop/python/echo_server.py;
 * (b) test/interop/python/client.py against tether's WebSocketServer.
 * Text and binary of every length class up to 16 MiB (compared by SHA-256
 * on both ends), unicode, subprotocols, permessage-deflate (websockets
 * enables it by default, with 12-bit windows on its server side), ping/pong,
 * close codes and reasons both ways, and a protocol error each way.
 *
 * The Python processes run on 127.0.0.1 with ports the OS chooses, and are
 * killed in `finally`/`after`. A missing /usr/bin/python3 or websockets
 * module fails every test here with the hint that .ci/run installs it.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type PerMessageDeflateOptions, type ServerOptions, WebSocket, WebSocketServer } from '../../src/index.js'
import { compressibleBytes, compressibleText, extensionParams, KiB, MiB, randomText, shutdown } from '../helpers/deflate.js'
import {
  closeServer,
  HOST,
  Inbox,
  listen,
  opened,
  selfSignedCertificate,
  sha256,
  tetherServer,
  TIMEOUT,
  until,
  waitFor,
  withTimeout,
} from '../helpers/net.js'
import { type ClientStep, type PythonServer, requirePythonWebsockets, runPythonClient, startPythonServer } from '../helpers/python.js'

const SIZES = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB]
const TEXT_SIZES = [0, 1, 125, 126, 65535, 65536, MiB]
const UNICODE = [
  'emoji 🎉 family 👩‍👩‍👧‍👦 flag 🇯🇵 rainbow 🏳️‍🌈 skin tone 👍🏽',
  'CJK 日本語 中文 한국어, astral 𠀋𡈽𪚲, full-width ＡＢＣ',
  'combining marks: e\u0301 a\u0308 n\u0303 Z\u0351\u0307\u0358\u0362, jamo \u1100\u1161\u11a8, NFC é vs NFD e\u0301',
  'RTL עברית العربية, BOM \ufeff, NUL \u0000, U+FFFF \uffff, U+10FFFF \u{10ffff}, 𝄞',
]
/** The largest control payload, 125 bytes. */
const PING_125 = 'ü'.repeat(62) + '!'
/** Close reasons of the longest length allowed, 123 bytes (§5.5: 125 with the code). */
const BYE_FROM_TETHER = longest('bye from tether ✓ ')
const BYE_FROM_PYTHON = longest('bye from Python ✓ ')
function longest(prefix: string): string {
  const padded = prefix + 'é'.repeat(Math.floor((123 - Buffer.byteLength(prefix)) / 2))
  return padded + 'x'.repeat(123 - Buffer.byteLength(padded))
}
/** A random 6000-byte block twice: a deflater keeping to a 12-bit window (4 KiB) must not reach back to it. */
const FAR_REPEAT = (() => {
  const block = randomText(6000)
  return block + block
})()

/** Sent twice in a row: with context takeover the second copy is a reference into the first. */
const TWICE = randomText(1500)

/** Every test needs Python: this runs first and names what is missing. */
it('Python websockets is available (/usr/bin/python3, python3-websockets)', () => {
  const version = requirePythonWebsockets()
  assert.match(version, /^1\d\./, `websockets ${version}: these tests use its 10.x asyncio API`)
})

// ------------------------------------------------ (a) tether client -> Python server

describe('tether client -> Python websockets server', () => {
  let server: PythonServer | undefined
  let plain: PythonServer | undefined
  const clients: WebSocket[] = []
  let ids = 0

  before(async () => {
    ;[server, plain] = await Promise.all([
      startPythonServer(['--subprotocols', 'chat.v2,superchat']),
      startPythonServer(['--no-compression']),
    ])
  })
  after(async () => {
    for (const ws of clients) if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
    await Promise.all([server?.process.kill(), plain?.process.kill()])
  })

  /**
   * Opens a tether client to a route of `on`. Its listeners are attached before
   * 'open': a message that arrives with the 101 answer is emitted on the next
   * tick, before an `await` resumes (as with ws).
   */
  async function connect(
    on: PythonServer | undefined,
    route: string,
    options: {
      protocols?: string[]
      perMessageDeflate?: boolean | PerMessageDeflateOptions
      query?: string
      maxPayload?: number
      ca?: string
    } = {},
  ) {
    assert.ok(on, 'the Python server did not start')
    const id = `c${++ids}`
    const ws = new WebSocket(on.url(`${route}?id=${id}${options.query ?? ''}`), options.protocols ?? [], {
      perMessageDeflate: options.perMessageDeflate ?? true,
      ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    })
    clients.push(ws)
    const inbox = new Inbox(ws)
    const errors: Array<Error & { code?: string; closeCode?: number }> = []
    ws.on('error', (error) => errors.push(error))
    const pings: string[] = []
    ws.on('ping', (data) => pings.push(String(data)))
    const pongs: string[] = []
    ws.on('pong', (data) => pongs.push(String(data)))
    const close = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, String(reason)])))
    await opened(ws)
    return { ws, id, inbox, errors, pings, pongs, closed: () => withTimeout(close, TIMEOUT, "'close'") }
  }

  for (const [title, target] of [['uncompressed', () => plain], ['compressed', () => server]] as const) {
    it(`binary messages of 0 B to 16 MiB (${title}): Python receives them byte-exact, and tether its echoes`, async () => {
      const hashing = await connect(target(), '/hash')
      const echoing = await connect(target(), '/echo')
      assert.equal(echoing.ws.extensions, title === 'compressed' ? 'permessage-deflate' : '')
      for (const size of SIZES) {
        // Compressed, the large ones compress well: zlib on 16 MiB of noise, twice each way, is slow.
        const payload = title === 'compressed' && size >= MiB ? compressibleBytes(size) : randomBytes(size)
        hashing.ws.send(payload)
        const digest = JSON.parse(String((await hashing.inbox.one(30_000)).data))
        assert.deepEqual(digest, { binary: true, length: size, sha256: sha256(payload) }, `size ${size} as Python received it`)
        echoing.ws.send(payload)
        const echo = await echoing.inbox.one(30_000)
        assert.equal(echo.isBinary, true)
        assert.equal(echo.data.length, size)
        assert.equal(sha256(echo.data), sha256(payload), `size ${size} echoed`)
      }
      hashing.ws.close(1000)
      echoing.ws.close(1000)
      assert.deepEqual(await echoing.closed(), [1000, ''])
    })

    it(`text of every length class and unicode (emoji, CJK, combining marks) (${title}) arrives as the same code points`, async () => {
      const hashing = await connect(target(), '/hash')
      const echoing = await connect(target(), '/echo')
      const texts = [...TEXT_SIZES.map((n) => randomText(n)), ...UNICODE, UNICODE.join(' | ').repeat(2000)]
      for (const text of texts) {
        hashing.ws.send(text)
        echoing.ws.send(text)
      }
      const got = await hashing.inbox.next(texts.length, 20_000)
      const back = await echoing.inbox.next(texts.length, 20_000)
      texts.forEach((text, i) => {
        const digest = JSON.parse(String(got[i]!.data))
        assert.equal(digest.binary, false)
        assert.equal(digest.length, Buffer.byteLength(text))
        assert.equal(digest.sha256, sha256(text))
        if (text.length <= 4096) assert.equal(digest.text, text, 'as Python decoded it')
        assert.equal(back[i]!.isBinary, false)
        assert.equal(back[i]!.data.toString('utf8'), text, `echo ${i}`)
      })
      hashing.ws.close(1000)
      echoing.ws.close(1000)
    })
  }

  it('subprotocols: Python picks the one both support; tether sees it in `protocol`', async () => {
    const { ws, inbox } = await connect(server, '/info', { protocols: ['chat.v1', 'chat.v2'] })
    const info = JSON.parse(String((await inbox.one()).data))
    assert.equal(ws.protocol, 'chat.v2')
    assert.equal(info.subprotocol, 'chat.v2')
    assert.deepEqual(info.request_protocols.join(',').split(',').map((p: string) => p.trim()), ['chat.v1', 'chat.v2'])
    ws.close(1000)

    // None in common: websockets answers without the header; tether accepts (RFC 6455 §4.1).
    const none = await connect(server, '/info', { protocols: ['nope'] })
    const noInfo = JSON.parse(String((await none.inbox.one()).data))
    assert.equal(none.ws.protocol, '')
    assert.equal(noInfo.subprotocol, null)
    none.ws.close(1000)
  })

  it('permessage-deflate: negotiated with websockets\' 12-bit windows, compressed on the wire both ways, exact', async () => {
    const { ws, inbox, closed } = await connect(server, '/info')
    const info = JSON.parse(String((await inbox.one()).data))
    assert.equal(ws.extensions, 'permessage-deflate')
    assert.equal(extensionParams(info.request_extensions).get(''), 'permessage-deflate', `tether offered ${info.request_extensions}`)
    assert.deepEqual(info.extensions, [{
      name: 'permessage-deflate',
      remote_no_context_takeover: false,
      local_no_context_takeover: false,
      remote_max_window_bits: 12,
      local_max_window_bits: 12,
    }])
    assert.equal(extensionParams(info.response_extensions).get('client_max_window_bits'), '12')

    const socket = ws._socket!
    const message = compressibleText(256 * KiB)
    const [written, read] = [socket.bytesWritten, socket.bytesRead]
    ws.send(message)
    const echo = await inbox.one()
    assert.equal(echo.data.toString(), message)
    const sent = socket.bytesWritten - written
    const received = socket.bytesRead - read
    assert.ok(sent < message.length / 20, `tether sent ${sent} bytes for ${message.length}`)
    assert.ok(received < message.length / 20, `Python sent ${received} bytes for ${message.length}`)

    // Context takeover both ways: a stream of similar messages; then a repeat beyond 4 KiB,
    // which a deflater ignoring the agreed 12-bit window would encode as a reference Python cannot follow.
    const texts = [
      ...Array.from({ length: 20 }, (_, i) => JSON.stringify({ seq: i, items: Array.from({ length: 40 }, (_, j) => ({ id: j, name: `item ${j}` })) })),
      FAR_REPEAT,
      ...UNICODE,
    ]
    for (const text of texts) ws.send(text)
    const back = await inbox.next(texts.length)
    back.forEach((got, i) => assert.equal(got.data.toString(), texts[i]))

    // 16 MiB that compresses well, both ways (about 15:1 with 4 KiB windows).
    const large = compressibleBytes(16 * MiB)
    const before = [socket.bytesWritten, socket.bytesRead]
    ws.send(large)
    const largeEcho = await inbox.one(30_000)
    assert.equal(sha256(largeEcho.data), sha256(large))
    assert.ok(socket.bytesWritten - before[0]! < large.length / 10, `tether sent ${socket.bytesWritten - before[0]!} bytes for 16 MiB`)
    assert.ok(socket.bytesRead - before[1]! < large.length / 10, `Python sent ${socket.bytesRead - before[1]!} bytes for 16 MiB`)
    ws.close(1000)
    assert.deepEqual(await closed(), [1000, ''])
  })

  it('permessage-deflate with tether\'s own parameters (server window 10, no client context takeover)', async () => {
    const { ws, inbox } = await connect(server, '/info', { perMessageDeflate: { serverMaxWindowBits: 10, clientNoContextTakeover: true } })
    const info = JSON.parse(String((await inbox.one()).data))
    assert.equal(ws.extensions, 'permessage-deflate')
    assert.equal(info.extensions[0].local_max_window_bits, 10, JSON.stringify(info))
    assert.equal(info.extensions[0].remote_no_context_takeover, true, JSON.stringify(info))
    // tether may not take over context: a second copy of a message must not refer to the first.
    const texts = [compressibleText(100 * KiB), FAR_REPEAT, randomText(70_000), FAR_REPEAT, TWICE, TWICE]
    for (const text of texts) ws.send(text)
    const back = await inbox.next(texts.length)
    back.forEach((got, i) => assert.equal(got.data.toString(), texts[i]))
    ws.close(1000)
  })

  it('permessage-deflate with threshold 0: empty and tiny messages compressed, exact', async () => {
    const { ws, inbox } = await connect(server, '/echo', { perMessageDeflate: { threshold: 0 } })
    const messages: Array<string | Buffer> = ['', Buffer.alloc(0), 'a', Buffer.from([0]), 'aa', 'aa', TWICE, TWICE, '', UNICODE[0]!]
    for (const message of messages) ws.send(message)
    const back = await inbox.next(messages.length)
    back.forEach((got, i) => {
      assert.equal(got.isBinary, typeof messages[i] !== 'string', `message ${i}`)
      assert.deepEqual(got.data, Buffer.from(messages[i]!), `message ${i}`)
    })
    ws.close(1000)
  })

  it('without compression on the Python side: extensions are empty, messages are raw on the wire', async () => {
    const { ws, inbox } = await connect(plain, '/info')
    const info = JSON.parse(String((await inbox.one()).data))
    assert.equal(ws.extensions, '')
    assert.deepEqual(info.extensions, [])
    const message = compressibleText(64 * KiB)
    const written = ws._socket!.bytesWritten
    ws.send(message)
    assert.equal((await inbox.one()).data.toString(), message)
    assert.ok(ws._socket!.bytesWritten - written >= message.length)
    ws.close(1000)
  })

  it('fragmented sends (fin: false), compressed, with a ping between fragments and a character split across them, arrive whole', async () => {
    const { ws, inbox, pongs } = await connect(server, '/hash')
    ws.send('frag', { fin: false })
    ws.ping('between fragments')
    ws.send('', { fin: false })
    ws.send('ment 𝄞', { fin: true })
    const part = randomBytes(70_000)
    ws.send(part.subarray(0, 1), { binary: true, fin: false })
    ws.send(part.subarray(1, 66_000), { binary: true, fin: false })
    ws.send(part.subarray(66_000), { binary: true, fin: true })
    const big = compressibleText(300 * KiB)
    ws.send(big.slice(0, 1000), { fin: false })
    ws.send(big.slice(1000), { fin: true })
    // A character split across fragments: valid UTF-8 only as a whole.
    const euro = Buffer.from('x€y')
    ws.send(euro.subarray(0, 2), { binary: false, fin: false })
    ws.send(euro.subarray(2, 4), { binary: false, fin: false })
    ws.send(euro.subarray(4), { binary: false, fin: true })
    const [text, binary, compressible, split] = (await inbox.next(4)).map((m) => JSON.parse(String(m.data)))
    assert.equal(split.text, 'x€y')
    assert.deepEqual(text, { binary: false, length: Buffer.byteLength('fragment 𝄞'), sha256: sha256('fragment 𝄞'), text: 'fragment 𝄞' })
    assert.deepEqual(binary, { binary: true, length: part.length, sha256: sha256(part) })
    assert.deepEqual([compressible.length, compressible.sha256], [Buffer.byteLength(big), sha256(big)])
    assert.deepEqual(pongs, ['between fragments'])
    ws.close(1000)
  })

  it('maxPayload: an echo from Python over the limit fails the connection with 1009 (compressed: inflated size counts)', async () => {
    for (const target of [plain, server]) {
      const { ws, id, inbox, errors, closed } = await connect(target, '/echo', { maxPayload: 64 * KiB })
      ws.send(compressibleText(64 * KiB))
      assert.equal((await inbox.one()).data.length, 64 * KiB, 'a message at the limit')
      ws.send(compressibleText(64 * KiB + 1))
      assert.deepEqual(await closed(), [1006, ''])
      assert.equal(errors[0]?.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', ws.extensions)
      assert.equal(errors[0]?.closeCode, 1009)
      assert.equal(inbox.messages.length, 1)
      assert.equal((await target!.closed(id)).code, 1009, 'the close frame Python received')
    }
  })

  it('ping/pong both ways, payloads kept (up to 125 bytes)', async () => {
    // Python pings tether (autoPong) and waits for the matching pong before its text.
    const { ws, inbox, pings } = await connect(server, '/ping', { query: '&data=py%20ping%20%E2%9C%93' })
    assert.equal(String((await inbox.one()).data), 'pong:py ping ✓')
    assert.deepEqual(pings, ['py ping ✓'])
    // tether pings Python.
    const pong = waitFor<[Buffer]>(ws, 'pong')
    ws.ping('tether ping')
    assert.equal(String((await pong)[0]), 'tether ping')
    const empty = waitFor<[Buffer]>(ws, 'pong')
    ws.ping()
    assert.equal((await empty)[0].length, 0)
    const largest = waitFor<[Buffer]>(ws, 'pong')
    ws.ping(PING_125)
    assert.equal(String((await largest)[0]), PING_125)
    ws.close(1000)
  })

  it('tether close(4001, 123-byte reason): Python sees the code and reason; tether gets them echoed', async () => {
    const { ws, id, closed } = await connect(server, '/echo')
    ws.close(4001, BYE_FROM_TETHER)
    assert.deepEqual(await closed(), [4001, BYE_FROM_TETHER])
    const report = await server!.closed(id)
    assert.deepEqual([report.code, report.reason], [4001, BYE_FROM_TETHER])
    assert.equal(ws.wasClean, true)
  })

  it('Python close(4002, 123-byte reason): tether sees the code and reason; Python gets them echoed', async () => {
    const reason = BYE_FROM_PYTHON
    const { id, closed } = await connect(server, '/close', { query: `&code=4002&reason=${encodeURIComponent(reason)}` })
    assert.deepEqual(await closed(), [4002, reason])
    const report = await server!.closed(id)
    assert.deepEqual([report.code, report.reason], [4002, reason])
  })

  it('close() without a code: 1005 on both sides', async () => {
    const { ws, id, closed } = await connect(server, '/echo')
    ws.close()
    assert.deepEqual(await closed(), [1005, ''])
    assert.equal((await server!.closed(id)).code, 1005)
  })

  it('over TLS (wss://, the self-signed certificate trusted through `ca`): messages, compression, close', async () => {
    const { key, cert } = selfSignedCertificate()
    const dir = mkdtempSync(join(tmpdir(), 'tether-python-tls-'))
    let secure: PythonServer | undefined
    try {
      writeFileSync(join(dir, 'cert.pem'), cert)
      writeFileSync(join(dir, 'key.pem'), key)
      secure = await startPythonServer(['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])
      assert.match(secure.url('/'), /^wss:/)
      const { ws, id, inbox, closed } = await connect(secure, '/echo', { ca: cert })
      assert.equal(ws.extensions, 'permessage-deflate')
      const messages: Array<string | Buffer> = [randomBytes(MiB), compressibleText(256 * KiB), ...UNICODE, Buffer.alloc(0)]
      for (const message of messages) ws.send(message)
      const back = await inbox.next(messages.length)
      back.forEach((got, i) => assert.equal(sha256(got.data), sha256(messages[i]!), `message ${i}`))
      ws.close(4001, BYE_FROM_TETHER)
      assert.deepEqual(await closed(), [4001, BYE_FROM_TETHER])
      assert.deepEqual(await secure.closed(id).then((r) => [r.code, r.reason]), [4001, BYE_FROM_TETHER])
    } finally {
      rmSync(dir, { recursive: true, force: true })
      await secure?.process.kill()
    }
  })

  for (const [title, target] of [['compressed', () => server], ['uncompressed', () => plain]] as const) {
    it(`protocol error: invalid UTF-8 from Python (${title}) fails the connection with 1007`, async () => {
      const { ws, id, inbox, errors, closed } = await connect(target(), '/bad-utf8')
      assert.equal(ws.extensions, title === 'compressed' ? 'permessage-deflate' : '')
      assert.deepEqual(await closed(), [1006, ''])
      assert.equal(errors.length, 1)
      assert.equal(errors[0]!.code, 'WS_ERR_INVALID_UTF8')
      assert.equal(errors[0]!.closeCode, 1007)
      assert.equal(inbox.messages.length, 0, 'invalid UTF-8 delivered as a message')
      assert.equal((await target()!.closed(id)).code, 1007, 'the close frame Python received')
    })
  }
})

// ------------------------------------------------ (b) Python client -> tether server

interface Digest {
  binary: boolean
  length: number
  sha256: string
  text?: string
}

/** What tether's server saw of one connection. */
interface Seen {
  ws: WebSocket
  request: IncomingMessage
  protocols: string[]
  received: Digest[]
  pings: string[]
  pongs: string[]
  errors: Array<Error & { code?: string }>
  /** 'close' as [code, reason], once emitted. */
  close: [number, string] | undefined
  closed(): Promise<[number, string]>
  /** Socket byte counters when the connection closed. */
  bytes: { read: number; written: number } | undefined
  /** The messages received when 'close' was emitted. */
  receivedAtClose: Digest[]
}

/**
 * A tether server whose connections behave by path, as the Python server's do:
 * every connection echoes; /close?code=&reason= closes at once, /ping?data=
 * pings first. The query's `id` names the connection in `seen`.
 */
async function routedServer(
  perMessageDeflate: boolean | PerMessageDeflateOptions,
  options: { maxPayload?: number; tls?: { key: string; cert: string } } = {},
): Promise<{
  wss: WebSocketServer
  url(path: string): string
  seen(id: string): Promise<Seen>
  stop(): Promise<void>
}> {
  const offered = new Map<IncomingMessage, string[]>()
  const serverOptions: Omit<ServerOptions, 'port'> = {
    perMessageDeflate,
    ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }),
    handleProtocols: (protocols, request) => {
      offered.set(request, [...protocols])
      return protocols.has('chat.v2') ? 'chat.v2' : false
    },
  }
  let wss: WebSocketServer
  let url: string
  let https: HttpsServer | undefined
  if (options.tls) {
    // Attached to an https server: wss://.
    https = createHttpsServer(options.tls)
    const port = await listen(https)
    wss = new WebSocketServer({ ...serverOptions, server: https })
    url = `wss://${HOST}:${port}`
  } else {
    ;({ wss, url } = await tetherServer(serverOptions))
  }
  const connections = new Map<string, Seen>()
  wss.on('connection', (ws, request) => {
    const address = new URL(request.url ?? '/', 'ws://x')
    const query = address.searchParams
    const socket = ws._socket!
    const seen: Seen = {
      ws,
      request,
      protocols: offered.get(request) ?? [],
      received: [],
      pings: [],
      pongs: [],
      errors: [],
      close: undefined,
      async closed() {
        await until(() => seen.close !== undefined, TIMEOUT, `'close' of ${request.url}`)
        return seen.close!
      },
      bytes: undefined,
      receivedAtClose: [],
    }
    ws.on('close', (code, reason) => {
      seen.close = [code, String(reason)]
      seen.bytes = { read: socket.bytesRead, written: socket.bytesWritten }
      seen.receivedAtClose = [...seen.received]
    })
    ws.on('error', (error) => seen.errors.push(error))
    ws.on('ping', (data) => seen.pings.push(String(data)))
    ws.on('pong', (data) => seen.pongs.push(String(data)))
    ws.on('message', (data, isBinary) => {
      const bytes = data as Buffer
      const digest: Digest = { binary: isBinary, length: bytes.length, sha256: sha256(bytes) }
      if (!isBinary && bytes.length <= 16 * KiB) digest.text = bytes.toString('utf8')
      seen.received.push(digest)
      ws.send(bytes, { binary: isBinary })
    })
    if (address.pathname === '/close') ws.close(Number(query.get('code')), query.get('reason') ?? '')
    if (address.pathname === '/ping') ws.ping(query.get('data') ?? '')
    connections.set(query.get('id') ?? '', seen)
  })
  let ids = 0
  return {
    wss,
    url: (path) => `${url}${path}${path.includes('?') ? '&' : '?'}id=p${++ids}`,
    async seen(id) {
      await until(() => connections.has(id), TIMEOUT, `connection ${id} at tether`)
      return connections.get(id)!
    },
    async stop() {
      await shutdown(wss)
      if (https) await closeServer(https)
    },
  }
}

const idOf = (url: string): string => new URL(url).searchParams.get('id')!

describe('Python websockets client -> tether server', () => {
  let server: Awaited<ReturnType<typeof routedServer>> | undefined
  let plain: Awaited<ReturnType<typeof routedServer>> | undefined
  before(async () => {
    requirePythonWebsockets()
    ;[server, plain] = await Promise.all([routedServer(true), routedServer(false)])
  })
  after(async () => {
    await Promise.all([server?.stop(), plain?.stop()])
  })

  for (const [title, target, compression] of [['uncompressed', () => plain, null], ['compressed', () => server, 'deflate']] as const) {
    it(`binary messages of 0 B to 16 MiB (${title}): tether receives them byte-exact, and Python its echoes`, async () => {
      const url = target()!.url('/echo')
      // Compressed, the large ones compress well: zlib on 16 MiB of noise, twice each way, is slow.
      const fill = (size: number) => (compression && size >= MiB ? 'compressible' : 'random')
      const steps: ClientStep[] = SIZES.flatMap((size) => [{ op: 'send', binary: true, size, fill: fill(size), block: 3000 }, { op: 'recv' }] as ClientStep[])
      const lines = await runPythonClient({ url, compression, steps }, 35_000)
      const seen = await target()!.seen(idOf(url))
      assert.equal(seen.ws.extensions, compression ? 'permessage-deflate' : '')
      const sent = lines.filter((line) => line.op === 'send')
      const received = lines.filter((line) => line.op === 'recv')
      assert.equal(sent.length, SIZES.length)
      SIZES.forEach((size, i) => {
        assert.deepEqual(seen.received[i], { binary: true, length: size, sha256: sent[i].sha256 }, `size ${size} as tether received it`)
        assert.deepEqual(received[i], { op: 'recv', binary: true, length: size, sha256: sent[i].sha256 }, `size ${size} echoed`)
      })
      assert.deepEqual(lines.at(-1), { op: 'end', code: 1000, reason: '' })
      assert.deepEqual(await seen.closed(), [1000, ''])
    })

    it(`text of every length class and unicode (emoji, CJK, combining marks) (${title}) arrives as the same code points`, async () => {
      const url = target()!.url('/echo')
      const steps: ClientStep[] = [
        ...TEXT_SIZES.flatMap((size) => [{ op: 'send', binary: false, size }, { op: 'recv' }] as ClientStep[]),
        ...UNICODE.flatMap((text) => [{ op: 'send', text }, { op: 'recv' }] as ClientStep[]),
      ]
      const lines = await runPythonClient({ url, compression, steps })
      const seen = await target()!.seen(idOf(url))
      const sent = lines.filter((line) => line.op === 'send')
      const received = lines.filter((line) => line.op === 'recv')
      assert.equal(seen.received.length, TEXT_SIZES.length + UNICODE.length)
      seen.received.forEach((got, i) => {
        assert.equal(got.binary, false)
        assert.equal(got.sha256, sent[i].sha256, `message ${i} as tether received it`)
        assert.equal(received[i].binary, false)
        assert.equal(received[i].sha256, sent[i].sha256, `message ${i} echoed`)
      })
      UNICODE.forEach((text, i) => {
        const at = TEXT_SIZES.length + i
        assert.equal(seen.received[at]!.text, text, 'as tether decoded it')
        assert.equal(received[at].text, text, 'as Python decoded the echo')
      })
    })
  }

  it('subprotocols: handleProtocols sees Python\'s offer in order; Python sees the choice', async () => {
    const url = server!.url('/echo')
    const [open] = await runPythonClient({ url, subprotocols: ['chat.v1', 'chat.v2'], steps: [] })
    const seen = await server!.seen(idOf(url))
    assert.deepEqual(seen.protocols, ['chat.v1', 'chat.v2'])
    assert.equal(seen.ws.protocol, 'chat.v2')
    assert.equal(open.subprotocol, 'chat.v2')

    // handleProtocols returns false: no header; websockets proceeds without a subprotocol.
    const none = server!.url('/echo')
    const [noOpen] = await runPythonClient({ url: none, subprotocols: ['nope'], steps: [] })
    assert.equal((await server!.seen(idOf(none))).ws.protocol, '')
    assert.equal(noOpen.subprotocol, null)
  })

  it('permessage-deflate (websockets\' default offer): negotiated, compressed on the wire both ways, exact', async () => {
    const url = server!.url('/echo')
    const steps: ClientStep[] = [
      { op: 'send', binary: false, size: 256 * KiB, fill: 'compressible', block: 300 },
      { op: 'recv' },
      { op: 'send', binary: true, size: MiB, fill: 'compressible', block: 5000 },
      { op: 'recv' },
      { op: 'send', binary: true, size: 16 * MiB, fill: 'compressible', block: 1000 },
      { op: 'recv' },
    ]
    const lines = await runPythonClient({ url, steps })
    const [open] = lines
    const seen = await server!.seen(idOf(url))
    assert.equal(seen.ws.extensions, 'permessage-deflate')
    assert.equal(extensionParams(open.request_extensions).get(''), 'permessage-deflate')
    assert.equal(extensionParams(open.response_extensions).get(''), 'permessage-deflate')
    assert.deepEqual(open.extensions.map((e: { name: string }) => e.name), ['permessage-deflate'])
    const sent = lines.filter((line) => line.op === 'send')
    const received = lines.filter((line) => line.op === 'recv')
    assert.deepEqual(seen.received.map((d) => d.sha256), sent.map((s) => s.sha256))
    assert.deepEqual(received.map((r) => r.sha256), sent.map((s) => s.sha256))
    await seen.closed()
    const total = 256 * KiB + 17 * MiB
    assert.ok(seen.bytes!.read < total / 20, `Python sent ${seen.bytes!.read} bytes for ${total}`)
    assert.ok(seen.bytes!.written < total / 20, `tether sent ${seen.bytes!.written} bytes for ${total}`)
  })

  const modes: Array<[string, PerMessageDeflateOptions, Record<string, unknown> | 'deflate', Record<string, unknown>]> = [
    ['tether mode "small" (9-bit windows)', { mode: 'small' }, 'deflate', { remote_max_window_bits: 9, local_max_window_bits: 9 }],
    ['tether mode "shared" (no context takeover)', { mode: 'shared' }, 'deflate', { remote_no_context_takeover: true, local_no_context_takeover: true }],
    ['Python asks server_max_window_bits=8', {}, { server_max_window_bits: 8 }, { remote_max_window_bits: 8 }],
    ['Python asks server_no_context_takeover', {}, { server_no_context_takeover: true }, { remote_no_context_takeover: true }],
  ]
  for (const [title, options, compression, expected] of modes) {
    it(`permessage-deflate, ${title}: negotiated as asked, messages exact`, async () => {
      const modal = await routedServer({ threshold: 0, ...options })
      try {
        const url = modal.url('/echo')
        const steps: ClientStep[] = [
          { op: 'send', text: FAR_REPEAT },
          { op: 'recv' },
          ...[1, 300, 1000, 70_000].flatMap((block) => [{ op: 'send', binary: true, size: 100 * KiB, fill: 'compressible', block }, { op: 'recv' }] as ClientStep[]),
          ...[...UNICODE, TWICE, TWICE].flatMap((text) => [{ op: 'send', text }, { op: 'recv' }] as ClientStep[]),
        ]
        const lines = await runPythonClient({ url, compression, steps })
        const [open] = lines
        const seen = await modal.seen(idOf(url))
        assert.equal(seen.ws.extensions, 'permessage-deflate')
        for (const [key, value] of Object.entries(expected)) assert.equal(open.extensions[0][key], value, `${key} in ${JSON.stringify(open)}`)
        const sent = lines.filter((line) => line.op === 'send')
        const received = lines.filter((line) => line.op === 'recv')
        assert.equal(received.length, steps.length / 2)
        assert.deepEqual(seen.received.map((d) => d.sha256), sent.map((s) => s.sha256))
        assert.deepEqual(received.map((r) => r.sha256), sent.map((s) => s.sha256))
      } finally {
        await modal.stop()
      }
    })
  }

  it('without compression on tether\'s side: Python runs uncompressed', async () => {
    const plain = await routedServer(false)
    try {
      const url = plain.url('/echo')
      const lines = await runPythonClient({ url, steps: [{ op: 'send', binary: false, size: 64 * KiB, fill: 'compressible' }, { op: 'recv' }] })
      const seen = await plain.seen(idOf(url))
      assert.equal(seen.ws.extensions, '')
      assert.deepEqual(lines[0].extensions, [])
      assert.equal(lines[0].response_extensions, null)
      assert.equal(lines[2].sha256, lines[1].sha256)
      await seen.closed()
      assert.ok(seen.bytes!.read >= 64 * KiB)
    } finally {
      await plain.stop()
    }
  })

  it('fragmented messages from Python (an iterable sent as fragments), compressed, arrive whole', async () => {
    const url = server!.url('/echo')
    const steps: ClientStep[] = [
      { op: 'send_fragments', binary: true, sizes: [1, 70_000, 0, 5000] },
      { op: 'recv' },
      { op: 'send_fragments', binary: false, sizes: [10, 0, 70_000] },
      { op: 'recv' },
      { op: 'send_fragments', binary: true, sizes: [100_000, 100_000, 100_000], fill: 'compressible', block: 1000 },
      { op: 'recv' },
    ]
    const lines = await runPythonClient({ url, steps })
    const seen = await server!.seen(idOf(url))
    const sent = lines.filter((line) => line.op === 'send')
    const received = lines.filter((line) => line.op === 'recv')
    assert.deepEqual(seen.received.map((d) => [d.binary, d.length, d.sha256]), sent.map((s, i) => [i !== 1, s.length, s.sha256]))
    assert.deepEqual(received.map((r) => r.sha256), sent.map((s) => s.sha256))
  })

  for (const [title, target, compression] of [['uncompressed', () => plain, null], ['compressed', () => server, 'deflate']] as const) {
    it(`UTF-8 across frames from Python (${title}): a split character is accepted, an invalid one fails with 1007`, async () => {
      const url = target()!.url('/echo')
      const steps: ClientStep[] = [
        { op: 'raw_text_fragments', hex: ['78e2', '82', 'ac79'] },
        { op: 'recv' },
        { op: 'raw_text_fragments', hex: ['78e2', '82', '28'] },
        { op: 'expect_close' },
      ]
      const lines = await runPythonClient({ url, compression, steps })
      const seen = await target()!.seen(idOf(url))
      assert.equal(seen.ws.extensions, compression ? 'permessage-deflate' : '')
      assert.deepEqual(seen.received.map((d) => d.text), ['x€y'])
      assert.equal(lines.find((line) => line.op === 'recv').text, 'x€y')
      assert.equal(lines.find((line) => line.op === 'closed').code, 1007)
      assert.deepEqual(await seen.closed(), [1006, ''])
      assert.equal(seen.errors[0]?.code, 'WS_ERR_INVALID_UTF8')
    })
  }

  it('messages Python sends right before closing arrive before the close', async () => {
    const url = server!.url('/echo')
    const steps: ClientStep[] = [
      { op: 'send', binary: false, size: 4 * MiB, fill: 'compressible', block: 3000 },
      { op: 'send', text: 'last' },
      { op: 'close', code: 1000 },
    ]
    const lines = await runPythonClient({ url, steps })
    const seen = await server!.seen(idOf(url))
    assert.deepEqual(await seen.closed(), [1000, ''])
    assert.deepEqual(seen.receivedAtClose.map((d) => d.sha256), lines.filter((line) => line.op === 'send').map((line) => line.sha256))
  })

  it('maxPayload: a message from Python over the limit fails the connection with 1009 (compressed: inflated size counts)', async () => {
    for (const deflate of [false, true]) {
      const limited = await routedServer(deflate, { maxPayload: 64 * KiB })
      try {
        const url = limited.url('/echo')
        const lines = await runPythonClient({
          url,
          steps: [
            { op: 'send', binary: false, size: 64 * KiB, fill: 'compressible' },
            { op: 'recv' },
            { op: 'send', binary: false, size: 64 * KiB + 1, fill: 'compressible' },
            { op: 'expect_close' },
          ],
        })
        const seen = await limited.seen(idOf(url))
        assert.equal(seen.ws.extensions, deflate ? 'permessage-deflate' : '')
        assert.deepEqual(lines.find((line) => line.op === 'closed'), { op: 'closed', code: 1009, reason: '' }, JSON.stringify(lines))
        assert.deepEqual(await seen.closed(), [1006, ''])
        assert.equal(seen.errors[0]?.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
        assert.equal(seen.received.length, 1)
      } finally {
        await limited.stop()
      }
    }
  })

  it('ping/pong both ways, payloads kept (up to 125 bytes)', async () => {
    const url = server!.url('/ping?data=tether%20ping%20%E2%9C%93')
    const steps: ClientStep[] = [{ op: 'ping', data: 'py ping ✓' }, { op: 'ping', data: PING_125 }, { op: 'send', text: 'sync' }, { op: 'recv' }]
    const lines = await runPythonClient({ url, steps })
    const seen = await server!.seen(idOf(url))
    assert.deepEqual(lines.filter((line) => line.op === 'ping'), [{ op: 'ping', pong: true }, { op: 'ping', pong: true }])
    assert.deepEqual(seen.pings, ['py ping ✓', PING_125])
    // websockets answers pings on its own; the pong came before Python's reply to the text.
    await seen.closed()
    assert.deepEqual(seen.pongs, ['tether ping ✓'])
  })

  it('Python close(4001, 123-byte reason): tether sees the code and reason; Python gets them echoed', async () => {
    const url = server!.url('/echo')
    const lines = await runPythonClient({ url, steps: [{ op: 'close', code: 4001, reason: BYE_FROM_PYTHON }] })
    const seen = await server!.seen(idOf(url))
    assert.deepEqual(await seen.closed(), [4001, BYE_FROM_PYTHON])
    assert.deepEqual(lines.find((line) => line.op === 'close'), { op: 'close', code: 4001, reason: BYE_FROM_PYTHON })
    assert.equal(seen.ws.wasClean, true)
  })

  it('tether close(4002, 123-byte reason): Python sees the code and reason; tether gets them echoed', async () => {
    const url = server!.url(`/close?code=4002&reason=${encodeURIComponent(BYE_FROM_TETHER)}`)
    const lines = await runPythonClient({ url, steps: [{ op: 'expect_close' }] })
    const seen = await server!.seen(idOf(url))
    assert.deepEqual(lines.find((line) => line.op === 'closed'), { op: 'closed', code: 4002, reason: BYE_FROM_TETHER })
    assert.deepEqual(await seen.closed(), [4002, BYE_FROM_TETHER])
  })

  it('Python sends an empty close frame: 1005 on both sides', async () => {
    const url = server!.url('/echo')
    const lines = await runPythonClient({ url, steps: [{ op: 'close_empty' }] })
    const seen = await server!.seen(idOf(url))
    assert.deepEqual(await seen.closed(), [1005, ''])
    assert.deepEqual(lines.find((line) => line.op === 'closed'), { op: 'closed', code: 1005, reason: '' })
  })

  it('over TLS (wss://, a tether server attached to an https server): messages, compression, close', async () => {
    const { key, cert } = selfSignedCertificate()
    const secure = await routedServer(true, { tls: { key, cert } })
    try {
      const url = secure.url('/echo')
      assert.match(url, /^wss:/)
      const steps: ClientStep[] = [
        { op: 'send', binary: true, size: MiB },
        { op: 'recv' },
        { op: 'send', binary: false, size: 256 * KiB, fill: 'compressible', block: 500 },
        { op: 'recv' },
        ...UNICODE.flatMap((text) => [{ op: 'send', text }, { op: 'recv' }] as ClientStep[]),
        { op: 'close', code: 4001, reason: BYE_FROM_PYTHON },
      ]
      const lines = await runPythonClient({ url, ca: cert, steps })
      const seen = await secure.seen(idOf(url))
      assert.equal(seen.ws.extensions, 'permessage-deflate')
      const sent = lines.filter((line) => line.op === 'send')
      assert.deepEqual(seen.received.map((d) => d.sha256), sent.map((line) => line.sha256))
      assert.deepEqual(lines.filter((line) => line.op === 'recv').map((line) => line.sha256), sent.map((line) => line.sha256))
      assert.deepEqual(await seen.closed(), [4001, BYE_FROM_PYTHON])
      assert.deepEqual(lines.find((line) => line.op === 'close'), { op: 'close', code: 4001, reason: BYE_FROM_PYTHON })
    } finally {
      await secure.stop()
    }
  })

  it('protocol error: invalid UTF-8 from Python fails the connection with 1007', async () => {
    const url = server!.url('/echo')
    const lines = await runPythonClient({ url, steps: [{ op: 'bad_utf8' }] })
    const seen = await server!.seen(idOf(url))
    assert.equal(lines.find((line) => line.op === 'closed').code, 1007)
    assert.deepEqual(await seen.closed(), [1006, ''])
    assert.equal(seen.errors[0]?.code, 'WS_ERR_INVALID_UTF8')
    assert.deepEqual(seen.received, [])
  })
})
