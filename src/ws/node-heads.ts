/**
 * Port mode over Node's HTTP server (`useNodeHttp`, `tls`, `http2`, or a
 * runtime where tether's own TCP handles are not used): the connections whose
 * request head Node's server is still reading. Each takes a place in the
 * server's handshake pool on 'connection' (per-address share, displacement,
 * the head timeout) and gives it back when its head was read (its upgrade or
 * request then decides), when it leaves, when Node refuses its head
 * ('clientError'), or when the pool stops waiting for it.
 *
 * Rule 1: over TLS, or HTTP/2 (whose clients expect frames, not an HTTP/1.1
 * answer), a refusal is a close; otherwise it is the HTTP status Node itself
 * would answer.
 * Rule 2: one 'close' listener serves every connection (`this` is the
 * socket): nothing is made per connection but its entry in the map.
 */
import * as http from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { EXIT_MESSAGES, type HandshakePool, type PendingHead, type PoolExit } from '../node/handshake-pool.js'
import type { LimitStats } from '../node/limits.js'
import type { HandshakeRefusalReason } from '../node/server-metrics.js'
import { rejectUpgrade } from '../node/server.js'

/** Marks a connection admitted to the pool, so it is found again behind a TLS socket or an HTTP/2 session. */
const kPooledSocket = Symbol('tether.pooledSocket')

/** What the heads need of their WebSocketServer. */
export interface NodeHeadsHost {
  readonly pool: HandshakePool<Duplex>
  readonly stats: LimitStats
  /** Counts a refused handshake and reports it (the server's refusal counters and diagnostics channel). */
  refused(reason: HandshakeRefusalReason, status: number, message: string | undefined, address: string | undefined): void
}

export class NodeHeads {
  readonly #heads = new Map<Duplex, PendingHead<Duplex>>()
  readonly #host: NodeHeadsHost
  /** Rule 1: refusals are closes. */
  readonly #closeToRefuse: boolean
  /** Rule 2. */
  readonly #onClose: (this: Duplex) => void

  constructor(host: NodeHeadsHost, closeToRefuse: boolean) {
    this.#host = host
    this.#closeToRefuse = closeToRefuse
    const heads = this
    this.#onClose = function onNodeSocketClose(this: Duplex): void {
      heads.#gone(this)
    }
  }

  /** A new connection of Node's server: a place in the pool while Node reads its head, or 503 if none is left. */
  admit(socket: Socket): void {
    const { pool, stats } = this.#host
    const entry = pool.admit(socket)
    if (entry === undefined) {
      stats.tooManyPending++
      this.#host.refused('too-many-pending', this.#closeToRefuse ? 0 : 503, 'Too many handshakes in progress', socket.remoteAddress)
      // Over TLS nothing can be said before the TLS handshake: just close.
      if (this.#closeToRefuse) socket.destroy()
      else rejectUpgrade(socket, 503, 'Too many handshakes in progress')
      return
    }
    this.#heads.set(socket, entry)
    ;(socket as Socket & { [kPooledSocket]?: Socket })[kPooledSocket] = socket
    socket.once('close', this.#onClose)
  }

  /**
   * Node's server could not read a request head: counted, then answered as
   * Node answers when nobody listens (`_http_server.js` socketOnError: 431,
   * 408 or 400 if nothing was written yet, then destroy).
   */
  clientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const address = (socket as Socket).remoteAddress
    // A 408 from the pool was counted when it expired the head (then the socket is no longer pending).
    const pending = this.#heads.has(socket)
    if (status === 431) {
      this.#host.stats.headersTooLarge++
      this.#host.refused('headers-too-large', 431, undefined, address)
    } else if (status === 408) {
      if (pending) this.#host.refused('timeout', 408, undefined, address)
    } else if (error.code !== 'ECONNRESET') {
      this.#host.refused('invalid-request', 400, undefined, address)
    }
    if (socket.writable && (socket as Socket).bytesWritten === 0) {
      socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`)
    }
    socket.destroy(error)
  }

  /** The request head of `socket` arrived through Node's server; true if the socket held a place in the pool. */
  headRead(socket: Duplex): boolean {
    const heads = this.#heads
    // Over TLS, 'connection' gave the TCP socket and the request comes on the TLSSocket around it
    // (`_parent`, Node's own field; test/ws/handshake-fairness.test.ts runs this path). Over HTTP/2 the
    // request's socket is Node's proxy of the connection's, which passes the mark (and `_parent`) through.
    const marked = socket as Duplex & { _parent?: Duplex; [kPooledSocket]?: Duplex }
    const raw = heads.has(socket) ? socket : (marked[kPooledSocket] ?? marked._parent ?? socket)
    const entry = heads.get(raw)
    if (entry === undefined) return false
    heads.delete(raw)
    raw.removeListener('close', this.#onClose)
    this.#host.pool.headDone(entry)
    return true
  }

  /** The pool stopped waiting for this connection's head: counted, then 408 (or, Rule 1, a close). */
  expire(socket: Duplex, exit: PoolExit): void {
    this.#host.refused(exit === 'timeout' ? 'timeout' : 'displaced', this.#closeToRefuse ? 0 : 408, EXIT_MESSAGES[exit], (socket as Socket).remoteAddress)
    this.#heads.delete(socket)
    socket.removeListener('close', this.#onClose)
    this.#host.pool.settle()
    if (this.#closeToRefuse) socket.destroy()
    else rejectUpgrade(socket, 408, EXIT_MESSAGES[exit])
  }

  /** A connection left (or was closed) before Node's server read its request head. */
  #gone(socket: Duplex): void {
    const entry = this.#heads.get(socket)
    if (entry === undefined) return
    this.#heads.delete(socket)
    this.#host.pool.headDone(entry)
    this.#host.pool.settle()
  }
}
