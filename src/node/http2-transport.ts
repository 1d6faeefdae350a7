/**
 * A transport over an HTTP/2 stream (RFC 8441): one WebSocket per stream,
 * many streams per connection, behind the same Transport seam as a socket
 * (DESIGN §3, seam 4), so the driver and the core do not know the difference.
 *
 * Theory of operation: once the extended CONNECT was answered with 200, an
 * `Http2Stream` (a Duplex whose bytes are the stream's DATA frames) carries
 * the WebSocket's frames both ways. The transport maps the seam onto it:
 *
 *   write(chunks)   stream.write, corked: one batch, as few DATA frames as the windows allow
 *   end()           END_STREAM ("stands in for" TCP's FIN, RFC 8441 §5)
 *   destroy()       RST_STREAM CANCEL (a TCP RST; the session and its other streams live on)
 *   pause/resume    stop reading the stream: Node then withholds its WINDOW_UPDATEs, so the
 *                   peer's sending stops at the stream's window (the connection's own window is
 *                   credited as data arrives, so one paused WebSocket never stalls its neighbours)
 *   writableLength  bytes the HTTP/2 session has not taken yet: they wait while the stream's
 *                   send window (the peer's reading) or the connection's window is closed, or while
 *                   the session's socket is full; `drain` follows when they have all gone
 *   'end'           the peer's END_STREAM; 'close' the stream is gone (both ends, a reset, a GOAWAY
 *                   that covers it, or the session's end): a WebSocket without its closing
 *                   handshake is then 1006, as after a TCP reset
 *
 * Rule 1 (as transport.ts): data that arrived before `start` is delivered
 * after it returns, so listeners attached on 'open'/'connection' see it.
 * Rule 2: listeners are shared functions that find their transport through a
 * symbol: a stream costs no closures.
 * Rule 3: errors of the stream end in 'close'; nothing here throws because of
 * what the peer did (a reset, a GOAWAY, a session destroyed under us).
 */
import { EventEmitter } from 'node:events'
import http2, { type Http2Session, type Http2Stream } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import type { Transport, TransportSink, WriteCallback } from './transport.js'
import { asBuffer } from './transport.js'

const kTransport = Symbol('tether.http2.transport')
type StreamWithTransport = Http2Stream & { [kTransport]?: Http2StreamTransport }

const { NGHTTP2_CANCEL } = http2.constants

/** A transport over one HTTP/2 stream that an extended CONNECT opened. */
export class Http2StreamTransport implements Transport {
  readonly stream: Http2Stream
  sink: TransportSink | undefined
  /** This WebSocket's bytes (DATA payloads), not the connection's, which other streams share. */
  bytesRead = 0
  bytesWritten = 0
  #socket: Http2StreamSocket | undefined

  constructor(stream: Http2Stream) {
    this.stream = stream
  }

  start(sink: TransportSink, head?: Uint8Array): void {
    this.sink = sink
    const stream = this.stream as StreamWithTransport
    stream[kTransport] = this
    // Rule 1: while paused nothing is emitted; resume() delivers what is buffered on the next tick.
    stream.pause()
    stream.on('data', onStreamData)
    stream.on('end', onStreamEnd)
    stream.on('close', onStreamClose)
    stream.on('error', onStreamError)
    stream.on('drain', onStreamDrain)
    if (head !== undefined && head.length > 0) stream.unshift(asBuffer(head))
    stream.resume()
    if (stream.destroyed) process.nextTick(deliverClosed, this)
  }

  write(chunks: Uint8Array[], callback?: WriteCallback): void {
    const stream = this.stream
    if (callback !== undefined) callback = writtenOrClosed.bind(stream, callback)
    for (const chunk of chunks) this.bytesWritten += chunk.length
    if (chunks.length === 1) {
      stream.write(chunks[0]!, callback)
      return
    }
    stream.cork()
    const last = chunks.length - 1
    for (let i = 0; i < last; i++) stream.write(chunks[i]!)
    stream.write(chunks[last]!, callback)
    stream.uncork()
  }

  end(): void {
    const stream = this.stream
    if (!stream.destroyed && !stream.writableEnded) stream.end()
  }

  destroy(): void {
    const stream = this.stream
    if (stream.destroyed) return
    // RST_STREAM: the peer's WebSocket ends as after a TCP reset; the session goes on.
    if (!stream.closed) stream.close(NGHTTP2_CANCEL)
    else stream.destroy()
  }

  pause(): void {
    this.stream.pause()
  }

  resume(): void {
    this.stream.resume()
  }

  get writableLength(): number {
    return this.stream.writableLength
  }

  get needsDrain(): boolean {
    return this.stream.writableNeedDrain
  }

  get writable(): boolean {
    return !this.stream.destroyed && this.stream.writable
  }

  get destroyed(): boolean {
    return this.stream.destroyed
  }

  /** What `ws._socket` is over a stream (built on first use). */
  get socket(): Socket {
    return (this.#socket ??= new Http2StreamSocket(this.stream, this)) as unknown as Socket
  }
}

function writtenOrClosed(this: Http2Stream, callback: WriteCallback, error?: Error | null): void {
  callback(error ?? (this.destroyed ? new Error('WebSocket is not open: the stream was closed before the data was written') : null))
}

function deliverClosed(transport: Http2StreamTransport): void {
  transport.sink?.transportClosed()
}

function onStreamData(this: StreamWithTransport, chunk: Buffer): void {
  const transport = this[kTransport]!
  transport.bytesRead += chunk.length
  transport.sink!.transportData(chunk)
}

function onStreamEnd(this: StreamWithTransport): void {
  this[kTransport]!.sink!.transportEnd()
}

function onStreamClose(this: StreamWithTransport): void {
  this[kTransport]!.sink!.transportClosed()
}

/** Rule 3: a reset or a session error; 'close' follows and tells the story (1006). */
function onStreamError(): void {}

function onStreamDrain(this: StreamWithTransport): void {
  this[kTransport]!.sink!.transportDrained()
}

/**
 * What `ws._socket` and `request.socket` are for a WebSocket on an HTTP/2
 * stream: the members applications use on a `net.Socket`. Addresses and
 * `encrypted` are the connection's (the session's socket); `write`, `end` and
 * `destroy` act on this stream only, never on the connection other WebSockets
 * share. `stream` and `session` reach the HTTP/2 objects.
 */
export class Http2StreamSocket extends EventEmitter {
  readonly stream: Http2Stream
  readonly #transport: Http2StreamTransport | undefined

  constructor(stream: Http2Stream, transport?: Http2StreamTransport) {
    super()
    this.stream = stream
    this.#transport = transport
  }

  get session(): Http2Session | undefined {
    return this.stream.session
  }
  /** The connection's socket (Node's proxy of it, which refuses reads and writes). */
  #connection(): Partial<Socket> & { encrypted?: boolean; alpnProtocol?: string | false } {
    return (this.stream.session?.socket ?? {}) as Partial<Socket>
  }
  get remoteAddress(): string | undefined {
    return this.#connection().remoteAddress
  }
  get remotePort(): number | undefined {
    return this.#connection().remotePort
  }
  get remoteFamily(): string | undefined {
    return this.#connection().remoteFamily
  }
  get localAddress(): string | undefined {
    return this.#connection().localAddress
  }
  get localPort(): number | undefined {
    return this.#connection().localPort
  }
  get encrypted(): boolean {
    return this.stream.session?.encrypted === true
  }
  /** 'h2' over TLS, 'h2c' in clear text. */
  get alpnProtocol(): string | undefined {
    return this.stream.session?.alpnProtocol
  }
  get destroyed(): boolean {
    return this.stream.destroyed
  }
  get writable(): boolean {
    return !this.stream.destroyed && this.stream.writable
  }
  get readable(): boolean {
    return !this.stream.destroyed && this.stream.readable
  }
  get writableLength(): number {
    return this.stream.writableLength
  }
  /** The WebSocket's own bytes (0 before it opens): the connection's would count every stream's. */
  get bytesRead(): number {
    return this.#transport?.bytesRead ?? 0
  }
  get bytesWritten(): number {
    return this.#transport?.bytesWritten ?? 0
  }

  write(data: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    if (typeof encoding === 'function') callback = encoding
    const bytes = typeof data === 'string' ? Buffer.from(data, typeof encoding === 'string' ? encoding : 'utf8') : data
    if (this.#transport !== undefined) this.#transport.write([bytes], callback)
    else if (!this.stream.destroyed) this.stream.write(bytes, callback)
    return !this.stream.writableNeedDrain
  }

  end(data?: string | Uint8Array | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (typeof data === 'function') {
      callback = data
      data = undefined
    }
    if (typeof encoding === 'function') callback = encoding
    if (data !== undefined) this.write(data, typeof encoding === 'string' ? encoding : undefined)
    if (this.#transport !== undefined) this.#transport.end()
    else if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end()
    if (callback) process.nextTick(callback)
    return this
  }

  /** Resets this stream (RST_STREAM CANCEL); the connection and its other streams go on. */
  destroy(): this {
    if (this.#transport !== undefined) this.#transport.destroy()
    else if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL)
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
    const connection = this.#connection()
    return { address: connection.localAddress, port: connection.localPort, family: connection.localFamily }
  }
}
