/**
 * The transport port: the few things a driver needs from whatever carries
 * the bytes (DESIGN §3, seam 4), and its adapter for Node streams.
 *
 * Theory of operation: a transport delivers what it reads, its end of input
 * and its closing to a sink (the driver), and accepts batches of chunks to
 * write. Two adapters exist: `NetTransport` over a `net.Socket` (or a TLS
 * socket, or any Duplex with the socket's members), used by clients and by
 * servers attached to Node's HTTP server; and `TcpTransport` (tcp.ts) over a
 * bare TCP handle, used where tether owns the listening port.
 *
 * Rule 1: data that arrived with the handshake (`head`) is delivered after
 * `start` returns, before anything read later, so listeners attached after
 * the 'open'/'connection' event still see it.
 * Rule 2: listeners are shared functions that find their transport through a
 * symbol: a connection costs no closures.
 */
import type { Socket } from 'node:net'

export type WriteCallback = (error?: Error | null) => void

/** What a transport reports to its driver. */
export interface TransportSink {
  transportData(data: Buffer): void
  /**
   * How many of `bytes[start..end)`, if they are the next bytes, `transportData` copies before it returns,
   * keeping no view of them (Connection.bytesCopiedOnReceipt): a transport that reads into a buffer it
   * reuses may pass that many as a view of it, and must copy the rest.
   */
  bytesCopiedOnReceipt?(bytes: Uint8Array, start: number, end: number): number
  /** The peer ended its side (TCP FIN). */
  transportEnd(): void
  /** The transport is closed, for whatever reason; called once. */
  transportClosed(): void
  /** Everything written so far has left (after a write that filled the buffer). */
  transportDrained(): void
}

export interface Transport {
  start(sink: TransportSink, head?: Uint8Array): void
  /** Writes the chunks in order, in as few system calls as the transport allows. */
  write(chunks: Uint8Array[], callback?: WriteCallback): void
  /** Half-closes after what was written. */
  end(): void
  destroy(): void
  pause(): void
  resume(): void
  /** Bytes accepted and not yet handed to the operating system. */
  readonly writableLength: number
  /** A write filled the buffer: `transportDrained` will follow when it empties. */
  readonly needsDrain: boolean
  readonly writable: boolean
  readonly destroyed: boolean
  /** What the ws API exposes as `ws._socket`. */
  readonly socket: Socket
}

/** A view of bytes as a Buffer, without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

const kTransport = Symbol('tether.transport')
type SocketWithTransport = Socket & { [kTransport]?: NetTransport }

/** A transport over a Node socket (net, tls, or a Duplex with the socket's members). */
export class NetTransport implements Transport {
  readonly socket: Socket
  /** Where events go; set by `start`. */
  sink: TransportSink | undefined

  constructor(socket: Socket) {
    this.socket = socket
  }

  start(sink: TransportSink, head?: Uint8Array): void {
    this.sink = sink
    const socket = this.socket as SocketWithTransport
    socket[kTransport] = this
    if (typeof socket.setTimeout === 'function') socket.setTimeout(0)
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true)
    // Rule 1: while the socket is paused, neither the 'data' listener nor
    // unshift() emits anything; resume() delivers the bytes on the next tick.
    socket.pause()
    socket.on('data', onSocketData)
    socket.on('end', onSocketEnd)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
    socket.on('drain', onSocketDrain)
    if (head !== undefined && head.length > 0) socket.unshift(asBuffer(head))
    socket.resume()
    if (socket.destroyed) process.nextTick(() => sink.transportClosed())
  }

  write(chunks: Uint8Array[], callback?: WriteCallback): void {
    const socket = this.socket
    // Node calls back a write still pending when the socket is destroyed with no error (net.js
    // onWriteComplete: "if (stream.destroyed) ... callback(null)"): such bytes never left, say so.
    if (callback !== undefined) callback = writtenOrClosed.bind(socket, callback)
    if (chunks.length === 1) {
      socket.write(chunks[0]!, callback)
      return
    }
    socket.cork()
    const last = chunks.length - 1
    for (let i = 0; i < last; i++) socket.write(chunks[i]!)
    socket.write(chunks[last]!, callback)
    socket.uncork()
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
  }

  pause(): void {
    this.socket.pause()
  }

  resume(): void {
    this.socket.resume()
  }

  get writableLength(): number {
    return this.socket.writableLength
  }

  get needsDrain(): boolean {
    return this.socket.writableNeedDrain
  }

  get writable(): boolean {
    return !this.socket.destroyed && this.socket.writable
  }

  get destroyed(): boolean {
    return this.socket.destroyed
  }
}

function writtenOrClosed(this: Socket, callback: WriteCallback, error?: Error | null): void {
  callback(error ?? (this.destroyed ? new Error('WebSocket is not open: the socket was closed before the data was written') : null))
}

function onSocketData(this: SocketWithTransport, chunk: Buffer): void {
  this[kTransport]!.sink!.transportData(chunk)
}

function onSocketEnd(this: SocketWithTransport): void {
  this[kTransport]!.sink!.transportEnd()
}

function onSocketClose(this: SocketWithTransport): void {
  this[kTransport]!.sink!.transportClosed()
}

function onSocketError(this: SocketWithTransport): void {
  // Transport errors (ECONNRESET, EPIPE) end in 'close'; the close code (1006) tells the story.
  this.destroy()
}

function onSocketDrain(this: SocketWithTransport): void {
  this[kTransport]!.sink!.transportDrained()
}
