/**
 * What `ws._socket` and `request.socket` are over a bare TCP handle
 * (tcp.ts): the members applications use on a `net.Socket` (addresses,
 * write/end/destroy for `wsClientError` handlers, `setNoDelay`/
 * `setKeepAlive`/`setTimeout`, pause/resume, ref/unref, the byte counts,
 * `readyState`, 'close'), without a stream's state. A transport builds it on first use (tcp.ts Rule 5), so idle
 * connections do not pay for it.
 *
 * Rule 1: every member reads the transport at the time it is asked; nothing
 * is copied, so the facade never disagrees with the connection.
 * Rule 2: 'close' is emitted once, when the handle is closed (the transport
 * calls `emit('close', false)`).
 */
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { WriteCallback } from './transport.js'

/** What the facade needs from its transport. */
export interface SocketSource {
  readonly destroyed: boolean
  readonly writable: boolean
  readonly writableLength: number
  readonly bytesRead: number
  readonly bytesWritten: number
  address(kind: 'peer' | 'sock'): Partial<AddressInfo>
  write(chunks: Uint8Array[], callback?: WriteCallback): void
  end(): void
  destroy(): void
  setNoDelay(enable: boolean): void
  setKeepAlive(enable: boolean, delaySeconds: number): void
  readonly writableEnded: boolean
  readonly readingPaused: boolean
  pause(): void
  resume(): void
  /** Whether the connection keeps the event loop alive (`ref`/`unref`). */
  setRef(ref: boolean): void
}

/** Where Node's net starts to report backpressure: `write` answers false past it. */
export const SOCKET_HIGH_WATER_MARK = 16 * 1024

export class TcpSocket extends EventEmitter {
  readonly #transport: SocketSource
  readonly encrypted = false
  #timeout = 0
  #timer: NodeJS.Timeout | undefined

  constructor(transport: SocketSource) {
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
  /** `net.Socket`'s deprecated name for `writableLength`. */
  get bufferSize(): number {
    return this.#transport.writableLength
  }
  get writableEnded(): boolean {
    return this.#transport.writableEnded
  }
  get readyState(): 'open' | 'readOnly' | 'closed' {
    return this.#transport.destroyed ? 'closed' : this.#transport.writable ? 'open' : 'readOnly'
  }
  /** The connection is established before the facade exists. */
  get connecting(): boolean {
    return false
  }
  get pending(): boolean {
    return false
  }
  /** The idle timeout `setTimeout` set, in ms (0: none). */
  get timeout(): number {
    return this.#timeout
  }
  isPaused(): boolean {
    return this.#transport.readingPaused
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
    return this.#transport.writableLength < SOCKET_HIGH_WATER_MARK
  }

  end(data?: string | Uint8Array | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
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

  setNoDelay(noDelay = true): this {
    this.#transport.setNoDelay(noDelay)
    return this
  }
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.#transport.setKeepAlive(enable, Math.floor(initialDelay / 1000))
    return this
  }
  /** Stops reading (what `ws.pause()` does too). */
  pause(): this {
    this.#transport.pause()
    return this
  }
  resume(): this {
    this.#transport.resume()
    return this
  }
  ref(): this {
    this.#transport.setRef(true)
    return this
  }
  unref(): this {
    this.#transport.setRef(false)
    return this
  }
  /** Accepted: the WebSocket already batches what it writes in a turn into one write. */
  cork(): void {}
  uncork(): void {}
  /** Ends the writing side; the connection closes once the peer ends too (the WebSocket's closing handshake). */
  destroySoon(): void {
    if (this.#transport.writable) this.#transport.end()
    else if (!this.#transport.destroyed) this.#transport.destroy()
  }
  /**
   * Emits 'timeout' once the connection has read and written nothing for
   * about `ms` (between `ms` and twice that: activity is checked when the
   * timer fires, not on each read), as `net.Socket` does; 0 turns it off.
   * The server's own heartbeats and `idleTimeout` need none of this.
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback !== undefined) {
      if (ms === 0) this.removeListener('timeout', callback)
      else this.once('timeout', callback)
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timeout = ms
    if (ms > 0 && !this.#transport.destroyed) this.#armTimeout()
    return this
  }

  #armTimeout(): void {
    const transport = this.#transport
    const seen = transport.bytesRead + transport.bytesWritten
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (transport.destroyed || this.#timeout === 0) return
      if (transport.bytesRead + transport.bytesWritten !== seen) this.#armTimeout()
      else this.emit('timeout')
    }, this.#timeout)
    this.#timer.unref()
  }
  address(): Partial<AddressInfo> {
    return this.#transport.address('sock')
  }
}
