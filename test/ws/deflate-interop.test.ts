/**
 * permessage-deflate against the npm `ws` package, both orientations (tether
 * server + ws client, ws server + tether client): every window size 8-15 on
 * each side, with and without context takeover, messages from 0 B to 16 MiB,
 * text and binary, compressible and random, echoed and compared byte for
 * byte. Then tether against itself in its memory modes.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket, type PerMessageDeflateOptions } from '../../src/index.js'
import { engineCost } from '../../src/node/zlib-engine.js'
import { deflateMemoryStats, inflaterCost } from '../../src/node/zlib-codec.js'
import { compressibleBytes, compressibleText, extensionParams, KiB, MiB, randomText, shutdown } from '../helpers/deflate.js'
import { Inbox, opened, sha256, tetherServer, waitFor, wsServer } from '../helpers/net.js'

type Options = PerMessageDeflateOptions
interface Socket extends EventEmitter {
  readonly extensions: string
  readonly readyState: number
  readonly _socket: { bytesWritten: number; bytesRead: number } | null
  send(data: unknown, options?: { binary?: boolean }): void
  terminate(): void
}
interface Server extends EventEmitter {
  clients: Set<unknown>
  close(callback: () => void): void
}

interface Orientation {
  title: string
  start(options: Options): Promise<{ wss: Server; url: string }>
  client(url: string, options: Options): Socket
}

const orientations: Orientation[] = [
  {
    title: 'tether server <- ws client',
    start: (options) => tetherServer({ perMessageDeflate: options }) as never,
    client: (url, options) => new WsClient(url, { perMessageDeflate: options as never }) as unknown as Socket,
  },
  {
    title: 'ws server <- tether client',
    start: (options) => wsServer({ perMessageDeflate: options as never }) as never,
    client: (url, options) => new WebSocket(url, { perMessageDeflate: options }) as unknown as Socket,
  },
]

interface Message {
  label: string
  data: Buffer | string
  binary: boolean
}

/** Every size class, text and binary, compressible and random. */
function messages(sizes: number[]): Message[] {
  const out: Message[] = []
  for (const size of sizes) {
    out.push({ label: `text ${size} compressible`, data: compressibleText(size), binary: false })
    out.push({ label: `text ${size} random`, data: randomText(size), binary: false })
    out.push({ label: `binary ${size} compressible`, data: compressibleBytes(size), binary: true })
    out.push({ label: `binary ${size} random`, data: randomBytes(size), binary: true })
  }
  // Repeats 3000 bytes back: compressed only where the window reaches that far, and an
  // inflater with a smaller window than the deflater used would fail on it.
  const block = randomBytes(3000)
  out.push({ label: 'binary repeats at distance 3000', data: Buffer.concat(Array.from({ length: 100 }, () => block)), binary: true })
  return out
}

const SIZES = [0, 1, 125, 64 * KiB, MiB]

/** Opens a client with `clientOptions` against a server with `serverOptions`; checks what was negotiated. */
async function negotiated(orientation: Orientation, serverOptions: Options, clientOptions: Options) {
  const { wss, url } = await orientation.start({ threshold: 0, ...serverOptions })
  wss.on('connection', (ws: Socket) => ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary })))
  const serverHeaders = waitFor<[string[]]>(wss, 'headers')
  const connection = waitFor<[Socket]>(wss, 'connection')
  const client = orientation.client(url, { threshold: 0, ...clientOptions })
  const upgrade = waitFor<[IncomingMessage]>(client, 'upgrade')
  try {
    await opened(client as never)
  } catch (error) {
    await shutdown(wss, client)
    throw error
  }
  const [peer] = await connection
  const answer = (await upgrade)[0].headers['sec-websocket-extensions'] as string | undefined
  const line = (await serverHeaders)[0].find((header) => /^sec-websocket-extensions:/i.test(header))
  assert.equal(line?.replace(/^sec-websocket-extensions:\s*/i, ''), answer, 'the client read what the server wrote')
  assert.equal(client.extensions, 'permessage-deflate')
  assert.equal(peer.extensions, 'permessage-deflate')
  return { wss, client, params: extensionParams(answer) }
}

/** Sends `list` from the client; the server echoes; every echo must match byte for byte. */
async function echoAll(client: Socket, list: Message[]): Promise<void> {
  const inbox = new Inbox(client)
  for (const message of list) client.send(message.data, { binary: message.binary })
  const got = await inbox.next(list.length, 60_000)
  got.forEach((received, i) => {
    const sent = list[i]!
    assert.equal(received.isBinary, sent.binary, sent.label)
    assert.equal(received.data.length, Buffer.byteLength(sent.data), sent.label)
    assert.equal(sha256(received.data), sha256(sent.data), sent.label)
  })
}

/** A compressible MiB each way costs little on the wire: both directions really compress. */
async function assertCompressedOnTheWire(client: Socket): Promise<void> {
  const socket = client._socket!
  const [written, read] = [socket.bytesWritten, socket.bytesRead]
  await echoAll(client, [{ label: 'wire check', data: compressibleText(MiB), binary: false }])
  assert.ok(socket.bytesWritten - written < 64 * KiB, `client wrote ${socket.bytesWritten - written} B for 1 MiB`)
  assert.ok(socket.bytesRead - read < 64 * KiB, `client read ${socket.bytesRead - read} B for 1 MiB`)
}

for (const orientation of orientations) {
  describe(`${orientation.title}: permessage-deflate`, () => {
    // Server window w with client window 23 - w: every value 8-15 on each side, each with
    // and without context takeover.
    for (let bits = 8; bits <= 15; bits++) {
      for (const noTakeover of [false, true]) {
        const serverMaxWindowBits = bits
        const clientMaxWindowBits = 23 - bits
        const title = `server_max_window_bits=${serverMaxWindowBits}, client_max_window_bits=${clientMaxWindowBits}, ${noTakeover ? 'no context takeover' : 'context takeover'}`
        it(title, async () => {
          const { wss, client, params } = await negotiated(
            orientation,
            { serverMaxWindowBits, clientMaxWindowBits, serverNoContextTakeover: noTakeover, clientNoContextTakeover: noTakeover },
            {},
          )
          try {
            assert.equal(params.get(''), 'permessage-deflate')
            assert.equal(params.get('server_max_window_bits') ?? '15', String(serverMaxWindowBits))
            assert.equal(params.get('client_max_window_bits'), String(clientMaxWindowBits))
            assert.equal(params.has('server_no_context_takeover'), noTakeover)
            assert.equal(params.has('client_no_context_takeover'), noTakeover)
            await assertCompressedOnTheWire(client)
            // Random MiBs are the slow part; half the configurations stop at 64 KiB for them.
            const list = messages(SIZES).filter((m) => !(m.label.endsWith(`${MiB} random`) && bits % 2 === 1))
            await echoAll(client, list)
          } finally {
            await shutdown(wss, client)
          }
        })
      }
    }

    it('defaults (15 bits, context takeover) with 16 MiB messages, text and binary, compressible and random', async () => {
      const { wss, client, params } = await negotiated(orientation, {}, {})
      try {
        assert.equal(params.has('server_no_context_takeover'), false)
        assert.equal(params.has('client_no_context_takeover'), false)
        const big = 16 * MiB
        await echoAll(client, [
          { label: 'text 16 MiB compressible', data: compressibleText(big), binary: false },
          { label: 'binary 16 MiB random', data: randomBytes(big), binary: true },
          { label: 'small after', data: 'small after', binary: false },
          { label: 'text 16 MiB random', data: randomText(big), binary: false },
          { label: 'binary 16 MiB compressible', data: compressibleBytes(big), binary: true },
        ])
      } finally {
        await shutdown(wss, client)
      }
    })

    for (const mode of ['shared', 'small'] as const) {
      it(`tether in mode '${mode}'`, async () => {
        const tetherOptions: Options = { mode }
        const tetherIsServer = orientation.title.startsWith('tether server')
        const { wss, client, params } = await negotiated(orientation, tetherIsServer ? tetherOptions : {}, tetherIsServer ? {} : tetherOptions)
        try {
          if (mode === 'shared') {
            assert.equal(params.has('server_no_context_takeover'), true)
            assert.equal(params.has('client_no_context_takeover'), true)
          } else {
            assert.equal(params.get('server_max_window_bits'), '9')
            assert.equal(params.get('client_max_window_bits'), '9')
          }
          await assertCompressedOnTheWire(client)
          await echoAll(client, messages([0, 1, 125, 64 * KiB]))
        } finally {
          await shutdown(wss, client)
        }
      })
    }

    it('the client asks: server_max_window_bits=10, client_max_window_bits=9, server_no_context_takeover', async () => {
      const { wss, client, params } = await negotiated(orientation, {}, { serverMaxWindowBits: 10, clientMaxWindowBits: 9, serverNoContextTakeover: true })
      try {
        assert.equal(params.get('server_max_window_bits'), '10')
        assert.equal(params.get('client_max_window_bits') ?? '9', '9')
        assert.equal(params.has('server_no_context_takeover'), true)
        await assertCompressedOnTheWire(client)
        await echoAll(client, messages([0, 1, 125, 64 * KiB]))
      } finally {
        await shutdown(wss, client)
      }
    })
  })
}

describe('tether <-> tether memory modes', () => {
  const cases: Array<{ server: Options; client: Options; expect: Record<string, string | true | undefined> }> = [
    { server: { mode: 'shared' }, client: { mode: 'shared' }, expect: { server_no_context_takeover: true, client_no_context_takeover: true } },
    { server: { mode: 'shared' }, client: {}, expect: { server_no_context_takeover: true, client_no_context_takeover: true } },
    { server: {}, client: { mode: 'shared' }, expect: { server_no_context_takeover: true, client_no_context_takeover: true } },
    { server: { mode: 'small' }, client: { mode: 'small' }, expect: { server_max_window_bits: '9', client_max_window_bits: '9' } },
    { server: { mode: 'small' }, client: {}, expect: { server_max_window_bits: '9', client_max_window_bits: '9' } },
    { server: {}, client: { mode: 'small' }, expect: { server_max_window_bits: '9', client_max_window_bits: '9' } },
  ]
  const tetherBoth: Orientation = {
    title: 'tether <-> tether',
    start: (options) => tetherServer({ perMessageDeflate: options }) as never,
    client: (url, options) => new WebSocket(url, { perMessageDeflate: options }) as unknown as Socket,
  }
  for (const { server, client: clientOptions, expect } of cases) {
    it(`server ${server.mode ?? 'default'}, client ${clientOptions.mode ?? 'default'}: ${JSON.stringify(expect)}`, async () => {
      const before = deflateMemoryStats()
      const { wss, client, params } = await negotiated(tetherBoth, server, clientOptions)
      try {
        for (const [name, value] of Object.entries(expect)) assert.equal(params.get(name), value, name)
        await assertCompressedOnTheWire(client)
        await echoAll(client, messages([0, 1, 125, 64 * KiB]))
        const stats = deflateMemoryStats()
        if (server.mode === 'shared' || clientOptions.mode === 'shared') {
          // No context takeover either way: neither end holds a zlib context or budget.
          assert.equal(stats.dedicatedDeflaters, before.dedicatedDeflaters)
          assert.equal(stats.dedicatedInflaters, before.dedicatedInflaters)
          assert.equal(stats.used, before.used)
        } else if (server.mode === 'small' && clientOptions.mode === 'small') {
          // Dedicated contexts with 9-bit windows and memLevel 1 at both ends. Budget held by live
          // connections (used minus the pool, which they may have drawn from): exactly the small
          // contexts, and both ends together hold less than one end in the default mode.
          assert.equal(stats.dedicatedDeflaters, before.dedicatedDeflaters + 2)
          assert.equal(stats.dedicatedInflaters, before.dedicatedInflaters + 2)
          const held = (s: typeof stats) => s.used - s.pooledBytes
          const small = engineCost('deflate', { windowBits: 9, memLevel: 1 }) + inflaterCost(9)
          assert.equal(held(stats) - held(before), 2 * small)
          assert.ok(2 * small < engineCost('deflate', { windowBits: 15 }) + inflaterCost(15))
        }
      } finally {
        await shutdown(wss, client)
      }
    })
  }
})
