/**
 * One regression test per known attack on WebSocket servers (ws's security
 * history, see SECURITY.md), run against real sockets on loopback. Each
 * checks the RFC's answer and that the process stays up.
 *
 * The two "completes in time" checks (ReDoS, parser DoS) have bounds a
 * hundred times what the work takes: they catch super-linear parsing (which
 * takes minutes on these inputs), not speed.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import { after, describe, test } from 'node:test'
import { WebSocket, type WebSocketServer } from '../../src/index.js'
import { parseExtensions, parseSubprotocols } from '../../src/core/handshake/headers.js'
import {
  HOST,
  RawPeer,
  closed,
  listen,
  maskedFrame,
  opened,
  rawWebSocket,
  readFrame,
  serverPool,
  stopWss,
  tetherServer,
  until,
  upgradeRequest,
} from '../helpers/net.js'

const servers: WebSocketServer[] = []
after(async () => {
  for (const wss of servers) await stopWss(wss).catch(() => {})
})
const server = serverPool()

function elapsed(work: () => void): number {
  const start = performance.now()
  work()
  return performance.now() - start
}

describe('known attacks', () => {
  test('ReDoS in the subprotocol header (ws CVE-2021-32640): linear parsing, a clear answer', async () => {
    const evil = `b${' '.repeat(50_000)}x`
    assert.ok(elapsed(() => parseSubprotocols(evil)) < 1_000)
    assert.equal(parseSubprotocols(evil), undefined, 'malformed, refused')
    const { port } = await server({ maxHeaderSize: 64 * 1024 })
    const peer = await RawPeer.connect(port)
    peer.write(upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': evil } }))
    assert.match(await peer.readHead(5_000), /^HTTP\/1\.1 400/)
  })

  test('DoS in the extension header parser (ws 1.1.1): thousands of offers and odd parameter names', async () => {
    const many = Array.from({ length: 2_000 }, (_, i) => `x-ext-${i}; a=1; b; c="2"`).join(', ')
    assert.ok(elapsed(() => parseExtensions(many)) < 1_000)
    const polluting = parseExtensions('permessage-deflate; __proto__=1; constructor; toString=x')
    assert.deepEqual(polluting?.[0]?.params.map(([name]) => name), ['__proto__', 'constructor', 'toString'])
    assert.equal(({} as Record<string, unknown>)['1'], undefined, 'nothing reached Object.prototype')
    const { port } = await server({ perMessageDeflate: true, maxHeaderSize: 256 * 1024 })
    for (const header of [many, 'permessage-deflate; __proto__=1', 'permessage-deflate; server_max_window_bits=abc', ';;;,,,=']) {
      const peer = await RawPeer.connect(port)
      peer.write(upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': header } }))
      const head = await peer.readHead(5_000)
      // Either accepted without the odd offer, or refused with 400: never a crash or a hang.
      assert.match(head, /^HTTP\/1\.1 (101|400)/)
      peer.destroy()
    }
  })

  test('many headers (ws CVE-2024-37890): 431 where tether reads the request; 400 or 431, not a crash, behind a limiting http.Server', async () => {
    const { port } = await server()
    const flood = await RawPeer.connect(port)
    const junk = Object.fromEntries(Array.from({ length: 3_000 }, (_, i) => [`X-${i}`, 'y']))
    flood.write(upgradeRequest({ headers: junk }))
    assert.match(await flood.readToEnd(), /^HTTP\/1\.1 431/)

    // Past maxHeadersCount, Node 20 drops the extra headers (the key never reaches the
    // upgrade: tether answers 400) and newer Node refuses the request itself with 431.
    const httpServer = http.createServer()
    httpServer.maxHeadersCount = 5
    const { WebSocketServer: Server } = await import('../../src/index.js')
    const wss = new Server({ server: httpServer })
    servers.push(wss)
    const attached = await listen(httpServer)
    const peer = await RawPeer.connect(attached)
    try {
      const lines = ['GET / HTTP/1.1', `Host: ${HOST}`, 'Upgrade: websocket', 'Connection: Upgrade']
      for (let i = 0; i < 10; i++) lines.push(`X-Junk-${i}: y`)
      lines.push('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', '')
      peer.write(lines.join('\r\n'))
      assert.match(await peer.readHead(5_000), /^HTTP\/1\.1 (400|431)/)
    } finally {
      peer.destroy()
      httpServer.closeAllConnections()
      httpServer.close()
    }
  })

  test('memory disclosure through numbers (ws Buffer(number)): ping, pong and send send the digits, close no raw memory', async () => {
    const { wss, port } = await server({ heartbeat: false })
    const sockets: WebSocket[] = []
    wss.on('connection', (ws) => sockets.push(ws))
    const peer = await rawWebSocket(port)
    await until(() => sockets.length === 1)
    const ws = sockets[0]!
    ws.ping(50 as never)
    ws.pong(100 as never)
    ws.send(200 as never)
    const frames = [await readFrame(peer), await readFrame(peer), await readFrame(peer)]
    assert.deepEqual(frames.map((f) => [f.opcode, String(f.payload)]), [[0x9, '50'], [0xa, '100'], [0x1, '200']])
    ws.close(1000, 64 as never)
    const close = await readFrame(peer)
    assert.equal(close.opcode, 0x8)
    assert.equal(close.payload.readUInt16BE(0), 1000)
    assert.ok(['', '64'].includes(String(close.payload.subarray(2))), 'the reason is empty or the digits, never 64 bytes of memory')
    peer.destroy()
  })

  test('memory exhaustion from tiny fragments (ws 2026): memory bounded by bytes; a count only when asked (1008)', async () => {
    // Defaults (issue 13): no fragment count, because the message's memory is its own bytes however it is cut.
    const { wss, port } = await server()
    const received: number[] = []
    wss.on('connection', (ws) => ws.on('message', (data: Buffer) => received.push(data.length)))
    const peer = await rawWebSocket(port)
    const count = 100_000
    const fragments = Buffer.concat(Array.from({ length: count }, (_, i) => maskedFrame(i === 0 ? 0x2 : 0x0, 'x', i === count - 1)))
    const before = process.memoryUsage().arrayBuffers
    peer.write(fragments)
    await until(() => received.length === 1, 20_000)
    assert.deepEqual(received, [count])
    assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024, 'no per-fragment buffers kept')
    peer.destroy()

    const counted = await server({ maxFragments: 16_384 })
    const limited = await rawWebSocket(counted.port)
    limited.write(Buffer.concat(Array.from({ length: 20_000 }, (_, i) => maskedFrame(i === 0 ? 0x2 : 0x0, 'x', false))))
    const frame = await readFrame(limited, 10_000)
    assert.equal(frame.opcode, 0x8)
    assert.equal(frame.payload.readUInt16BE(0), 1008)
    assert.equal(counted.wss.limitStats.tooManyFragments, 1)
    limited.destroy()
  })

  test('a bad frame with no error listener (ws#1140, ws#2019): close 1002, and the process is still here', async () => {
    // Not from the pool, which adds error listeners: deliberately none on the server socket here.
    const { wss, port } = await tetherServer()
    servers.push(wss)
    const sockets: WebSocket[] = []
    wss.on('connection', (ws) => sockets.push(ws))
    const peer = await rawWebSocket(port)
    peer.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4])) // reserved opcode 3
    const frame = await readFrame(peer)
    assert.equal(frame.payload.readUInt16BE(0), 1002)
    await until(() => sockets[0]?.readyState === WebSocket.CLOSED)
    // The same on the client side: a server that sends a masked frame.
    const { WebSocketServer: Server } = await import('../../src/index.js')
    const evil = new Server({ port: 0, host: HOST })
    servers.push(evil)
    await new Promise((resolve) => evil.once('listening', resolve))
    evil.on('connection', (ws) => (ws as unknown as { _socket: import('node:net').Socket })._socket.write(maskedFrame(0x1, 'masked by a server')))
    const client = new WebSocket(`ws://${HOST}:${(evil.address() as import('node:net').AddressInfo).port}/`)
    await opened(client)
    assert.equal((await closed(client))[0], 1006)
  })
})
