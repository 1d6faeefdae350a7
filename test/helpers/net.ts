/**
 * Helpers for tests over real loopback sockets: servers on free ports,
 * bounded waits, message collectors, raw HTTP/WebSocket peers and a
 * throwaway self-signed certificate.
 *
 * Every wait here has a timeout, so a broken behaviour fails a test instead
 * of hanging it; callers close what they open in `finally` or `t.after`.
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { Server as HttpServer } from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after } from 'node:test'
import { fileURLToPath } from 'node:url'
import { WebSocket as WsClient, WebSocketServer as WsServer } from 'ws'
import { WebSocket, WebSocketServer, type ServerOptions } from '../../src/index.js'
import { tcpHandlesAvailable } from '../../src/node/tcp.js'

export const HOST = '127.0.0.1'
/**
 * Whether port-mode servers own their port through Node's TCP handles in this run; false with
 * TETHER_TCP_HANDLES=0 (CI's second pass), when they run on Node's http and net (src/node/tcp-bindings.ts).
 */
export const TCP_HANDLES = tcpHandlesAvailable()
/** Default bound for a single wait, in ms. */
export const TIMEOUT = 10_000

/** The repository root (tests run from build/test/..., fixtures live in test/). */
export const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('package.json not found')
    dir = up
  }
  return dir
})()

/** Rejects with a labelled error if `promise` does not settle within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms = TIMEOUT, label = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Resolves with the arguments of the next `event` (no special treatment of 'error'). */
export function waitFor<T extends any[] = any[]>(emitter: EventEmitter, event: string, ms = TIMEOUT): Promise<T> {
  let listener: ((...args: unknown[]) => void) | undefined
  const promise = new Promise<T>((resolve) => {
    listener = (...args: unknown[]) => resolve(args as T)
    emitter.once(event, listener)
  })
  return withTimeout(promise, ms, `'${event}'`).finally(() => emitter.removeListener(event, listener!))
}

/** Resolves once `predicate()` holds, polling every few ms. */
export async function until(predicate: () => boolean, ms = TIMEOUT, label = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${label}`)
    await delay(5)
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Whether `emitter` emits `event` within `ms` (for "nothing happens" assertions). */
export async function emitsWithin(emitter: EventEmitter, event: string, ms: number): Promise<boolean> {
  try {
    await waitFor(emitter, event, ms)
    return true
  } catch {
    return false
  }
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** A message as a listener received it. */
export interface Received {
  data: Buffer
  isBinary: boolean
}

/** Records every 'message' of a ws-API socket (tether or npm ws), as Buffers, in order. */
export class Inbox {
  readonly messages: Received[] = []
  private consumed = 0

  constructor(socket: EventEmitter) {
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)
      this.messages.push({ data: bytes, isBinary })
    })
  }

  /** The next `count` messages not yet taken, once they arrived. */
  async next(count = 1, ms = TIMEOUT): Promise<Received[]> {
    await until(() => this.messages.length >= this.consumed + count, ms, `${count} message(s)`)
    const out = this.messages.slice(this.consumed, this.consumed + count)
    this.consumed += count
    return out
  }

  async one(ms = TIMEOUT): Promise<Received> {
    return (await this.next(1, ms))[0]!
  }
}

/** The port a server listens on. */
export function portOf(server: { address(): AddressInfo | string | null }): number {
  return (server.address() as AddressInfo).port
}

/** Listens on 127.0.0.1, port 0; resolves with the port. */
export async function listen(server: net.Server | HttpServer): Promise<number> {
  server.listen(0, HOST)
  await waitFor(server, 'listening')
  return portOf(server)
}

/** Closes an http/net server, dropping its connections. */
export async function closeServer(server: net.Server | HttpServer): Promise<void> {
  const http = server as HttpServer
  if (typeof http.closeAllConnections === 'function') http.closeAllConnections()
  if (!server.listening) return
  await withTimeout(new Promise<void>((resolve) => server.close(() => resolve())), TIMEOUT, 'server close')
}

/** A standalone tether WebSocketServer on a free port. */
export async function tetherServer(options: Omit<ServerOptions, 'port'> = {}): Promise<{ wss: WebSocketServer; port: number; url: string }> {
  const wss = new WebSocketServer({ host: HOST, port: 0, ...options })
  await waitFor(wss, 'listening')
  const port = portOf(wss as never)
  return { wss, port, url: `ws://${HOST}:${port}` }
}

/**
 * For a test file: a function that starts tether servers on free ports, with
 * their sockets listed and silenced (no error listener needed in tests), and
 * stops them all after the file.
 */
export function serverPool(): (options?: Omit<ServerOptions, 'port'>) => Promise<{ wss: WebSocketServer; port: number; url: string; sockets: WebSocket[] }> {
  const servers: WebSocketServer[] = []
  after(async () => {
    for (const wss of servers) await stopWss(wss).catch(() => {})
  })
  return async (options = {}) => {
    const started = await tetherServer(options)
    servers.push(started.wss)
    const sockets: WebSocket[] = []
    started.wss.on('connection', (ws) => {
      sockets.push(ws)
      ws.on('error', () => {})
    })
    return { ...started, sockets }
  }
}

/** A standalone npm `ws` WebSocketServer on a free port. */
export async function wsServer(options: Omit<ConstructorParameters<typeof WsServer>[0] & object, 'port'> = {}): Promise<{ wss: WsServer; port: number; url: string }> {
  const wss = new WsServer({ host: HOST, port: 0, ...options })
  await waitFor(wss, 'listening')
  const port = portOf(wss as never)
  return { wss, port, url: `ws://${HOST}:${port}` }
}

/** Terminates every client of a (tether or ws) server and closes it. */
export async function stopWss(wss: WebSocketServer | WsServer): Promise<void> {
  for (const client of (wss.clients ?? []) as Set<{ terminate(): void }>) client.terminate()
  await withTimeout(new Promise<void>((resolve) => wss.close(() => resolve())), TIMEOUT, 'wss close')
}

/** Opens a client (tether or ws) and waits for 'open'; rejects on 'error' or timeout. */
export async function opened<T extends WebSocket | WsClient>(ws: T, ms = TIMEOUT): Promise<T> {
  let onOpen: (() => void) | undefined
  let onError: ((error: Error) => void) | undefined
  const outcome = new Promise<void>((resolve, reject) => {
    onOpen = resolve
    onError = reject
    // A union of two classes with overloaded `once` is not callable; both are EventEmitters.
    ;(ws as unknown as EventEmitter).once('open', onOpen)
    ;(ws as unknown as EventEmitter).once('error', onError)
  })
  try {
    await withTimeout(outcome, ms, "'open'")
  } finally {
    ws.removeListener('open', onOpen!)
    ws.removeListener('error', onError!)
  }
  return ws
}

/** Waits for a socket's 'close' and returns [code, reason as string]. */
export async function closed(ws: EventEmitter, ms = TIMEOUT): Promise<[number, string]> {
  const [code, reason] = await waitFor<[number, Buffer]>(ws, 'close', ms)
  return [code, String(reason)]
}

/** Closes a ws-API socket at once (safe in any state). */
export function kill(...sockets: Array<{ terminate(): void; readyState: number } | undefined>): void {
  for (const socket of sockets) if (socket && socket.readyState !== 3) socket.terminate()
}

// --------------------------------------------------------- raw sockets

/** A net socket with a byte buffer that can be awaited. */
export class RawPeer {
  readonly socket: Socket
  buffer = Buffer.alloc(0)
  ended = false
  closed = false

  constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk])
    })
    socket.on('end', () => {
      this.ended = true
    })
    socket.on('close', () => {
      this.closed = true
    })
    socket.on('error', () => {})
  }

  /** Connects to HOST; `localAddress` (another loopback address, 127.0.0.2 ...) makes it another client address. */
  static async connect(port: number, localAddress?: string): Promise<RawPeer> {
    const socket = net.connect({ port, host: HOST, localAddress })
    await waitFor(socket, 'connect')
    return new RawPeer(socket)
  }

  /** Takes exactly `n` bytes once they arrived. */
  async read(n: number, ms = TIMEOUT): Promise<Buffer> {
    await until(() => this.buffer.length >= n, ms, `${n} bytes`)
    const out = this.buffer.subarray(0, n)
    this.buffer = this.buffer.subarray(n)
    return out
  }

  /** Takes an HTTP head (up to and including the blank line). */
  async readHead(ms = TIMEOUT): Promise<string> {
    await until(() => this.buffer.includes('\r\n\r\n'), ms, 'an HTTP head')
    const end = this.buffer.indexOf('\r\n\r\n') + 4
    const head = this.buffer.subarray(0, end).toString('latin1')
    this.buffer = this.buffer.subarray(end)
    return head
  }

  /** Everything received until the peer closed the connection. */
  async readToEnd(ms = TIMEOUT): Promise<string> {
    await until(() => this.ended || this.closed, ms, 'the peer to close')
    return this.buffer.toString('latin1')
  }

  async waitEnded(ms = TIMEOUT): Promise<void> {
    await until(() => this.ended || this.closed, ms, 'end of stream')
  }

  write(data: string | Uint8Array): void {
    this.socket.write(data)
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** Writes raw `request` text to a server and returns all it answered until it closed. */
export async function rawExchange(port: number, request: string | Uint8Array, ms = TIMEOUT): Promise<string> {
  const peer = await RawPeer.connect(port)
  try {
    peer.write(request)
    return await peer.readToEnd(ms)
  } finally {
    peer.destroy()
  }
}

/** The sample key of RFC 6455 §1.3. */
export const CLIENT_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

/** A GET upgrade request head with overridable headers (null removes one). */
export function upgradeRequest(
  options: { method?: string; path?: string; headers?: Record<string, string | null> } = {},
): string {
  const headers: Record<string, string | null> = {
    Host: 'localhost',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': CLIENT_KEY,
    'Sec-WebSocket-Version': '13',
    ...options.headers,
  }
  const lines = [`${options.method ?? 'GET'} ${options.path ?? '/'} HTTP/1.1`]
  for (const [name, value] of Object.entries(headers)) if (value !== null) lines.push(`${name}: ${value}`)
  return lines.join('\r\n') + '\r\n\r\n'
}

/** Connects a raw socket and completes a real handshake; resolves after the 101 head was read. */
export async function rawWebSocket(port: number, path = '/'): Promise<RawPeer> {
  const peer = await RawPeer.connect(port)
  peer.write(upgradeRequest({ path }))
  const head = await peer.readHead()
  if (!head.startsWith('HTTP/1.1 101')) {
    peer.destroy()
    throw new Error(`handshake refused: ${head}`)
  }
  return peer
}

/** The 101 answer a raw server writes for `key`. */
export function acceptHead(key: string, extra: string[] = []): string {
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  return ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, ...extra]
    .join('\r\n') + '\r\n\r\n'
}

/** A masked frame as a client would send it. */
export function maskedFrame(opcode: number, payload: Uint8Array | string, fin = true): Buffer {
  const data = Buffer.from(payload)
  const mask = randomBytes(4)
  const header: number[] = [(fin ? 0x80 : 0) | opcode]
  if (data.length < 126) header.push(0x80 | data.length)
  else if (data.length < 65536) header.push(0x80 | 126, data.length >> 8, data.length & 0xff)
  else throw new Error('maskedFrame: payload too large for this helper')
  const masked = Buffer.from(data)
  for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i & 3]!
  return Buffer.concat([Buffer.from(header), mask, masked])
}

/** An unmasked frame as a server would send it (payload < 126 bytes). */
export function unmaskedFrame(opcode: number, payload: Uint8Array | string, fin = true): Buffer {
  const data = Buffer.from(payload)
  if (data.length >= 126) throw new Error('unmaskedFrame: payload too large for this helper')
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, data.length]), data])
}

/** A close payload: code (big-endian) and reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const out = Buffer.alloc(2 + Buffer.byteLength(reason))
  out.writeUInt16BE(code, 0)
  out.write(reason, 2)
  return out
}

// ---------------------------------------------------------------- TLS

let certificate: { key: string; cert: string } | undefined

/** A self-signed certificate for localhost and 127.0.0.1, made with openssl (cached per process). */
export function selfSignedCertificate(): { key: string; cert: string } {
  if (certificate) return certificate
  const dir = mkdtempSync(join(tmpdir(), 'tether-cert-'))
  try {
    const key = join(dir, 'key.pem')
    const cert = join(dir, 'cert.pem')
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '1',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      { stdio: 'ignore', timeout: 30_000 },
    )
    certificate = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') }
    return certificate
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ------------------------------------------------------- raw frames and servers

export interface RawFrame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  payload: Buffer
}

/** Reads one frame from a raw peer, unmasking it if needed. */
export async function readFrame(peer: RawPeer, ms = TIMEOUT): Promise<RawFrame> {
  const [b0, b1] = await peer.read(2, ms)
  let length = b1! & 0x7f
  if (length === 126) length = (await peer.read(2, ms)).readUInt16BE(0)
  else if (length === 127) length = Number((await peer.read(8, ms)).readBigUInt64BE(0))
  const masked = (b1! & 0x80) !== 0
  const mask = masked ? await peer.read(4, ms) : undefined
  const payload = Buffer.from(await peer.read(length, ms))
  if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!
  return { fin: (b0! & 0x80) !== 0, rsv: (b0! >> 4) & 7, opcode: b0! & 0x0f, masked, payload }
}

/**
 * A hand-written WebSocket server: it answers each upgrade with a correct
 * 101 and then does only what the test tells the returned RawPeer to do.
 */
export async function rawWsServer(): Promise<{ port: number; url: string; next(): Promise<RawPeer>; stop(): Promise<void> }> {
  const peers: RawPeer[] = []
  const sockets = new Set<Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const peer = new RawPeer(socket)
    void peer.readHead().then(
      (head) => {
        const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? ''
        socket.write(acceptHead(key))
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
