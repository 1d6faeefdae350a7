/**
 * The send-side options of permessage-deflate, checked on the wire: the
 * per-send `compress` option, `threshold`, and fragmented compressed
 * messages (RSV1 on the first frame only, RFC 7692 §6), for servers (raw
 * client peer) and clients (raw server peer, frames masked), and through a
 * tapping proxy between tether and a real ws peer.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket } from '../../src/index.js'
import {
  compressibleBytes,
  compressibleText,
  extensionParams,
  extensionsOf,
  inflateStream,
  KiB,
  parseFrames,
  rawDeflateClient,
  rawDeflateServer,
  shutdown,
  tapProxy,
} from '../helpers/deflate.js'
import { Inbox, opened, type RawFrame, type RawPeer, readFrame, sha256, tetherServer, waitFor, wsServer } from '../helpers/net.js'
import type { PerMessageDeflateOptions } from '../../src/node/deflate.js'

/** Either end of tether facing a raw peer that negotiated permessage-deflate (with context takeover). */
const ends = {
  async server(options: PerMessageDeflateOptions) {
    const { wss, port } = await tetherServer({ perMessageDeflate: options })
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const { peer, head } = await rawDeflateClient(port)
      const [ws] = await connection
      assert.equal(extensionParams(extensionsOf(head)).get(''), 'permessage-deflate')
      return { ws, peer, masked: false, stop: () => shutdown(wss) }
    } catch (error) {
      await shutdown(wss)
      throw error
    }
  },
  async client(options: PerMessageDeflateOptions) {
    // The answer a server gives to what this client offers (a 'shared' client insists on no takeover).
    const answer = options.mode === 'shared' ? 'permessage-deflate; server_no_context_takeover; client_no_context_takeover' : 'permessage-deflate'
    const server = await rawDeflateServer(answer)
    const ws = new WebSocket(server.url, { perMessageDeflate: options })
    const stop = async (): Promise<void> => {
      await shutdown(undefined, ws)
      await server.stop()
    }
    try {
      await opened(ws)
      assert.equal(ws.extensions, 'permessage-deflate')
      return { ws, peer: await server.next(), masked: true, stop }
    } catch (error) {
      await stop()
      throw error
    }
  },
}

async function frames(peer: RawPeer, count: number): Promise<RawFrame[]> {
  const out: RawFrame[] = []
  for (let i = 0; i < count; i++) out.push(await readFrame(peer))
  return out
}

for (const [side, open] of Object.entries(ends)) {
  describe(`tether ${side}: send options on the wire`, () => {
    it('compress: false sends an uncompressed frame although deflate was negotiated; compressed messages around it stay readable', async () => {
      const { ws, peer, masked, stop } = await open({ threshold: 0 })
      try {
        const text = randomBytes(3000).toString('base64')
        ws.send(text)
        ws.send(text, { compress: false })
        ws.send(compressibleBytes(4 * KiB), { compress: false, binary: true })
        ws.send(text)
        const [a, b, c, d] = await frames(peer, 4)
        for (const received of [a, b, c, d]) assert.equal(received!.masked, masked)
        assert.deepEqual([a, b, c, d].map((received) => received!.rsv), [4, 0, 0, 4])
        assert.equal(b!.payload.toString(), text)
        assert.ok(c!.payload.equals(compressibleBytes(4 * KiB)))
        // With context takeover the compressed messages form one stream; the plain ones are not part of it.
        assert.equal(inflateStream([a!.payload, d!.payload]).toString(), text + text)
        assert.ok(d!.payload.length < a!.payload.length / 4, 'the repeat referred back to the first copy')
      } finally {
        peer.destroy()
        await stop()
      }
    })

    it('threshold: messages below it go out uncompressed, from it on compressed (default 1024, and custom)', async () => {
      for (const [threshold, options] of [[1024, {}], [100, { threshold: 100 }], [0, { threshold: 0 }]] as const) {
        const { ws, peer, stop } = await open(options)
        try {
          const sizes = threshold === 0 ? [0, 1, 50] : [threshold - 1, threshold, threshold + 500]
          for (const size of sizes) ws.send(compressibleText(size))
          const received = await frames(peer, sizes.length)
          assert.deepEqual(
            received.map((frame) => frame.rsv),
            sizes.map((size) => (size >= threshold ? 4 : 0)),
            `threshold ${threshold}, sizes ${sizes}`,
          )
          const compressed = received.filter((frame) => frame.rsv === 4).map((frame) => frame.payload)
          const expected = sizes.filter((size) => size >= threshold).map((size) => compressibleText(size)).join('')
          assert.equal(inflateStream(compressed).toString(), expected)
        } finally {
          peer.destroy()
          await stop()
        }
      }
    })

    for (const mode of ['default', 'shared'] as const) {
      it(`fragmented compressed send (fin: false x3, then fin: true), ${mode} mode: RSV1 on the first frame only, one valid stream`, async () => {
        const { ws, peer, stop } = await open({ threshold: 0, mode })
        try {
          const parts = [compressibleBytes(10 * KiB), randomBytes(3000), Buffer.alloc(0), compressibleBytes(20 * KiB)]
          parts.forEach((part, i) => ws.send(part, { binary: true, compress: true, fin: i === parts.length - 1 }))
          ws.send('after', { compress: false })
          const received = await frames(peer, parts.length + 1)
          assert.deepEqual(received.map((frame) => frame.opcode), [0x2, 0x0, 0x0, 0x0, 0x1])
          assert.deepEqual(received.map((frame) => frame.fin), [false, false, false, true, true])
          assert.deepEqual(received.map((frame) => frame.rsv), [4, 0, 0, 0, 0])
          const whole = Buffer.concat(parts)
          assert.ok(inflateStream([Buffer.concat(received.slice(0, 4).map((frame) => frame.payload))]).equals(whole))
          assert.equal(received[4]!.payload.toString(), 'after')
        } finally {
          peer.destroy()
          await stop()
        }
      })
    }
  })
}

describe('fragmented compressed sends reach a real ws peer intact (frames read through a tapping proxy)', () => {
  for (const tetherSends of ['client', 'server'] as const) {
    for (const noTakeover of [false, true]) {
      it(`tether ${tetherSends} -> ws ${tetherSends === 'client' ? 'server' : 'client'}, ${noTakeover ? 'no ' : ''}context takeover`, async () => {
        const options = { threshold: 0, serverNoContextTakeover: noTakeover, clientNoContextTakeover: noTakeover }
        const server = tetherSends === 'client'
          ? await wsServer({ perMessageDeflate: options })
          : await tetherServer({ perMessageDeflate: options })
        const proxy = await tapProxy(server.port)
        const connection = waitFor<[WebSocket | WsClient]>(server.wss, 'connection')
        const client = tetherSends === 'client'
          ? new WebSocket(proxy.url, { perMessageDeflate: options })
          : new WsClient(proxy.url, { perMessageDeflate: options })
        try {
          await opened(client)
          const [serverSide] = await connection
          const [sender, receiver] = (tetherSends === 'client' ? [client, serverSide] : [serverSide, client]) as [WebSocket, WsClient]
          const inbox = new Inbox(receiver)
          const text = compressibleText(30 * KiB)
          const pieces = [text.slice(0, 10_000), text.slice(10_000, 10_001), text.slice(10_001, 20_000), text.slice(20_000)]
          // Twice: the second message may refer back to the first one (context takeover).
          for (let round = 0; round < 2; round++) {
            pieces.forEach((piece, i) => sender.send(piece, { compress: true, fin: i === pieces.length - 1 }))
          }
          const got = await inbox.next(2)
          assert.deepEqual(got.map((message) => [message.isBinary, message.data.toString() === text]), [[false, true], [false, true]])
          const stream = tetherSends === 'client' ? proxy.toServer() : proxy.toClient()
          const data = parseFrames(stream).filter((frame) => frame.opcode < 0x8)
          assert.deepEqual(data.map((frame) => frame.rsv), [4, 0, 0, 0, 4, 0, 0, 0])
          assert.deepEqual(data.map((frame) => frame.fin), [false, false, false, true, false, false, false, true])
          assert.deepEqual(data.map((frame) => frame.masked), Array(8).fill(tetherSends === 'client'))
          const total = data.reduce((sum, frame) => sum + frame.payload.length, 0)
          assert.ok(total < text.length / 4, `compressed on the wire (${total} B for ${2 * text.length} B)`)
          assert.equal(sha256(got[0]!.data), sha256(text))
        } finally {
          await shutdown(server.wss as never, client as never)
          await proxy.stop()
        }
      })
    }
  }
})
