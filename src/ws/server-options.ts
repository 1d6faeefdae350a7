/**
 * The options and public types of `WebSocketServer` (websocket-server.ts):
 * what an application writes and reads, apart from the class that acts on
 * them. `ServerOptions` holds ws v8's options with their meanings, then
 * tether's additions (limits, heartbeats, topics, HTTP/2, authentication).
 */
import type { IncomingMessage, OutgoingHttpHeaders, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Http2SecureServer, Http2Server, SecureServerOptions as Http2SecureServerOptions } from 'node:http2'
import type { PerMessageDeflateOptions } from '../node/deflate.js'
import type { HeartbeatOptions, SendBufferOptions } from '../node/limits.js'
import type { Backplane } from '../pubsub/backplane.js'
import type { TopicPolicy } from '../pubsub/policy.js'
import type { WebSocket } from './websocket.js'
import type { VerifyClientCallbackAsync, VerifyClientCallbackSync } from './types.js'

/** `verifyClient`'s answer, when it takes a callback: refuse with `code` (401), `message` and `headers`. */
export type VerifyClientCallback = (verified: boolean, code?: number, message?: string, headers?: OutgoingHttpHeaders) => void
/**
 * ws's `verifyClient`: synchronous, or with a callback when it takes two
 * parameters. `info.origin` is the Origin header (undefined at run time when
 * the request has none, as in ws, although typed `string` as @types/ws does).
 */
export type VerifyClient<Request extends IncomingMessage = IncomingMessage> =
  | VerifyClientCallbackSync<Request>
  | VerifyClientCallbackAsync<Request>

/**
 * The socket a server hands out: an instance of its `WebSocket` class, with
 * `user` typed by the server's `User`, which TypeScript infers from what
 * `authenticate` returns as `{ user }`. (When `authenticate` can also refuse
 * or return `true`, the inferred type includes `undefined`, as a socket
 * accepted with `true` has no user.)
 */
export type ServerSocket<T extends typeof WebSocket = typeof WebSocket, User = unknown> = InstanceType<T> & { user: User }

/**
 * A server's `clients`: a Set of its sockets whose lookups take any socket,
 * as they do at run time (`wss.clients.has(ws)` with `ws` typed WebSocket
 * compiles, as with @types/ws, although the set's members carry `user`).
 */
export interface ClientSet<Socket = WebSocket> extends Set<Socket> {
  has(socket: Socket | WebSocket): boolean
  delete(socket: Socket | WebSocket): boolean
}

export interface ServerOptions<
  T extends typeof WebSocket = typeof WebSocket,
  U extends typeof IncomingMessage = typeof IncomingMessage,
  User = unknown,
> {
  host?: string
  port?: number
  backlog?: number
  /**
   * An HTTP server to attach to: `http`, `https`, or (tether's addition) an
   * HTTP/2 server from `http2.createSecureServer`/`http2.createServer`, whose
   * extended CONNECT streams (RFC 8441) become WebSockets, besides the
   * HTTP/1.1 upgrades it takes with `allowHTTP1`. tether turns on its
   * `enableConnectProtocol` setting.
   */
  server?: HttpServer<U> | HttpsServer<U> | Http2Server | Http2SecureServer
  noServer?: boolean
  path?: string
  verifyClient?: VerifyClient<InstanceType<U>>
  handleProtocols?: (protocols: Set<string>, request: InstanceType<U>) => string | false
  clientTracking?: boolean
  maxPayload?: number
  /** Most data frames one message may have (more fail with 1008); 0, the default: no count (memory is bounded by bytes, `maxPayload` and `maxReceiveMemory`). */
  maxFragments?: number
  /**
   * The ceiling on bytes held for messages being received, across every
   * connection of the process (one budget: setting it here sets it for the
   * process, as `configureReceiveMemory` does). Past it, the connection
   * holding the most is failed with 1013. Default 256 MiB; 0: none.
   */
  maxReceiveMemory?: number
  /**
   * The ceiling on bytes waiting to be written to peers whose socket buffer is
   * full, across every connection of the process (one budget, as
   * `configureSendMemory`). Past it, the connection with the most waiting is
   * terminated (1006, reason `send memory budget exceeded`). Default 512 MiB; 0: none.
   */
  maxSendMemory?: number
  /** ws 8.23's; accepted and ignored (memory is bounded by `maxPayload` and `maxReceiveMemory`). */
  maxBufferedChunks?: number
  /** ws 8.23's; accepted and ignored (at most one automatic pong waits: the latest ping's). */
  maxPendingAutoPongs?: number
  skipUTF8Validation?: boolean
  allowSynchronousEvents?: boolean
  autoPong?: boolean
  closeTimeout?: number
  /** permessage-deflate (RFC 7692): false (the default, as in ws), true, or options. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /** The class instantiated for each connection (a subclass of WebSocket). */
  WebSocket?: T
  /**
   * With `port`: run on Node's `http.Server` and `net.Socket`, as ws does. By
   * default tether owns the port itself (no HTTP server or stream objects per
   * connection: faster, and a third of the memory per idle connection); the
   * `request` is still an `http.IncomingMessage` (built from the head tether
   * read), but its `socket` is a stand-in with the members applications use
   * (addresses, `write`, `end`, `destroy`), not a `net.Socket`.
   *
   * With `server` or `noServer`: keep each WebSocket on the `net.Socket` the
   * HTTP server gave. By default, once an upgrade over plain TCP is accepted,
   * tether moves the connection onto its own transport, as in port mode, and
   * lets the `net.Socket` go: `request.socket` then still tells its addresses
   * but is destroyed (it emitted 'close'), the HTTP server no longer counts the
   * connection, and `ws._socket` is the stand-in described above. TLS sockets,
   * and sockets the application wrote to or reads itself, always stay.
   */
  useNodeHttp?: boolean
  /**
   * With `port`: serve wss:// with these TLS options (`key` and `cert`, or
   * `pfx`, and any other `tls.createServer` option) on Node's HTTPS server.
   * tether's addition; with ws, pass an https server as `server`.
   */
  tls?: import('node:tls').TlsOptions
  /**
   * With `port`: how long a client may take, from connecting, to send its
   * upgrade request (slow loris), in ms; then 408. Default 10 000; 0: no
   * limit. While half of `maxPendingHandshakes` or more are in progress, a
   * quarter of it (also for connections already waiting).
   */
  handshakeTimeout?: number
  /**
   * With `port`: answers the requests that are not WebSocket upgrades (pages,
   * health checks) instead of 426, on Node's HTTP server (implies
   * `useNodeHttp`) under the port-mode limits (head timeout, header limits,
   * the pending-handshake pool). tether's addition: one port for an app's
   * pages and its WebSockets, with every port-mode protection.
   */
  requestListener?: (request: IncomingMessage, response: import('node:http').ServerResponse) => void
  /**
   * With `port` (tether's addition): serve WebSockets over HTTP/2 streams too
   * (RFC 8441: many WebSockets on one connection, as browsers open them on the
   * connection a page came over). With `tls`, one port speaks HTTP/2 and
   * HTTP/1.1, chosen by ALPN (`allowHTTP1`), so clients of either kind are
   * served; without, clear-text HTTP/2 only (h2c with prior knowledge, which
   * browsers never use). `requestListener` then gets Node's HTTP/2
   * compatibility objects (`Http2ServerRequest`, `Http2ServerResponse`) for
   * requests over HTTP/2. An object sets the server's HTTP/2 options, such as
   * `settings` (`maxConcurrentStreams` defaults to 1,000 WebSockets and
   * requests at once per connection).
   */
  http2?: boolean | Http2PortOptions
  /** With `port`: the largest request head, in bytes; larger gets 431. Default 16 KiB (Node's HTTP server's too). */
  maxHeaderSize?: number
  /** With `port`: the most header fields in a request; more gets 431 (over Node's server too: `useNodeHttp`, `tls`, `requestListener`). Default 100. */
  maxHeaders?: number
  /**
   * Most connections in their opening handshake. When it is reached, in port
   * mode a newcomer displaces (408) the oldest connection still sending its
   * request head, if that one has been at it for 1 s (or a tenth of
   * `handshakeTimeout`); otherwise, or when every pending one is being
   * decided (`verifyClient`, `authenticate`), the newcomer gets 503. Default 1024.
   */
  maxPendingHandshakes?: number
  /**
   * With `port`: how many connections from one address may be sending their
   * request heads at once before a newcomer from that address displaces (408)
   * the address's own oldest one (once that one has been at it for 1 s, or a
   * tenth of `handshakeTimeout`). Default 32; 0: no per-address share.
   * Addresses in `trustedProxies` are exempt.
   */
  maxPendingPerAddress?: number
  /**
   * Addresses (`'127.0.0.1'`, `'::1'`) or CIDR ranges (`'10.0.0.0/8'`) of
   * your reverse proxies: every client behind one arrives from its address, so
   * they are exempt from `maxPendingPerAddress`. Default: none.
   */
  trustedProxies?: readonly string[]
  /** Most open WebSocket connections; an upgrade beyond it gets 503. Default 0: no limit. */
  maxConnections?: number
  /** See WebSocketOptions: the send-buffer limit and policy of each connection. Default 64 MiB, `close` (1013). */
  sendBuffer?: SendBufferOptions
  /** Heartbeats for every connection, swept by one timer. Default `{ interval: 30_000, timeout: 30_000 }`; false: off. */
  heartbeat?: HeartbeatOptions | false
  /** Closes (1001) connections whose peer sent no message for this many ms. Default 0: never. */
  idleTimeout?: number
  /**
   * Origins a browser may connect from (exact `scheme://host[:port]` strings),
   * or `'same-origin'`: the Origin's host must be the request's Host (alone,
   * or as an entry of the list: `['same-origin', 'https://app.example']`).
   * Others get 403. Requests without an Origin (not from a browser) are
   * allowed unless `allowMissingOrigin` is false. Default: any origin (as ws).
   */
  allowOrigins?: readonly string[] | 'same-origin'
  allowMissingOrigin?: boolean
  /**
   * Decides whether an upgrade may proceed, after `verifyClient`. Return (or
   * resolve to) `true` or `{ user }` to accept (the socket's `user` is then
   * set), `false` to refuse with 401, or `{ status, message?, headers? }` to
   * refuse with that status (401, 403, ...). A throw or rejection refuses
   * with 500 and is reported as an `error` event when there is a listener.
   */
  authenticate?: (request: InstanceType<U>, info: { origin: string | undefined; protocols: string[]; secure: boolean }) => AuthResult<User> | Promise<AuthResult<User>>
  /**
   * Topics (tether's addition to the ws API): the slow-consumer policy for
   * every topic (see `setTopicPolicy` for one topic), and the backplane that
   * shares published messages with other nodes. Without a backplane, topics
   * are local to this server. The server closes its backplane when it closes.
   */
  topics?: Partial<TopicPolicy> & {
    backplane?: Backplane
    /**
     * Whether a message from another node may be delivered here (a broker or
     * a node may be wrong or compromised): for example, no larger than the
     * server's `maxPayload`, or not on topics this node keeps to itself.
     * Refused ones are counted in `topicStats.remoteRefused`.
     */
    acceptRemote?: (message: { topic: string; size: number; binary: boolean }) => boolean
  }
  /**
   * Most open connections from one client address (`trustedProxies` exempt);
   * an upgrade beyond it gets 503 (`tooManyFromAddress`). Default 0: no limit.
   */
  maxConnectionsPerAddress?: number
}

/** HTTP/2 options of a server that owns its port (`http2` option); `settings.enableConnectProtocol` is always on. */
export type Http2PortOptions = Pick<Http2SecureServerOptions, 'settings' | 'maxSessionMemory' | 'maxOutstandingPings' | 'peerMaxConcurrentStreams' | 'unknownProtocolTimeout'> & {
  /** Ms an HTTP/2 connection with no WebSocket and no traffic stays open (then GOAWAY). Default 30,000; 0: for ever. tether's addition. */
  idleConnectionTimeout?: number
}

/**
 * What `authenticate` answers. A refusal is counted under the reason
 * `authenticate` (and `limitStats.authRefused`), or under `reason` when the
 * hook refused for something else: `path` (no endpoint there: 404) or `host`
 * (a Host the server does not answer to: 403), so that metrics tell a
 * scanner from a client without a token.
 */
export type AuthResult<User = unknown> =
  | boolean
  | { user: User }
  | { status: number; message?: string; headers?: Record<string, string>; reason?: 'authenticate' | 'path' | 'host' }

/** Options of `publish`. */
export interface PublishOptions {
  /** Defaults to true for a Buffer or other bytes, false for a string (as `send`). */
  binary?: boolean
  /** Compress for subscribers with permessage-deflate (default true). */
  compress?: boolean
  /** The conflation key under the `latest` policy (default: the topic). */
  key?: string
  /** Deliver on this server only, not through the backplane to other nodes. */
  local?: boolean
}

