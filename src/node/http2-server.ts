/**
 * The server side of WebSockets over HTTP/2 (RFC 8441) on Node's `http2`:
 * finding extended CONNECT streams on an HTTP/2 server, the request object
 * applications see for one, and the channel through which the server answers
 * it (200 and a running WebSocket, or an HTTP error).
 *
 * Theory of operation: an HTTP/2 server that sends SETTINGS_ENABLE_CONNECT_PROTOCOL
 * (§3) receives a WebSocket as a stream whose HEADERS say `:method CONNECT`,
 * `:protocol websocket` (§4). `listenForStreams` hands such streams to the
 * WebSocketServer; `Http2StreamChannel` is the `UpgradeChannel` over one
 * (server.ts), so the server's policy (path, origins, verifyClient,
 * authenticate, limits) runs unchanged; the answer goes out as HEADERS
 * (`respond`) and the stream becomes the WebSocket's transport.
 *
 * Rule 1 (one answer per stream): Node's compatibility layer (present once
 * the server has a 'request' listener) answers every CONNECT it sees with
 * 405 unless a 'connect' listener exists. So a 'connect' listener is installed
 * beside the 'stream' one; streams are marked when taken, and each stream is
 * answered once, whichever listener runs first.
 * Rule 2: a malformed extended CONNECT is refused by nghttp2 itself
 * (RST_STREAM PROTOCOL_ERROR: :protocol on another method, a missing :path
 * or :scheme) or here with a 4xx (core/handshake/http2.ts); nothing here
 * throws because of what a client sent: an answer that cannot be written
 * resets the stream instead.
 * Rule 3: after an error answer the stream is reset with NO_ERROR once the
 * answer is written (RFC 9113 §8.1: a server "MAY request that the client
 * abort transmission of a request without error by sending a RST_STREAM
 * with an error code of NO_ERROR after sending a complete response"), so a
 * refused client cannot keep the stream open by never ending its side.
 */
import http2, { type Http2SecureServer, type Http2Server, type Http2Session, type Http2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { HandshakeError } from '../core/errors.js'
import type { ExtensionOffer } from '../core/handshake/headers.js'
import { connectResponseLines, headersFromLines, validateConnectRequest } from '../core/handshake/http2.js'
import type { RequestHead } from '../core/handshake/request-head.js'
import { Http2StreamSocket, Http2StreamTransport } from './http2-transport.js'
import { type AcceptedHandshake, type UpgradeChannel, UpgradeRequest } from './server.js'

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants
const kTaken = Symbol('tether.http2.taken')
type MarkedStream = Http2Stream & { [kTaken]?: boolean }

let serverClasses: Function[] | undefined

/** Whether `server` is one of Node's HTTP/2 servers (`http2.createServer`, `http2.createSecureServer`). */
export function isHttp2Server(server: unknown): server is Http2Server | Http2SecureServer {
  // Node does not export the classes; an unbound instance of each gives them (no port is touched).
  serverClasses ??= [http2.createServer().constructor, http2.createSecureServer({}).constructor]
  return serverClasses.some((Class) => server instanceof Class)
}

/**
 * Listens for CONNECT streams on an HTTP/2 server and hands each to
 * `handle` once (Rule 1): extended CONNECTs, and plain CONNECTs that nothing
 * else on the server answers (they are refused with 400 by the handshake
 * rules: no :protocol). Returns a function that removes the listeners.
 */
export function listenForStreams(
  server: Http2Server | Http2SecureServer,
  handle: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined) => void,
): () => void {
  const take = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined): void => {
    const marked = stream as MarkedStream
    if (marked[kTaken]) return
    marked[kTaken] = true
    handle(stream, headers, rawHeaders)
  }
  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders?: string[]): void => {
    if (headers[':method'] !== 'CONNECT') return
    if (headers[':protocol'] !== undefined) return take(stream, headers, rawHeaders)
    // A plain CONNECT (RFC 9113 §8.5): Node's compatibility layer, or another 'stream' listener, may answer it.
    if (server.listenerCount('request') > 0 || server.listenerCount('stream') > 1) return
    take(stream, headers, rawHeaders)
  }
  const onConnect = (request: { stream: ServerHttp2Stream; headers: IncomingHttpHeaders; rawHeaders?: string[] }): void => {
    // Extended CONNECTs are taken by onStream, before or after this (Rule 1).
    if (request.headers[':protocol'] !== undefined) return
    // A plain CONNECT: the application's own 'connect' listener answers it if there is one.
    if (server.listenerCount('connect') > 1) return
    take(request.stream, request.headers, request.rawHeaders)
  }
  server.on('stream', onStream)
  server.on('connect', onConnect as never)
  return () => {
    server.removeListener('stream', onStream)
    server.removeListener('connect', onConnect as never)
  }
}

/**
 * For a server tether created itself (port mode): hands extended CONNECTs to
 * `handle` before they are emitted as 'stream', so Node's compatibility
 * layer, present for the pages' `requestListener`, never builds its request
 * and response objects (with their listeners) for a stream that becomes a
 * WebSocket: measured on 5,000 idle WebSockets, 4.9 KiB of heap each with
 * them, 2.1 KiB without (Node's stream alone is 1.1 KiB). Everything else is
 * emitted as before.
 */
export function routeExtendedConnects(
  server: Http2Server | Http2SecureServer,
  handle: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined) => void,
): void {
  const emit = server.emit
  server.emit = function emitRouted(this: typeof server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'stream') {
      const stream = args[0] as MarkedStream & ServerHttp2Stream
      const headers = args[1] as IncomingHttpHeaders
      if (headers[':method'] === 'CONNECT' && headers[':protocol'] !== undefined && !stream[kTaken]) {
        stream[kTaken] = true
        handle(stream, headers, args[3] as string[] | undefined)
        return true
      }
    }
    return emit.call(this, event, ...args)
  } as typeof server.emit
}

/** The request head of an extended CONNECT, as an HTTP/1 request would carry it (`host` from :authority). */
export function requestHeadOf(headers: IncomingHttpHeaders, rawHeaders: string[] | undefined): RequestHead {
  const fields: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) fields[name] = value as string | string[]
  }
  const authority = headers[':authority']
  if (fields.host === undefined && typeof authority === 'string') fields.host = authority
  let raw = rawHeaders
  if (raw === undefined) {
    raw = []
    for (const [name, value] of Object.entries(fields)) for (const one of Array.isArray(value) ? value : [value]) raw.push(name, one)
  }
  return { method: String(headers[':method'] ?? 'CONNECT'), url: String(headers[':path'] ?? '/'), httpVersion: '2.0', headers: fields, rawHeaders: raw }
}

const kUpgraded = Symbol('tether.http2.upgraded')

/** Open WebSockets by HTTP/2 connection: what keeps an otherwise idle connection worth keeping. */
const webSocketCounts = new WeakMap<Http2Session, number>()

/** How many WebSockets are open on this HTTP/2 connection. */
export function webSocketsOn(session: Http2Session): number {
  return webSocketCounts.get(session) ?? 0
}

function countWebSocket(stream: ServerHttp2Stream): void {
  const session = stream.session
  if (session === undefined) return
  webSocketCounts.set(session, webSocketsOn(session) + 1)
  stream.once('close', () => webSocketCounts.set(session, webSocketsOn(session) - 1))
}

/** An UpgradeChannel over an HTTP/2 stream carrying an extended CONNECT. */
export class Http2StreamChannel implements UpgradeChannel {
  readonly stream: ServerHttp2Stream
  readonly headers: IncomingHttpHeaders
  #socket: Http2StreamSocket | undefined

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
    this.stream = stream
    this.headers = headers
    // Rule 2: a reset during the handshake ends in 'close'; the decision finds the channel unusable.
    stream.on('error', ignore)
  }

  /** The request's socket: the stream's stand-in (addresses of the connection; end/destroy act on the stream). */
  get socket(): Duplex {
    return (this.#socket ??= new Http2StreamSocket(this.stream)) as unknown as Duplex
  }

  get usable(): boolean {
    const stream = this.stream
    return !stream.destroyed && !stream.closed && !stream.headersSent && stream.writable
  }

  get upgraded(): boolean {
    return (this.stream as ServerHttp2Stream & { [kUpgraded]?: boolean })[kUpgraded] === true
  }

  get secure(): boolean {
    return this.stream.session?.encrypted === true
  }

  checkRequest(): AcceptedHandshake | HandshakeError {
    return validateConnectRequest(this.headers)
  }

  answerLines(protocol: string | undefined, extensions: readonly ExtensionOffer[]): string[] {
    return connectResponseLines({ protocol, extensions })
  }

  reject(status: number, message?: string, headers?: Readonly<Record<string, string | number>>): void {
    const stream = this.stream
    if (stream.destroyed || stream.closed) return
    if (stream.headersSent) {
      stream.close(NGHTTP2_CANCEL)
      return
    }
    const body = Buffer.from(message ?? STATUS_CODES[status] ?? 'Error')
    const lines = [`HTTP/2 ${status}`]
    for (const [name, value] of Object.entries(headers ?? {})) {
      for (const one of Array.isArray(value) ? (value as unknown[]) : [value]) lines.push(`${name}: ${String(one)}`)
    }
    const fields = headersFromLines(lines, status)
    fields['content-type'] = 'text/plain; charset=utf-8'
    fields['content-length'] = body.length
    try {
      stream.respond(fields)
      // Rule 3.
      stream.end(body, () => {
        if (!stream.closed) stream.close(NGHTTP2_NO_ERROR)
      })
    } catch {
      // An invalid status or field (Node validates both): reset rather than throw (Rule 2).
      if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR)
    }
  }

  accept(_responseHead: string, lines?: readonly string[]): Http2StreamTransport {
    const stream = this.stream as ServerHttp2Stream & { [kUpgraded]?: boolean }
    const fields = headersFromLines(lines ?? ['HTTP/2 200'], 200)
    try {
      stream.respond(fields)
    } catch {
      // A field a 'headers' listener added that HTTP/2 cannot carry: answer with the handshake's own fields.
      const own: Record<string, string | string[] | number> = { ':status': 200 }
      for (const name of ['sec-websocket-protocol', 'sec-websocket-extensions']) if (fields[name] !== undefined) own[name] = fields[name]!
      stream.respond(own)
    }
    stream.removeListener('error', ignore)
    stream[kUpgraded] = true
    countWebSocket(stream)
    return new Http2StreamTransport(stream)
  }

  destroy(): void {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL)
  }
}

/** The request an application sees for an extended CONNECT: an `http.IncomingMessage`, `httpVersion` '2.0'. */
export function streamRequest(channel: Http2StreamChannel, rawHeaders: string[] | undefined): UpgradeRequest {
  return new UpgradeRequest(requestHeadOf(channel.headers, rawHeaders), channel)
}

function ignore(): void {}
