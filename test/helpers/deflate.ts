/**
 * Helpers for permessage-deflate tests (RFC 7692): frames of any length with
 * RSV1, raw DEFLATE the way a peer puts it on the wire, raw peers that
 * negotiate the extension, a decompression bomb built without allocating
 * what it expands to, a tapping proxy, and a memory sampler.
 */
import { randomBytes } from 'node:crypto'
import net, { type Socket } from 'node:net'
import zlib from 'node:zlib'
import { configureDeflateMemory } from '../../src/node/zlib-codec.js'
import { acceptHead, closeServer, HOST, listen, type RawFrame, RawPeer, readFrame, upgradeRequest, until, TIMEOUT, withTimeout } from './net.js'

export const KiB = 1024
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
/** RFC 7692 §7.2.1: the octets a sync flush ends with, removed on the wire. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])
const { Z_SYNC_FLUSH } = zlib.constants

/** The process-wide defaults documented in zlib-codec.ts; tests that change them restore these. */
export function restoreDeflateDefaults(): void {
  configureDeflateMemory({ budget: 64 * MiB, idleMs: 30_000 })
}

/** A whole frame, any length; masked with a random key when `mask` (as a client sends). */
export function frame(opcode: number, payload: Uint8Array, options: { fin?: boolean; rsv1?: boolean; mask?: boolean } = {}): Buffer {
  const data = Buffer.from(payload)
  const { fin = true, rsv1 = false, mask = false } = options
  const head: number[] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
  const maskBit = mask ? 0x80 : 0
  let extended = Buffer.alloc(0)
  if (data.length < 126) head.push(maskBit | data.length)
  else if (data.length < 65536) {
    head.push(maskBit | 126)
    extended = Buffer.alloc(2)
    extended.writeUInt16BE(data.length)
  } else {
    head.push(maskBit | 127)
    extended = Buffer.alloc(8)
    extended.writeBigUInt64BE(BigInt(data.length))
  }
  if (!mask) return Buffer.concat([Buffer.from(head), extended, data])
  const key = randomBytes(4)
  for (let i = 0; i < data.length; i++) data[i]! ^= key[i & 3]!
  return Buffer.concat([Buffer.from(head), extended, key, data])
}

/** A message compressed as a peer without context takeover sends it: sync flush, tail removed. */
export function deflateMessage(data: Uint8Array, windowBits = 15): Buffer {
  const out = zlib.deflateRawSync(data, { windowBits, finishFlush: Z_SYNC_FLUSH })
  assertTail(out)
  return out.subarray(0, out.length - 4)
}

/**
 * Inflates the compressed payloads of one direction of a connection, in
 * order, as a receiver with context takeover would: once each tail is
 * restored they form one DEFLATE stream. Returns everything they expand to.
 */
export function inflateStream(payloads: Uint8Array[], windowBits = 15): Buffer {
  const parts: Uint8Array[] = []
  for (const payload of payloads) parts.push(payload, TAIL)
  return zlib.inflateRawSync(Buffer.concat(parts), { windowBits, finishFlush: Z_SYNC_FLUSH })
}

function assertTail(out: Buffer): void {
  if (out.length < 4 || !out.subarray(out.length - 4).equals(TAIL)) throw new Error('sync flush tail missing')
}

/** Reads one frame, or undefined if none arrives within `ms`. */
export async function maybeFrame(peer: RawPeer, ms: number): Promise<RawFrame | undefined> {
  try {
    await until(() => peer.buffer.length >= 2, ms, 'a frame')
  } catch {
    return undefined
  }
  return readFrame(peer)
}

/** Reads frames until a close frame (returned last) or the peer closes. */
export async function readUntilClose(peer: RawPeer, ms = TIMEOUT): Promise<RawFrame[]> {
  const frames: RawFrame[] = []
  const deadline = Date.now() + ms
  for (;;) {
    const next = await readFrame(peer, Math.max(1, deadline - Date.now()))
    frames.push(next)
    if (next.opcode === 0x8) return frames
  }
}

/** The close code of a close frame's payload. */
export function closeCodeOf(frame: RawFrame): number {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
}

/** The parameters of a Sec-WebSocket-Extensions value with one extension: name -> value (true if none). */
export function extensionParams(value: string | undefined): Map<string, string | true> {
  const params = new Map<string, string | true>()
  if (value === undefined) return params
  const [name, ...rest] = value.split(';').map((part) => part.trim())
  params.set('', name!)
  for (const part of rest) {
    const eq = part.indexOf('=')
    if (eq === -1) params.set(part, true)
    else params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim().replace(/^"|"$/g, ''))
  }
  return params
}

/** The Sec-WebSocket-Extensions value of an HTTP head, if any. */
export function extensionsOf(head: string): string | undefined {
  return /^sec-websocket-extensions:\s*(.*?)\s*$/im.exec(head)?.[1]
}

/** A raw client that completes a real handshake offering `extensions`; returns it and the 101 head. */
export async function rawDeflateClient(
  port: number,
  extensions = 'permessage-deflate; client_max_window_bits',
): Promise<{ peer: RawPeer; head: string }> {
  const peer = await RawPeer.connect(port)
  peer.write(upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': extensions } }))
  const head = await peer.readHead()
  if (!head.startsWith('HTTP/1.1 101')) {
    peer.destroy()
    throw new Error(`handshake refused: ${head}`)
  }
  return { peer, head }
}

/**
 * A DEFLATE stream of `expandedMiB` MiB of zeros, without allocating them:
 * zlib compresses 1 MiB of zeros (sync flush), then another MiB whose blocks
 * only refer back to zeros; every further MiB is that second piece again,
 * which is valid because the window then holds zeros only. About 1 KiB per
 * MiB: a 1 GiB bomb is ~1 MiB. The tail is removed, as on the wire.
 */
export async function decompressionBomb(expandedMiB: number): Promise<Buffer> {
  const deflater = zlib.createDeflateRaw({ level: 9 })
  const chunks: Buffer[] = []
  let length = 0
  deflater.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    length += chunk.length
  })
  const marks: number[] = []
  const zeros = Buffer.alloc(MiB)
  for (let i = 0; i < 2; i++) {
    deflater.write(zeros)
    await new Promise<void>((resolve) => deflater.flush(Z_SYNC_FLUSH, () => resolve()))
    marks.push(length)
  }
  deflater.close()
  const all = Buffer.concat(chunks)
  const first = all.subarray(0, marks[0])
  const repeat = all.subarray(marks[0], marks[1])
  assertTail(first)
  assertTail(repeat)
  const parts = [first]
  for (let i = 1; i < expandedMiB; i++) parts.push(repeat)
  const bomb = Buffer.concat(parts)
  return bomb.subarray(0, bomb.length - 4)
}

/** Streams `payload` (tail restored) through a real inflater with a large output buffer; returns the byte count. */
export function countInflated(payload: Uint8Array): Promise<{ length: number; nonZero: boolean }> {
  return new Promise((resolve, reject) => {
    const inflater = zlib.createInflateRaw({ chunkSize: MiB })
    let length = 0
    let nonZero = false
    inflater.on('data', (chunk: Buffer) => {
      length += chunk.length
      if (chunk[0] !== 0 || chunk[chunk.length - 1] !== 0 || chunk[chunk.length >> 1] !== 0) nonZero = true
    })
    inflater.on('error', reject)
    inflater.write(payload)
    inflater.write(TAIL)
    inflater.flush(Z_SYNC_FLUSH, () => {
      inflater.close()
      resolve({ length, nonZero })
    })
  })
}

/** Samples this process's memory every few ms; `growth()` is the largest increase of rss and of arrayBuffers. */
export function memorySampler(): { sample(): void; stop(): { rss: number; arrayBuffers: number } } {
  const start = process.memoryUsage()
  let rss = 0
  let arrayBuffers = 0
  const sample = (): void => {
    const now = process.memoryUsage()
    rss = Math.max(rss, now.rss - start.rss)
    arrayBuffers = Math.max(arrayBuffers, now.arrayBuffers - start.arrayBuffers)
  }
  const timer = setInterval(sample, 2)
  return {
    sample,
    stop() {
      clearInterval(timer)
      sample()
      return { rss, arrayBuffers }
    },
  }
}

/**
 * A transparent TCP proxy in front of `targetPort` that records the bytes
 * each way, so the frames two real implementations exchange can be read.
 */
export async function tapProxy(targetPort: number): Promise<{
  port: number
  url: string
  toServer(): Buffer
  toClient(): Buffer
  stop(): Promise<void>
}> {
  const up: Buffer[] = []
  const down: Buffer[] = []
  const sockets = new Set<Socket>()
  const server = net.createServer((client) => {
    const target = net.connect(targetPort, HOST)
    for (const socket of [client, target]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {})
    }
    client.on('data', (chunk: Buffer) => {
      up.push(chunk)
      target.write(chunk)
    })
    target.on('data', (chunk: Buffer) => {
      down.push(chunk)
      client.write(chunk)
    })
    client.on('end', () => target.end())
    target.on('end', () => client.end())
    client.on('close', () => target.destroy())
    target.on('close', () => client.destroy())
  })
  const port = await listen(server)
  return {
    port,
    url: `ws://${HOST}:${port}`,
    toServer: () => Buffer.concat(up),
    toClient: () => Buffer.concat(down),
    async stop() {
      for (const socket of sockets) socket.destroy()
      await closeServer(server)
    },
  }
}

/** Parses the frames in a recorded byte stream, skipping the HTTP head; incomplete trailing bytes are ignored. */
export function parseFrames(bytes: Buffer): RawFrame[] {
  let offset = bytes.indexOf('\r\n\r\n') + 4
  const frames: RawFrame[] = []
  for (;;) {
    if (bytes.length - offset < 2) return frames
    const b0 = bytes[offset]!
    const b1 = bytes[offset + 1]!
    let length = b1 & 0x7f
    let at = offset + 2
    if (length === 126) {
      if (bytes.length < at + 2) return frames
      length = bytes.readUInt16BE(at)
      at += 2
    } else if (length === 127) {
      if (bytes.length < at + 8) return frames
      length = Number(bytes.readBigUInt64BE(at))
      at += 8
    }
    const masked = (b1 & 0x80) !== 0
    const key = masked ? bytes.subarray(at, at + 4) : undefined
    if (masked) at += 4
    if (bytes.length < at + length) return frames
    const payload = Buffer.from(bytes.subarray(at, at + length))
    if (key) for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!
    frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload })
    offset = at + length
  }
}

/** Random printable ASCII of exactly `n` bytes (valid UTF-8 that compresses poorly). */
export function randomText(n: number): string {
  const bytes = randomBytes(n)
  for (let i = 0; i < n; i++) bytes[i] = 0x20 + (bytes[i]! % 95)
  return bytes.toString('latin1')
}

/** Compressible UTF-8 text of exactly `n` bytes (multi-byte characters included, ASCII padding). */
export function compressibleText(n: number): string {
  const unit = 'permessage-deflate — héllo wörld 日本語 𝄞 ✓ '
  const unitBytes = Buffer.byteLength(unit)
  const whole = unit.repeat(Math.floor(n / unitBytes))
  return whole + 'x'.repeat(n - Buffer.byteLength(whole))
}

/** Compressible bytes of exactly `n` bytes (a repeated pattern with some variation). */
export function compressibleBytes(n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = (i % 251) ^ ((i >> 12) & 0x0f)
  return out
}

interface Closable {
  readyState: number
  terminate(): void
  once(event: 'close', listener: () => void): unknown
}

/**
 * Terminates `sockets` and every client of `wss`, waits until each reported
 * 'close' (so the zlib contexts they hold are released before the next test
 * reads the memory stats), then closes the server.
 */
export async function shutdown(wss: { clients: Set<unknown>; close(callback: () => void): void } | undefined, ...sockets: Array<Closable | undefined>): Promise<void> {
  const all = [...sockets, ...((wss?.clients ?? []) as Set<Closable>)].filter((socket): socket is Closable => socket !== undefined)
  await withTimeout(
    Promise.all(all.map((socket) => {
      if (socket.readyState === 3) return undefined
      const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      socket.terminate()
      return gone
    })),
    TIMEOUT,
    'sockets to close',
  )
  if (wss) await withTimeout(new Promise<void>((resolve) => wss.close(() => resolve())), TIMEOUT, 'server close')
}

/**
 * A hand-written server that accepts every upgrade with a correct 101
 * carrying `extensions` (e.g. 'permessage-deflate'), then does only what the
 * test tells the returned RawPeer to do. `offers` records each request's
 * Sec-WebSocket-Extensions.
 */
export async function rawDeflateServer(extensions = 'permessage-deflate'): Promise<{
  port: number
  url: string
  offers: Array<string | undefined>
  next(): Promise<RawPeer>
  stop(): Promise<void>
}> {
  const peers: RawPeer[] = []
  const offers: Array<string | undefined> = []
  const sockets = new Set<Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const peer = new RawPeer(socket)
    void peer.readHead().then(
      (head) => {
        const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? ''
        offers.push(extensionsOf(head))
        socket.write(acceptHead(key, [`Sec-WebSocket-Extensions: ${extensions}`]))
        peers.push(peer)
      },
      () => socket.destroy(),
    )
  })
  const port = await listen(server)
  let taken = 0
  return {
    port,
    url: `ws://${HOST}:${port}`,
    offers,
    async next() {
      await until(() => peers.length > taken, TIMEOUT, 'a raw connection')
      return peers[taken++]!
    },
    async stop() {
      for (const socket of sockets) socket.destroy()
      await closeServer(server)
    },
  }
}
