/**
 * Interop with undici's WebSocket (the WHATWG client Node's global
 * WebSocket is built from), an implementation no one on this project wrote,
 * against tether's WebSocketServer. undici is client-only, so one direction
 * of connection, messages both ways: text and binary of every length class
 * up to 16 MiB (SHA-256 compared), binaryType 'arraybuffer' and 'blob',
 * unicode, subprotocols, permessage-deflate (undici offers it and inflates;
 * it never compresses what it sends), ping/pong, close codes and reasons
 * both ways, and protocol errors each way.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { afterEach, describe, it } from 'node:test'
import { Agent, type Dispatcher, WebSocket as UndiciWebSocket } from 'undici'
import { type PerMessageDeflateOptions, type ServerOptions, type WebSocket, WebSocketServer } from '../../src/index.js'
import { compressibleBytes, compressibleText, extensionParams, KiB, MiB, randomText, shutdown } from '../helpers/deflate.js'
import { closeServer, HOST, Inbox, listen, selfSignedCertificate, sha256, tetherServer, TIMEOUT, until, withTimeout } from '../helpers/net.js'

const SIZES = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB]
const UNICODE = [
  'emoji 🎉 family 👩‍👩‍👧‍👦 flag 🇯🇵 rainbow 🏳️‍🌈 skin tone 👍🏽',
  'CJK 日本語 中文 한국어, astral 𠀋𡈽𪚲, full-width ＡＢＣ',
  'combining marks: e\u0301 a\u0308 n\u0303 Z\u0351\u0307\u0358\u0362, jamo \u1100\u1161\u11a8, NFC é vs NFD e\u0301',
  'RTL עברית العربية, BOM \ufeff, NUL \u0000, U+FFFF \uffff, U+10FFFF \u{10ffff}, 𝄞',
]
/** Close reasons of the longest length allowed, 123 bytes (§5.5: 125 with the code). */
const BYE_FROM_UNDICI = longest('bye from undici ✓ ')
const BYE_FROM_TETHER = longest('bye from tether ✓ ')
function longest(prefix: string): string {
  const padded = prefix + 'é'.repeat(Math.floor((123 - Buffer.byteLength(prefix)) / 2))
  return padded + 'x'.repeat(123 - Buffer.byteLength(padded))
}

type Received = string | ArrayBuffer | Blob

/** An undici WebSocket with everything it reports recorded from construction on. */
class UndiciPeer {
  readonly ws: UndiciWebSocket
  readonly messages: Received[] = []
  readonly errors: unknown[] = []
  close: { code: number; reason: string; wasClean: boolean } | undefined
  private taken = 0

  constructor(url: string, protocols?: string[], binaryType: 'arraybuffer' | 'blob' = 'arraybuffer', dispatcher?: Dispatcher) {
    this.ws = new UndiciWebSocket(url, dispatcher ? { protocols: protocols ?? [], dispatcher } : protocols)
    this.ws.binaryType = binaryType
    this.ws.addEventListener('message', (event) => this.messages.push(event.data as Received))
    this.ws.addEventListener('error', (event) => this.errors.push(event))
    this.ws.addEventListener('close', (event) => {
      this.close = { code: event.code, reason: event.reason, wasClean: event.wasClean }
    })
  }

  async open(): Promise<this> {
    await until(() => this.ws.readyState !== UndiciWebSocket.CONNECTING, TIMEOUT, 'undici to open')
    assert.equal(this.ws.readyState, UndiciWebSocket.OPEN, `undici did not open: ${JSON.stringify(this.close)}`)
    return this
  }

  async next(count = 1, ms = TIMEOUT): Promise<Received[]> {
    await until(() => this.messages.length >= this.taken + count, ms, `${count} message(s) at undici`)
    const out = this.messages.slice(this.taken, this.taken + count)
    this.taken += count
    return out
  }

  async closed(ms = TIMEOUT): Promise<{ code: number; reason: string; wasClean: boolean }> {
    await until(() => this.close !== undefined, ms, "undici's close event")
    return this.close!
  }
}

/** The server side of one connection, recorded from 'connection' on. */
interface Accepted {
  ws: WebSocket
  request: IncomingMessage
  inbox: Inbox
  errors: Array<Error & { code?: string; closeCode?: number }>
  pongs: string[]
  close: [number, string] | undefined
  closed(ms?: number): Promise<[number, string]>
}

/**
 * A tether server on a free port whose connections are recorded at once (no
 * message can be missed); with `tls`, attached to an https server (wss://),
 * and clients trust its certificate through an undici Agent.
 */
async function server(options: Omit<ServerOptions, 'port'> = {}, tls?: { key: string; cert: string }) {
  let wss: WebSocketServer
  let url: string
  let https: HttpsServer | undefined
  let dispatcher: Agent | undefined
  if (tls) {
    https = createHttpsServer(tls)
    const port = await listen(https)
    wss = new WebSocketServer({ ...options, server: https })
    url = `wss://${HOST}:${port}`
    dispatcher = new Agent({ connect: { ca: tls.cert } })
  } else {
    ;({ wss, url } = await tetherServer(options))
  }
  const accepted: Accepted[] = []
  const headers: Array<{ response: string[]; request: IncomingMessage }> = []
  wss.on('headers', (response, request) => headers.push({ response: [...response], request }))
  wss.on('connection', (ws, request) => {
    const entry: Accepted = {
      ws,
      request,
      inbox: new Inbox(ws),
      errors: [],
      pongs: [],
      close: undefined,
      async closed(ms = TIMEOUT) {
        await until(() => entry.close !== undefined, ms, "tether's close event")
        return entry.close!
      },
    }
    ws.on('error', (error) => entry.errors.push(error))
    ws.on('pong', (data) => entry.pongs.push(String(data)))
    ws.on('close', (code, reason) => {
      entry.close = [code, String(reason)]
    })
    accepted.push(entry)
  })
  let taken = 0
  return {
    wss,
    url,
    headers,
    async stop() {
      await shutdown(wss)
      if (https) await closeServer(https)
      await dispatcher?.close()
    },
    /** Opens an undici client and returns both ends, open. */
    async connect(protocols?: string[], binaryType?: 'arraybuffer' | 'blob') {
      const client = await new UndiciPeer(url, protocols, binaryType, dispatcher).open()
      clients.push(client)
      await until(() => accepted.length > taken, TIMEOUT, 'the connection at tether')
      return { client, peer: accepted[taken++]! }
    },
  }
}

const clients: UndiciPeer[] = []
const servers: Array<{ stop(): Promise<void> }> = []

async function start(options: Omit<ServerOptions, 'port'> = {}, tls?: { key: string; cert: string }) {
  const started = await server(options, tls)
  servers.push(started)
  return started
}

afterEach(async () => {
  for (const client of clients.splice(0)) if (client.ws.readyState !== UndiciWebSocket.CLOSED) client.ws.close()
  for (const started of servers.splice(0)) await started.stop()
})

async function bytesOf(data: Received): Promise<Buffer> {
  if (typeof data === 'string') return Buffer.from(data)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  return Buffer.from(await data.arrayBuffer())
}

describe('undici WebSocket -> tether WebSocketServer: messages', () => {
  it('binary of 0 B to 16 MiB both ways, byte-exact (binaryType "arraybuffer")', async () => {
    const { client, peer } = await (await start()).connect()
    for (const size of SIZES) {
      const up = randomBytes(size)
      client.ws.send(new Uint8Array(up.buffer, up.byteOffset, up.length))
      const got = await peer.inbox.one(30_000)
      assert.equal(got.isBinary, true)
      assert.equal(got.data.length, size)
      assert.equal(sha256(got.data), sha256(up), `size ${size} undici -> tether`)

      const down = randomBytes(size)
      peer.ws.send(down)
      const [message] = await client.next(1, 30_000)
      assert.ok(message instanceof ArrayBuffer, `size ${size}: ${Object.prototype.toString.call(message)}`)
      assert.equal(message.byteLength, size)
      assert.equal(sha256(new Uint8Array(message)), sha256(down), `size ${size} tether -> undici`)
    }
  })

  it('text of every length class both ways', async () => {
    const { client, peer } = await (await start()).connect()
    const texts = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB].map((n) => randomText(n))
    for (const text of texts) {
      client.ws.send(text)
      const got = await peer.inbox.one(30_000)
      assert.equal(got.isBinary, false)
      assert.equal(got.data.length, text.length)
      assert.equal(sha256(got.data), sha256(text), `${text.length} bytes undici -> tether`)
      peer.ws.send(text)
      const [message] = await client.next(1, 30_000)
      assert.equal(typeof message, 'string')
      assert.equal((message as string).length, text.length)
      assert.equal(sha256(message as string), sha256(text), `${text.length} bytes tether -> undici`)
    }
  })

  it('binaryType "blob": binary from tether arrives as a Blob with the exact bytes; Blobs from undici arrive as binary', async () => {
    const { client, peer } = await (await start()).connect(undefined, 'blob')
    for (const size of [0, 1, 126, 65536, MiB]) {
      const down = randomBytes(size)
      peer.ws.send(down)
      const [message] = await client.next()
      assert.ok(message instanceof Blob, `size ${size}: ${Object.prototype.toString.call(message)}`)
      assert.equal(message.size, size)
      assert.equal(sha256(await bytesOf(message)), sha256(down))

      const up = randomBytes(size)
      client.ws.send(new Blob([up]))
      const got = await peer.inbox.one()
      assert.equal(got.isBinary, true)
      assert.equal(sha256(got.data), sha256(up))
    }
    // Text stays text whatever binaryType says.
    peer.ws.send('still text ✓')
    assert.deepEqual(await client.next(), ['still text ✓'])
  })

  it('unicode text both ways: emoji, CJK, combining marks, astral, BOM, NUL', async () => {
    const { client, peer } = await (await start()).connect()
    const texts = [...UNICODE, UNICODE.join(' | ').repeat(3000)]
    for (const text of texts) client.ws.send(text)
    const got = await peer.inbox.next(texts.length)
    got.forEach((message, i) => {
      assert.equal(message.isBinary, false)
      assert.equal(message.data.toString('utf8'), texts[i])
      assert.equal(message.data.length, Buffer.byteLength(texts[i]!))
    })
    for (const text of texts) peer.ws.send(text)
    assert.deepEqual(await client.next(texts.length), texts)
  })

  it('a burst of 2000 small messages each way arrives complete and in order', async () => {
    const { client, peer } = await (await start()).connect()
    for (let i = 0; i < 2000; i++) client.ws.send(i % 2 === 0 ? `m${i}` : new TextEncoder().encode(`m${i}`))
    const got = await peer.inbox.next(2000)
    got.forEach((message, i) => {
      assert.equal(message.data.toString(), `m${i}`)
      assert.equal(message.isBinary, i % 2 === 1)
    })
    for (let i = 0; i < 2000; i++) peer.ws.send(i % 2 === 0 ? `m${i}` : Buffer.from(`m${i}`))
    const back = await client.next(2000)
    for (let i = 0; i < 2000; i++) {
      const message = back[i]!
      if (i % 2 === 0) assert.equal(message, `m${i}`)
      else assert.equal(Buffer.from(message as ArrayBuffer).toString(), `m${i}`)
    }
  })

  it('tether ping: undici answers with a pong carrying the same payload (up to 125 bytes)', async () => {
    const { peer } = await (await start()).connect()
    const largest = 'ü'.repeat(62) + '!'
    peer.ws.ping('are you there? ✓')
    peer.ws.ping()
    peer.ws.ping(largest)
    await until(() => peer.pongs.length === 3, TIMEOUT, 'three pongs')
    assert.deepEqual(peer.pongs, ['are you there? ✓', '', largest])
  })

  for (const deflate of [false, true]) {
    it(`fragmented sends from tether${deflate ? ' (compressed)' : ''}, a character split across fragments, a ping between them: undici gets whole messages`, async () => {
      const { client, peer } = await (await start({ perMessageDeflate: deflate && { threshold: 0 } })).connect()
      const euro = Buffer.from('x€y')
      peer.ws.send(euro.subarray(0, 2), { binary: false, fin: false })
      peer.ws.ping('between fragments')
      peer.ws.send(euro.subarray(2, 4), { binary: false, fin: false })
      peer.ws.send(euro.subarray(4), { binary: false, fin: true })
      const part = randomBytes(200_000)
      peer.ws.send(part.subarray(0, 1), { fin: false })
      peer.ws.send(part.subarray(1, 70_000), { fin: false })
      peer.ws.send(part.subarray(70_000), { fin: true })
      const big = compressibleText(300 * KiB)
      peer.ws.send(big.slice(0, 100), { fin: false })
      peer.ws.send(big.slice(100), { fin: true })
      const [text, binary, compressible] = await client.next(3)
      assert.equal(text, 'x€y')
      assert.equal(sha256(new Uint8Array(binary as ArrayBuffer)), sha256(part))
      assert.equal(compressible, big)
      await until(() => peer.pongs.length === 1, TIMEOUT, 'the pong')
      assert.deepEqual(peer.pongs, ['between fragments'])
    })
  }
})

describe('undici WebSocket -> tether WebSocketServer: subprotocols', () => {
  it('handleProtocols sees undici\'s offer in order; both sides see the choice in `protocol`', async () => {
    let offered: string[] = []
    const started = await start({
      handleProtocols: (protocols) => {
        offered = [...protocols]
        return 'chat.v2'
      },
    })
    const { client, peer } = await started.connect(['chat.v1', 'chat.v2'])
    assert.deepEqual(offered, ['chat.v1', 'chat.v2'])
    assert.equal(client.ws.protocol, 'chat.v2')
    assert.equal(peer.ws.protocol, 'chat.v2')
    assert.ok(started.headers[0]!.response.includes('Sec-WebSocket-Protocol: chat.v2'), started.headers[0]!.response.join('\n'))
  })

  it('without handleProtocols tether picks the first offered (as ws)', async () => {
    const { client, peer } = await (await start()).connect(['chat.v1', 'chat.v2'])
    assert.equal(client.ws.protocol, 'chat.v1')
    assert.equal(peer.ws.protocol, 'chat.v1')
  })

  it('handleProtocols returns false: tether answers without the header, which undici (WHATWG) refuses', async () => {
    const started = await start({ handleProtocols: () => false })
    const client = new UndiciPeer(started.url, ['chat.v1'])
    clients.push(client)
    const close = await client.closed()
    assert.equal(close.code, 1006)
    assert.equal(close.wasClean, false)
    assert.equal(client.errors.length, 1)
    assert.ok(started.headers[0]!.response.every((line) => !/^sec-websocket-protocol:/i.test(line)), started.headers[0]!.response.join('\n'))
  })
})

describe('undici WebSocket -> tether WebSocketServer: permessage-deflate', () => {
  it('offered by undici, accepted by tether: `extensions` on both sides, compressed on the wire, exact', async () => {
    const started = await start({ perMessageDeflate: true })
    const { client, peer } = await started.connect()
    const { request, response } = started.headers[0]!
    assert.equal(request.headers['sec-websocket-extensions'], 'permessage-deflate; client_max_window_bits')
    assert.ok(response.includes('Sec-WebSocket-Extensions: permessage-deflate'), response.join('\n'))
    assert.equal(client.ws.extensions, 'permessage-deflate')
    assert.equal(peer.ws.extensions, 'permessage-deflate')

    const socket = peer.ws._socket!
    const text = compressibleText(256 * KiB)
    let written = socket.bytesWritten
    peer.ws.send(text)
    assert.deepEqual(await client.next(), [text])
    const first = socket.bytesWritten - written
    assert.ok(first < text.length / 20, `tether wrote ${first} bytes for ${text.length}`)

    // Context takeover: similar messages cost a few bytes each after the first.
    const updates = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ seq: i, items: Array.from({ length: 30 }, (_, j) => ({ id: j, name: `item ${j}`, score: j * 7 })) }))
    const costs: number[] = []
    for (const update of updates) {
      written = socket.bytesWritten
      peer.ws.send(update)
      assert.deepEqual(await client.next(), [update])
      costs.push(socket.bytesWritten - written)
    }
    assert.ok(Math.max(...costs.slice(1)) < updates[1]!.length / 10, `bytes per update: ${costs.join(' ')} for ${updates[1]!.length}`)

    // Large, random, binary, unicode and far-reaching repeats, all exact.
    const block = randomBytes(20_000)
    const payloads: Array<string | Buffer> = [
      compressibleBytes(16 * MiB),
      randomBytes(MiB),
      Buffer.concat([block, block, block]),
      compressibleText(16 * MiB),
      ...UNICODE,
      '',
      Buffer.alloc(0),
    ]
    for (const payload of payloads) peer.ws.send(payload)
    const got = await client.next(payloads.length, 30_000)
    for (let i = 0; i < payloads.length; i++) {
      const payload = payloads[i]!
      if (typeof payload === 'string') assert.equal(got[i], payload, `payload ${i}`)
      else assert.equal(sha256(await bytesOf(got[i]!)), sha256(payload), `payload ${i}`)
    }

    // undici sends uncompressed: tether takes uncompressed messages on a deflate connection.
    client.ws.send(text)
    client.ws.send(new Uint8Array(block))
    const [upText, upBinary] = await peer.inbox.next(2)
    assert.equal(upText!.data.toString(), text)
    assert.equal(sha256(upBinary!.data), sha256(block))
  })

  const variants: Array<[string, PerMessageDeflateOptions, Record<string, string | true>]> = [
    ['mode "small"', { mode: 'small' }, { server_max_window_bits: '9', client_max_window_bits: '9' }],
    ['mode "shared"', { mode: 'shared' }, { server_no_context_takeover: true, client_no_context_takeover: true }],
    ['serverMaxWindowBits 10', { serverMaxWindowBits: 10 }, { server_max_window_bits: '10' }],
    ['serverMaxWindowBits 8', { serverMaxWindowBits: 8 }, { server_max_window_bits: '8' }],
    ['serverNoContextTakeover, threshold 0', { serverNoContextTakeover: true, threshold: 0 }, { server_no_context_takeover: true }],
    ['threshold 0 (every message compressed, empty ones too)', { threshold: 0 }, {}],
    ['clientMaxWindowBits 10, clientNoContextTakeover', { clientMaxWindowBits: 10, clientNoContextTakeover: true }, { client_max_window_bits: '10', client_no_context_takeover: true }],
  ]
  for (const [title, options, expected] of variants) {
    it(`${title}: negotiated as configured, messages exact`, async () => {
      const started = await start({ perMessageDeflate: options })
      const { client, peer } = await started.connect()
      const answer = started.headers[0]!.response.find((line) => /^sec-websocket-extensions:/i.test(line))!
      const params = extensionParams(answer.replace(/^[^:]*:\s*/, ''))
      for (const [key, value] of Object.entries(expected)) assert.equal(params.get(key), value, `${key} in ${answer}`)
      assert.equal(client.ws.extensions, answer.replace(/^[^:]*:\s*/, ''))
      assert.equal(peer.ws.extensions, 'permessage-deflate')
      // Random blocks repeated over 256 KiB: references at distances 200 to 20 000 bytes. An
      // inflater with the agreed window fails on one beyond it as soon as it reaches past the
      // output of the current inflate call (undici inflates through 16 KiB chunks).
      const payloads = [200, 300, 3000, 20_000].map((distance) => {
        const block = randomBytes(distance)
        return Buffer.concat(Array.from({ length: Math.ceil((256 * KiB) / distance) }, () => block))
      })
      // Twice the same text: without context takeover the second copy must not refer to the first.
      const twice = randomText(1500)
      const texts = [compressibleText(100 * KiB), ...UNICODE, randomText(5000), twice, twice, '', 'a', 'aa']
      const socket = peer.ws._socket!
      const written = socket.bytesWritten
      for (const payload of [...payloads, ...texts]) peer.ws.send(payload)
      const got = await client.next(payloads.length + texts.length)
      for (let i = 0; i < payloads.length; i++) assert.equal(sha256(new Uint8Array(got[i] as ArrayBuffer)), sha256(payloads[i]!))
      assert.deepEqual(got.slice(payloads.length), texts)
      const total = [...payloads, ...texts].reduce((sum, p) => sum + Buffer.byteLength(p), 0)
      assert.ok(socket.bytesWritten - written < total * 0.9, `${socket.bytesWritten - written} bytes written for ${total}`)
    })
  }

  it('tether without perMessageDeflate: no extension on either side, raw on the wire', async () => {
    const started = await start()
    const { client, peer } = await started.connect()
    assert.equal(client.ws.extensions, '')
    assert.equal(peer.ws.extensions, '')
    assert.ok(started.headers[0]!.response.every((line) => !/^sec-websocket-extensions:/i.test(line)))
    const text = compressibleText(64 * KiB)
    const written = peer.ws._socket!.bytesWritten
    peer.ws.send(text)
    assert.deepEqual(await client.next(), [text])
    assert.ok(peer.ws._socket!.bytesWritten - written >= text.length)
  })
})

describe('undici WebSocket -> tether WebSocketServer: closing', () => {
  it('undici close(4001, 123-byte reason): tether sees code and reason; undici gets them echoed, cleanly', async () => {
    const { client, peer } = await (await start()).connect()
    client.ws.close(4001, BYE_FROM_UNDICI)
    assert.deepEqual(await peer.closed(), [4001, BYE_FROM_UNDICI])
    assert.deepEqual(await client.closed(), { code: 4001, reason: BYE_FROM_UNDICI, wasClean: true })
    assert.equal(peer.ws.wasClean, true)
  })

  it('tether close(4002, 123-byte reason): undici\'s CloseEvent has code, reason, wasClean', async () => {
    const { client, peer } = await (await start()).connect()
    peer.ws.close(4002, BYE_FROM_TETHER)
    assert.deepEqual(await client.closed(), { code: 4002, reason: BYE_FROM_TETHER, wasClean: true })
    // undici echoes the code without the reason.
    assert.deepEqual(await peer.closed(), [4002, ''])
    assert.equal(peer.ws.wasClean, true)
    assert.equal(client.errors.length, 0)
  })

  it('close() without a code either way: 1005 on both sides', async () => {
    const started = await start()
    const one = await started.connect()
    one.client.ws.close()
    assert.deepEqual(await one.peer.closed(), [1005, ''])
    assert.deepEqual(await one.client.closed(), { code: 1005, reason: '', wasClean: true })
    const two = await started.connect()
    two.peer.ws.close()
    assert.deepEqual(await two.client.closed(), { code: 1005, reason: '', wasClean: true })
    assert.deepEqual(await two.peer.closed(), [1005, ''])
  })

  it('messages sent before tether\'s close() arrive before the CloseEvent', async () => {
    const { client, peer } = await (await start({ perMessageDeflate: true })).connect()
    const order: string[] = []
    client.ws.addEventListener('message', (event) => order.push(`message ${String(event.data).slice(0, 10)}`))
    client.ws.addEventListener('close', (event) => order.push(`close ${event.code}`))
    const big = compressibleText(200 * KiB)
    peer.ws.send('one')
    peer.ws.send(big)
    peer.ws.close(1000)
    await client.closed()
    assert.deepEqual(order, ['message one', `message ${big.slice(0, 10)}`, 'close 1000'])
  })

  it('tether terminate(): undici sees an abnormal close (1006, not clean, an error event)', async () => {
    const { client, peer } = await (await start()).connect()
    peer.ws.terminate()
    assert.deepEqual(await client.closed(), { code: 1006, reason: '', wasClean: false })
    assert.equal(client.errors.length, 1)
    assert.deepEqual(await peer.closed(), [1006, ''])
  })
})

describe('undici WebSocket -> tether WebSocketServer: protocol errors', () => {
  for (const deflate of [false, true]) {
    it(`invalid UTF-8 sent as text by tether${deflate ? ' (compressed)' : ''}: undici fails the connection (1006, not clean), tether gets 1007`, async () => {
      const { client, peer } = await (await start({ perMessageDeflate: deflate && { threshold: 0 } })).connect()
      assert.equal(peer.ws.extensions, deflate ? 'permessage-deflate' : '')
      // send() does not validate text it is given as bytes (as in ws): the protocol error is on tether's side.
      peer.ws.send(Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0xff, 0xfe]), { binary: false })
      assert.deepEqual(await client.closed(), { code: 1006, reason: '', wasClean: false })
      assert.equal(client.errors.length, 1)
      assert.deepEqual(client.messages, [])
      const [code] = await peer.closed()
      assert.equal(code, 1007)
    })
  }

  it('a frame tether cannot accept (a message over maxPayload): tether fails with 1009, undici sees 1009', async () => {
    const { client, peer } = await (await start({ maxPayload: 64 * KiB })).connect()
    client.ws.send(new Uint8Array(64 * KiB))
    assert.equal((await peer.inbox.one()).data.length, 64 * KiB)
    client.ws.send(new Uint8Array(64 * KiB + 1))
    const close = await client.closed()
    assert.equal(close.code, 1009)
    assert.deepEqual(await peer.closed(), [1006, ''])
    assert.equal(peer.errors[0]?.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
    assert.equal(peer.inbox.messages.length, 1)
  })

  it('bytes that are no WebSocket frame on tether\'s socket (reserved opcode): undici fails with an abnormal close', async () => {
    const { client, peer } = await (await start()).connect()
    peer.ws._socket!.write(Buffer.from([0x83, 0x00]))
    assert.deepEqual(await client.closed(), { code: 1006, reason: '', wasClean: false })
    assert.equal(client.errors.length, 1)
    const [code] = await withTimeout(peer.closed(), TIMEOUT, 'tether close')
    assert.equal(code, 1002, 'the close frame undici sent')
  })
})

describe('undici WebSocket -> tether WebSocketServer: TLS', () => {
  it('wss:// to a tether server attached to an https server: messages, compression, close both ways', async () => {
    const started = await start({ perMessageDeflate: true }, selfSignedCertificate())
    assert.match(started.url, /^wss:/)
    const { client, peer } = await started.connect(['chat.v1'])
    assert.equal(client.ws.protocol, 'chat.v1')
    assert.equal(client.ws.extensions, 'permessage-deflate')
    const down: Array<string | Buffer> = [randomBytes(MiB), compressibleText(MiB), ...UNICODE, Buffer.alloc(0)]
    for (const message of down) peer.ws.send(message)
    const got = await client.next(down.length)
    for (let i = 0; i < down.length; i++) assert.equal(sha256(await bytesOf(got[i]!)), sha256(down[i]!), `message ${i}`)
    const up = randomBytes(MiB)
    client.ws.send(new Uint8Array(up))
    client.ws.send(UNICODE[0]!)
    const [binary, text] = await peer.inbox.next(2)
    assert.equal(sha256(binary!.data), sha256(up))
    assert.equal(text!.data.toString(), UNICODE[0])
    client.ws.close(4001, BYE_FROM_UNDICI)
    assert.deepEqual(await peer.closed(), [4001, BYE_FROM_UNDICI])
    assert.deepEqual(await client.closed(), { code: 4001, reason: BYE_FROM_UNDICI, wasClean: true })

    const second = await started.connect()
    second.peer.ws.close(4002, BYE_FROM_TETHER)
    assert.deepEqual(await second.client.closed(), { code: 4002, reason: BYE_FROM_TETHER, wasClean: true })
  })
})
