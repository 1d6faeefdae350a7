/**
 * ZlibCodec and the process-wide zlib memory budget (zlib-codec.ts) over
 * real sockets: what the budget changes in negotiation and in compression,
 * lazy and idle-freed dedicated contexts, no leak after many connections,
 * and incompressible messages. The asynchronous path: zlib-codec-async.test.ts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket } from '../../src/index.js'
import { ZlibCodec, configureDeflateMemory, deflateMemoryStats, inflaterCost, sweepIdle } from '../../src/node/zlib-codec.js'
import { engineCost } from '../../src/node/zlib-engine.js'
import {
  compressibleBytes,
  compressibleText,
  deflateMessage,
  extensionParams,
  extensionsOf,
  frame,
  inflateStream,
  KiB,
  MiB,
  rawDeflateClient,
  restoreDeflateDefaults,
  shutdown,
} from '../helpers/deflate.js'
import { closed, closeServer, Inbox, listen, opened, readFrame, sha256, tetherServer, until, waitFor, wsServer } from '../helpers/net.js'

const DEFLATER_15 = engineCost('deflate', { windowBits: 15 })

/** Frees the contexts that closed connections left for reuse, so each test starts from an empty pool. */
function emptyPool(): void {
  sweepIdle(Date.now() + 24 * 3600 * 1000)
}

/** Budget held by live connections: `used` without the pooled contexts. */
function held(stats = deflateMemoryStats()): number {
  return stats.used - stats.pooledBytes
}

beforeEach(emptyPool)
afterEach(() => {
  restoreDeflateDefaults()
  emptyPool()
})

/** A tether server and a raw client that negotiated permessage-deflate with `offer`. */
async function serverWithRawClient(options: Parameters<typeof tetherServer>[0], offer?: string) {
  const server = await tetherServer(options)
  const connection = waitFor<[WebSocket]>(server.wss, 'connection')
  const { peer, head } = await rawDeflateClient(server.port, offer)
  const [ws] = await connection
  return { ...server, peer, head, ws, answer: extensionParams(extensionsOf(head)) }
}

describe('memory budget', () => {
  it('no room: the server answers client_no_context_takeover (counted), and both directions still compress statelessly', async () => {
    configureDeflateMemory({ budget: deflateMemoryStats().used + 1000 })
    const before = deflateMemoryStats()
    const { wss, peer, ws, answer } = await serverWithRawClient({ perMessageDeflate: { threshold: 0 } })
    try {
      assert.equal(answer.get(''), 'permessage-deflate')
      assert.equal(answer.get('client_no_context_takeover'), true)
      assert.equal(deflateMemoryStats().takeoverDeclined, before.takeoverDeclined + 1)
      assert.equal(ws.extensions, 'permessage-deflate')
      // The server keeps its right to take over context but has no budget for a deflater.
      const text = compressibleText(10 * KiB)
      ws.send(text)
      ws.send(text)
      const frames = [await readFrame(peer), await readFrame(peer)]
      for (const received of frames) {
        assert.equal(received.rsv, 4, 'RSV1: compressed')
        assert.ok(received.payload.length < 2 * KiB)
        // Stateless: each message inflates on its own, and the copy is no smaller than the first.
        assert.equal(inflateStream([received.payload]).toString(), text)
      }
      assert.ok(frames[1]!.payload.length >= frames[0]!.payload.length)
      const stats = deflateMemoryStats()
      assert.equal(stats.sharedBecauseOfBudget, before.sharedBecauseOfBudget + 2)
      assert.equal(stats.dedicatedDeflaters, before.dedicatedDeflaters)
      assert.ok(stats.used <= stats.budget)
      // The client compresses without context takeover, as asked; the server inflates it.
      const echo = new Inbox(ws)
      peer.write(frame(0x1, deflateMessage(Buffer.from(text)), { rsv1: true, mask: true }))
      assert.equal((await echo.one()).data.toString(), text)
    } finally {
      peer.destroy()
      await shutdown(wss)
    }
  })

  it('no room: a ws client and the server still exchange compressed messages correctly', async () => {
    configureDeflateMemory({ budget: deflateMemoryStats().used + 1000 })
    const { wss, url } = await tetherServer({ perMessageDeflate: { threshold: 0 } })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    const client = new WsClient(url, { perMessageDeflate: { threshold: 0 } })
    try {
      const [[response]] = await Promise.all([waitFor<[{ headers: Record<string, string> }]>(client, "upgrade"), opened(client)])
      assert.equal(extensionParams(response.headers['sec-websocket-extensions']).get('client_no_context_takeover'), true)
      const inbox = new Inbox(client)
      const messages = [compressibleText(5000), compressibleText(5000), randomBytes(3000), Buffer.alloc(0), compressibleBytes(70 * KiB)]
      for (const message of messages) client.send(message)
      const got = await inbox.next(messages.length)
      got.forEach((message, i) => assert.equal(sha256(message.data), sha256(Buffer.from(messages[i]!))))
    } finally {
      await shutdown(wss, client)
    }
  })

  it('no room on a client: it offers server_no_context_takeover itself (counted) and still compresses', async () => {
    configureDeflateMemory({ budget: deflateMemoryStats().used + 1000 })
    const before = deflateMemoryStats().takeoverDeclined
    const { wss, url } = await wsServer({ perMessageDeflate: { threshold: 0 } })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    const request = waitFor<[unknown, { headers: Record<string, string> }]>(wss, 'connection')
    const client = new WebSocket(url, { perMessageDeflate: { threshold: 0 } })
    try {
      await opened(client)
      const offer = extensionParams((await request)[1].headers['sec-websocket-extensions'])
      assert.equal(offer.get('server_no_context_takeover'), true)
      assert.equal(deflateMemoryStats().takeoverDeclined, before + 1)
      const inbox = new Inbox(client)
      const text = compressibleText(64 * KiB)
      const sent = client._socket!.bytesWritten
      client.send(text)
      client.send(text)
      const [a, b] = await inbox.next(2)
      assert.equal(a!.data.toString(), text)
      assert.equal(b!.data.toString(), text)
      assert.ok(client._socket!.bytesWritten - sent < 16 * KiB, 'compressed on the wire')
    } finally {
      await shutdown(wss, client)
    }
  })

  it('a dedicated deflater is created lazily, on the first compressed send, and released on close', async () => {
    const before = deflateMemoryStats()
    const { wss, peer, ws, answer } = await serverWithRawClient({ perMessageDeflate: {} })
    try {
      assert.equal(answer.has('client_no_context_takeover'), false)
      // The handshake reserved the inflater the client's context takeover needs; no context exists yet.
      let stats = deflateMemoryStats()
      assert.equal(stats.used, before.used + inflaterCost(15))
      assert.equal(stats.dedicatedDeflaters, before.dedicatedDeflaters)
      ws.send('short, below the 1024-byte threshold')
      ws.send(compressibleText(4 * KiB), { compress: false })
      assert.equal((await readFrame(peer)).rsv, 0)
      assert.equal((await readFrame(peer)).rsv, 0)
      assert.equal(deflateMemoryStats().dedicatedDeflaters, before.dedicatedDeflaters)
      const text = compressibleText(4 * KiB)
      ws.send(text)
      const compressed = await readFrame(peer)
      assert.equal(compressed.rsv, 4)
      assert.equal(inflateStream([compressed.payload]).toString(), text)
      stats = deflateMemoryStats()
      assert.equal(stats.dedicatedDeflaters, before.dedicatedDeflaters + 1)
      assert.equal(stats.used, before.used + inflaterCost(15) + DEFLATER_15)
      peer.destroy()
      await closed(ws)
      stats = deflateMemoryStats()
      // The connection holds nothing any more; its deflater waits in the pool for the next one.
      assert.equal(held(stats), held(before))
      assert.equal(stats.pooledBytes, before.pooledBytes + DEFLATER_15)
      assert.equal(stats.dedicatedDeflaters, before.dedicatedDeflaters)
      emptyPool()
      assert.equal(deflateMemoryStats().used, before.used)
    } finally {
      peer.destroy()
      await shutdown(wss)
    }
  })

  it('room for the inflater but not the deflater: takeover accepted, sends use the shared context (counted)', async () => {
    const start = deflateMemoryStats()
    configureDeflateMemory({ budget: start.used + inflaterCost(15) + DEFLATER_15 - 1 })
    const { wss, peer, ws, answer } = await serverWithRawClient({ perMessageDeflate: { threshold: 0 } })
    try {
      assert.equal(answer.has('client_no_context_takeover'), false)
      assert.equal(deflateMemoryStats().takeoverDeclined, start.takeoverDeclined)
      const text = compressibleText(3 * KiB)
      ws.send(text)
      const received = await readFrame(peer)
      assert.equal(received.rsv, 4)
      assert.equal(inflateStream([received.payload]).toString(), text)
      const stats = deflateMemoryStats()
      assert.equal(stats.sharedBecauseOfBudget, start.sharedBecauseOfBudget + 1)
      assert.equal(stats.dedicatedDeflaters, start.dedicatedDeflaters)
    } finally {
      peer.destroy()
      await shutdown(wss)
    }
  })
})

describe('no leak', () => {
  it('200 compressed connections with traffic, all closed: used and the dedicated counters return to their start', async () => {
    const start = deflateMemoryStats()
    const { wss, url } = await tetherServer({ perMessageDeflate: { threshold: 0 } })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    const clients: WebSocket[] = []
    try {
      for (let i = 0; i < 200; i++) clients.push(new WebSocket(url, { perMessageDeflate: { threshold: 0 } }))
      await Promise.all(clients.map((client) => opened(client)))
      const inboxes = clients.map((client) => new Inbox(client))
      clients.forEach((client, i) => client.send(compressibleText(2000 + i)))
      const replies = await Promise.all(inboxes.map((inbox) => inbox.one()))
      replies.forEach((reply, i) => assert.equal(reply.data.toString(), compressibleText(2000 + i)))
      const peak = deflateMemoryStats()
      // Both ends live in this process: 400 codecs, more than a 64 MiB budget pays for.
      assert.ok(peak.dedicatedDeflaters > start.dedicatedDeflaters, 'some dedicated deflaters were created')
      assert.ok(peak.dedicatedInflaters > start.dedicatedInflaters, 'some dedicated inflaters were created')
      assert.ok(peak.sharedBecauseOfBudget > start.sharedBecauseOfBudget, 'the budget ran out')
      assert.ok(peak.used <= peak.budget && peak.used > start.used)
      const allClosed = clients.map((client) => closed(client, 20_000))
      for (const client of clients) client.close(1000)
      await Promise.all(allClosed)
      await until(() => wss.clients.size === 0, 10_000, 'the server side to close')
      const end = deflateMemoryStats()
      assert.equal(held(end), held(start))
      assert.ok(end.pooledBytes > 0 && end.used <= end.budget, 'the contexts wait in the pool, within the budget')
      assert.equal(end.dedicatedDeflaters, start.dedicatedDeflaters)
      assert.equal(end.dedicatedInflaters, start.dedicatedInflaters)
      emptyPool()
      assert.equal(deflateMemoryStats().used, start.used)
    } finally {
      await shutdown(wss, ...clients)
    }
  })

  it('a client gives its offer reservation back however the handshake ends', async () => {
    const start = deflateMemoryStats().used
    const plain = await tetherServer({ perMessageDeflate: false })
    const refusing = await tetherServer({ perMessageDeflate: true, verifyClient: () => false })
    const deflating = await tetherServer({ perMessageDeflate: true })
    const unused = net.createServer()
    const deadPort = await listen(unused)
    await closeServer(unused)
    const sockets: WebSocket[] = []
    const ends: Promise<unknown>[] = []
    const track = (ws: WebSocket): WebSocket => {
      sockets.push(ws)
      ws.on('error', () => {})
      ends.push(closed(ws))
      return ws
    }
    try {
      // Refused (401), closed while connecting, and nobody listening on the port.
      track(new WebSocket(refusing.url))
      track(new WebSocket(deflating.url)).close()
      track(new WebSocket(`ws://127.0.0.1:${deadPort}/`))
      // The application handles 'unexpected-response' and then terminates (as ws documents).
      const handled = track(new WebSocket(refusing.url))
      handled.on('unexpected-response', () => handled.terminate())
      // The application terminates from its 'upgrade' listener.
      const upgraded = track(new WebSocket(deflating.url))
      upgraded.on('upgrade', () => upgraded.terminate())
      // Declined by the server: the connection opens without compression.
      const declined = track(new WebSocket(plain.url))
      await opened(declined)
      assert.equal(declined.extensions, '')
      declined.close()
      await Promise.all(ends)
      await until(() => deflateMemoryStats().used === start, 2000, `used to return to ${start}`).catch(() => {})
      assert.equal(deflateMemoryStats().used, start)
    } finally {
      await shutdown(plain.wss, ...sockets)
      await Promise.all([shutdown(refusing.wss), shutdown(deflating.wss)])
    }
  })
})

describe('reuse', () => {
  it('contexts of closed connections are reused by the next ones: a second round adds none', async () => {
    const { wss, url } = await tetherServer({ perMessageDeflate: { threshold: 0 } })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    // ws clients: their contexts are not ours, so every pooled context is the server's.
    const round = async (): Promise<void> => {
      const clients = Array.from({ length: 20 }, () => new WsClient(url, { perMessageDeflate: { threshold: 0 } }))
      await Promise.all(clients.map((client) => opened(client)))
      const inboxes = clients.map((client) => new Inbox(client))
      clients.forEach((client, i) => client.send(compressibleText(3000 + i)))
      const replies = await Promise.all(inboxes.map((inbox) => inbox.one()))
      replies.forEach((reply, i) => assert.equal(reply.data.toString(), compressibleText(3000 + i)))
      const allClosed = clients.map((client) => closed(client, 10_000))
      for (const client of clients) client.close(1000)
      await Promise.all(allClosed)
      await until(() => wss.clients.size === 0, 10_000, 'the server side to close')
    }
    try {
      const start = deflateMemoryStats()
      await round()
      const first = deflateMemoryStats()
      // 20 inflaters (the clients take over context) and 20 deflaters, all back in the pool.
      assert.equal(first.pooledContexts, start.pooledContexts + 40)
      await round()
      const second = deflateMemoryStats()
      assert.equal(second.pooledContexts, first.pooledContexts, 'the second round took its contexts from the pool')
      assert.equal(second.pooledBytes, first.pooledBytes)
      assert.equal(held(second), held(start))
    } finally {
      await shutdown(wss)
    }
  })
})

describe('idle dedicated deflaters', () => {
  it('sweepIdle frees them after idleMs (counted); later messages still reach a ws client intact', async () => {
    configureDeflateMemory({ idleMs: 10_000 })
    const { wss, url } = await tetherServer({ perMessageDeflate: { threshold: 0 } })
    const connection = waitFor<[WebSocket]>(wss, 'connection')
    const client = new WsClient(url, { perMessageDeflate: { threshold: 0 } })
    try {
      await opened(client)
      const [ws] = await connection
      const inbox = new Inbox(client)
      const start = deflateMemoryStats()
      const first = compressibleText(8 * KiB) + randomBytes(2000).toString('base64')
      ws.send(first)
      await inbox.one()
      assert.equal(deflateMemoryStats().dedicatedDeflaters, start.dedicatedDeflaters + 1)
      sweepIdle(Date.now() + 1000)
      assert.equal(deflateMemoryStats().idleFreed, start.idleFreed, 'not idle long enough yet')
      sweepIdle(Date.now() + 10_000)
      let stats = deflateMemoryStats()
      assert.equal(stats.idleFreed, start.idleFreed + 1)
      assert.equal(stats.dedicatedDeflaters, start.dedicatedDeflaters)
      // Taken from the connection, kept in the pool, freed by a later sweep.
      assert.equal(held(stats), held(start))
      assert.equal(stats.pooledBytes, start.pooledBytes + DEFLATER_15)
      sweepIdle(Date.now() + 30_000)
      assert.equal(deflateMemoryStats().used, start.used)
      // The client's inflater keeps its history; the server's next deflater starts fresh.
      const later = [first, first.slice(100), compressibleText(70 * KiB), first]
      for (const message of later) ws.send(message)
      const got = await inbox.next(later.length)
      got.forEach((message, i) => assert.equal(message.data.toString(), later[i]))
      stats = deflateMemoryStats()
      assert.equal(stats.dedicatedDeflaters, start.dedicatedDeflaters + 1, 'a new one, created lazily')
    } finally {
      await shutdown(wss, client)
    }
  })
})

describe('incompressible messages', () => {
  it('shared context: random bytes go out uncompressed (RSV1 clear, counted), compressible ones compressed', async () => {
    const before = deflateMemoryStats().incompressible
    const { wss, peer, ws } = await serverWithRawClient({ perMessageDeflate: { mode: 'shared', threshold: 0 } })
    try {
      const random = randomBytes(4 * KiB)
      const text = compressibleText(4 * KiB)
      ws.send(random)
      ws.send(text)
      const [first, second] = [await readFrame(peer), await readFrame(peer)]
      assert.equal(first.rsv, 0)
      assert.ok(first.payload.equals(random))
      assert.equal(deflateMemoryStats().incompressible, before + 1)
      assert.equal(second.rsv, 4)
      assert.equal(inflateStream([second.payload]).toString(), text)
    } finally {
      peer.destroy()
      await shutdown(wss)
    }
  })

  it('dedicated context: random bytes stay compressed, so the context the peer follows stays in step', async () => {
    const { wss, peer, ws } = await serverWithRawClient({ perMessageDeflate: { threshold: 0 } })
    try {
      const random = randomBytes(4 * KiB)
      const messages = [random, random, Buffer.from(compressibleText(2 * KiB))]
      for (const message of messages) ws.send(message)
      const frames = [await readFrame(peer), await readFrame(peer), await readFrame(peer)]
      assert.deepEqual(frames.map((received) => received.rsv), [4, 4, 4])
      assert.ok(frames[1]!.payload.length < 100, 'the repeat refers back to the first copy')
      assert.ok(inflateStream(frames.map((received) => received.payload)).equals(Buffer.concat(messages)))
    } finally {
      peer.destroy()
      await shutdown(wss)
    }
  })
})

describe('after everything above', () => {
  it('no budget is held and no dedicated context is left', async () => {
    emptyPool()
    await until(() => deflateMemoryStats().used === 0, 5000, 'used to return to 0').catch(() => {})
    const stats = deflateMemoryStats()
    assert.deepEqual([stats.used, stats.dedicatedDeflaters, stats.dedicatedInflaters], [0, 0, 0])
  })
})

describe('a peer that ends messages with a final block (RFC 7692 §7.2.3.4)', () => {
  // "Hello" in a DEFLATE block with BFINAL set, plus the 0x00 the RFC appends (§7.2.3.4), then
  // "Hello" in an ordinary block: with context takeover both must inflate to "Hello". Before
  // the fix the finished stream answered every later message with nothing, silently.
  const finalBlock = Buffer.from('f348cdc9c9070000', 'hex')
  const ordinary = Buffer.from('f248cdc9c90700', 'hex')
  const parameters = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
  const settings = { threshold: 0, level: undefined, memLevel: undefined, strategy: undefined }

  for (const forceAsync of [false, true]) {
    it(`the next message starts a new stream (${forceAsync ? 'async' : 'sync'} zlib)`, async () => {
      const codec = new ZlibCodec('server', parameters, { ...settings, forceAsync }, 0)
      const inflate = (data: Buffer) =>
        new Promise<string>((resolve, reject) =>
          codec.inflate(data, true, 1 << 20, (outcome) =>
            outcome.ok ? resolve(Buffer.concat(outcome.data.map((chunk) => Buffer.from(chunk))).toString()) : reject(new Error(outcome.message)),
          ),
        )
      try {
        assert.deepEqual([await inflate(finalBlock), await inflate(ordinary), await inflate(finalBlock), await inflate(ordinary)], [
          'Hello',
          'Hello',
          'Hello',
          'Hello',
        ])
      } finally {
        codec.close()
      }
    })
  }
})
