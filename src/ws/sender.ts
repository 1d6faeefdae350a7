/**
 * The send path of a WebSocket: what happens between `send()` and the
 * connection's frame writer when a message cannot simply be framed at once.
 *
 * Theory of operation: most sends are a whole message with nothing ahead of
 * it; the WebSocket frames those itself (`sendNow`). The rest go through a
 * `Sender`, created on first need: a Blob must be read before it can be
 * framed, a compressed message may be deflated asynchronously, a fragmented
 * message must be finished before another message's frames may follow it
 * (RFC 6455 §5.4), and a close frame asked for meanwhile must follow what was
 * sent before it. So a send that cannot go now waits in the queue, in order;
 * `drain` sends from the head whenever whatever blocked it finishes.
 *
 * Rule 1: order is the order of the calls: data, prepared (published)
 * frames, pings and pongs, and the close frame alike.
 * Rule 2: every queued byte counts in `queuedBytes` (and so in the socket's
 * `bufferedAmount`) until it is framed; then the connection counts it.
 * Rule 3: a send that can no longer go (the connection closed meanwhile) is
 * refused through the host: the callback hears of it, nothing throws.
 * Rule 4: only servers send prepared frames as they are; a client masks each
 * frame with its own key, so it sends the prepared message's payload.
 */
import { ProtocolError } from '../core/errors.js'
import type { SocketDriver } from '../node/driver.js'
import { PreparedMessage } from '../node/prepared.js'
import type { ZlibCodec } from '../node/zlib-codec.js'

export type SendCallback = (error?: Error | null) => void

/** A send waiting for one ahead of it, or a close frame waiting behind them. */
export interface QueuedSend {
  data: Buffer | Blob | PreparedMessage
  binary: boolean
  fin: boolean
  compress: boolean
  callback: SendCallback | undefined
  close?: { code: number; reason: Buffer }
  /** A ping or pong asked for while sends wait: it follows them, as in ws. */
  control?: 'ping' | 'pong'
}

/** What the sender needs from the WebSocket it sends for. */
export interface SenderHost {
  /** Rule 3: a send that cannot go any more. */
  refuse(data: Buffer | Blob | PreparedMessage, callback: SendCallback | undefined): void
  /** A Blob could not be read: report it and close (1011). */
  blobFailed(error: Error): void
  /** A published message for this socket (it waited behind a fragmented send). */
  deliverPublished(prepared: PreparedMessage): void
}

export function isBlob(value: unknown): value is Blob {
  return typeof Blob !== 'undefined' && value instanceof Blob
}

/** Bytes a queued item will take (before framing). */
export function sizeOf(data: Buffer | Blob | PreparedMessage): number {
  return isBlob(data) ? data.size : data instanceof PreparedMessage ? data.data.length : data.length
}

/** Frames a whole message now (the common case: nothing ahead of it, no compression). */
export function sendNow(driver: SocketDriver, bytes: Uint8Array, binary: boolean, callback: SendCallback | undefined): void {
  if (binary) driver.connection.sendBinary(bytes)
  else driver.connection.sendText(bytes)
  driver.queued(callback)
}

/** Writes a prepared (server) frame: the same bytes every receiver with these settings gets. */
export function sendPreparedNow(
  driver: SocketDriver,
  codec: ZlibCodec | undefined,
  prepared: PreparedMessage,
  compress: boolean,
  callback: SendCallback | undefined,
): void {
  const frame = prepared.frameFor(codec, compress)
  // A compressed frame (RSV1) enters the peer's inflate window behind our deflater's back.
  if ((frame[0]! & 0x40) !== 0) codec!.forgetHistory()
  driver.connection.sendPrepared(frame)
  driver.queued(callback)
}

/** Sends a ping or pong now (nothing queued is ahead of it). */
export function sendControlNow(driver: SocketDriver, kind: 'ping' | 'pong', bytes: Uint8Array, callback: SendCallback | undefined): void {
  if (kind === 'ping') driver.connection.sendPing(bytes)
  else driver.connection.sendPong(bytes)
  driver.queued(callback)
}

export class Sender {
  private readonly driver: SocketDriver
  private readonly codec: ZlibCodec | undefined
  private readonly server: boolean
  private readonly host: SenderHost
  private queue: QueuedSend[] | undefined
  /** Rule 2. */
  queuedBytes = 0
  /** A Blob ahead in the queue is being read. */
  private readingBlob = false
  /** The connection closed while a Blob was being read (`fail`). */
  private closed = false
  /** An asynchronous compression has not answered yet. */
  private compressing = false
  /** Whether the fragmented message being sent is compressed (decided on its first fragment); undefined: none. */
  private sendingCompressed: boolean | undefined
  /** Published messages that arrived in the middle of a fragmented send; they follow its last fragment. */
  private waitingPublished: PreparedMessage[] | undefined

  constructor(driver: SocketDriver, codec: ZlibCodec | undefined, server: boolean, host: SenderHost) {
    this.driver = driver
    this.codec = codec
    this.server = server
    this.host = host
  }

  /** Whether sends must go through the queue (something is ahead of them). */
  get busy(): boolean {
    return this.queue !== undefined
  }

  /** A fragmented message is being sent: another message's frames may not come yet. */
  get fragmenting(): boolean {
    return this.sendingCompressed !== undefined
  }

  /** Sends `item` now if nothing is ahead of it (and it is not a Blob), else queues it (Rule 1). */
  send(item: QueuedSend): void {
    if (this.queue === undefined && !isBlob(item.data)) return this.sendItem(item)
    this.enqueue(item)
  }

  /** A published message, behind what was sent before it. Returns false if it cannot go any more. */
  deliver(prepared: PreparedMessage): boolean {
    // A fragmented message is being sent: frames of another message may not come between its fragments.
    if (this.sendingCompressed !== undefined) {
      ;(this.waitingPublished ??= []).push(prepared)
      return true
    }
    if (this.queue !== undefined) {
      this.enqueue({ data: prepared, binary: prepared.binary, fin: true, compress: prepared.compress, callback: undefined })
      return true
    }
    if (!this.driver.connection.canSend) return false
    this.sendItem({ data: prepared, binary: prepared.binary, fin: true, compress: prepared.compress, callback: undefined })
    return true
  }

  /** A ping or pong behind the sends that wait (the caller sends it at once when none does). */
  control(kind: 'ping' | 'pong', bytes: Buffer, callback: SendCallback | undefined): void {
    this.enqueue({ data: bytes, binary: false, fin: true, compress: false, callback, control: kind })
  }

  /** The close frame: after everything queued (ws queues its close frame the same way), or now. */
  close(code: number, reason: Buffer): void {
    if (this.queue !== undefined) {
      this.queue.push({ data: EMPTY, binary: false, fin: true, compress: false, callback: undefined, close: { code, reason } })
      return
    }
    this.driver.connection.sendClose(code, reason)
    this.driver.queued()
  }

  /**
   * The connection closed: what is still queued is refused (Rule 3). While a
   * Blob is being read, the queue waits for the read to settle, as in ws:
   * then every queued send's callback hears the read's error, or, if it was
   * read, that the socket closed meanwhile.
   */
  fail(): void {
    if (this.readingBlob) {
      this.closed = true
      return
    }
    this.refuseAll(undefined)
  }

  /** Empties the queue: each send's callback gets `error`, or the host refuses it (Rule 3). */
  private refuseAll(error: Error | undefined): void {
    const queue = this.queue
    if (queue === undefined) return
    this.queue = undefined
    for (const item of queue) {
      this.queuedBytes -= sizeOf(item.data)
      if (item.close !== undefined) continue
      if (error !== undefined) item.callback?.(error)
      else this.host.refuse(item.data, item.callback)
    }
  }

  private enqueue(item: QueuedSend): void {
    this.queuedBytes += sizeOf(item.data)
    ;(this.queue ??= []).push(item)
    this.drain()
  }

  /** Sends queued items in order; a Blob is read, and a compression finished, before anything behind it. */
  private drain(): void {
    const queue = this.queue
    while (queue !== undefined && queue.length > 0 && !this.readingBlob && !this.compressing) {
      const item = queue[0]!
      if (isBlob(item.data)) return this.readBlob(queue, item, item.data)
      queue.shift()
      this.queuedBytes -= sizeOf(item.data)
      if (!this.driver.connection.canSend) {
        if (item.close === undefined) this.host.refuse(item.data, item.callback)
        continue
      }
      this.sendItem(item)
    }
    if (queue !== undefined && queue.length === 0 && !this.readingBlob && !this.compressing && this.queue === queue) {
      this.queue = undefined
    }
  }

  private readBlob(queue: QueuedSend[], item: QueuedSend, blob: Blob): void {
    this.readingBlob = true
    blob.arrayBuffer().then(
      (buffer) => {
        this.readingBlob = false
        item.data = Buffer.from(buffer)
        this.queuedBytes += item.data.length - blob.size
        // The socket closed (or was terminated) while the Blob was read: nothing queued can go.
        if ((this.closed || this.driver.transport.destroyed) && this.queue === queue) {
          return this.refuseAll(new Error('The socket was closed while the blob was being read'))
        }
        this.drain()
      },
      (error: Error) => {
        this.readingBlob = false
        if (this.closed) return this.refuseAll(error)
        if (this.queue === queue) queue.shift()
        this.queuedBytes -= blob.size
        if (item.callback) process.nextTick(item.callback, error)
        this.host.blobFailed(error)
        this.drain()
      },
    )
  }

  /** Sends one item now: compressing it if agreed, or queueing what follows while compression is pending. */
  private sendItem(item: QueuedSend): void {
    const driver = this.driver
    const connection = driver.connection
    if (item.close !== undefined) {
      connection.sendClose(item.close.code, item.close.reason)
      driver.queued()
      return
    }
    if (item.control !== undefined) {
      if (!connection.canSend) return this.host.refuse(item.data, item.callback)
      return sendControlNow(driver, item.control, item.data as Buffer, item.callback)
    }
    // The core may have sent its close frame (the peer's close, a failure) before the
    // socket's readyState heard of it, e.g. while 'message' listeners of the same read
    // run or events wait behind pause(): the send is refused like one while CLOSING.
    if (!connection.canSend) return this.host.refuse(item.data, item.callback)
    if (item.data instanceof PreparedMessage) {
      const prepared = item.data
      if (this.server && this.sendingCompressed === undefined) {
        return sendPreparedNow(driver, this.codec, prepared, item.compress, item.callback)
      }
      // Rule 4.
      item = { ...item, data: prepared.data }
    }
    const bytes = item.data as Buffer
    const codec = this.codec
    // RFC 7692 §6: compression is decided for a whole message, on its first fragment.
    const continuation = this.sendingCompressed !== undefined
    const compressed = this.sendingCompressed ?? (codec !== undefined && item.compress && codec.shouldCompress(bytes.length))
    if (!item.fin || continuation) this.sendingCompressed = item.fin ? undefined : compressed
    if (!compressed) return this.write(bytes, item.binary, item.fin, false, item.callback)
    this.compressing = true
    let synchronous = true
    codec!.deflate(bytes, item.fin, (output) => {
      this.compressing = false
      if (output === undefined && (continuation || !item.fin)) {
        // A fragment of a compressed message could not be compressed: the message cannot be finished.
        connection.failConnection(new ProtocolError('WS_ERR_EXTENSION_FAILURE', 'Compression failed', 1011))
        driver.queued()
      } else if (connection.canSend) {
        // undefined: the message goes out as it is (it would not shrink).
        this.write(output ?? bytes, item.binary, item.fin, output !== undefined, item.callback)
      } else {
        this.host.refuse(bytes, item.callback)
      }
      if (!synchronous) this.drain()
    })
    synchronous = false
    // An answer still pending: later sends wait in the queue, in order.
    if (this.compressing) this.queue ??= []
  }

  private write(bytes: Uint8Array, binary: boolean, fin: boolean, compressed: boolean, callback: SendCallback | undefined): void {
    const driver = this.driver
    if (binary) driver.connection.sendBinary(bytes, fin, compressed)
    else driver.connection.sendText(bytes, fin, compressed)
    driver.queued(callback)
    if (fin && this.waitingPublished !== undefined) {
      const waiting = this.waitingPublished
      this.waitingPublished = undefined
      for (const prepared of waiting) this.host.deliverPublished(prepared)
    }
  }
}

const EMPTY = Buffer.alloc(0)
