/**
 * A busy connection (a bulk sender, or one with many reads a second) reads
 * into one 512 KiB buffer the whole process shares (tcp.ts Rule 6). Every
 * read must leave that buffer as a copy of its own before the next read of
 * any connection lands in it: messages kept by the application, held by a
 * paused socket, or split across reads must come out as they were sent. Here
 * several clients send at once, in bulk and in small messages after it, and
 * the server keeps every message and checks them only at the end, after many
 * more reads went through the shared buffer. A quiet connection must not
 * switch (it would keep Node's listener for the buffer for nothing). On the
 * net fallback (TETHER_TCP_HANDLES=0) the same holds with Node's reads.
 */
import assert from 'node:assert/strict'
import { randomFillSync } from 'node:crypto'
import http from 'node:http'
import { describe, it } from 'node:test'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import { TcpTransport } from '../../src/node/tcp.js'
import { HOST, TCP_HANDLES, closeServer, closed, delay, listen, maskedFrame, opened, rawWebSocket, sha256, stopWss, tetherServer, until } from '../helpers/net.js'

const KiB = 1024
const MiB = 1024 * KiB
/** Sizes each client sends in turn: large ones that cross reads, then a run of small ones read in bulk. */
const LARGE = [3 * MiB, 700 * KiB, 1, 5 * MiB + 17, 200 * KiB]
const SMALL_COUNT = 3000

function messagesOf(client: number): Buffer[] {
  const sizes = [...LARGE, ...Array.from({ length: SMALL_COUNT }, (_, i) => 1 + ((i * 37 + client) % 300))]
  return sizes.map((size) => randomFillSync(Buffer.allocUnsafe(size)))
}

/** Keeps every message each socket received, in order; `paused` sockets stop reading for a while after their first. */
function keepAll(wss: WebSocketServer, kept: Buffer[][], pauseEvery = 0): void {
  let index = 0
  wss.on('connection', (ws) => {
    const mine: Buffer[] = (kept[index++] = [])
    ws.on('message', (data) => {
      mine.push(data as Buffer)
      if (pauseEvery > 0 && mine.length % pauseEvery === 1) {
        // Reads held while paused sit in the parser; the other clients' reads go on through the shared buffer.
        ws.pause()
        setTimeout(() => ws.resume(), 20)
      }
    })
  })
}

async function sendAll(url: string, clients: number, kept: Buffer[][]): Promise<Buffer[][]> {
  const sent = Array.from({ length: clients }, (_, client) => messagesOf(client))
  const sockets = await Promise.all(sent.map(() => opened(new WebSocket(url, { perMessageDeflate: false }))))
  sockets.forEach((ws, client) => {
    for (const message of sent[client]!) ws.send(message)
  })
  await until(() => kept.length === clients && kept.every((mine, i) => mine.length === sent[i]!.length), 60_000, 'every message kept')
  for (const ws of sockets) ws.close()
  return sent
}

function assertIntact(sent: Buffer[][], kept: Buffer[][]): void {
  // Which server socket belongs to which client is not known; match them by their first message.
  for (const mine of kept) {
    const client = sent.findIndex((messages) => messages[0]!.length === mine[0]!.length && sha256(messages[0]!) === sha256(mine[0]!))
    assert.ok(client >= 0, 'a kept first message matches no client: it was overwritten')
    const expected = sent[client]!
    assert.equal(mine.length, expected.length)
    for (let i = 0; i < expected.length; i++) {
      if (!mine[i]!.equals(expected[i]!)) assert.fail(`client ${client}, message ${i} (${expected[i]!.length} B) changed after it was delivered`)
    }
  }
}

/** Counts, while `run` runs, the reads of port-mode connections that came through the shared buffer. */
async function countSharedReads(run: () => Promise<void>): Promise<number> {
  const prototype = TcpTransport.prototype as unknown as { handleRead(nread: number, arrayBuffer: ArrayBuffer | undefined): void }
  const handleRead = prototype.handleRead
  let shared = 0
  prototype.handleRead = function (nread, arrayBuffer) {
    if (arrayBuffer === undefined && nread > 0) shared++
    return handleRead.call(this, nread, arrayBuffer)
  }
  try {
    await run()
  } finally {
    prototype.handleRead = handleRead
  }
  return shared
}

/** Sends `count` small messages, each in its own write (one read each at the server, as a chatty client's). */
async function sendOneByOne(ws: WebSocket, count: number, client: number): Promise<Buffer[]> {
  const sent: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const message = randomFillSync(Buffer.allocUnsafe(1 + ((i * 13 + client) % 120)))
    sent.push(message)
    await new Promise<void>((resolve) => ws.send(message, () => setTimeout(resolve, 1)))
  }
  return sent
}

describe('bulk reads through the shared buffer (tcp.ts Rule 6)', () => {
  it('port mode: three clients sending large and then small messages at once; every kept message is intact', async () => {
    const { wss, url } = await tetherServer({ perMessageDeflate: false, maxPayload: 16 * MiB })
    const kept: Buffer[][] = []
    keepAll(wss, kept)
    try {
      assertIntact(await sendAll(url, 3, kept), kept)
    } finally {
      await stopWss(wss)
    }
  })

  it('port mode, sockets paused now and then: what waits in a paused parser is intact too', async () => {
    const { wss, url } = await tetherServer({ perMessageDeflate: false, maxPayload: 16 * MiB })
    const kept: Buffer[][] = []
    keepAll(wss, kept, 500)
    try {
      assertIntact(await sendAll(url, 2, kept), kept)
    } finally {
      await stopWss(wss)
    }
  })

  it('small messages, one read each: a busy connection moves to the shared buffer, a quiet one does not; all kept intact', async () => {
    const { wss, url } = await tetherServer({ perMessageDeflate: false })
    const kept: Buffer[][] = []
    keepAll(wss, kept)
    try {
      let sent: Buffer[][] = []
      const shared = await countSharedReads(async () => {
        const busy = await Promise.all([0, 1].map(() => opened(new WebSocket(url, { perMessageDeflate: false }))))
        sent = await Promise.all(busy.map((ws, client) => sendOneByOne(ws, 200, client)))
        await until(() => kept.length === 2 && kept.every((mine) => mine.length === 200), 20_000, 'the busy clients\' messages')
        // Closed before the quiet client is counted: their close frames come through the shared buffer too.
        await Promise.all(busy.map((ws) => { const done = closed(ws); ws.close(); return done }))
      })
      assertIntact(sent, kept)
      if (TCP_HANDLES) assert.ok(shared > 0, 'busy connections read through the shared buffer')
      // A quiet connection: three messages, far fewer reads than make a connection busy.
      const quietShared = await countSharedReads(async () => {
        const quiet = await opened(new WebSocket(url, { perMessageDeflate: false }))
        const messages = await sendOneByOne(quiet, 3, 9)
        await until(() => kept.length === 3 && kept[2]!.length === 3, 5_000, "the quiet client's messages")
        assertIntact([messages], [kept[2]!])
        quiet.close()
      })
      assert.equal(quietShared, 0, 'a quiet connection stays on Node reads')
    } finally {
      await stopWss(wss)
    }
  })

  it('large messages in fragments of every size, text and binary, passed on as views of the shared buffer where the connection copies them: every kept message is intact', async () => {
    // Rule 6's exception: the rest of a large message's frame reaches the connection as a view of the shared
    // buffer. Fragments from 1 byte to 700 KiB put frame and message ends anywhere in a read; text with
    // 3- and 4-byte characters is validated piece by piece; text messages arrive as the Buffers of their bytes.
    const { wss, url } = await tetherServer({ perMessageDeflate: false, maxPayload: 16 * MiB })
    const kept: Buffer[][] = []
    keepAll(wss, kept, 3)
    const text = (size: number, seed: number): Buffer => {
      const unit = Buffer.from(`€${seed}𝄞a`)
      return Buffer.concat(Array.from({ length: Math.ceil(size / unit.length) }, () => unit))
    }
    const fragmentSizes = [1, 700 * KiB, 3, 64 * KiB + 1, 300 * KiB, 2, 1 * MiB]
    try {
      const clients = await Promise.all([0, 1, 2].map(() => opened(new WebSocket(url, { perMessageDeflate: false }))))
      const sent = clients.map((ws, client) => {
        const messages = [randomFillSync(Buffer.allocUnsafe(2 * MiB + client)), text(3 * MiB, client), randomFillSync(Buffer.allocUnsafe(1 * MiB + 5)), text(1 * MiB, client + 7)]
        messages.forEach((message, m) => {
          const binary = m % 2 === 0
          // Fragment boundaries fall anywhere, inside a character too: ws sends each fragment as its own frame.
          let offset = 0
          for (let f = client + m; offset < message.length; f++) {
            const size = Math.min(fragmentSizes[f % fragmentSizes.length]!, message.length - offset)
            const fin = offset + size === message.length
            ws.send(message.subarray(offset, offset + size), { binary, fin })
            offset += size
          }
        })
        return messages
      })
      await until(() => kept.length === 3 && kept.every((mine) => mine.length === 4), 60_000, 'every fragmented message kept')
      // Small messages afterwards, many reads through the shared buffer after the large ones were kept.
      const after = await Promise.all(clients.map((ws, client) => sendOneByOne(ws, 50, client)))
      await until(() => kept.every((mine) => mine.length === 54), 20_000, 'the small messages after them')
      for (const ws of clients) ws.close()
      assertIntact(sent.map((messages, client) => [...messages, ...after[client]!]), kept)
    } finally {
      await stopWss(wss)
    }
  })

  it('a frame whose header ends one read and whose payload is the whole next read: the message is not a view of the shared buffer', async () => {
    // The one case where a message's first bytes would arrive as a read of their own in the payload state:
    // the connection delivers such a message as the view it arrived in, so it must not come as a view of
    // the shared buffer (bytesCopiedOnReceipt is 0 for a message with no bytes yet).
    const { wss, port } = await tetherServer({ perMessageDeflate: false })
    const kept: Buffer[][] = []
    keepAll(wss, kept)
    const peer = await rawWebSocket(port)
    try {
      const bulk = (fill: number) => maskedFrame(2, Buffer.alloc(65_000, fill))
      const shared = await countSharedReads(async () => {
        // Reads that fill 64 KiB make the connection busy: it moves to the shared buffer.
        for (let i = 0; i < 8; i++) peer.write(bulk(i))
        await until(() => kept[0]?.length === 8, 10_000, 'the bulk messages')
        const payload = randomFillSync(Buffer.allocUnsafe(100))
        const frame = maskedFrame(2, payload)
        peer.write(frame.subarray(0, 6))
        await delay(50)
        peer.write(frame.subarray(6))
        await until(() => kept[0]!.length === 9, 10_000, 'the split message')
        // More reads through the shared buffer, over what the split message arrived in.
        peer.write(bulk(9))
        await until(() => kept[0]!.length === 10, 10_000, 'the bulk message after it')
        assert.ok(kept[0]![8]!.equals(payload), 'the split message changed after it was delivered')
      })
      if (TCP_HANDLES) assert.ok(shared > 0, 'the connection read through the shared buffer')
    } finally {
      peer.destroy()
      await stopWss(wss)
    }
  })

  it('noServer, connections taken over from Node: the same', async () => {
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * MiB })
    const server = http.createServer()
    server.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)))
    const port = await listen(server)
    const kept: Buffer[][] = []
    keepAll(wss, kept)
    try {
      assertIntact(await sendAll(`ws://${HOST}:${port}`, 3, kept), kept)
    } finally {
      await stopWss(wss)
      await closeServer(server)
    }
  })
})
