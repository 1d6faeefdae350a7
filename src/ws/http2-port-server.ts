/**
 * Port mode over HTTP/2 (the server option `http2`): Node's HTTP/2 server,
 * over TLS with HTTP/1.1 beside it through ALPN, with the port-mode limits on
 * both: header size and count, the head timeouts (HTTP/1.1), the TLS
 * handshake timeout, and (HTTP/2) at most 1,000 streams at once per
 * connection unless `settings` say otherwise. Extended CONNECTs (RFC 8441) go
 * to the WebSocketServer; every other request to `answer`.
 */
import type * as http from 'node:http'
import type { IncomingMessage } from 'node:http'
import * as http2 from 'node:http2'
import type { Http2SecureServer, Http2Server, Http2ServerRequest, Http2ServerResponse, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import { routeExtendedConnects, webSocketsOn } from '../node/http2-server.js'
import type { ServerOptions } from './server-options.js'

/** Streams (WebSockets and requests) one HTTP/2 connection may have open at once, by default. */
const DEFAULT_MAX_CONCURRENT_STREAMS = 1000
/**
 * Port mode over HTTP/2, by default: a connection with no WebSocket and no traffic for this long is closed (GOAWAY; a
 * browser opens a new one when it needs one), so connections that fetched a page and went quiet do not pile
 * up; one with a WebSocket stays (its heartbeats are its traffic). HTTP/1.1 connections on the same port get
 * Node's keep-alive timeout, 5 s, as from an http.Server.
 */
const HTTP2_IDLE_CONNECTION_TIMEOUT = 30_000
const HTTP1_KEEP_ALIVE_TIMEOUT = 5_000
export interface Http2PortServerSetup {
  options: Pick<ServerOptions, 'http2' | 'tls'>
  /** Request fields allowed (the server's `maxHeaders`, its default applied). */
  maxHeaders: number
  /** The port-mode limits of an HTTP/1.1 server: `maxHeaderSize`, and the head timeouts when `timeout` > 0. */
  limits: http.ServerOptions
  timeout: number
  answer: (request: IncomingMessage, response: http.ServerResponse) => void
  onExtendedConnect: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined) => void
  /** Filled with the open sessions (connections), which the WebSocketServer closes gracefully. */
  sessions: Set<Http2Session>
}

export function createHttp2PortServer(setup: Http2PortServerSetup): Http2Server | Http2SecureServer {
  const { options: resolved, maxHeaders, limits, timeout, answer, onExtendedConnect, sessions } = setup
  const { idleConnectionTimeout = HTTP2_IDLE_CONNECTION_TIMEOUT, ...chosen } = typeof resolved.http2 === 'object' ? resolved.http2 : {}
  const options = {
    maxHeaderListPairs: maxHeaders + 8,
    ...chosen,
    settings: {
      maxConcurrentStreams: DEFAULT_MAX_CONCURRENT_STREAMS,
      maxHeaderListSize: limits.maxHeaderSize,
      ...chosen.settings,
      // RFC 8441 §3: what tells clients they may open WebSockets as streams.
      enableConnectProtocol: true,
    },
  }
  const server = resolved.tls
    ? http2.createSecureServer({ allowHTTP1: true, ...(timeout > 0 ? { handshakeTimeout: timeout } : {}), ...resolved.tls, ...options })
    : http2.createServer(options)
  // The HTTP/1.1 side (allowHTTP1) reads these from the server, as an http.Server does (which has them by default).
  Object.assign(server, { maxHeaderSize: limits.maxHeaderSize, keepAliveTimeout: HTTP1_KEEP_ALIVE_TIMEOUT }, timeout > 0 ? { headersTimeout: timeout, requestTimeout: timeout } : {})
  server.on('request', answer as unknown as (request: Http2ServerRequest, response: Http2ServerResponse) => void)
  routeExtendedConnects(server, onExtendedConnect)
  server.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    if (idleConnectionTimeout > 0) {
      session.setTimeout(idleConnectionTimeout, () => {
        if (webSocketsOn(session) === 0 && !session.closed) session.close()
      })
    }
  })
  return server
}
