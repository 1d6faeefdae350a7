/**
 * The driver pumps bytes between a transport and a sans-I/O `Connection`,
 * and owns everything that needs time or I/O: flushing, the close timer,
 * pausing, and delivering events to a front end.
 *
 * Theory of operation: transport data goes to `connection.receiveData`; the
 * events it yields are dispatched to the handler in order, then whatever the
 * connection queued (pongs, close echoes, replies the handler sent) is
 * flushed. Sends from outside a data callback schedule one flush per tick,
 * so everything written to a socket in one turn of the event loop leaves in
 * one write (one writev for large payloads).
 *
 * Rule 1: the driver is the transport's sink; the transport owns its
 * listeners (transport.ts), so a connection costs no closures.
 * Rule 2: while paused, no event is dispatched and the transport is not
 * read; events already parsed wait in order.
 * Rule 3: 'closed' is delivered exactly once, after the transport is gone.
 * Rule 4: while the transport's buffer is full (the peer is not reading),
 * the connection answers only the latest ping (core Rule 7): its answer waits
 * as one pong until the buffer drains. What the application sends is still
 * handed to the transport (where it counts in `bufferedAmount`), so a fast
 * reader's pipeline never stalls; the send-buffer policy and the send budget
 * (Rule 5) bound it for a reader that stops.
 * Rule 5: what the connection holds for messages being received is counted
 * in the process-wide receive budget after every read and every piece of
 * inflated output, and what waits for a full socket in the send budget after
 * every send (memory-budget.ts); a budget may fail this connection (1013, or
 * a termination for sending) to stay within its ceiling.
 * Rule 6: while an asynchronous inflation is pending, the transport is not
 * read: input would only pile up behind it.
 */
import type { Connection, ConnectionEvent } from '../core/connection.js'
import type { InflateCodec } from '../core/deflate/codec.js'
import { ProtocolError } from '../core/errors.js'
import { type BudgetHolder, receiveBudget, sendBudget } from './memory-budget.js'
import { type Transport, type TransportSink, type WriteCallback, asBuffer } from './transport.js'

export { asBuffer } from './transport.js'

/** What a front end hears from a driver. `data` are Buffers viewing the received bytes. */
export interface DriverHandler {
  driverMessage(data: Buffer, binary: boolean): void
  driverPing(data: Buffer): void
  driverPong(data: Buffer): void
  driverCloseFrame(code: number, reason: Buffer): void
  driverError(error: ProtocolError): void
  driverClosed(code: number, reason: Buffer, wasClean: boolean): void
  /** The socket's write buffer emptied (after a write returned false). */
  driverDrain?(): void
  /** What was asked for with `watchWritable`: the socket can take more. */
  driverWritable?(): void
  /** The peer did not finish the closing handshake within the close timeout; the socket is being destroyed. */
  driverCloseTimeout?(): void
  /** The process-wide send budget is spent and this connection holds the most: it is being terminated. */
  driverSendBudgetExceeded?(): void
}

export interface DriverOptions {
  /** How long to wait for the peer to finish the closing handshake, in ms. */
  closeTimeout?: number
  /** Inflates compressed messages when permessage-deflate was negotiated; closed with the socket. */
  codec?: DriverCodec
  /** Record when data and messages arrive, for heartbeats and idle timeouts (`sweep`). */
  trackActivity?: boolean
}

/** Heartbeat and idle-timeout settings, in milliseconds; 0 turns one off. */
export interface SweepSettings {
  /** Ping a peer that sent nothing for this long. */
  pingInterval: number
  /** A pinged peer that still sent nothing after this long is dead. */
  pongTimeout: number
  /** Close a connection whose peer sent no message for this long. */
  idleTimeout: number
}

/** What `sweep` found. */
export const SWEEP_OK = 0
export const SWEEP_IDLE = 1
export const SWEEP_DEAD = 2

const START = Date.now()
/**
 * Time in tenths of a second since this module loaded: small integers (V8
 * keeps them in the object's fields without a heap box), fine enough for
 * timeouts of seconds, and good for three years.
 */
export function coarseNow(): number {
  return Math.floor((Date.now() - START) / 100)
}

/** A codec as the driver uses it: inflation, release, and what it holds for the receive budget. */
export type DriverCodec = InflateCodec & { close(): void; readonly bytesHeld?: number; discardIncoming?(): void }

const FLUSH_SCHEDULED = 1
const PAUSED = 2
const CLOSED = 4
/** Events are being dispatched; the flush that ends the dispatch takes what they send. */
const DISPATCHING = 8
/** `watchWritable` was called: tell the handler once the socket can take more. */
const WANT_WRITABLE = 16
/** Heartbeats or an idle timeout need `lastReceived` and `lastMessage`. */
const TRACK_ACTIVITY = 32
/** Data arrived since our last heartbeat ping (a pong, or anything else: the peer is alive). */
const RECEIVED = 64
/** Rule 4: the transport's buffer is full; flushing waits for its drain. */
const WAITING_DRAIN = 128
/** Rule 6: the transport is paused for an asynchronous inflation. */
const INFLATE_PAUSED = 256

/** Default close timeout: 30 s, as in `ws`. */
export const DEFAULT_CLOSE_TIMEOUT = 30_000

/**
 * What only some connections need at some times: kept apart, so that an
 * open, idle connection does not carry it.
 */
class DriverRare {
  closeTimer: NodeJS.Timeout | undefined = undefined
  /** Events parsed while paused (Rule 2). */
  backlog: ConnectionEvent[] | undefined = undefined
  closedEvent: Extract<ConnectionEvent, { type: 'closed' }> | undefined = undefined
  /** An inflate request is waiting for an asynchronous answer; parsing waits for it. */
  inflating = false
  /** The peer's EOF arrived while inflating; it is handled after the answer (Rule 3). */
  endDeferred = false
}

export class SocketDriver implements TransportSink, BudgetHolder {
  private rare: DriverRare | undefined
  readonly transport: Transport
  readonly connection: Connection
  private readonly handler: DriverHandler
  private readonly closeTimeout: number
  /** FLUSH_SCHEDULED | PAUSED | CLOSED: one field, not three. */
  private flags = 0
  private callbacks: WriteCallback[] | undefined
  private readonly codec: DriverCodec | undefined
  /** What the receive and send budgets count for this connection (Rule 5), as last reported. */
  private receiveHeld = 0
  private sendHeld = 0
  /** With TRACK_ACTIVITY, in coarseNow() units: when data last arrived, a message last arrived, and our unanswered ping left (0: none). */
  private lastReceived = 0
  private lastMessage = 0
  private pingSentAt = 0

  constructor(transport: Transport, connection: Connection, handler: DriverHandler, options: DriverOptions = {}) {
    this.transport = transport
    this.connection = connection
    this.handler = handler
    this.closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
    this.codec = options.codec
    if (options.trackActivity) {
      this.flags |= TRACK_ACTIVITY
      this.lastReceived = this.lastMessage = coarseNow()
    }
  }

  /**
   * One heartbeat and idle check, called periodically by whoever owns the
   * timer (a server sweeps all its sockets with one timer). Pings a peer
   * that has been silent for `pingInterval`; reports it dead if, `pongTimeout`
   * after the ping, nothing at all has arrived; reports idle when no message
   * arrived for `idleTimeout`.
   */
  sweep(now: number, settings: SweepSettings): number {
    if ((this.flags & (CLOSED | TRACK_ACTIVITY)) !== TRACK_ACTIVITY) return SWEEP_OK
    if (settings.idleTimeout > 0 && (now - this.lastMessage) * 100 >= settings.idleTimeout) return SWEEP_IDLE
    if (settings.pingInterval <= 0) return SWEEP_OK
    if (this.pingSentAt !== 0) {
      if ((this.flags & RECEIVED) !== 0) this.pingSentAt = 0
      else if ((now - this.pingSentAt) * 100 >= settings.pongTimeout) return SWEEP_DEAD
      else return SWEEP_OK
    }
    if ((now - this.lastReceived) * 100 >= settings.pingInterval && this.connection.canSend) {
      this.connection.sendPing()
      this.flags &= ~RECEIVED
      this.pingSentAt = Math.max(now, 1)
      // A server sweeps all its sockets in one loop: a ping written at once leaves nothing behind (a tick, a
      // queue) to outlive the loop, which made V8 grow its young generation and promote 10,000 sockets' worth
      // of them at each heartbeat (issue 18's idle-memory runs).
      if ((this.flags & DISPATCHING) === 0) this.flush()
      else this.queued()
    }
    return SWEEP_OK
  }

  private rareState(): DriverRare {
    return (this.rare ??= new DriverRare())
  }

  /** Starts reading; `head` holds bytes that arrived with the handshake. */
  start(head?: Uint8Array): void {
    this.transport.start(this, head)
  }

  /** Call after the front end queued frames on the connection; `callback` runs once they are written. */
  queued(callback?: WriteCallback): void {
    if (callback !== undefined) (this.callbacks ??= []).push(callback)
    // Rule 5: what waits for a full socket is counted as it grows.
    if ((this.flags & WAITING_DRAIN) !== 0) this.accountSend()
    // Sends made while events are dispatched leave with the flush that ends the dispatch.
    if ((this.flags & (FLUSH_SCHEDULED | DISPATCHING)) === 0) {
      this.flags |= FLUSH_SCHEDULED
      scheduleFlush(this)
    }
  }

  /** Flushes at once what was queued, unless events are being dispatched (their flush follows). */
  flushNow(): void {
    if ((this.flags & (FLUSH_SCHEDULED | DISPATCHING)) === FLUSH_SCHEDULED) this.flush()
  }

  /**
   * Asks for one `driverWritable` call once what is queued now has been
   * handed to the kernel without filling the transport's buffer, or, if it
   * fills it, once the buffer drains.
   */
  watchWritable(): void {
    if ((this.flags & CLOSED) !== 0) return
    this.flags |= WANT_WRITABLE
    this.queued()
  }

  /** Writes everything the connection queued, then half-closes if it asks to. */
  flush(): void {
    this.flags &= ~FLUSH_SCHEDULED
    const connection = this.connection
    const transport = this.transport
    this.watchDrain()
    // Core Rule 5: a close frame held behind events the application has not seen yet (it paused while
    // handling an earlier one) waits for them, as the answers to them must go out before it.
    const chunks = connection.dataToSend(this.rare?.backlog === undefined)
    const callbacks = this.callbacks
    this.callbacks = undefined
    if (chunks.length > 0 && transport.writable) {
      transport.write(chunks, callbacks === undefined ? undefined : callbackAll(callbacks))
    } else if (callbacks !== undefined) {
      const error = new Error('WebSocket is not open: the socket is closed')
      for (const callback of callbacks) process.nextTick(callback, chunks.length > 0 ? error : undefined)
    }
    if (connection.eofToSend() && !transport.destroyed) transport.end()
    if ((this.flags & WANT_WRITABLE) !== 0 && !transport.needsDrain && !transport.destroyed) {
      this.flags &= ~WANT_WRITABLE
      process.nextTick(notifyWritable, this.handler)
    }
    // A large write may have filled the socket's buffer: from now on ping answers wait, and its backlog counts.
    this.watchDrain()
    this.armCloseTimer()
  }

  /** Rule 4: once the socket's buffer is full, ping answers wait as one until it drains; Rule 5: the backlog counts. */
  private watchDrain(): void {
    if (!this.transport.needsDrain || (this.flags & CLOSED) !== 0 || this.transport.destroyed) return
    if ((this.flags & WAITING_DRAIN) === 0) {
      this.flags |= WAITING_DRAIN
      this.connection.setOutputBlocked(true)
    }
    this.accountSend()
  }

  /** Rule 5: tells the send budget what waits for this connection's full socket. */
  private accountSend(): void {
    const held = this.bufferedAmount
    if (held !== this.sendHeld) {
      this.sendHeld = held
      sendBudget.hold(this, held)
    }
  }

  private armCloseTimer(): void {
    if (this.connection.closeExpected() && this.rare?.closeTimer === undefined && (this.flags & CLOSED) === 0) {
      const timer = setTimeout(onCloseTimeout, this.closeTimeout, this)
      timer.unref?.()
      this.rareState().closeTimer = timer
    }
  }

  /** Bytes accepted for sending and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.connection.bytesToSend + ((this.flags & CLOSED) !== 0 ? 0 : this.transport.writableLength)
  }

  pause(): void {
    if ((this.flags & PAUSED) !== 0) return
    this.flags |= PAUSED
    if ((this.flags & CLOSED) === 0) this.transport.pause()
  }

  resume(): void {
    if ((this.flags & PAUSED) === 0) return
    this.flags &= ~PAUSED
    const backlog = this.rare?.backlog
    if (this.rare !== undefined) this.rare.backlog = undefined
    if (backlog !== undefined) this.dispatch(backlog)
    // Answers to inflate requests in the backlog may have produced more events.
    this.collect()
    if ((this.flags & (PAUSED | CLOSED | INFLATE_PAUSED)) === 0) this.transport.resume()
  }

  get isPaused(): boolean {
    return (this.flags & PAUSED) !== 0
  }

  /** @internal The close timer fired. */
  closeTimedOut(): void {
    this.handler.driverCloseTimeout?.()
    this.destroy()
  }

  /** Tears the connection down at once (ws `terminate`). */
  destroy(): void {
    // A shared run this connection holds must not count the messages published after this as delivered to it.
    this.connection.closeRun()
    this.transport.destroy()
  }

  /**
   * Tears the connection down after handing the transport what was sent
   * before (ws `terminate`: a message or close frame sent just before it still
   * leaves, as in ws, where `send` writes at once). A peer that does not read
   * gets what fits in the kernel's buffer; the rest is dropped with the socket.
   */
  terminate(): void {
    if ((this.flags & CLOSED) === 0 && this.transport.writable) this.flush()
    this.transport.destroy()
  }

  // ---------------------------------------------------- TransportSink

  bytesCopiedOnReceipt(bytes: Uint8Array, start: number, end: number): number {
    return (this.flags & (PAUSED | CLOSED)) === 0 ? this.connection.bytesCopiedOnReceipt(bytes, start, end) : 0
  }

  transportData(chunk: Buffer): void {
    if ((this.flags & TRACK_ACTIVITY) !== 0) {
      this.lastReceived = coarseNow()
      this.flags |= RECEIVED
    }
    this.connection.receiveData(chunk)
    this.collect()
  }

  /** Rule 5: tells the receive budget what this connection holds; false if the budget failed it. */
  private account(): boolean {
    const held = this.connection.bytesHeld + (this.codec?.bytesHeld ?? 0)
    if (held === this.receiveHeld) return true
    this.receiveHeld = held
    return receiveBudget.hold(this, held)
  }

  /** @internal The receive budget is spent and this connection holds the most: fail it with 1013. */
  failForBudget(): void {
    this.receiveHeld = 0
    this.connection.failConnection(
      new ProtocolError('TETHER_ERR_RECEIVE_MEMORY', 'Receive memory budget exceeded: this connection held the most', 1013),
    )
    this.codec?.discardIncoming?.()
    // Another connection's read got us here: report and flush on our own turn.
    if ((this.flags & DISPATCHING) === 0) process.nextTick(collectDriver, this)
  }

  /** @internal The send budget is spent and this connection's peer holds the most unread: terminate it. */
  failForSendBudget(): void {
    this.sendHeld = 0
    this.handler.driverSendBudgetExceeded?.()
    this.destroy()
  }

  transportEnd(): void {
    // EOF must not overtake bytes received before it that wait behind an asynchronous
    // inflation (a close frame right after a compressed message, then FIN, as ws sends).
    if (this.rare?.inflating) {
      this.rareState().endDeferred = true
      return
    }
    this.connection.receiveEof()
    this.collect()
    // The peer will send nothing more; finish our side too.
    if (!this.transport.destroyed) this.transport.end()
  }

  transportClosed(): void {
    if ((this.flags & CLOSED) !== 0) return
    this.flags |= CLOSED
    if (this.rare?.closeTimer !== undefined) clearTimeout(this.rare?.closeTimer)
    if (this.rare !== undefined) this.rare.closeTimer = undefined
    // Rule 3: the connection is over, so flow control no longer matters: deliver
    // what was parsed (even while paused, and finishing compressed messages
    // already received), then 'closed'. From here on PAUSED holds nothing back
    // (a listener may still call pause(), as createWebSocketStream does), though
    // isPaused keeps telling what the application asked for, as in ws.
    const backlog = this.rare?.backlog
    if (this.rare !== undefined) this.rare.backlog = undefined
    if (backlog !== undefined) this.dispatch(backlog)
    this.finishGone()
  }

  /** The rest of transportClosed, once no asynchronous inflation is pending. */
  private finishGone(): void {
    this.collect()
    // A compressed message received before the socket closed is still being inflated:
    // finish it (and what was received after it) first; the answer calls back here.
    if (this.rare?.inflating) return
    this.connection.abort()
    this.collect()
    this.codec?.close()
    receiveBudget.release(this)
    sendBudget.release(this)
    this.receiveHeld = this.sendHeld = 0
    // Sends still waiting for a drain (Rule 4) never left.
    const callbacks = this.callbacks
    this.callbacks = undefined
    if (callbacks !== undefined) {
      const error = new Error('WebSocket is not open: the socket is closed')
      for (const callback of callbacks) process.nextTick(callback, error)
    }
    const closed = this.rare?.closedEvent
    if (closed !== undefined) this.handler.driverClosed(closed.code, asBuffer(closed.reason), closed.wasClean)
  }

  transportDrained(): void {
    if (this.sendHeld !== 0) {
      this.sendHeld = 0
      sendBudget.release(this)
    }
    if ((this.flags & WAITING_DRAIN) !== 0) {
      this.flags &= ~WAITING_DRAIN
      this.connection.setOutputBlocked(false)
      this.flush()
    }
    if ((this.flags & WANT_WRITABLE) !== 0) {
      this.flags &= ~WANT_WRITABLE
      this.handler.driverWritable?.()
    }
    this.handler.driverDrain?.()
  }

  /** @internal Dispatches what a failure from outside (the receive budget) queued. */
  collectLater(): void {
    if ((this.flags & CLOSED) === 0) this.collect()
  }

  /** Dispatches new events, and those their handling caused (inflated messages), then flushes. */
  private collect(): void {
    const nested = (this.flags & DISPATCHING) !== 0
    this.flags |= DISPATCHING
    try {
      this.account()
      this.dispatchAll()
    } finally {
      if (!nested) this.flags &= ~DISPATCHING
    }
    this.flush()
  }

  private dispatchAll(): void {
    while (this.connection.hasEvents) {
      const events = this.connection.eventsReceived()
      if ((this.flags & (PAUSED | CLOSED)) === PAUSED) {
        if (this.rare?.backlog === undefined) this.rareState().backlog = events
        else for (const event of events) this.rare?.backlog.push(event)
        break
      }
      this.dispatch(events)
    }
  }

  /**
   * Answers an inflate request. A synchronous answer is taken up by the
   * loop in `collect`; a later one starts a new round.
   */
  private inflate(request: Extract<ConnectionEvent, { type: 'inflate' }>): void {
    const codec = this.codec ?? noCodec()
    let answered = false
    let synchronous = true
    codec.inflate(
      request.data,
      request.end,
      request.limit,
      (outcome) => {
        if (answered) return
        answered = true
        if (this.rare !== undefined) this.rare.inflating = false
        this.connection.receiveInflated(outcome)
        if (synchronous) return
        if ((this.flags & INFLATE_PAUSED) !== 0) {
          this.flags &= ~INFLATE_PAUSED
          if ((this.flags & (PAUSED | CLOSED)) === 0) this.transport.resume()
        }
        if ((this.flags & CLOSED) !== 0) return this.finishGone()
        this.collect()
        if (this.rare?.endDeferred && !this.rare?.inflating) {
          this.rare!.endDeferred = false
          this.transportEnd()
        }
      },
      // The output is copied into the message as it comes, and counted (Rule 5).
      (piece) => this.connection.receiveInflatedData(piece) && this.account(),
    )
    synchronous = false
    if (!answered) {
      this.rareState().inflating = true
      // Rule 6.
      if ((this.flags & (PAUSED | CLOSED | INFLATE_PAUSED)) === 0) {
        this.flags |= INFLATE_PAUSED
        this.transport.pause()
      }
    }
  }

  private dispatch(events: ConnectionEvent[]): void {
    const handler = this.handler
    for (let i = 0; i < events.length; i++) {
      if ((this.flags & (PAUSED | CLOSED)) === PAUSED) {
        // Rule 2: the rest waits for resume().
        this.rareState().backlog = events.slice(i).concat(this.rare?.backlog ?? [])
        return
      }
      const event = events[i]!
      switch (event.type) {
        case 'message':
          if ((this.flags & TRACK_ACTIVITY) !== 0) this.lastMessage = coarseNow()
          handler.driverMessage(asBuffer(event.data), event.binary)
          break
        case 'ping':
          handler.driverPing(asBuffer(event.data))
          break
        case 'pong':
          handler.driverPong(asBuffer(event.data))
          break
        case 'close':
          handler.driverCloseFrame(event.code, asBuffer(event.reason))
          break
        case 'error':
          handler.driverError(event.error)
          break
        case 'closed':
          // Rule 3: reported by transportClosed(), once the transport is gone.
          this.rareState().closedEvent = event
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

function collectDriver(driver: SocketDriver): void {
  driver.collectLater()
}

/**
 * Drivers with something to write, flushed together in one tick: a publish to
 * a thousand subscribers schedules one tick, not a thousand. A driver queued
 * while they flush joins the same pass, so each is flushed after everything
 * queued before it, as with one tick each.
 */
let flushQueue: SocketDriver[] = []
let flushPending = false

function scheduleFlush(driver: SocketDriver): void {
  flushQueue.push(driver)
  if (!flushPending) {
    flushPending = true
    process.nextTick(flushQueued)
  }
}

function flushQueued(): void {
  const queue = flushQueue
  let i = 0
  try {
    for (; i < queue.length; i++) queue[i]!.flush()
  } finally {
    // A flush that threw (a bug) must not leave the drivers behind it waiting for a tick that never comes.
    flushQueue = i + 1 < queue.length ? queue.slice(i + 1) : []
    flushPending = false
    if (flushQueue.length > 0) {
      flushPending = true
      process.nextTick(flushQueued)
    }
  }
}

function onCloseTimeout(driver: SocketDriver): void {
  driver.closeTimedOut()
}

function notifyWritable(handler: DriverHandler): void {
  handler.driverWritable?.()
}
