/**
 * The server side of the opening handshake on Node sockets (RFC 6455 §4.2):
 * turning an `upgrade` request into either a 101 answer and a running
 * connection, or an HTTP error answer and a closed socket.
 *
 * Theory of operation: Node's HTTP parser hands over the request, the raw
 * socket and the bytes read past the request head. `checkUpgradeRequest`
 * applies the core's rules; the front end adds its own policy (path, origin,
 * verifyClient); `acceptUpgrade` writes the 101 answer; `rejectUpgrade`
 * writes an error answer and closes.
 *
 * Rule 1: nothing here throws because of what a client sent; a socket error
 * during the handshake destroys that socket and nothing else.
 */
import { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { HandshakeError } from '../core/errors.js'
import type { ExtensionOffer } from '../core/handshake/headers.js'
import {
  type AcceptedRequest,
  acceptResponseLines,
  rejectResponse,
  serializeResponseHead,
  validateUpgradeRequest,
} from '../core/handshake/http1.js'
import type { RequestHead } from '../core/handshake/request-head.js'
import { NetTransport, type Transport } from './transport.js'
import { TcpTransport } from './tcp.js'

/** Applies RFC 6455 §4.2.1 to a Node request. */
export function checkUpgradeRequest(request: IncomingMessage): AcceptedRequest | HandshakeError {
  return validateUpgradeRequest({ method: request.method ?? '', httpVersion: request.httpVersion, headers: request.headers, rawHeaders: request.rawHeaders })
}

/** Destroys a socket that errors while its handshake is pending (Rule 1). */
export function onHandshakeSocketError(this: Duplex): void {
  this.destroy()
}

/** Answers with an HTTP error and closes the socket once the answer is written. */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  message?: string,
  headers?: Readonly<Record<string, string | number>>,
): void {
  if (socket.destroyed) return
  if (!socket.writable) {
    socket.destroy()
    return
  }
  socket.once('finish', socket.destroy)
  socket.end(rejectResponse(status, message, headers))
}

/** The lines of the 101 answer, for the `headers` event to amend before they are written. */
export function upgradeResponseLines(key: string, protocol: string | undefined, extensions: readonly ExtensionOffer[]): string[] {
  return acceptResponseLines({ key, protocol, extensions })
}

/** Writes the 101 answer. */
export function writeUpgradeResponse(socket: Duplex, lines: readonly string[]): void {
  socket.write(serializeResponseHead(lines))
}

/**
 * The connection an upgrade request arrived on, whatever carries it: a Node
 * socket handed over by an HTTP server, or a bare TCP handle (tcp.ts). The
 * server answers through it and, on success, takes the transport that will
 * carry the WebSocket.
 */
export interface UpgradeChannel {
  /** What the application sees as the socket (`wsClientError`, `request.socket`). */
  readonly socket: Duplex
  /** Whether the connection can still be answered. */
  readonly usable: boolean
  /** Whether a WebSocket already took this connection. */
  readonly upgraded: boolean
  /** Answers with an HTTP error and closes (Rule 1: never throws). */
  reject(status: number, message?: string, headers?: Readonly<Record<string, string | number>>): void
  /**
   * Writes the answer and returns the transport for the WebSocket: the 101
   * head over HTTP/1.1; over HTTP/2, the `lines` as the 200's fields.
   */
  accept(responseHead: string, lines?: readonly string[], request?: { socket: unknown }): Transport
  /** Closes at once. */
  destroy(): void
  /**
   * Checks the request, when it is not an HTTP/1.1 upgrade (an extended
   * CONNECT on an HTTP/2 stream, RFC 8441); absent: RFC 6455 §4.2.1.
   */
  checkRequest?(): AcceptedHandshake | HandshakeError
  /** The answer's lines, when not the 101 of HTTP/1.1 (no key to answer over HTTP/2). */
  answerLines?(protocol: string | undefined, extensions: readonly ExtensionOffer[]): string[]
  /** Whether the connection is encrypted, when the request's socket does not say (HTTP/2 streams). */
  readonly secure?: boolean
}

/** What a valid opening handshake asks for, over either HTTP version (HTTP/2 has no key). */
export interface AcceptedHandshake {
  key?: string
  protocols: string[]
  extensions: ExtensionOffer[]
  origin: string | undefined
}

const kUpgraded = Symbol('tether.upgraded')

/** The transport whose stand-in a taken-over request's `socket` answers (SocketChannel.accept). */
const kStandIn = Symbol('tether.standIn')

/** `request.socket` of a taken-over connection: one descriptor and two functions for every request. */
const REQUEST_SOCKET: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: { [kStandIn]: TcpTransport }) {
    return this[kStandIn].socket
  },
  set(this: object, value: unknown) {
    // Assigning replaces the accessor with the value, as on any IncomingMessage.
    Object.defineProperty(this, 'socket', { configurable: true, enumerable: true, writable: true, value })
  },
}

/**
 * An UpgradeChannel over a Node socket (`handleUpgrade`, `{ server }`).
 *
 * Once the upgrade is accepted, the connection is taken off Node's objects
 * when `takeOver` allows and the socket is a plain TCP one (tcp.ts
 * `TcpTransport.takeOver`): the WebSocket then runs on the bare handle, as in
 * port mode, and the `net.Socket` (with the stream state, listeners and timers
 * Node's HTTP server gave it) is let go. What the application keeps of it
 * still answers: `request.socket.remoteAddress` and the other addresses (asked
 * of the handle on first use, as net does); `ws._socket` is the transport's stand-in (tcp-socket.ts),
 * alive as long as the connection. Elsewhere (TLS, a socket the application
 * wrote to or listens to for data, no bindings, `useNodeHttp`) the WebSocket
 * runs on the `net.Socket`, as before.
 */
export class SocketChannel implements UpgradeChannel {
  readonly socket: Duplex
  readonly #takeOver: boolean

  constructor(socket: Duplex, takeOver = false) {
    this.socket = socket
    this.#takeOver = takeOver
    socket.on('error', onHandshakeSocketError)
  }

  get usable(): boolean {
    return this.socket.readable && this.socket.writable
  }

  get upgraded(): boolean {
    return (this.socket as Duplex & { [kUpgraded]?: boolean })[kUpgraded] === true
  }

  reject(status: number, message?: string, headers?: Readonly<Record<string, string | number>>): void {
    rejectUpgrade(this.socket, status, message, headers)
  }

  accept(responseHead: string, _lines?: readonly string[], request?: { socket: unknown }): Transport {
    const socket = this.socket as Duplex & { [kUpgraded]?: boolean }
    socket.removeListener('error', onHandshakeSocketError)
    socket[kUpgraded] = true
    const taken = this.#takeOver ? TcpTransport.takeOver(socket as Socket) : undefined
    if (taken !== undefined) {
      // `request.socket` is then the stand-in, as `ws._socket` is (ws gives one object for both), built
      // when first read: most applications never read it, and the transport would keep it.
      if (request !== undefined && request.socket === socket) {
        ;(request as { [kStandIn]?: TcpTransport })[kStandIn] = taken
        Object.defineProperty(request, 'socket', REQUEST_SOCKET)
      }
      return taken.accept(responseHead)
    }
    socket.write(responseHead)
    return new NetTransport(socket as Socket)
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/**
 * The request of an upgrade read by tether itself (a server that owns its
 * port, tcp.ts): an `http.IncomingMessage`, as ws's port mode gives, since
 * libraries check `request instanceof http.IncomingMessage` (graphql-ws,
 * ws's own tests). It is built without Node's HTTP parser: the head tether
 * parsed is copied onto it (`method`, `url`, `headers`, `rawHeaders`,
 * `httpVersion`...), its body is never read (an upgrade request has none; as
 * with Node's own upgrade requests, nothing is pushed), and its `socket` is the connection's, built on first use
 * (tcp.ts Rule 5). Building one costs a Readable's state, about a microsecond
 * (`npm run bench -- --only handshake`).
 */
export class UpgradeRequest extends IncomingMessage {
  readonly #channel: { readonly socket: Duplex }

  constructor(head: RequestHead, channel: { readonly socket: Duplex }) {
    // No socket is given to IncomingMessage: `socket` is an accessor (below), so that it is built on first use.
    super(undefined as unknown as Socket)
    this.#channel = channel
    this.method = head.method
    this.url = head.url
    this.httpVersion = head.httpVersion
    const dot = head.httpVersion.indexOf('.')
    this.httpVersionMajor = Number(head.httpVersion.slice(0, dot))
    this.httpVersionMinor = Number(head.httpVersion.slice(dot + 1))
    this.headers = head.headers
    this.rawHeaders = head.rawHeaders
    this.complete = true
    ;(this as { upgrade?: boolean }).upgrade = true
  }

  /** @internal The connection's socket (`request.socket`, `request.connection`). */
  get _channelSocket(): Socket {
    return this.#channel.socket as Socket
  }

  override _read(): void {}
}
// IncomingMessage declares `socket` a data property, which its constructor sets; here it is an accessor
// that reads the connection's socket when asked, and ignores the constructor's `undefined`.
Object.defineProperty(UpgradeRequest.prototype, 'socket', {
  configurable: true,
  enumerable: true,
  get(this: UpgradeRequest): Socket {
    return this._channelSocket
  },
  set(): void {},
})
