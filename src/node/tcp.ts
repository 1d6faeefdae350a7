/**
 * A transport over a bare TCP handle: for servers that own their port
 * (tcp-listener.ts accepts the handles), and for connections taken over from
 * Node's HTTP server once their upgrade is accepted (`TcpTransport.takeOver`).
 *
 * Theory of operation: `net.Socket` wraps a libuv TCP handle in a Duplex
 * stream: a Readable and a Writable state, their buffers and callbacks, and
 * Node's HTTP server adds a parser and request objects to every connection.
 * Measured here, an idle WebSocket connection costs 4.9 KiB of resident
 * memory for the bare socket alone, against 1.6 KiB for the handle. A
 * WebSocket needs none of the stream machinery: the handle delivers each read
 * as a Buffer, writes a batch of chunks with one writev, and reports when a
 * write completes. So where tether owns the listening socket, it takes the
 * handles directly (tcp-bindings.ts, the only module that names Node's
 * internals) and reads the upgrade request itself
 * (core/handshake/request-head.ts); where Node's HTTP server read the request,
 * the handle is moved off the `net.Socket` once the upgrade is accepted.
 *
 * A connection goes through phases: `head` (its request head is read here),
 * `waiting` (the upgrade is decided; what arrives is held), `open` (the
 * WebSocket reads and writes), `closed`.
 *
 * Rule 1: the bindings are looked up once, by the first server that needs
 * them (tcp-bindings.ts says when they are not asked for); where they are
 * missing (`tcpHandlesAvailable()` false) servers use Node's `http` and `net`.
 * Rule 2: a write that completes synchronously costs no callback from the
 * handle; one that completes later keeps its chunks referenced until then.
 * Rule 3: the handle is closed once: on destroy, on a read error, or when both
 * directions have ended (our FIN sent and the peer's received).
 * Rule 4: a batch of small chunks (a subscriber's published messages) is
 * copied into one shared buffer and written from it, when the socket has
 * nothing queued: the kernel takes one contiguous buffer faster than many
 * small I/O vectors (issue 18's fan-out). The buffer is reused while writes
 * complete synchronously; one the kernel did not take whole stays with its
 * write, and the next batch gets a new buffer.
 * Rule 5: `socket`, the object the ws API exposes as `ws._socket` and
 * `request.socket` (tcp-socket.ts), is built on first use, so idle
 * connections do not pay for it.
 * Rule 6: a busy connection reads into one 512 KiB buffer shared by the
 * process (as uWebSockets.js reads), and each read is copied out of it at
 * once, before anything else can read into it, into a Buffer of its own size
 * (a small one is a slice of Node's buffer pool). Node's own reads allocate
 * 64 KiB, shrink it to the bytes read and wrap it in a new ArrayBuffer, every
 * read; a bulk sender needs eight of those per 512 KiB (issue 18's 1 MiB
 * echo), and for a busy small-message connection they cost more than the
 * copy (its latency at 100 connections). Busy: a read fills libuv's 64 KiB,
 * or more than BUSY_READS reads arrive within one tick of about a second. An
 * idle connection (a pong every 30 s) stays on Node's reads: switching costs
 * a connection Node's listener for the buffer, for good (a handle cannot go
 * back), which 10,000 idle connections would pay for nothing.
 * Except: the read's leading bytes that the connection says it copies itself
 * before it returns (payload of a large message, gathered into the message's
 * own buffer: `bytesCopiedOnReceipt`, asked again after each run) go to it as
 * views of the shared buffer, unmasked there and copied once; only the bytes
 * from the first it would keep onwards are copied out. A 1 MiB message then
 * costs one copy in user space, not two, and a message sent in many fragments
 * costs no copy of the reads that carried them.
 */
import { EventEmitter } from 'node:events'
import { METHODS } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { getSystemErrorMap } from 'node:util'
import { countRawField } from '../core/handshake/headers.js'
import { rejectResponse } from '../core/handshake/http1.js'
import {
  type Bindings,
  type CountingServer,
  type StreamHandle,
  type ShutdownRequest,
  type WriteRequest,
  destroyWithoutClose,
  keepServerCount,
  releaseServerCount,
  takeHandle,
  tcpBindings,
} from './tcp-bindings.js'
import { type RequestHead, type RequestHeadLimits, parseRequestHead } from '../core/handshake/request-head.js'
import type { UpgradeChannel } from './server.js'
import { SOCKET_HIGH_WATER_MARK, TcpSocket } from './tcp-socket.js'
import type { Transport, TransportSink, WriteCallback } from './transport.js'

export { tcpHandlesAvailable } from './tcp-bindings.js'

/** The bindings, once a TcpTransport exists (its handle came from them). */
let bindings: Bindings

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

/** The phases (see above), kept in bits 16-17 of a transport's flags. */
const HEAD = 0
const WAITING = 1
const OPEN = 2
const CLOSED = 3
type Phase = typeof HEAD | typeof WAITING | typeof OPEN | typeof CLOSED

/**
 * What the server does with a connection's request head: the head, or its
 * refusal (400, 431; 408 when the server gave up waiting, see
 * `abandonHead`), or `status: 0` when the client left before it was complete.
 */
export type HeadHandler = (transport: TcpTransport, result: { head: RequestHead } | { status: 0 | 400 | 408 | 431; message: string }) => void

export class TcpTransport implements Transport, UpgradeChannel {
  private readonly handle: StreamHandle
  sink: TransportSink | undefined
  /** Bytes received before the WebSocket took over: the request head, then what followed it. */
  private received: Buffer | undefined
  /** While the request head is read; dropped once it is (an upgraded connection does not carry it). */
  private headReading: HeadReading | undefined
  private pendingWrites = 0
  /** The Node server that counts this connection, when it was taken over from one (`takeOver`). */
  private countedBy: CountingServer | undefined
  /**
   * NEED_DRAIN | SHUTDOWN_SENT | SHUTDOWN_DONE | PEER_ENDED | READING | SHARED_READS | DESTROYED, Rule 6's read
   * count and tick, and the phase: one field, not one each (an idle connection's bytes; issue 18).
   */
  private flags = 0
  private socketFacade: TcpSocket | undefined
  /** Counted as net.Socket counts them. */
  bytesRead = 0
  bytesWritten = 0

  constructor(handle: StreamHandle) {
    bindings ??= tcpBindings()!
    this.handle = handle
    handle.owner = this
    handle.onread = onHandleRead
  }

  /** Set once the handle is closed or closing (Rule 3). */
  get destroyed(): boolean {
    return (this.flags & DESTROYED) !== 0
  }

  private get phase(): Phase {
    return ((this.flags & PHASE_MASK) >> PHASE_SHIFT) as Phase
  }
  private set phase(phase: Phase) {
    this.flags = (this.flags & ~PHASE_MASK) | (phase << PHASE_SHIFT)
  }

  /**
   * Moves an upgraded connection off Node's `net.Socket` onto a TcpTransport,
   * or answers undefined where it stays on `net` (no bindings; TLS; a socket
   * with bytes Node still holds to write; see `takeHandle`). Bytes the socket
   * read while the upgrade was decided are taken too, and delivered after the
   * `head` Node's HTTP server read past the request, once the WebSocket
   * starts. The socket keeps its addresses (takeHandle) and is destroyed
   * without closing the connection, so Node's server stops counting it and
   * its objects can be collected. The byte counts go on from the socket's
   * (the request head included), as they do in port mode.
   */
  static takeOver(socket: Socket): TcpTransport | undefined {
    // Read while the socket has its handle: a detached socket answers what it cached, or 0.
    const { bytesRead, bytesWritten } = socket
    const held: Buffer[] = []
    const handle = takeHandle(socket, held)
    if (handle === undefined) return undefined
    const transport = new TcpTransport(handle)
    transport.bytesRead = bytesRead
    transport.bytesWritten = bytesWritten
    transport.phase = WAITING
    if (held.length > 0) transport.received = held.length === 1 ? held[0] : Buffer.concat(held)
    // Node's server goes on counting the connection until it closes (maxConnections, close()'s callback).
    transport.countedBy = keepServerCount(socket)
    // The application's 'close' and 'timeout' listeners on the socket it was given (Node's server removed
    // its own at the upgrade) move to the stand-in, which emits them for the connection; so does a timeout
    // set on the socket that someone listens for.
    const timeout = socket.timeout
    for (const event of FORWARDED_EVENTS) {
      if (socket.listenerCount(event) === 0) continue
      for (const listener of socket.rawListeners(event)) transport.socket.on(event, listener as (...args: unknown[]) => void)
      socket.removeAllListeners(event)
    }
    if (timeout !== undefined && timeout > 0 && transport.socketFacade?.listenerCount('timeout')) transport.socketFacade.setTimeout(timeout)
    // The detached socket lets its objects go without a 'close' of its own; listeners added to it later,
    // and its destroy(), reach the connection (kTransport, shared functions: nothing per connection).
    destroyWithoutClose(socket)
    const detached = socket as unknown as TakenSocket
    detached[kTransport] = transport
    detached.destroy = destroyTaken
    detached.on = detached.addListener = onTaken
    detached.once = onceTaken
    detached.prependListener = prependTaken
    return transport
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
    this.phase = WAITING
    reading.onHead(this, { status: 408, message })
  }

  // ---------------------------------------------------------- Transport

  start(sink: TransportSink, head?: Uint8Array): void {
    this.sink = sink
    this.phase = OPEN
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
    const b = bindings
    // A request whose write completed synchronously carries no native state: reuse it.
    const request = spareRequest ?? new b.WriteWrap()
    spareRequest = undefined
    request.handle = this.handle
    request.oncomplete = onWriteComplete
    request.async = false
    request.owner = this
    request.callback = callback
    request.chunks = undefined
    let status: number
    if (chunks.length === 1) {
      status = this.handle.writeBuffer(request, chunks[0]!)
      this.bytesWritten += chunks[0]!.length
    } else {
      let total = 0
      for (let i = 0; i < chunks.length; i++) total += chunks[i]!.length
      this.bytesWritten += total
      // Rule 4: many small chunks on a socket with nothing queued leave as one buffer.
      if (total <= CORK_SIZE && this.pendingWrites === 0) {
        const cork = (corkBuffer ??= Buffer.allocUnsafeSlow(CORK_SIZE))
        let at = 0
        for (let i = 0; i < chunks.length; i++) {
          cork.set(chunks[i]!, at)
          at += chunks[i]!.length
        }
        chunks = [cork.subarray(0, total)]
        status = this.handle.writeBuffer(request, chunks[0]!)
        // The kernel did not take it all: the handle now holds the cork until the write completes.
        if (b.state[b.kLastWriteWasAsync]) corkBuffer = undefined
      } else {
        status = this.handle.writev(request, chunks, true)
      }
    }
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
      if (this.handle.writeQueueSize >= SOCKET_HIGH_WATER_MARK) this.flags |= NEED_DRAIN
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
    return this.phase === OPEN
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
    const request = new bindings.ShutdownWrap()
    request.handle = this.handle
    request.oncomplete = onShutdownComplete
    request.owner = this
    const status = this.handle.shutdown(request)
    if (status !== 0) this.destroy()
  }

  destroy(): void {
    if (this.destroyed) return
    this.flags |= DESTROYED
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
    if (this.phase === OPEN) this.startReading()
  }

  get writableLength(): number {
    // The handle queues bytes only behind a write that did not complete at once; asking it
    // costs a native call, which fan-out makes for every subscriber of every message.
    return this.pendingWrites === 0 || this.destroyed ? 0 : this.handle.writeQueueSize
  }

  get needsDrain(): boolean {
    return (this.flags & NEED_DRAIN) !== 0 && !this.destroyed
  }

  setRef(ref: boolean): void {
    if (this.destroyed) return
    if (ref) this.handle.ref()
    else this.handle.unref()
  }

  get writable(): boolean {
    return !this.destroyed && (this.flags & SHUTDOWN_SENT) === 0
  }

  /** Whether our end was shut (`end()`), as `net.Socket.writableEnded`. */
  get writableEnded(): boolean {
    return (this.flags & SHUTDOWN_SENT) !== 0
  }

  /** Whether the handle is not reading (paused, or not started). */
  get readingPaused(): boolean {
    return (this.flags & READING) === 0
  }

  get socket(): Socket {
    return (this.socketFacade ??= new TcpSocket(this)) as unknown as Socket
  }

  setNoDelay(enable: boolean): void {
    if (!this.destroyed) this.handle.setNoDelay(enable)
  }

  setKeepAlive(enable: boolean, delaySeconds: number): void {
    if (!this.destroyed) this.handle.setKeepAlive(enable, delaySeconds)
  }

  // ---------------------------------------------------------- handle events

  /** @internal */
  handleRead(nread: number, arrayBuffer: ArrayBuffer | undefined): void {
    if (nread === 0) return
    if (nread < 0) {
      if (nread === bindings.UV_EOF) return this.handleEof()
      return this.destroy()
    }
    let data: Buffer
    if (arrayBuffer === undefined) {
      // Rule 6: copied out now; the next read of any connection overwrites the shared buffer.
      if (this.phase === OPEN && this.sink!.bytesCopiedOnReceipt !== undefined) return this.deliverSharedRead(nread)
      data = Buffer.allocUnsafe(nread)
      sharedReadBuffer!.copy(data, 0, 0, nread)
    } else {
      data = Buffer.from(arrayBuffer, bindings.state[bindings.kArrayBufferOffset]!, nread)
      if (this.phase === OPEN && (this.flags & SHARED_READS) === 0 && (nread >= FULL_READ || this.countRead())) this.readIntoShared()
    }
    this.bytesRead += nread
    if (this.phase === OPEN) {
      this.sink!.transportData(data)
      return
    }
    // Before the WebSocket takes over: gather the request head, then hold what follows.
    this.received = this.received === undefined ? data : Buffer.concat([this.received, data])
    if (this.phase === WAITING) {
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
    this.phase = WAITING
    const onHead = reading.onHead
    if (result.state === 'error') return onHead(this, { status: result.status, message: result.message })
    const refusal = refusedByNodeParser(result.head)
    if (refusal !== undefined) return onHead(this, { status: 400, message: refusal })
    this.received = result.consumed < this.received.length ? this.received.subarray(result.consumed) : undefined
    onHead(this, { head: result.head })
  }

  /**
   * Rule 6's exception: from the start of the read, the bytes the connection says it copies itself go to it as
   * views of the shared buffer, a run at a time (it is asked again after each, where the parser then stands);
   * the first bytes it would keep, and all after them, are copied out and delivered as one chunk.
   */
  private deliverSharedRead(nread: number): void {
    this.bytesRead += nread
    const shared = sharedReadBuffer!
    let at = 0
    while (at < nread) {
      // Each delivery may close the connection (its rest is then ignored, as when a read is delivered whole).
      if (this.phase !== OPEN || this.destroyed) return
      const sink = this.sink!
      const viewed = Math.min(nread - at, sink.bytesCopiedOnReceipt!(shared, at, nread))
      if (viewed === 0) {
        const rest = Buffer.allocUnsafe(nread - at)
        shared.copy(rest, 0, at, nread)
        sink.transportData(rest)
        return
      }
      // Nothing reads into the shared buffer while this runs: reads come only from the event loop.
      sink.transportData(shared.subarray(at, at + viewed))
      at += viewed
    }
  }

  /**
   * Rule 6: counts a read in the current tick (kept in `flags`: the tick's
   * low 8 bits, and the reads after the tick's first, up to 3); true at the
   * read that makes more than BUSY_READS in one tick.
   */
  private countRead(): boolean {
    const tick = (Date.now() >>> TICK_MS_BITS) & 0xff
    const flags = this.flags
    if ((flags & TICK_MASK) >>> TICK_SHIFT !== tick) {
      this.flags = (flags & ~(TICK_MASK | READ_COUNT_MASK)) | (tick << TICK_SHIFT)
      return false
    }
    const count = ((flags & READ_COUNT_MASK) >>> READ_COUNT_SHIFT) + 1
    if (count >= BUSY_READS) return true
    this.flags = (flags & ~READ_COUNT_MASK) | (count << READ_COUNT_SHIFT)
    return false
  }

  /** Rule 6: later reads of this handle go into the shared buffer (once: the handle cannot go back). */
  private readIntoShared(): void {
    // Set also where the runtime cannot switch, so that reads stop being counted.
    this.flags |= SHARED_READS
    const useUserBuffer = this.handle.useUserBuffer
    if (typeof useUserBuffer !== 'function') return
    useUserBuffer.call(this.handle, (sharedReadBuffer ??= Buffer.allocUnsafe(SHARED_READ_SIZE)))
  }

  /** @internal */
  handleEof(): void {
    this.flags |= PEER_ENDED
    if (this.phase !== OPEN) return this.destroy()
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
    this.phase = CLOSED
    if (this.countedBy !== undefined) releaseServerCount(this.countedBy)
    this.socketFacade?.emit('close', false)
    this.sink?.transportClosed()
  }

  /** @internal */
  deliver(data: Buffer): void {
    if (this.destroyed) return
    this.sink!.transportData(data)
    // The driver may have paused meanwhile; otherwise read on.
    if (!this.destroyed && this.phase === OPEN && (this.flags & READING) === 0) this.startReading()
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
/** Rule 6: the connection moved to the shared buffer (or was busy where the runtime cannot move it). */
const SHARED_READS = 32
/** Rule 6: reads counted in the current tick (bits 6-7 of flags), and the tick (bits 8-15). */
const READ_COUNT_SHIFT = 6
const READ_COUNT_MASK = 3 << READ_COUNT_SHIFT
const TICK_SHIFT = 8
const TICK_MASK = 0xff << TICK_SHIFT
const PHASE_SHIFT = 16
const PHASE_MASK = 3 << PHASE_SHIFT
/** Set once the handle is closed or closing (Rule 3). */
const DESTROYED = 1 << 18
/** Rule 6: a tick is 2^10 ms. */
const TICK_MS_BITS = 10
/** Rule 6: more reads than this within one tick make a connection busy. */
const BUSY_READS = 4
/** Rule 6: a read this large (libuv's suggested size) says the peer sends in bulk. */
const FULL_READ = 64 * 1024
/** Rule 6: the shared buffer's size, and so the largest read. */
const SHARED_READ_SIZE = 512 * 1024
let sharedReadBuffer: Buffer | undefined

/** Rule 4: where a batch of small chunks is gathered before its one write. */
const CORK_SIZE = 16 * 1024
let corkBuffer: Buffer | undefined

/** A write request free for the next write (see TcpTransport.write). */
let spareRequest: WriteRequest | undefined

/** Bytes held from a client while its upgrade is decided, before reading stops. */
const WAITING_CAP = 64 * 1024
/** How long a refused connection may stay open for the client to read the answer. */
const REJECT_LINGER = 2000

function destroyTransport(transport: TcpTransport): void {
  transport.destroy()
}

function ignoreRead(): void {}

/** The methods Node's HTTP parser knows. */
const KNOWN_METHODS = new Set(METHODS)
/** The versions Node's HTTP parser accepts (0.9 and 2.0 parse; the handshake answers them). */
const KNOWN_VERSIONS = new Set(['0.9', '1.0', '1.1', '2.0'])

/**
 * What Node's HTTP parser refuses with 400 in a head that the grammar allows, so that port mode answers a
 * request as `{ server }` does (issue 18's outsiders compared the paths head by head): a method it does not
 * know ("get", "FOO"; a known one other than GET is the handshake's 405), a version it does not know, a target
 * that is neither a path, "*" nor an absolute URL, and the message-length fields a smuggling attempt uses:
 * Content-Length twice, not a number, or with Transfer-Encoding (RFC 9112 §6.3).
 */
function refusedByNodeParser(head: RequestHead): string | undefined {
  if (!KNOWN_METHODS.has(head.method)) return 'Unknown HTTP method'
  if (!KNOWN_VERSIONS.has(head.httpVersion)) return 'Unsupported HTTP version'
  const url = head.url
  if (url[0] !== '/' && url !== '*' && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) return 'Invalid request target'
  const length = head.headers['content-length']
  if (length !== undefined) {
    if (countRawField(head.rawHeaders, 'content-length', 2) > 1) return 'Repeated Content-Length'
    if (!/^\d+$/.test(length as string)) return 'Invalid Content-Length'
    if (head.headers['transfer-encoding'] !== undefined) return 'Content-Length with Transfer-Encoding'
  }
  return undefined
}

/** The events of a taken-over socket that the stand-in emits (see `takeOver`). */
const FORWARDED_EVENTS = ['close', 'timeout'] as const

/** Where a socket taken over finds the connection it gave up. */
const kTransport = Symbol('tether.transport')

type Listener = (...args: unknown[]) => void
interface TakenSocket {
  [kTransport]: TcpTransport
  destroy(): unknown
  on(event: string | symbol, listener: Listener): unknown
  addListener(event: string | symbol, listener: Listener): unknown
  once(event: string | symbol, listener: Listener): unknown
  prependListener(event: string | symbol, listener: Listener): unknown
}

function destroyTaken(this: TakenSocket): TakenSocket {
  this[kTransport].destroy()
  return this
}

/** A taken-over socket's `on`/`once`/`prependListener`: the forwarded events go to the stand-in, others stay. */
function forwarding(method: 'on' | 'once' | 'prependListener') {
  return function (this: TakenSocket, event: string | symbol, listener: Listener): TakenSocket {
    if ((FORWARDED_EVENTS as readonly (string | symbol)[]).includes(event)) this[kTransport].socket[method](event as string, listener)
    else EventEmitter.prototype[method].call(this, event, listener)
    return this
  }
}
const onTaken = forwarding('on')
const onceTaken = forwarding('once')
const prependTaken = forwarding('prependListener')

function onHandleRead(this: StreamHandle, arrayBuffer: ArrayBuffer | undefined): void {
  ;(this.owner as TcpTransport | undefined)?.handleRead(bindings.state[bindings.kReadBytesOrError]!, arrayBuffer)
}

function onWriteComplete(this: WriteRequest, status: number): void {
  (this.owner as TcpTransport).writeCompleted(this, status)
}

function onShutdownComplete(this: ShutdownRequest, status: number): void {
  (this.owner as TcpTransport).shutdownCompleted(status)
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
