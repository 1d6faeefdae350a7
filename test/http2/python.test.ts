/**
 * Interop over HTTP/2 (RFC 8441) with Python's `h2` and `wsproto` (Debian's
 * python3-h2 4.x and python3-wsproto 1.x), peers no one on this project
 * wrote, both ways:
 * (a) test/interop/python/h2_client.py, several WebSockets as streams of
 *     one HTTP/2 connection, against tether's server (port mode, http2, TLS);
 * (b) tether's client (`http2: true`) against test/interop/python/h2_server.py.
 * Messages compared by SHA-256 on both ends, subprotocols, permessage-deflate,
 * ping/pong, close codes both ways with END_STREAM, resets as 1006, and
 * malformed extended CONNECTs (a 4xx or RST_STREAM, the server stays up).
 *
 * A missing /usr/bin/python3, h2 or wsproto fails every test here with the
 * hint that .ci/run installs them; the processes run on 127.0.0.1 and are
 * killed in `finally`/`after`.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { WebSocket } from '../../src/index.js'
import { HOST, Inbox, TIMEOUT, closed, opened, selfSignedCertificate, sha256, until, waitFor, withTimeout } from '../helpers/net.js'
import { PythonProcess, requirePythonH2 } from '../helpers/python.js'
import { h2Server, stopServer } from '../helpers/http2.js'

const CERT = selfSignedCertificate()
const MiB = 1024 * 1024

it('Python h2 and wsproto are available (/usr/bin/python3, python3-h2, python3-wsproto)', () => {
  const [h2, wsproto] = requirePythonH2().split(' ')
  assert.match(h2!, /^4\./, `h2 ${h2}`)
  assert.match(wsproto!, /^1\./, `wsproto ${wsproto}`)
})

/** Runs h2_client.py with `spec`; resolves with its lines once it exited 0. */
async function runH2Client(spec: object, ms = 40_000): Promise<any[]> {
  const proc = new PythonProcess('h2_client.py', [], requirePythonH2)
  try {
    proc.child.stdin!.end(JSON.stringify({ host: HOST, ca: CERT.cert, timeout: ms / 1000 - 5, ...spec }))
    const code = await withTimeout(proc.exited, ms, 'the Python h2 client')
    if (code !== 0) throw new Error(`h2_client.py exited ${code}\n${proc.describe()}`)
    return proc.lines
  } finally {
    await proc.kill()
  }
}

function linesOf(lines: any[], socket: number): any[] {
  return lines.filter((line) => line.socket === socket)
}

// ------------------------------------------------ (a) Python h2 client -> tether server

describe('Python h2 + wsproto client -> tether server (several WebSockets on one HTTP/2 connection)', () => {
  let server: Awaited<ReturnType<typeof h2Server>> | undefined
  const connections: Array<{ ws: WebSocket; request: IncomingMessage; closed: Promise<[number, string]> }> = []

  before(async () => {
    server = await h2Server({ perMessageDeflate: true, handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false) })
    server.wss.on('connection', (ws, request) => {
      ws.on('error', () => {})
      connections.push({ ws, request, closed: closed(ws, 30_000) })
      if (request.url === '/server-closes') ws.once('message', () => ws.close(4001, 'tether says bye'))
      else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    })
  })
  after(async () => {
    if (server) await stopServer(server.wss)
  })

  it('echoes text, unicode and binary up to 1 MiB on three concurrent streams, then closes each cleanly', async () => {
    const start = connections.length
    const sizes = [0, 1, 125, 126, 65535, 65536, MiB]
    const binarySteps = sizes.flatMap((size) => [{ op: 'send', binary: true, size }, { op: 'recv' }])
    const lines = await runH2Client({
      port: server!.port,
      sockets: [
        { path: '/text', subprotocols: ['chat', 'other'], steps: [{ op: 'send', text: 'hello ✓ 日本語 🎉' }, { op: 'recv' }, { op: 'ping', data: 'p' }, { op: 'close', code: 1000, reason: 'done' }] },
        { path: '/binary', steps: [...binarySteps, { op: 'close', code: 3001, reason: 'app code' }] },
        { path: '/deflate', compression: true, steps: [{ op: 'send', text: 'abc '.repeat(50_000) }, { op: 'recv' }, { op: 'close', code: 1000 }] },
      ],
    })
    assert.deepEqual(lines.find((l) => l.op === 'settings'), { op: 'settings', enable_connect_protocol: 1 })
    // The text socket.
    const text = linesOf(lines, 0)
    assert.equal(text.find((l) => l.op === 'response').status, 200)
    assert.equal(text.find((l) => l.op === 'response').headers['sec-websocket-protocol'], 'chat')
    assert.equal(text.find((l) => l.op === 'response').headers['sec-websocket-accept'], undefined)
    assert.equal(text.find((l) => l.op === 'recv').text, 'hello ✓ 日本語 🎉')
    assert.equal(text.find((l) => l.op === 'pong').data, 'p')
    assert.deepEqual(text.find((l) => l.op === 'close'), { socket: 0, op: 'close', code: 1000, reason: 'done' })
    // The binary socket: every size arrives intact both ways.
    const binary = linesOf(lines, 1)
    const sent = binary.filter((l) => l.op === 'send')
    const received = binary.filter((l) => l.op === 'recv')
    assert.deepEqual(received.map((l) => [l.length, l.sha256, l.binary]), sent.map((l) => [l.length, l.sha256, true]))
    // The compressed socket.
    const deflate = linesOf(lines, 2)
    assert.match(deflate.find((l) => l.op === 'response').headers['sec-websocket-extensions'], /^permessage-deflate/)
    assert.equal(deflate.find((l) => l.op === 'recv').length, 200_000)
    // Each stream ended with END_STREAM both ways, none reset.
    for (const socket of [0, 1, 2]) {
      const end = linesOf(lines, socket).find((l) => l.op === 'end')
      assert.deepEqual([end.ended, end.reset, end.done, end.steps_left], [true, null, true, []], JSON.stringify(end))
    }
    // tether's side: three WebSockets on one HTTP/2 session, the close codes the client sent.
    const mine = connections.slice(start)
    assert.equal(mine.length, 3)
    assert.ok(mine.every(({ request }) => request.httpVersion === '2.0'))
    assert.equal(new Set(mine.map(({ ws }) => (ws._socket as unknown as { session: unknown }).session)).size, 1)
    const byPath = Object.fromEntries(await Promise.all(mine.map(async ({ request, closed: c, ws }) => [request.url, [...(await c), ws.extensions]])))
    assert.deepEqual(byPath, { '/text': [1000, 'done', ''], '/binary': [3001, 'app code', ''], '/deflate': [1000, '', 'permessage-deflate'] })
  })

  it("tether's close, a 1007 for invalid UTF-8, and a reset (1006) reach the right ends", async () => {
    const start = connections.length
    const lines = await runH2Client({
      port: server!.port,
      sockets: [
        { path: '/server-closes', steps: [{ op: 'send', text: 'close me' }, { op: 'expect_close' }] },
        { path: '/bad-utf8', steps: [{ op: 'bad_utf8' }, { op: 'expect_close' }] },
        { path: '/reset', steps: [{ op: 'send', text: 'x' }, { op: 'recv' }, { op: 'reset' }] },
      ],
    })
    assert.deepEqual(linesOf(lines, 0).find((l) => l.op === 'expect_close'), { socket: 0, op: 'expect_close', code: 4001, reason: 'tether says bye' })
    assert.equal(linesOf(lines, 1).find((l) => l.op === 'expect_close').code, 1007)
    assert.equal(linesOf(lines, 0).find((l) => l.op === 'end').ended, true)
    await until(() => connections.length >= start + 3)
    const byPath = Object.fromEntries(await Promise.all(connections.slice(start).map(async ({ request, closed: c }) => [request.url, (await c)[0]])))
    // A failed connection reports 1006 to the application, as ws does; the peer got the 1007 (above).
    assert.deepEqual(byPath, { '/server-closes': 4001, '/bad-utf8': 1006, '/reset': 1006 })
  })

  it('malformed extended CONNECTs get RST_STREAM (nghttp2) or 400 (tether), and the server stays up', async () => {
    const start = connections.length
    const authority = `${HOST}:${server!.port}`
    const lines = await runH2Client({
      port: server!.port,
      sockets: [
        // RFC 8441 §4: :protocol on a method other than CONNECT is malformed.
        { fields: [[':method', 'GET'], [':protocol', 'websocket'], [':scheme', 'https'], [':path', '/'], [':authority', authority]] },
        // §4: :path and :scheme must come with :protocol.
        { fields: [[':method', 'CONNECT'], [':protocol', 'websocket'], [':authority', authority], ['sec-websocket-version', '13']] },
        { fields: [[':method', 'CONNECT'], [':protocol', 'chat'], [':scheme', 'https'], [':path', '/'], [':authority', authority], ['sec-websocket-version', '13']] },
        { fields: [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'https'], [':path', '/'], [':authority', authority]] },
        { path: '/after', steps: [{ op: 'send', text: 'still serving' }, { op: 'recv' }, { op: 'close', code: 1000 }] },
      ],
    })
    const end = (socket: number) => linesOf(lines, socket).find((l) => l.op === 'end')
    const status = (socket: number) => linesOf(lines, socket).find((l) => l.op === 'response')?.status
    assert.equal(end(0).reset, 1, 'PROTOCOL_ERROR')
    assert.equal(end(1).reset, 1, 'PROTOCOL_ERROR')
    assert.equal(status(2), 400)
    assert.match(end(2).body, /Unsupported :protocol "chat"/)
    assert.equal(status(3), 400)
    assert.equal(linesOf(lines, 3).find((l) => l.op === 'response').headers['sec-websocket-version'], '13, 8')
    assert.equal(linesOf(lines, 4).find((l) => l.op === 'recv').text, 'still serving')
    assert.deepEqual(connections.slice(start).map(({ request }) => request.url), ['/after'])
  })
})

// ------------------------------------------------ (b) tether client -> Python h2 server

describe('tether client (http2: true) -> Python h2 + wsproto server', () => {
  let dir: string | undefined
  let python: PythonProcess | undefined
  let port = 0
  const clients: WebSocket[] = []

  async function startPython(args: string[] = []): Promise<{ proc: PythonProcess; port: number }> {
    dir ??= mkdtempSync(join(tmpdir(), 'tether-h2-'))
    writeFileSync(join(dir, 'cert.pem'), CERT.cert)
    writeFileSync(join(dir, 'key.pem'), CERT.key)
    const proc = new PythonProcess('h2_server.py', ['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), ...args], requirePythonH2)
    try {
      const line = await proc.next((l) => l.event === 'listening' || l.event === 'fatal', TIMEOUT, 'the listening port')
      if (line.event === 'fatal') throw new Error(line.message)
      return { proc, port: line.port }
    } catch (error) {
      await proc.kill()
      throw error
    }
  }

  function client(path: string, options: ConstructorParameters<typeof WebSocket>[2] = {}, protocols?: string[]): WebSocket {
    const ws = new WebSocket(`wss://${HOST}:${port}${path}`, protocols, { http2: true, ca: CERT.cert, ...options })
    ws.on('error', () => {})
    clients.push(ws)
    return ws
  }

  before(async () => {
    ;({ proc: python, port } = await startPython())
  })
  after(async () => {
    for (const ws of clients) if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
    await python?.kill()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('opens several WebSockets on one connection, with subprotocol and permessage-deflate, and echoes every size', async () => {
    const plain = await opened(client('/plain', { perMessageDeflate: false }, ['chat', 'other']))
    const compressed = await opened(client('/compressed'))
    const opens = [await python!.next((l) => l.event === 'open' && l.path === '/plain'), await python!.next((l) => l.event === 'open' && l.path === '/compressed')]
    assert.equal(opens[0].connection, opens[1].connection, 'one HTTP/2 connection')
    assert.equal(opens[0].headers[':protocol'], 'websocket')
    assert.equal(opens[0].headers['sec-websocket-key'], undefined, 'no key over HTTP/2 (RFC 8441 §5)')
    assert.equal(plain.protocol, 'chat')
    assert.equal(plain.extensions, '')
    assert.equal(compressed.extensions, 'permessage-deflate')
    for (const ws of [plain, compressed]) {
      const inbox = new Inbox(ws)
      const payloads = [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(65536, 7), Buffer.from('tether ✓ '.repeat(100_000))]
      for (const data of payloads) ws.send(data)
      ws.send('text ✓')
      const echoed = await inbox.next(payloads.length + 1, 20_000)
      assert.deepEqual(echoed.map((m) => sha256(m.data)), [...payloads.map((data) => sha256(data)), sha256('text ✓')])
      assert.deepEqual(echoed.map((m) => m.isBinary), [true, true, true, true, false])
    }
    plain.close(1000, 'bye python')
    assert.deepEqual(await closed(plain), [1000, 'bye python'])
    const seen = await python!.next((l) => l.event === 'closed' && l.path === '/plain')
    assert.deepEqual([seen.code, seen.reason], [1000, 'bye python'])
    compressed.close()
    await closed(compressed)
  })

  it("hears the Python server's close code, its pings, a 403 and a reset (1006)", async () => {
    const closing = await opened(client('/close/4002'))
    closing.send('go')
    assert.deepEqual(await closed(closing), [4002, 'python says bye'])
    assert.equal(closing.wasClean, true)

    const pinged = await opened(client('/ping'))
    const ping = waitFor<[Buffer]>(pinged, 'ping')
    pinged.send('ping me')
    assert.equal(String((await ping)[0]), 'are you there')
    assert.equal((await python!.next((l) => l.event === 'pong' && l.path === '/ping')).data, 'are you there', 'tether answered the ping')
    pinged.close()

    const refused = client('/refuse')
    const [error] = await Promise.all([waitFor<[Error & { code: string }]>(refused, 'error').then(([e]) => e), closed(refused)])
    assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_STATUS')
    assert.match(error.message, /403/)

    const reset = await opened(client('/reset'))
    const gone = closed(reset)
    reset.send('reset me')
    assert.equal((await gone)[0], 1006)
  })

  it('fails with TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED when the server does not send SETTINGS_ENABLE_CONNECT_PROTOCOL', async () => {
    const other = await startPython(['--no-connect-protocol'])
    try {
      const ws = new WebSocket(`wss://${HOST}:${other.port}/`, { http2: true, ca: CERT.cert })
      const [[error], [code]] = await Promise.all([waitFor<[Error & { code: string }]>(ws, 'error'), closed(ws)])
      assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED')
      assert.equal(code, 1006)
    } finally {
      await other.proc.kill()
    }
  })
})

