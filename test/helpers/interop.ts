/**
 * Interop suites run in both orientations (tether server + ws client, ws
 * server + tether client): the same assertions, only who plays which side
 * changes. `Peer` is the part of the ws API both implementations share.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { closed, Inbox, opened, sha256, waitFor } from './net.js'

export interface Peer extends EventEmitter {
  readonly readyState: number
  readonly _socket: Socket | null
  send(data: unknown, options?: { binary?: boolean; fin?: boolean }, callback?: (error?: Error | null) => void): void
  ping(data?: unknown): void
  pong(data?: unknown): void
  close(code?: number, reason?: string): void
  terminate(): void
}

/** Starts a server; `connect()` opens a client and returns both ends, open. */
export interface Side {
  start(): Promise<{ url: string; stop(): Promise<void>; connections: EventEmitter }>
  client(url: string): Peer
}

export interface Pair {
  client: Peer
  server: Peer
}

/** Makes pairs against one server started before the suite and stopped after it. */
export function pairs(side: Side): { connect(): Promise<Pair>; cleanup(): void } {
  let server: Awaited<ReturnType<Side['start']>> | undefined
  const open: Peer[] = []
  before(async () => {
    server = await side.start()
  })
  after(async () => {
    for (const peer of open) if (peer.readyState !== 3) peer.terminate()
    await server?.stop()
  })
  return {
    async connect() {
      const connection = waitFor<[Peer]>(server!.connections, 'connection')
      const client = side.client(server!.url)
      open.push(client)
      await opened(client as never)
      const [peer] = await connection
      open.push(peer)
      return { client, server: peer }
    },
    cleanup() {
      for (const peer of open.splice(0)) if (peer.readyState !== 3) peer.terminate()
    },
  }
}

const SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024]
const UNICODE = 'héllo wörld — ½ € 日本語 한국어 עברית 𝄞 🎉👩‍👩‍👧 \u0000 \uffff end'

/** Data messages of every length class, text and binary, plain and fragmented, both ways. */
export function dataSuite(title: string, side: Side): void {
  describe(title, () => {
    const { connect, cleanup } = pairs(side)

    for (const direction of ['client -> server', 'server -> client'] as const) {
      const ends = (pair: Pair) => (direction === 'client -> server' ? [pair.client, pair.server] : [pair.server, pair.client]) as [Peer, Peer]

      it(`${direction}: binary messages of 0 B to 16 MiB arrive byte-exact`, async () => {
        try {
          const [from, to] = ends(await connect())
          const inbox = new Inbox(to)
          for (const size of SIZES) {
            const payload = randomBytes(size)
            from.send(payload)
            const [message] = await inbox.next(1, 30_000)
            assert.equal(message!.isBinary, true, `size ${size}`)
            assert.equal(message!.data.length, size)
            assert.equal(sha256(message!.data), sha256(payload), `size ${size}`)
          }
        } finally {
          cleanup()
        }
      })

      it(`${direction}: text messages (ASCII of every length class, unicode) arrive intact`, async () => {
        try {
          const [from, to] = ends(await connect())
          const inbox = new Inbox(to)
          const texts = [...[0, 1, 125, 126, 65535, 65536].map((n) => 'x'.repeat(n)), UNICODE, UNICODE.repeat(5000)]
          for (const text of texts) from.send(text)
          const got = await inbox.next(texts.length)
          got.forEach((message, i) => {
            assert.equal(message.isBinary, false)
            assert.equal(message.data.toString('utf8'), texts[i])
          })
        } finally {
          cleanup()
        }
      })

      it(`${direction}: fragmented sends (fin: false ... fin: true) arrive as one message`, async () => {
        try {
          const [from, to] = ends(await connect())
          const inbox = new Inbox(to)
          const pings: string[] = []
          to.on('ping', (data: Buffer) => pings.push(String(data)))
          from.send('frag', { fin: false })
          from.ping('between fragments')
          from.send('', { fin: false })
          from.send('ment 𝄞', { fin: true })
          const part = randomBytes(70_000)
          from.send(part.subarray(0, 1), { binary: true, fin: false })
          from.send(part.subarray(1, 66_000), { binary: true, fin: false })
          from.send(part.subarray(66_000), { binary: true, fin: true })
          from.send('after')
          const [text, binary, last] = await inbox.next(3)
          assert.deepEqual([text!.isBinary, text!.data.toString()], [false, 'fragment 𝄞'])
          assert.equal(binary!.isBinary, true)
          assert.equal(sha256(binary!.data), sha256(part))
          assert.equal(String(last!.data), 'after')
          assert.deepEqual(pings, ['between fragments'])
          assert.equal(inbox.messages.length, 3)
        } finally {
          cleanup()
        }
      })

      it(`${direction}: ping and pong carry their payloads ('ping'/'pong' events)`, async () => {
        try {
          const [from, to] = ends(await connect())
          const ping = waitFor<[Buffer]>(to, 'ping')
          const pong = waitFor<[Buffer]>(from, 'pong')
          from.ping(Buffer.from('are you there?'))
          assert.equal(String((await ping)[0]), 'are you there?')
          assert.equal(String((await pong)[0]), 'are you there?')
          const unsolicited = waitFor<[Buffer]>(to, 'pong')
          from.pong('heartbeat')
          assert.equal(String((await unsolicited)[0]), 'heartbeat')
          const empty = waitFor<[Buffer]>(from, 'pong')
          from.ping()
          assert.equal((await empty)[0].length, 0)
        } finally {
          cleanup()
        }
      })

      it(`${direction}: a burst of 2000 small messages arrives complete and in order`, async () => {
        try {
          const [from, to] = ends(await connect())
          const inbox = new Inbox(to)
          for (let i = 0; i < 2000; i++) from.send(i % 2 === 0 ? `m${i}` : Buffer.from(`m${i}`))
          const got = await inbox.next(2000)
          got.forEach((message, i) => {
            assert.equal(message.data.toString(), `m${i}`)
            assert.equal(message.isBinary, i % 2 === 1)
          })
        } finally {
          cleanup()
        }
      })
    }
  })
}

/** The closing paths every implementation must agree on. */
export function closeSuite(title: string, side: Side): void {
  describe(title, () => {
    const { connect, cleanup } = pairs(side)

    for (const initiator of ['client', 'server'] as const) {
      const ends = (pair: Pair) => (initiator === 'client' ? [pair.client, pair.server] : [pair.server, pair.client]) as [Peer, Peer]

      it(`${initiator}-initiated close(code, reason): both sides see the code and reason`, async () => {
        try {
          const [from, to] = ends(await connect())
          const a = closed(from)
          const b = closed(to)
          from.close(4000, `bye from ${initiator} ✓`)
          assert.equal(from.readyState, 2)
          assert.deepEqual(await a, [4000, `bye from ${initiator} ✓`])
          assert.deepEqual(await b, [4000, `bye from ${initiator} ✓`])
          assert.equal(from.readyState, 3)
          assert.equal(to.readyState, 3)
        } finally {
          cleanup()
        }
      })

      it(`${initiator}-initiated close() without a code: both sides see 1005`, async () => {
        try {
          const [from, to] = ends(await connect())
          const a = closed(from)
          const b = closed(to)
          from.close()
          assert.deepEqual(await a, [1005, ''])
          assert.deepEqual(await b, [1005, ''])
        } finally {
          cleanup()
        }
      })

      it(`${initiator} terminate(): the other side sees 1006`, async () => {
        try {
          const [from, to] = ends(await connect())
          const a = closed(from)
          const b = closed(to)
          from.terminate()
          assert.deepEqual(await a, [1006, ''])
          assert.deepEqual(await b, [1006, ''])
        } finally {
          cleanup()
        }
      })

      it(`${initiator}'s socket destroyed: the other side sees 1006`, async () => {
        try {
          const [from, to] = ends(await connect())
          const a = closed(from)
          const b = closed(to)
          from._socket!.destroy()
          assert.deepEqual(await b, [1006, ''])
          assert.deepEqual(await a, [1006, ''])
        } finally {
          cleanup()
        }
      })

      it(`${initiator}: messages sent before close() arrive before the close`, async () => {
        try {
          const [from, to] = ends(await connect())
          const order: string[] = []
          to.on('message', (data: Buffer) => order.push(`message ${data}`))
          const b = closed(to).then((result) => order.push(`close ${result[0]}`))
          from.send('one')
          from.send(Buffer.from('two'))
          from.close(1000)
          await b
          assert.deepEqual(order, ['message one', 'message two', 'close 1000'])
        } finally {
          cleanup()
        }
      })
    }
  })
}
