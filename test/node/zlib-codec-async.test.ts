/**
 * ZlibCodec on the asynchronous zlib path (AsyncZlib: Node versions without
 * the synchronous handle), forced with the `zlibTestHooks.forceAsync` test
 * hook: the codec alone, then whole connections against ws in both
 * orientations, where sends, Blobs, close() and received messages must keep
 * their order while compression and inflation answer later.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket } from '../../src/index.js'
import { ZlibCodec, zlibTestHooks } from '../../src/node/zlib-codec.js'
import { AsyncZlib } from '../../src/node/zlib-engine.js'
import { compressibleBytes, KiB, MiB, shutdown } from '../helpers/deflate.js'
import { closed, Inbox, opened, sha256, tetherServer, waitFor, withTimeout, wsServer } from '../helpers/net.js'

afterEach(() => {
  zlibTestHooks.forceAsync = false
})

describe('asynchronous zlib path', () => {
  it('ZlibCodec with forceAsync: messages and fragments deflate and inflate in order', async () => {
    const parameters = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
    const settings = { threshold: 0, level: undefined, memLevel: undefined, strategy: undefined, forceAsync: true }
    const sender = new ZlibCodec('server', parameters, settings, 0)
    const receiver = new ZlibCodec('client', parameters, settings, 0)
    const deflate = (data: Buffer, end: boolean) =>
      withTimeout(new Promise<Uint8Array | undefined>((resolve) => sender.deflate(data, end, resolve)), 5000, 'deflate')
    const inflate = (data: Uint8Array, end: boolean) =>
      withTimeout(new Promise<Buffer>((resolve, reject) =>
        receiver.inflate(data, end, 64 * MiB, (outcome) => (outcome.ok ? resolve(Buffer.concat(outcome.data)) : reject(new Error(outcome.message))))), 5000, 'inflate')
    let asyncCalls = 0
    const original = AsyncZlib.prototype.process
    AsyncZlib.prototype.process = function (this: AsyncZlib, ...args: Parameters<AsyncZlib['process']>) {
      asyncCalls++
      return original.apply(this, args)
    }
    try {
      const messages = [compressibleBytes(100 * KiB), Buffer.from('x'), randomBytes(5000), compressibleBytes(100 * KiB), Buffer.alloc(0)]
      for (const message of messages) {
        const compressed = await deflate(message, true)
        assert.ok(compressed !== undefined)
        assert.ok((await inflate(compressed, true)).equals(message))
      }
      // One message in three fragments, the last one empty.
      const whole = compressibleBytes(50 * KiB)
      const pieces = [whole.subarray(0, 20 * KiB), whole.subarray(20 * KiB), Buffer.alloc(0)]
      const out: Buffer[] = []
      for (let i = 0; i < pieces.length; i++) {
        const compressed = await deflate(pieces[i]!, i === pieces.length - 1)
        out.push(await inflate(compressed!, i === pieces.length - 1))
      }
      assert.ok(Buffer.concat(out).equals(whole))
      assert.ok(asyncCalls >= 2 * (messages.length + pieces.length), `AsyncZlib used (${asyncCalls} calls)`)
    } finally {
      AsyncZlib.prototype.process = original
      sender.close()
      receiver.close()
    }
  })

  for (const orientation of ['tether server <- ws client', 'ws server <- tether client'] as const) {
    it(`${orientation}, async zlib: a burst of mixed sends, a Blob and close() keep their order`, async () => {
      zlibTestHooks.forceAsync = true
      const kinds = new Set<string>()
      const original = AsyncZlib.prototype.process
      AsyncZlib.prototype.process = function (this: AsyncZlib, ...args: Parameters<AsyncZlib['process']>) {
        kinds.add(this.kind)
        return original.apply(this, args)
      }
      const tetherIsServer = orientation === 'tether server <- ws client'
      const server = tetherIsServer ? await tetherServer({ perMessageDeflate: { threshold: 0 } }) : await wsServer({ perMessageDeflate: { threshold: 0 } })
      const connection = waitFor<[{ send(data: unknown, options?: object): void; on: Function }]>(server.wss, 'connection')
      const client = tetherIsServer ? new WsClient(server.url, { perMessageDeflate: { threshold: 0 } }) : new WebSocket(server.url, { perMessageDeflate: { threshold: 0 } })
      try {
        await opened(client as WebSocket)
        const [peer] = await connection
        // The tether end sends; the other end echoes back what it got.
        const [sender, echoer] = (tetherIsServer ? [peer, client] : [client, peer]) as [WebSocket, WsClient]
        echoer.on('message', (data: Buffer, isBinary: boolean) => echoer.send(data, { binary: isBinary }))
        const inbox = new Inbox(sender)
        const messages: Buffer[] = []
        for (let i = 0; i < 120; i++) {
          const message = i % 10 === 0 ? compressibleBytes(200 * KiB + i) : i % 3 === 0 ? randomBytes(i * 50) : Buffer.from(`message ${i} `.repeat(i))
          messages.push(message)
          sender.send(message)
          if (i === 60) {
            const blob = compressibleBytes(5000)
            messages.push(blob)
            sender.send(new Blob([blob]))
          }
        }
        const got = await inbox.next(messages.length, 20_000)
        got.forEach((message, i) => assert.equal(sha256(message.data), sha256(messages[i]!), `message ${i}`))
        // Sends accepted before close() go first, though their compression is still pending.
        const closing = Promise.all([closed(echoer), closed(sender)])
        const last = compressibleBytes(300 * KiB)
        sender.send(last)
        sender.close(4001, 'done')
        assert.deepEqual(await closing, [[4001, 'done'], [4001, 'done']])
        assert.equal(inbox.messages.length, messages.length + 1)
        assert.equal(sha256(inbox.messages.at(-1)!.data), sha256(last))
        assert.deepEqual([...kinds].sort(), ['deflate', 'inflate'], 'both directions went through AsyncZlib')
      } finally {
        AsyncZlib.prototype.process = original
        await shutdown(server.wss, client as WebSocket)
      }
    })
  }
})
