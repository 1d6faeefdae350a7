/**
 * An in-memory connection between two transports, with faults on demand:
 * latency, delivery in small pieces, a reader that stops or slows down, a
 * connection that is cut, and one that goes half-open (nothing arrives any
 * more and nobody is told, as when a peer vanishes without a FIN).
 *
 * Theory of operation: each direction is a queue of bytes. A write is
 * accepted at once (like a kernel buffer) and counts in the writer's
 * `writableLength` until the reader takes it; a paused, slow or half-open
 * reader therefore makes the writer see backpressure (needsDrain, then
 * drain), exactly the signals a real socket gives. Delivery happens on
 * timers, so the order of events is the same on every run.
 */
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { Transport, TransportSink, WriteCallback } from '../node/transport.js'

/** The same as a TCP transport's: a write that leaves this much queued asks for drain. */
const HIGH_WATER_MARK = 16 * 1024

export interface LinkFaults {
  /** Milliseconds before written bytes start to arrive. Default 0. */
  latency?: number
  /** Deliver at most this many bytes at a time (1: byte by byte). Default: whole writes. */
  chunkSize?: number
  /** Bytes per second each reader takes (a slow reader). Default: as fast as it can. */
  readRate?: number
}

type Side = 'client' | 'server'

class Direction {
  readonly queue: Buffer[] = []
  queued = 0
  paused = false
  scheduled = false
  readonly callbacks: Array<{ until: number; callback: WriteCallback }> = []
  delivered = 0
  written = 0
  /** The writer's end (FIN) reached the reader. */
  ended = false
}

/** One end of a link. */
class LinkEnd implements Transport {
  readonly link: FaultyLink
  readonly side: Side
  sink: TransportSink | undefined
  destroyed = false
  #ended = false
  #needsDrain = false
  #readPaused = false
  #socket: Socket | undefined

  constructor(link: FaultyLink, side: Side) {
    this.link = link
    this.side = side
  }

  start(sink: TransportSink, head?: Uint8Array): void {
    this.sink = sink
    if (head !== undefined && head.length > 0) {
      const bytes = Buffer.from(head)
      setImmediate(() => this.sink?.transportData(bytes))
    }
    this.link._pump(this.side === 'client' ? 'toClient' : 'toServer')
  }

  write(chunks: Uint8Array[], callback?: WriteCallback): void {
    if (this.destroyed || this.#ended) {
      if (callback) process.nextTick(callback, new Error('write after end'))
      return
    }
    this.link._write(this, chunks, callback)
    if (this.writableLength >= HIGH_WATER_MARK) this.#needsDrain = true
  }

  end(): void {
    if (this.destroyed || this.#ended) return
    this.#ended = true
    this.link._end(this)
  }

  destroy(): void {
    this.link._destroy(this)
  }

  pause(): void {
    this.#readPaused = true
  }

  resume(): void {
    this.#readPaused = false
    this.link._pump(this.side === 'client' ? 'toClient' : 'toServer')
  }

  get readPaused(): boolean {
    return this.#readPaused
  }

  get writableLength(): number {
    return this.destroyed ? 0 : this.link._outgoing(this).queued
  }

  get needsDrain(): boolean {
    return this.#needsDrain && !this.destroyed
  }

  get writable(): boolean {
    return !this.destroyed && !this.#ended
  }

  /** @internal The peer took bytes; the writer may drain. */
  _progress(): void {
    if (this.#needsDrain && this.writableLength === 0) {
      this.#needsDrain = false
      this.sink?.transportDrained()
    }
  }

  /** A stand-in for `ws._socket`: addresses and the counters applications read. */
  get socket(): Socket {
    if (this.#socket === undefined) {
      const socket = new EventEmitter() as EventEmitter & Record<string, unknown>
      Object.assign(socket, {
        remoteAddress: `memory:${this.side === 'client' ? 'server' : 'client'}`,
        remotePort: 0,
        localAddress: `memory:${this.side}`,
        localPort: 0,
        setNoDelay: () => socket,
        setKeepAlive: () => socket,
        setTimeout: () => socket,
      })
      this.#socket = socket as unknown as Socket
    }
    return this.#socket
  }
}

export class FaultyLink {
  readonly client: Transport
  readonly server: Transport
  #faults: Required<Pick<LinkFaults, 'latency'>> & LinkFaults
  readonly #toClient = new Direction()
  readonly #toServer = new Direction()
  #halfOpen = false
  #gone = false

  constructor(faults: LinkFaults = {}) {
    this.#faults = { latency: 0, ...faults }
    this.client = new LinkEnd(this, 'client')
    this.server = new LinkEnd(this, 'server')
  }

  /** Changes the faults; they apply to what is delivered from now on. */
  set(faults: LinkFaults): void {
    this.#faults = { ...this.#faults, ...faults }
    this._pump('toClient')
    this._pump('toServer')
  }

  /** Stops (or resumes) the reader on `side`: what is sent to it piles up at the writer. */
  pauseReading(side: Side, paused = true): void {
    const direction = side === 'client' ? this.#toClient : this.#toServer
    direction.paused = paused
    if (!paused) this._pump(side === 'client' ? 'toClient' : 'toServer')
  }

  /** The connection is lost: both ends are closed at once, without a closing handshake (1006). */
  cut(): void {
    this._destroy(this.client as LinkEnd)
  }

  /** From now on nothing arrives in either direction and neither end is told (a vanished peer). */
  halfOpen(): void {
    this.#halfOpen = true
  }

  /** Bytes written towards each side and not yet taken by it. */
  get inFlight(): { toClient: number; toServer: number } {
    return { toClient: this.#toClient.queued, toServer: this.#toServer.queued }
  }

  // ------------------------------------------------------------ the ends' side

  /** @internal */
  _outgoing(end: LinkEnd): Direction {
    return end.side === 'client' ? this.#toServer : this.#toClient
  }

  /** @internal */
  _write(end: LinkEnd, chunks: Uint8Array[], callback: WriteCallback | undefined): void {
    const direction = this._outgoing(end)
    for (const chunk of chunks) {
      if (chunk.length === 0) continue
      direction.queue.push(Buffer.from(chunk))
      direction.queued += chunk.length
      direction.written += chunk.length
    }
    // Like a socket's write callback: called once these bytes have left (here: reached the reader).
    if (callback) direction.callbacks.push({ until: direction.written, callback })
    this._pump(end.side === 'client' ? 'toServer' : 'toClient')
  }

  /** @internal */
  _end(end: LinkEnd): void {
    const name = end.side === 'client' ? 'toServer' : 'toClient'
    const direction = this._outgoing(end)
    // The FIN follows the data.
    direction.queue.push(END)
    this._pump(name)
  }

  /**
   * @internal Either end going away closes both (a reset connection), except
   * on a half-open link, where the other end is never told.
   */
  _destroy(end: LinkEnd): void {
    const peer = (end.side === 'client' ? this.server : this.client) as LinkEnd
    const targets = this.#halfOpen ? [end] : [end, peer]
    if (targets.every((target) => target.destroyed)) return
    if (!this.#halfOpen || peer.destroyed) this.#gone = true
    for (const target of targets) {
      if (target.destroyed) continue
      target.destroyed = true
      const direction = this._outgoing(target)
      for (const { callback } of direction.callbacks.splice(0)) process.nextTick(callback, new Error('The link was closed'))
      setImmediate(() => target.sink?.transportClosed())
    }
  }

  /** @internal Delivers what the reader may take now; schedules the rest. */
  _pump(name: 'toClient' | 'toServer'): void {
    const direction = name === 'toClient' ? this.#toClient : this.#toServer
    if (direction.scheduled || direction.queue.length === 0 || this.#gone || this.#halfOpen) return
    const reader = (name === 'toClient' ? this.client : this.server) as LinkEnd
    if (direction.paused || reader.readPaused || reader.sink === undefined) return
    direction.scheduled = true
    const rate = this.#faults.readRate
    const chunkSize = this.#faults.chunkSize ?? Number.POSITIVE_INFINITY
    // A slow reader takes a piece every 10 ms.
    const budget = rate === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(rate / 100))
    const delay = rate === undefined ? this.#faults.latency : Math.max(this.#faults.latency, 10)
    const deliver = (): void => {
      direction.scheduled = false
      if (this.#gone || this.#halfOpen || direction.paused || reader.readPaused) return
      let allowance = Math.min(budget, chunkSize)
      const head = direction.queue[0]!
      if (head === END) {
        direction.queue.shift()
        direction.ended = true
        reader.sink?.transportEnd()
        // Both sides have ended: the connection is closed, as TCP's is after both FINs.
        if (this.#toClient.ended && this.#toServer.ended) return this._destroy(reader)
        return this._pump(name)
      }
      const piece = head.length <= allowance ? head : head.subarray(0, allowance)
      if (piece === head) direction.queue.shift()
      else direction.queue[0] = head.subarray(piece.length)
      allowance -= piece.length
      direction.queued -= piece.length
      direction.delivered += piece.length
      const writer = (name === 'toClient' ? this.server : this.client) as LinkEnd
      while (direction.callbacks.length > 0 && direction.callbacks[0]!.until <= direction.delivered) {
        direction.callbacks.shift()!.callback(null)
      }
      reader.sink!.transportData(piece)
      writer._progress()
      this._pump(name)
    }
    if (delay > 0) setTimeout(deliver, delay)
    else setImmediate(deliver)
  }
}

const END = Buffer.alloc(0)
