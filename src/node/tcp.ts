/**
 * A transport over a bare TCP handle, and a listener that accepts them, for
 * servers that own their port.
 *
 * Theory of operation: `net.Socket` wraps a libuv TCP handle in a Duplex
 * stream: a Readable and a Writable state, their buffers and callbacks, and
 * Node's HTTP server adds a parser and request objects to every connection.
 * Measured here, an idle WebSocket connection costs 4.9 KiB of resident
 * memory for the bare socket alone, against 1.6 KiB for the handle. A
 * WebSocket needs none of the stream machinery: the handle delivers each read
 * as a Buffer, writes a batch of chunks with one writev, and reports when a
 * write completes. So where tether owns the listening socket, it takes the
 * handles directly (the bindings `net` itself is built on) and reads the
 * upgrade request itself (core/handshake/request-head.ts).
 *
 * Rule 1: the bindings are looked up once, by the first server that owns its
 * port (tcp-bindings.ts says when they are not asked for); where they are
 * missing (`tcpHandlesAvailable()` false) servers use Node's `http` and `net`.
 * Rule 2: a write that completes synchronously costs no callback from the
 * handle; one that completes later keeps its chunks referenced until then.
 * Rule 3: the handle is closed once: on destroy, on a read error, or when both
 * directions have ended (our FIN sent and the peer's received).
 * Rule 4: `socket`, the object the ws API exposes as `ws._socket` and
 * `request.socket`, is built on first use, so idle connections do not pay
 * for it.
 */
import { EventEmitter } from 'node:events'
import { lookup } from 'node:dns/promises'
import { isIPv6 } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { getSystemErrorMap } from 'node:util'
import { rejectResponse } from '../core/handshake/http1.js'
import { askBindings } from './tcp-bindings.js'
import { type RequestHead, type RequestHeadLimits, parseRequestHead } from '../core/handshake/request-head.js'
import type { UpgradeChannel } from './server.js'
import type { Transport, TransportSink, WriteCallback } from './transport.js'

// ------------------------------------------------------------ bindings

interface StreamHandle {
  owner?: TcpTransport
  onread: (this: StreamHandle, arrayBuffer: ArrayBuffer) => void
  readStart(): number
  readStop(): number
  writeBuffer(request: WriteRequest, data: Uint8Array): number
  writev(request: WriteRequest, chunks: Uint8Array[], allBuffers: boolean): number
  writeLatin1String(request: WriteRequest, data: string): number
  shutdown(request: ShutdownRequest): number
  close(callback?: () => void): void
  getpeername(out: Record<string, unknown>): number
  getsockname(out: Record<string, unknown>): number
  setNoDelay(enable: boolean): number
  setKeepAlive(enable: boolean, delay: number): number
  readonly writeQueueSize: number
}
interface ServerHandle {
  onconnection: ((status: number, handle?: StreamHandle) => void) | null
  bind(address: string, port: number): number
  bind6(address: string, port: number, flags: number): number
  listen(backlog: number): number
  getsockname(out: Record<string, unknown>): number
  close(callback?: () => void): void
}
interface WriteRequest {
  handle: StreamHandle
  oncomplete: (this: WriteRequest, status: number) => void
  async: boolean
  owner: TcpTransport
  callback: WriteCallback | undefined
  chunks: Uint8Array[] | undefined
}
interface ShutdownRequest {
  handle: StreamHandle
  oncomplete: (this: ShutdownRequest, status: number) => void
  owner: TcpTransport
}
interface Bindings {
  TCP: new (type: number) => StreamHandle & ServerHandle
  SOCKET: number
  SERVER: number
  WriteWrap: new () => WriteRequest
  ShutdownWrap: new () => ShutdownRequest
  state: Int32Array
  kReadBytesOrError: number
  kArrayBufferOffset: number
  kLastWriteWasAsync: number
  UV_EOF: number
}

function loadBindings(): Bindings | undefined {
  const found = askBindings(['tcp_wrap', 'stream_wrap', 'uv'])
  if (found === undefined) return undefined
  try {
    const tcp = found.tcp_wrap!
    const stream = found.stream_wrap!
    const constants = tcp.constants as Record<string, number>
    const loaded: Bindings = {
      TCP: tcp.TCP as Bindings['TCP'],
      SOCKET: constants.SOCKET!,
      SERVER: constants.SERVER!,
      WriteWrap: stream.WriteWrap as Bindings['WriteWrap'],
      ShutdownWrap: stream.ShutdownWrap as Bindings['ShutdownWrap'],
      state: stream.streamBaseState as Int32Array,
      kReadBytesOrError: stream.kReadBytesOrError as number,
      kArrayBufferOffset: stream.kArrayBufferOffset as number,
      kLastWriteWasAsync: stream.kLastWriteWasAsync as number,
      UV_EOF: (found.uv!.UV_EOF as number | undefined) ?? -4095,
    }
    const ok =
      typeof loaded.TCP === 'function' &&
      typeof loaded.WriteWrap === 'function' &&
      loaded.state instanceof Int32Array &&
      [loaded.SOCKET, loaded.SERVER, loaded.kReadBytesOrError, loaded.kArrayBufferOffset, loaded.kLastWriteWasAsync].every(
        (value) => typeof value === 'number',
      )
    return ok ? loaded : undefined
  } catch {
    return undefined
  }
}

/** The bindings, once looked up (tcp-bindings.ts Rule 1); TcpTransport and TcpListener exist only when they were found. */
let bindings: Bindings | undefined
let lookedUp = false

/** Whether servers may own their port through the TCP handles (Rule 1); false: they use Node's http and net. */
export function tcpHandlesAvailable(): boolean {
  if (!lookedUp) {
    lookedUp = true
    bindings = loadBindings()
  }
  return bindings !== undefined
}

/** An Error for a libuv error number, shaped as Node's own (code, errno, syscall). */
export function systemError(errno: number, syscall: string, detail = ''): NodeJS.ErrnoException {
  const [code, description] = getSystemErrorMap().get(errno) ?? [`E${-errno}`, 'unknown error']
  const error = new Error(`${syscall} ${code}: ${description}${detail ? ` ${detail}` : ''}`) as NodeJS.ErrnoException
  error.code = code
  error.errno = errno
  error.syscall = syscall
  return error
}

// ------------------------------------------------------------ transport

interface HeadReading {
  onHead: HeadHandler
  limits: RequestHeadLimits
}

type Phase = 'head' | 'waiting' | 'open' | 'closed'

/**
 * What the server does with a connection's request head: the head, or its
 * refusal (400, 431; 408 when the server gave up waiting, see
 * `abandonHead`), or `status: 0` when the client left before it was complete.
 */
export type HeadHandler = (transport: TcpTransport, result: { head: RequestHead } | { status: 0 | 400 | 408 | 431; message: string }) => void

export class TcpTransport implements Transport, UpgradeChannel {
  private readonly handle: StreamHandle
  private phase: Phase = 'head'
  sink: TransportSink | undefined
  /** Bytes received before the WebSocket took over: the request head, then what followed it. */
  private received: Buffer | undefined
  /** While the request head is read; dropped once it is (an upgraded connection does not carry it). */
  private headReading: HeadReading | undefined
  private pendingWrites = 0
  /** NEED_DRAIN | SHUTDOWN_SENT | SHUTDOWN_DONE | PEER_ENDED | READING: one field, not five. */
  private flags = 0
  private socketFacade: TcpSocket | undefined
  /** Set once the handle is closed or closing (Rule 3). */
  destroyed = false
  /** Counted as net.Socket counts them. */
  bytesRead = 0
  bytesWritten = 0

  constructor(handle: StreamHandle) {
    this.handle = handle
    handle.owner = this
    handle.onread = onHandleRead
  }

  /**
   * Reads the HTTP request head; `onHead` hears it once (or its refusal: 400,
   * 431, or 408 from `abandonHead`). The head timeout is the server's
   * (handshake-pool.ts keeps one timer for all connections).
   */
  readHead(limits: RequestHeadLimits, onHead: HeadHandler): void {
    this.headReading = { onHead, limits }
    this.handle.setNoDelay(true)
    this.startReading()
  }

  /** The server stops waiting for the request head (it timed out, or a newer connection displaced it): 408. */
  abandonHead(message: string): void {
    const reading = this.headReading
    if (reading === undefined || this.destroyed) return
    this.headReading = undefined
    this.phase = 'waiting'
    reading.onHead(this, { status: 408, message })
  }

  // ---------------------------------------------------------- Transport

  start(sink: TransportSink, head?: Uint8Array): void {
    this.sink = sink
    this.phase = 'open'
    const early = this.received
    this.received = undefined
    const data = head !== undefined && head.length > 0 ? (early ? Buffer.concat([head, early]) : Buffer.from(head)) : early
    // transport.ts Rule 1: what came with the handshake is delivered after start() returns.
    if (data !== undefined && data.length > 0) process.nextTick(deliverEarly, this, data)
    else this.startReading()
    if (this.destroyed) process.nextTick(deliverClosed, this)
  }

  write(chunks: Uint8Array[], callback?: WriteCallback): void {
    if (this.destroyed) {
      if (callback) process.nextTick(callback, systemError(-32, 'write'))
      return
    }
    const b = bindings!
    // A request whose write completed synchronously carries no native state: reuse it.
    const request = spareRequest ?? new b.WriteWrap()
    spareRequest = undefined
    request.handle = this.handle
    request.oncomplete = onWriteComplete
    request.async = false
    request.owner = this
    request.callback = callback
    request.chunks = undefined
    const status = chunks.length === 1 ? this.handle.writeBuffer(request, chunks[0]!) : this.handle.writev(request, chunks, true)
    for (let i = 0; i < chunks.length; i++) this.bytesWritten += chunks[i]!.length
    if (status !== 0) {
      if (callback) process.nextTick(callback, systemError(status, 'write'))
      this.destroy()
      return
    }
    if (b.state[b.kLastWriteWasAsync]) {
      // Rule 2: keep the chunks alive until the handle reports the write complete.
      request.async = true
      request.chunks = chunks
      this.pendingWrites++
      if (this.handle.writeQueueSize >= HIGH_WATER_MARK) this.flags |= NEED_DRAIN
    } else {
      request.callback = undefined
      spareRequest = request
      if (callback) process.nextTick(callback, null)
    }
  }

  /** Writes a string as Latin-1 (an HTTP head). */
  writeHead(text: string): void {
    this.write([Buffer.from(text, 'latin1')])
  }

  // ---------------------------------------------------------- UpgradeChannel

  get usable(): boolean {
    return !this.destroyed && (this.flags & SHUTDOWN_SENT) === 0
  }

  get upgraded(): boolean {
    return this.phase === 'open'
  }

  reject(status: number, message?: string, headers?: Readonly<Record<string, string | number>>): void {
    if (!this.usable) return
    // The answer is UTF-8 text; its Content-Length counts bytes (rejectResponse).
    this.write([Buffer.from(rejectResponse(status, message, headers))])
    this.end()
    // A client that never closes its side does not keep the handle.
    setTimeout(destroyTransport, REJECT_LINGER, this).unref()
  }

  accept(responseHead: string): Transport {
    this.writeHead(responseHead)
    return this
  }

  end(): void {
    if (this.destroyed || (this.flags & SHUTDOWN_SENT) !== 0) return
    this.flags |= SHUTDOWN_SENT
    const request = new bindings!.ShutdownWrap()
    request.handle = this.handle
    request.oncomplete = onShutdownComplete
    request.owner = this
    const status = this.handle.shutdown(request)
    if (status !== 0) this.destroy()
  }

  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    const reading = this.headReading
    this.headReading = undefined
    // Whoever waits for the head hears that it will not come (it counts pending handshakes).
    if (reading !== undefined) reading.onHead(this, { status: 0, message: 'The client left before its request was complete' })
    // The handle's onread must stay a function (Node asserts it); reads after close are ignored.
    this.handle.onread = ignoreRead
    this.handle.close(() => onHandleClosed(this))
  }

  pause(): void {
    if ((this.flags & READING) !== 0 && !this.destroyed) {
      this.flags &= ~READING
      this.handle.readStop()
    }
  }

  resume(): void {
    if (this.phase === 'open') this.startReading()
  }

  get writableLength(): number {
    return this.destroyed ? 0 : this.handle.writeQueueSize
  }

  get needsDrain(): boolean {
    return (this.flags & NEED_DRAIN) !== 0 && !this.destroyed
  }

  get writable(): boolean {
    return !this.destroyed && (this.flags & SHUTDOWN_SENT) === 0
  }

  get socket(): Socket {
    return (this.socketFacade ??= new TcpSocket(this)) as unknown as Socket
  }

  // ---------------------------------------------------------- handle events

  /** @internal */
  handleRead(nread: number, arrayBuffer: ArrayBuffer | undefined): void {
    if (nread === 0) return
    if (nread < 0) {
      if (nread === bindings!.UV_EOF) return this.handleEof()
      return this.destroy()
    }
    const data = Buffer.from(arrayBuffer!, bindings!.state[bindings!.kArrayBufferOffset]!, nread)
    this.bytesRead += nread
    if (this.phase === 'open') {
      this.sink!.transportData(data)
      return
    }
    // Before the WebSocket takes over: gather the request head, then hold what follows.
    this.received = this.received === undefined ? data : Buffer.concat([this.received, data])
    if (this.phase === 'waiting') {
      // The upgrade is being decided (verifyClient may be asynchronous). Reading on notices a
      // client that leaves meanwhile; a client has no reason to send much before the 101, so
      // past a cap the rest waits in the kernel.
      if (this.received.length > WAITING_CAP) this.pause()
      return
    }
    const reading = this.headReading!
    const result = parseRequestHead(this.received, reading.limits)
    if (result.state === 'incomplete') return
    this.headReading = undefined
    this.phase = 'waiting'
    const onHead = reading.onHead
    if (result.state === 'error') return onHead(this, { status: result.status, message: result.message })
    this.received = result.consumed < this.received.length ? this.received.subarray(result.consumed) : undefined
    onHead(this, { head: result.head })
  }

  /** @internal */
  handleEof(): void {
    this.flags |= PEER_ENDED
    if (this.phase !== 'open') return this.destroy()
    this.sink!.transportEnd()
    if ((this.flags & SHUTDOWN_DONE) !== 0) this.destroy()
  }

  /** @internal */
  writeCompleted(request: WriteRequest, status: number): void {
    this.pendingWrites--
    request.chunks = undefined
    if (request.callback) request.callback(status < 0 ? systemError(status, 'write') : null)
    if (status < 0) return this.destroy()
    if ((this.flags & NEED_DRAIN) !== 0 && this.handle.writeQueueSize === 0 && !this.destroyed) {
      this.flags &= ~NEED_DRAIN
      this.sink?.transportDrained()
    }
  }

  /** @internal */
  shutdownCompleted(status: number): void {
    this.flags |= SHUTDOWN_DONE
    if (status < 0 || (this.flags & PEER_ENDED) !== 0) this.destroy()
  }

  /** @internal */
  closed(): void {
    this.phase = 'closed'
    this.socketFacade?.emit('close', false)
    this.sink?.transportClosed()
  }

  /** @internal */
  deliver(data: Buffer): void {
    if (this.destroyed) return
    this.sink!.transportData(data)
    // The driver may have paused meanwhile; otherwise read on.
    if (!this.destroyed && this.phase === 'open' && (this.flags & READING) === 0) this.startReading()
  }

  /** Remote and local addresses, as `net.Socket` reports them. */
  address(kind: 'peer' | 'sock'): Partial<AddressInfo> {
    const out: Record<string, unknown> = {}
    if (this.destroyed) return {}
    const status = kind === 'peer' ? this.handle.getpeername(out) : this.handle.getsockname(out)
    return status === 0 ? (out as Partial<AddressInfo>) : {}
  }

  private startReading(): void {
    if ((this.flags & READING) !== 0 || this.destroyed) return
    this.flags |= READING
    const status = this.handle.readStart()
    if (status !== 0) this.destroy()
  }
}

const NEED_DRAIN = 1
const SHUTDOWN_SENT = 2
const SHUTDOWN_DONE = 4
const PEER_ENDED = 8
const READING = 16

/** A write request free for the next write (see TcpTransport.write). */
let spareRequest: WriteRequest | undefined

/** Where Node's net starts to report backpressure. */
const HIGH_WATER_MARK = 16 * 1024
/** Bytes held from a client while its upgrade is decided, before reading stops. */
const WAITING_CAP = 64 * 1024
/** How long a refused connection may stay open for the client to read the answer. */
const REJECT_LINGER = 2000

function destroyTransport(transport: TcpTransport): void {
  transport.destroy()
}

function ignoreRead(): void {}

function onHandleRead(this: StreamHandle, arrayBuffer: ArrayBuffer): void {
  this.owner?.handleRead(bindings!.state[bindings!.kReadBytesOrError]!, arrayBuffer)
}

function onWriteComplete(this: WriteRequest, status: number): void {
  this.owner.writeCompleted(this, status)
}

function onShutdownComplete(this: ShutdownRequest, status: number): void {
  this.owner.shutdownCompleted(status)
}

function onHandleClosed(transport: TcpTransport): void {
  transport.closed()
}

function deliverEarly(transport: TcpTransport, data: Buffer): void {
  transport.deliver(data)
}

function deliverClosed(transport: TcpTransport): void {
  transport.sink?.transportClosed()
}

/**
 * What `ws._socket` and `request.socket` are over a bare handle: the members
 * applications use on a `net.Socket` (addresses, write/end/destroy for
 * `wsClientError` handlers, `setNoDelay`/`setKeepAlive`/`setTimeout`). Built
 * on first use (Rule 4).
 */
export class TcpSocket extends EventEmitter {
  readonly #transport: TcpTransport
  readonly encrypted = false

  constructor(transport: TcpTransport) {
    super()
    this.#transport = transport
  }

  get remoteAddress(): string | undefined {
    return this.#transport.address('peer').address
  }
  get remotePort(): number | undefined {
    return this.#transport.address('peer').port
  }
  get remoteFamily(): string | undefined {
    return this.#transport.address('peer').family
  }
  get localAddress(): string | undefined {
    return this.#transport.address('sock').address
  }
  get localPort(): number | undefined {
    return this.#transport.address('sock').port
  }
  get destroyed(): boolean {
    return this.#transport.destroyed
  }
  get writable(): boolean {
    return this.#transport.writable
  }
  get readable(): boolean {
    return !this.#transport.destroyed
  }
  get writableLength(): number {
    return this.#transport.writableLength
  }
  get bytesRead(): number {
    return this.#transport.bytesRead
  }
  get bytesWritten(): number {
    return this.#transport.bytesWritten
  }

  write(data: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    if (typeof encoding === 'function') callback = encoding
    const bytes = typeof data === 'string' ? Buffer.from(data, typeof encoding === 'string' ? encoding : 'utf8') : data
    this.#transport.write([bytes], callback)
    return this.#transport.writableLength < HIGH_WATER_MARK
  }

  end(data?: string | Uint8Array, encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (typeof data === 'function') {
      callback = data
      data = undefined
    }
    if (typeof encoding === 'function') callback = encoding
    if (data !== undefined) this.write(data, typeof encoding === 'string' ? encoding : undefined)
    this.#transport.end()
    if (callback) process.nextTick(callback)
    return this
  }

  destroy(): this {
    this.#transport.destroy()
    return this
  }

  setNoDelay(): this {
    return this
  }
  setKeepAlive(): this {
    return this
  }
  setTimeout(): this {
    return this
  }
  address(): Partial<AddressInfo> {
    return this.#transport.address('sock')
  }
}

// ------------------------------------------------------------ listener

/** A listening TCP socket handing out TcpTransports. */
export class TcpListener {
  private handle: ServerHandle | undefined
  private readonly onConnection: (transport: TcpTransport) => void

  constructor(onConnection: (transport: TcpTransport) => void) {
    this.onConnection = onConnection
  }

  /** Binds and listens; resolves with the bound address, or rejects with a system error. */
  async listen(port: number, host: string | undefined, backlog = 511): Promise<AddressInfo> {
    const b = bindings!
    const handle = new b.TCP(b.SERVER) as unknown as ServerHandle
    let status: number
    if (host === undefined || host === '' || host === '::') {
      // Like net: the IPv6 wildcard, which also accepts IPv4 where the system allows it.
      status = handle.bind6('::', port, 0)
      if (status !== 0 && host === undefined) status = handle.bind('0.0.0.0', port)
    } else {
      const address = /^[\d.]+$/.test(host) || isIPv6(host) ? host : (await lookup(host)).address
      status = isIPv6(address) ? handle.bind6(address, port, 0) : handle.bind(address, port)
    }
    if (status === 0) status = handle.listen(backlog)
    if (status !== 0) {
      handle.close()
      throw systemError(status, 'listen', `${host ?? '::'}:${port}`)
    }
    handle.onconnection = (connectStatus, client) => {
      if (connectStatus !== 0 || client === undefined) return
      this.onConnection(new TcpTransport(client))
    }
    this.handle = handle
    return this.address()!
  }

  address(): AddressInfo | null {
    if (this.handle === undefined) return null
    const out: Record<string, unknown> = {}
    return this.handle.getsockname(out) === 0 ? (out as unknown as AddressInfo) : null
  }

  close(callback?: () => void): void {
    const handle = this.handle
    this.handle = undefined
    if (handle === undefined) {
      if (callback) process.nextTick(callback)
      return
    }
    handle.onconnection = null
    handle.close(callback)
  }
}
