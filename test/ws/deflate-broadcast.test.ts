/**
 * Broadcast with permessage-deflate: a message is compressed once per
 * compression setting (preparedStats), whatever the number of receivers, and
 * reaches every kind of receiver intact: without context takeover, with it
 * (and traffic before and after), without compression at all. A client
 * sends a PreparedMessage masked, as any other message.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { PreparedMessage, WebSocket } from '../../src/index.js'
import { preparedStats } from '../../src/node/prepared.js'
import { compressibleText, inflateStream, KiB, rawDeflateClient, rawDeflateServer, shutdown } from '../helpers/deflate.js'
import { Inbox, opened, type RawPeer, rawWebSocket, readFrame, sha256, tetherServer, until, waitFor, wsServer } from '../helpers/net.js'

type WsOptions = import('ws').ClientOptions

/** Opens `count` ws clients with `options`; returns them with their inboxes. */
async function wsClients(url: string, count: number, options: WsOptions) {
  const clients = Array.from({ length: count }, () => new WsClient(url, options))
  await Promise.all(clients.map((client) => opened(client)))
  return clients.map((client) => ({ client, inbox: new Inbox(client) }))
}

function counters() {
  return { ...preparedStats }
}

async function closeRaw(...peers: RawPeer[]): Promise<void> {
  for (const peer of peers) peer.destroy()
}

describe('broadcast compresses once', () => {
  it('50 clients without context takeover (+ a raw one): compressed exactly once, every client gets the message', async () => {
    const { wss, url, port } = await tetherServer({ perMessageDeflate: true })
    const noTakeover = { perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true } }
    const receivers = await wsClients(url, 50, noTakeover)
    const { peer } = await rawDeflateClient(port, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover')
    try {
      await until(() => wss.clients.size === 51, 5000, '51 connections')
      const text = compressibleText(10 * KiB)
      const before = counters()
      assert.equal(wss.broadcast(text), 51)
      assert.deepEqual([preparedStats.compressed - before.compressed, preparedStats.framed - before.framed], [1, 0])
      const raw = await readFrame(peer)
      assert.deepEqual([raw.rsv, raw.opcode, raw.masked], [4, 0x1, false])
      assert.ok(raw.payload.length < text.length / 10)
      assert.equal(inflateStream([raw.payload]).toString(), text)
      for (const { inbox } of receivers) {
        const message = await inbox.one()
        assert.deepEqual([message.isBinary, message.data.toString() === text], [false, true])
      }
      // Binary too: another message, compressed once more.
      const bytes = Buffer.from(compressibleText(5000))
      assert.equal(wss.broadcast(bytes), 51)
      assert.equal(preparedStats.compressed - before.compressed, 2)
      for (const { inbox } of receivers) {
        const message = await inbox.one()
        assert.deepEqual([message.isBinary, message.data.equals(bytes)], [true, true])
      }
    } finally {
      await closeRaw(peer)
      await shutdown(wss, ...receivers.map(({ client }) => client))
    }
  })

  it('clients with context takeover: traffic before and after the broadcast still decodes correctly', async () => {
    const { wss, url, port } = await tetherServer({ perMessageDeflate: { threshold: 0 } })
    const receivers = await wsClients(url, 10, { perMessageDeflate: { threshold: 0 } })
    const { peer } = await rawDeflateClient(port)
    try {
      await until(() => wss.clients.size === 11, 5000, '11 connections')
      // Incompressible alone, so any later copy compresses only by referring back to it.
      const history = randomBytes(3000).toString('base64')
      for (const ws of wss.clients) ws.send(history)
      for (const { inbox } of receivers) assert.equal((await inbox.one()).data.toString(), history)
      const before = counters()
      const text = `${compressibleText(4 * KiB)} ${history.slice(0, 2000)}`
      assert.equal(wss.broadcast(text), 11)
      assert.equal(preparedStats.compressed - before.compressed, 1)
      // Messages that refer back to what was sent before the broadcast, and to the broadcast.
      const after = [history, history + text, 'tail']
      for (const ws of wss.clients) for (const message of after) ws.send(message)
      for (const { inbox } of receivers) {
        const got = (await inbox.next(1 + after.length)).map((message) => message.data.toString())
        assert.deepEqual(got.map(sha256), [text, ...after].map(sha256))
      }
      const frames = [await readFrame(peer)]
      for (let i = 0; i < 1 + after.length; i++) frames.push(await readFrame(peer))
      assert.ok(frames.every((frame) => frame.rsv === 4))
      const stream = inflateStream(frames.map((frame) => frame.payload)).toString()
      assert.equal(stream, [history, text, ...after].join(''))
    } finally {
      await closeRaw(peer)
      await shutdown(wss, ...receivers.map(({ client }) => client))
    }
  })

  it('a mix of compressed and uncompressed clients: one compressed and one plain frame for all of them', async () => {
    const { wss, url, port } = await tetherServer({ perMessageDeflate: true })
    const compressed = await wsClients(url, 5, { perMessageDeflate: true })
    const plain = await wsClients(url, 5, { perMessageDeflate: false })
    const rawPlain = await rawWebSocket(port)
    const { peer: rawDeflate } = await rawDeflateClient(port)
    try {
      await until(() => wss.clients.size === 12, 5000, '12 connections')
      const text = compressibleText(8 * KiB)
      const before = counters()
      assert.equal(wss.broadcast(text), 12)
      assert.deepEqual([preparedStats.compressed - before.compressed, preparedStats.framed - before.framed], [1, 1])
      const [plainFrame, deflateFrame] = [await readFrame(rawPlain), await readFrame(rawDeflate)]
      assert.equal(plainFrame.rsv, 0)
      assert.equal(plainFrame.payload.toString(), text)
      assert.equal(deflateFrame.rsv, 4)
      assert.equal(inflateStream([deflateFrame.payload]).toString(), text)
      for (const { inbox } of [...compressed, ...plain]) assert.equal((await inbox.one()).data.toString(), text)
      // compress: false, a filter, and incompressible data: no compression at all.
      const noCompression = counters()
      assert.equal(wss.broadcast('not compressed '.repeat(200), { compress: false }, (client) => client.extensions !== ''), 6)
      const random = randomBytes(4 * KiB)
      assert.equal(wss.broadcast(random), 12)
      assert.equal(preparedStats.compressed, noCompression.compressed)
      for (const peer of [rawDeflate]) {
        const [a, b] = [await readFrame(peer), await readFrame(peer)]
        assert.deepEqual([a.rsv, b.rsv], [0, 0])
        assert.equal(a.payload.toString(), 'not compressed '.repeat(200))
        assert.ok(b.payload.equals(random))
      }
      for (const { inbox } of compressed) {
        const [a, b] = await inbox.next(2)
        assert.equal(a!.data.toString(), 'not compressed '.repeat(200))
        assert.ok(b!.data.equals(random))
      }
      for (const { inbox } of plain) assert.ok((await inbox.one()).data.equals(random))
    } finally {
      await closeRaw(rawPlain, rawDeflate)
      await shutdown(wss, ...[...compressed, ...plain].map(({ client }) => client))
    }
  })

  it('clients with different server windows: compressed once per window, each readable with its own', async () => {
    const { wss, url } = await tetherServer({ perMessageDeflate: true })
    const narrow = await wsClients(url, 4, { perMessageDeflate: { serverMaxWindowBits: 9 } })
    const wide = await wsClients(url, 4, { perMessageDeflate: true })
    try {
      await until(() => wss.clients.size === 8, 5000, '8 connections')
      // Repeats 3000 bytes back: only the 15-bit variant may use them.
      const block = randomBytes(1500).toString('hex')
      const text = block.repeat(4)
      const before = counters()
      assert.equal(wss.broadcast(text), 8)
      assert.equal(preparedStats.compressed - before.compressed, 2)
      for (const { inbox } of [...narrow, ...wide]) assert.equal((await inbox.one()).data.toString(), text)
    } finally {
      await shutdown(wss, ...[...narrow, ...wide].map(({ client }) => client))
    }
  })
})

describe('a client sending a PreparedMessage', () => {
  it('masks it and compresses it like any message (raw server reads the frames)', async () => {
    const server = await rawDeflateServer('permessage-deflate')
    const ws = new WebSocket(server.url, { perMessageDeflate: true })
    try {
      await opened(ws)
      const peer = await server.next()
      const text = compressibleText(8 * KiB)
      ws.send(new PreparedMessage(Buffer.from(text), false))
      ws.send(new PreparedMessage(Buffer.from('small'), true))
      ws.send(new PreparedMessage(Buffer.from(text), false), { compress: false })
      const [a, b, c] = [await readFrame(peer), await readFrame(peer), await readFrame(peer)]
      assert.deepEqual([a.masked, b.masked, c.masked], [true, true, true])
      assert.deepEqual([a.opcode, b.opcode, c.opcode], [0x1, 0x2, 0x1])
      assert.deepEqual([a.rsv, b.rsv, c.rsv], [4, 0, 0])
      assert.equal(inflateStream([a.payload]).toString(), text)
      assert.equal(b.payload.toString(), 'small')
      assert.equal(c.payload.toString(), text)
    } finally {
      await shutdown(undefined, ws)
      await server.stop()
    }
  })

  it('reaches a ws server intact, with and without compression', async () => {
    for (const perMessageDeflate of [true, false]) {
      const { wss, url } = await wsServer({ perMessageDeflate })
      const connection = waitFor<[WsClient]>(wss, 'connection')
      const ws = new WebSocket(url, { perMessageDeflate })
      try {
        await opened(ws)
        const inbox = new Inbox((await connection)[0])
        const payloads = [Buffer.from(compressibleText(64 * KiB)), randomBytes(70_000)]
        for (const payload of payloads) ws.send(new PreparedMessage(payload, true))
        const got = await inbox.next(2)
        got.forEach((message, i) => assert.deepEqual([message.isBinary, sha256(message.data)], [true, sha256(payloads[i]!)]))
      } finally {
        await shutdown(wss, ws)
      }
    }
  })
})
