/**
 * The driver pumps bytes between a Node socket and a sans-I/O `Connection`,
 * and owns everything that needs time or I/O: flushing, the close timer,
 * pausing, and delivering events to a front end.
 *
 * Theory of operation: socket 'data' goes to `connection.receiveData`; the
 * events it yields are dispatched to the handler in order, then whatever the
 * connection queued (pongs, close echoes, replies the handler sent) is
 * flushed. Sends from outside a data callback schedule one flush per tick,
 * so everything written to a socket in one turn of the event loop leaves in
 * one write (one writev for large payloads).
 *
 * Rule 1: socket listeners are shared functions that find their driver
 * through a symbol, so a connection costs no closures.
 * Rule 2: while paused, no event is dispatched and the socket is not read;
 * events already parsed wait in order.
 * Rule 3: 'closed' is delivered exactly once, after the socket is gone.
 */
import type { Socket } from 'node:net'
import type { Connection, ConnectionEvent } from '../core/connection.js'
import type { InflateCodec } from '../core/deflate/codec.js'
import type { ProtocolError } from '../core/errors.js'

export const kDriver = Symbol('tether.driver')

/** What a front end hears from a driver. `data` are Buffers viewing the received bytes. */
export interface DriverHandler {
  onMessage(data: Buffer, binary: boolean): void
  onPing(data: Buffer): void
  onPong(data: Buffer): void
  onCloseFrame(code: number, reason: Buffer): void
  onError(error: ProtocolError): void
  onClosed(code: number, reason: Buffer, wasClean: boolean): void
  /** The socket's write buffer emptied (after a write returned false). */
  onDrain?(): void
}

export interface DriverOptions {
  /** How long to wait for the peer to finish the closing handshake, in ms. */
  closeTimeout?: number
  /** Inflates compressed messages when permessage-deflate was negotiated; closed with the socket. */
  codec?: InflateCodec & { close(): void }
}

/** Default close timeout: 30 s, as in `ws`. */
export const DEFAULT_CLOSE_TIMEOUT = 30_000

type SocketWithDriver = Socket & { [kDriver]?: SocketDriver }
type WriteCallback = (error?: Error | null) => void

/** A view of bytes as a Buffer, without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

export class SocketDriver {
  readonly socket: Socket
  readonly connection: Connection
  private readonly handler: DriverHandler
  private readonly closeTimeout: number
  private closeTimer: NodeJS.Timeout | undefined
  private flushScheduled = false
  private paused = false
  private backlog: ConnectionEvent[] | undefined
  private callbacks: WriteCallback[] | undefined
  private socketClosed = false
  private closedEvent: Extract<ConnectionEvent, { type: 'closed' }> | undefined
  /** An inflate request is waiting for an asynchronous answer; parsing waits for it. */
  private inflating = false
  /** The peer's EOF arrived while inflating; it is handled after the answer (Rule 3). */
  private endDeferred = false
  private readonly codec: (InflateCodec & { close(): void }) | undefined

  constructor(socket: Socket, connection: Connection, handler: DriverHandler, options: DriverOptions = {}) {
    this.socket = socket
    this.connection = connection
    this.handler = handler
    this.closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
    this.codec = options.codec
  }

  /** Starts reading; `head` holds bytes that arrived with the handshake. */
  start(head?: Uint8Array): void {
    const socket = this.socket as SocketWithDriver
    socket[kDriver] = this
    if (typeof socket.setTimeout === 'function') socket.setTimeout(0)
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true)
    // Bytes that came with the handshake must not be dispatched from inside
    // start(): the front end emits 'open'/'connection' after it returns, and
    // only then are 'message' listeners attached. While the socket is paused,
    // neither the 'data' listener nor unshift() emits anything; resume()
    // delivers the bytes on the next tick, ahead of anything read later.
    socket.pause()
    socket.on('data', onSocketData)
    socket.on('end', onSocketEnd)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
    socket.on('drain', onSocketDrain)
    if (head !== undefined && head.length > 0) socket.unshift(asBuffer(head))
    socket.resume()
    if (socket.destroyed) process.nextTick(() => this.socketGone())
  }

  /** Call after the front end queued frames on the connection; `callback` runs once they are written. */
  queued(callback?: WriteCallback): void {
    if (callback !== undefined) (this.callbacks ??= []).push(callback)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      process.nextTick(flushDriver, this)
    }
  }

  /** Writes everything the connection queued, then half-closes if it asks to. */
  flush(): void {
    this.flushScheduled = false
    const connection = this.connection
    const socket = this.socket
    const chunks = connection.dataToSend()
    const callbacks = this.callbacks
    this.callbacks = undefined
    if (chunks.length > 0 && !socket.destroyed && socket.writable) {
      const done = callbacks === undefined ? undefined : callbackAll(callbacks)
      if (chunks.length === 1) {
        socket.write(chunks[0]!, done)
      } else {
        socket.cork()
        const last = chunks.length - 1
        for (let i = 0; i < last; i++) socket.write(chunks[i]!)
        socket.write(chunks[last]!, done)
        socket.uncork()
      }
    } else if (callbacks !== undefined) {
      const error = new Error('WebSocket is not open: the socket is closed')
      for (const callback of callbacks) process.nextTick(callback, chunks.length > 0 ? error : undefined)
    }
    if (connection.eofToSend() && !socket.destroyed) socket.end()
    if (connection.closeExpected() && this.closeTimer === undefined && !this.socketClosed) {
      this.closeTimer = setTimeout(onCloseTimeout, this.closeTimeout, this)
      this.closeTimer.unref?.()
    }
  }

  /** Bytes accepted for sending and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.connection.bytesToSend + (this.socketClosed ? 0 : this.socket.writableLength)
  }

  pause(): void {
    if (this.paused) return
    this.paused = true
    if (!this.socketClosed) this.socket.pause()
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    const backlog = this.backlog
    this.backlog = undefined
    if (backlog !== undefined) this.dispatch(backlog)
    // Answers to inflate requests in the backlog may have produced more events.
    this.collect()
    if (!this.paused && !this.socketClosed) this.socket.resume()
  }

  get isPaused(): boolean {
    return this.paused
  }

  /** Tears the connection down at once (ws `terminate`). */
  destroy(): void {
    this.socket.destroy()
  }

  receive(chunk: Buffer): void {
    this.connection.receiveData(chunk)
    this.collect()
  }

  peerEnded(): void {
    // EOF must not overtake bytes received before it that wait behind an asynchronous
    // inflation (a close frame right after a compressed message, then FIN, as ws sends).
    if (this.inflating) {
      this.endDeferred = true
      return
    }
    this.connection.receiveEof()
    this.collect()
    // The peer will send nothing more; finish our side too.
    if (!this.socket.destroyed) this.socket.end()
  }

  socketGone(): void {
    if (this.socketClosed) return
    this.socketClosed = true
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer)
    this.closeTimer = undefined
    // Rule 3: the connection is over, so flow control no longer matters: deliver
    // what was parsed (even while paused, and finishing compressed messages
    // already received), then 'closed'.
    this.paused = false
    const backlog = this.backlog
    this.backlog = undefined
    if (backlog !== undefined) this.dispatch(backlog)
    this.finishGone()
  }

  /** The rest of socketGone, once no asynchronous inflation is pending. */
  private finishGone(): void {
    this.collect()
    // A compressed message received before the socket closed is still being inflated:
    // finish it (and what was received after it) first; the answer calls back here.
    if (this.inflating) return
    this.connection.abort()
    this.collect()
    this.codec?.close()
    const closed = this.closedEvent
    if (closed !== undefined) this.handler.onClosed(closed.code, asBuffer(closed.reason), closed.wasClean)
  }

  drained(): void {
    this.handler.onDrain?.()
  }

  /** Dispatches new events, and those their handling caused (inflated messages), then flushes. */
  private collect(): void {
    while (this.connection.hasEvents) {
      const events = this.connection.eventsReceived()
      if (this.paused) {
        if (this.backlog === undefined) this.backlog = events
        else for (const event of events) this.backlog.push(event)
        break
      }
      this.dispatch(events)
    }
    this.flush()
  }

  /**
   * Answers an inflate request. A synchronous answer is taken up by the
   * loop in `collect`; a later one starts a new round.
   */
  private inflate(request: Extract<ConnectionEvent, { type: 'inflate' }>): void {
    const codec = this.codec ?? noCodec()
    let answered = false
    let synchronous = true
    codec.inflate(request.data, request.end, request.limit, (outcome) => {
      if (answered) return
      answered = true
      this.inflating = false
      this.connection.receiveInflated(outcome)
      if (synchronous) return
      if (this.socketClosed) return this.finishGone()
      this.collect()
      if (this.endDeferred && !this.inflating) {
        this.endDeferred = false
        this.peerEnded()
      }
    })
    synchronous = false
    if (!answered) this.inflating = true
  }

  private dispatch(events: ConnectionEvent[]): void {
    const handler = this.handler
    for (let i = 0; i < events.length; i++) {
      if (this.paused) {
        // Rule 2: the rest waits for resume().
        this.backlog = events.slice(i).concat(this.backlog ?? [])
        return
      }
      const event = events[i]!
      switch (event.type) {
        case 'message':
          handler.onMessage(asBuffer(event.data), event.binary)
          break
        case 'ping':
          handler.onPing(asBuffer(event.data))
          break
        case 'pong':
          handler.onPong(asBuffer(event.data))
          break
        case 'close':
          handler.onCloseFrame(event.code, asBuffer(event.reason))
          break
        case 'error':
          handler.onError(event.error)
          break
        case 'closed':
          // Rule 3: reported by socketGone(), once the socket is gone.
          this.closedEvent = event
          break
        case 'inflate':
          this.inflate(event)
          break
      }
    }
  }
}

function noCodec(): never {
  throw new Error('A compressed message arrived but no codec is configured')
}

function callbackAll(callbacks: WriteCallback[]): WriteCallback {
  return (error) => {
    for (const callback of callbacks) callback(error)
  }
}

function flushDriver(driver: SocketDriver): void {
  driver.flush()
}

function onCloseTimeout(driver: SocketDriver): void {
  driver.destroy()
}

function onSocketData(this: SocketWithDriver, chunk: Buffer): void {
  this[kDriver]!.receive(chunk)
}

function onSocketEnd(this: SocketWithDriver): void {
  this[kDriver]!.peerEnded()
}

function onSocketClose(this: SocketWithDriver): void {
  this[kDriver]!.socketGone()
}

function onSocketError(this: SocketWithDriver): void {
  // Transport errors (ECONNRESET, EPIPE) end in 'close'; the close code (1006) tells the story.
  this.destroy()
}

function onSocketDrain(this: SocketWithDriver): void {
  this[kDriver]!.drained()
}
