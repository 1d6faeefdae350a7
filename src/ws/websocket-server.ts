/**
 * `WebSocketServer`, a drop-in for the class of the same name in `ws` v8:
 * standalone (`port`), attached to an `http`/`https` server (`server`), or
 * `noServer` with `handleUpgrade(request, socket, head, callback)`.
 *
 * Theory of operation: every upgrade request goes through the core's
 * RFC 6455 checks, then the server's own policy (`path`, `verifyClient`,
 * `handleProtocols`), then either a 101 answer and a new WebSocket, or an
 * HTTP error answer. A bad request never throws and never takes the process
 * down; with a `wsClientError` listener the application writes the answer.
 */
import { EventEmitter } from 'node:events'
// Namespace imports: the declaration files then compile for programs without esModuleInterop (TS1192).
import * as http from 'node:http'
import type { IncomingMessage, Server as HttpServer } from 'node:http'
import https, { type Server as HttpsServer } from 'node:https'
import type { Http2SecureServer, Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import { type AddressInfo, type BlockList, type Socket, isIPv4 } from 'node:net'
import type { Duplex } from 'node:stream'
import { HandshakeError } from '../core/errors.js'
import { type DeflateConfig, type PerMessageDeflateOptions, PERMESSAGE_DEFLATE, acceptDeflate, resolveDeflateOptions } from '../node/deflate.js'
import { PreparedMessage } from '../node/prepared.js'
import { hasToken } from '../core/handshake/headers.js'
import { serializeResponseHead } from '../core/handshake/http1.js'
import {
  type AcceptedHandshake,
  SocketChannel,
  type UpgradeChannel,
  UpgradeRequest,
  checkUpgradeRequest,
  rejectUpgrade,
  upgradeResponseLines,
} from '../node/server.js'
import { Http2StreamChannel, isHttp2Server, listenForStreams, streamRequest } from '../node/http2-server.js'
import { createHttp2PortServer } from './http2-port-server.js'
import { EXIT_MESSAGES, HandshakePool, type PoolHooks, monotonicNow, trustedProxyList } from '../node/handshake-pool.js'
import { NodeHeads } from './node-heads.js'
import { type TcpTransport, tcpHandlesAvailable } from '../node/tcp.js'
import { TcpListener } from '../node/tcp-listener.js'
import { WebSocket, type WebSocketOptions, allowShadowing, type SocketTopicHub, type SocketServerContext, kServer } from './websocket.js'
import type { VerifyClientInfo } from './types.js'
import type { AuthResult, ClientSet, PublishOptions, ServerOptions, ServerSocket, VerifyClientCallback } from './server-options.js'
import type { Backplane, BackplaneEvent } from '../pubsub/backplane.js'
import { PublishedRun } from '../node/published-run.js'
import { type PublishResult, type SlowConsumerInfo, type TopicStats, TopicHub } from '../pubsub/hub.js'
import type { TopicPolicy } from '../pubsub/policy.js'
import { checkTopic } from '../pubsub/topics.js'
import { DEFAULT_CLOSE_TIMEOUT, coarseNow } from '../node/driver.js'
import { configureReceiveMemory, configureSendMemory, receiveMemoryStats, sendMemoryStats } from '../node/memory-budget.js'
import { type LimitStats, emptyLimitStats, socketLimits, sweepPeriod, sweeps } from '../node/limits.js'
import { deflateMemoryStats } from '../node/zlib-codec.js'
import { type HandshakeRefusalReason, type ServerCounters, type ServerMetrics, countRefusal, emptyServerCounters } from '../node/server-metrics.js'

export type { AuthResult, ClientSet, Http2PortOptions, PublishOptions, ServerOptions, ServerSocket, VerifyClient, VerifyClientCallback } from './server-options.js'


/** Whether `origin` (a browser's Origin header) names the host the request was sent to. */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase()
  } catch {
    return false
  }
}

const RUNNING = 0
const CLOSING = 1
const CLOSED = 2

type UpgradeCallback = (ws: any, request: any) => void

type RejectUpgrade = (reason: HandshakeRefusalReason, status: number, message?: string, headers?: Readonly<Record<string, string | number>>) => void

/** One upgrade on its way through the server's steps (#upgrade, #authenticate, #complete): what each step needs. */
interface UpgradeAttempt {
  readonly request: IncomingMessage | UpgradeRequest
  readonly channel: UpgradeChannel
  /** Bytes that came after the request head. */
  readonly head: Buffer | undefined
  readonly callback: UpgradeCallback
  readonly accepted: AcceptedHandshake
  /** Gives the handshake's place in the pool back (once decided, either way). */
  readonly settled: () => void
  /** Counts and reports the refusal, then answers it. */
  readonly reject: RejectUpgrade
}


/** Defaults of the handshake limits (port mode; Node's HTTP server has the same header defaults). */
const DEFAULT_HANDSHAKE_TIMEOUT = 10_000
const DEFAULT_MAX_HEADER_SIZE = 16 * 1024
const DEFAULT_MAX_HEADERS = 100
const DEFAULT_MAX_PENDING = 1024
const DEFAULT_MAX_PENDING_PER_ADDRESS = 32

/** The server's events and their arguments. */
interface ServerEvents<Socket, Request> {
  connection: [socket: Socket, request: Request]
  error: [error: Error]
  headers: [headers: string[], request: Request]
  close: []
  listening: []
  wsClientError: [error: Error, socket: Duplex, request: Request]
  /** A subscriber was over its backpressure limit when a message was published (tether). */
  slowConsumer: [socket: Socket, info: SlowConsumerInfo]
  /** The backplane's errors, disconnections, reconnections and counted losses (tether). */
  backplane: [event: BackplaneEvent]
}
type EventsOf<T extends typeof WebSocket, U extends typeof IncomingMessage, User> = ServerEvents<ServerSocket<T, User>, InstanceType<U>>
type ServerListener<K extends keyof ServerEvents<unknown, unknown>, T extends typeof WebSocket, U extends typeof IncomingMessage, User> = (
  this: WebSocketServer<T, U, User>,
  ...args: EventsOf<T, U, User>[K]
) => void
type AnyListener<T extends typeof WebSocket, U extends typeof IncomingMessage, User> = (this: WebSocketServer<T, U, User>, ...args: any[]) => void

/**
 * Typed listeners, as @types/ws declares them. Without them the `ws` of a
 * 'connection' handler is `any`, and the usual
 * `wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ...))`
 * does not compile under `noImplicitAny` although it does with ws. Other
 * event names keep the untyped signature.
 */
export interface WebSocketServer<
  T extends typeof WebSocket = typeof WebSocket,
  U extends typeof IncomingMessage = typeof IncomingMessage,
  // Covariant: a server whose sockets carry an Account is a server (as `const wss: WebSocketServer = ...` says).
  out User = unknown,
> {
  on<K extends keyof ServerEvents<unknown, unknown>>(event: K, listener: ServerListener<K, T, U, User>): this
  on(event: string | symbol, listener: AnyListener<T, U, User>): this
  once<K extends keyof ServerEvents<unknown, unknown>>(event: K, listener: ServerListener<K, T, U, User>): this
  once(event: string | symbol, listener: AnyListener<T, U, User>): this
  off<K extends keyof ServerEvents<unknown, unknown>>(event: K, listener: ServerListener<K, T, U, User>): this
  off(event: string | symbol, listener: AnyListener<T, U, User>): this
  addListener<K extends keyof ServerEvents<unknown, unknown>>(event: K, listener: ServerListener<K, T, U, User>): this
  addListener(event: string | symbol, listener: AnyListener<T, U, User>): this
  removeListener<K extends keyof ServerEvents<unknown, unknown>>(event: K, listener: ServerListener<K, T, U, User>): this
  removeListener(event: string | symbol, listener: AnyListener<T, U, User>): this
  emit<K extends keyof ServerEvents<unknown, unknown>>(event: K, ...args: EventsOf<T, U, User>[K]): boolean
  emit(event: string | symbol, ...args: any[]): boolean
}

/**
 * A WebSocket server with the API of `ws` v8.
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'tether-ws'
 * const wss = new WebSocketServer({ port: 8080 })
 * wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)))
 * ```
 */
export class WebSocketServer<
  T extends typeof WebSocket = typeof WebSocket,
  U extends typeof IncomingMessage = typeof IncomingMessage,
  // Covariant: a server whose sockets carry an Account is a server (as `const wss: WebSocketServer = ...` says).
  out User = unknown,
> extends EventEmitter {
  readonly options: Required<Pick<ServerOptions<T, U, User>, 'clientTracking' | 'maxPayload' | 'skipUTF8Validation' | 'autoPong'>> &
    ServerOptions<T, U, User>
  /** Connected clients, when `clientTracking` is on (the default). */
  readonly clients: ClientSet<ServerSocket<T, User>>
  /** The `path` option ('' for any), as @types/ws declares it: code typed against ws's Server passes a tether server. */
  path: string
  #server: HttpServer | HttpsServer | Http2Server | Http2SecureServer | undefined
  /** Port mode over HTTP/2: the open sessions (connections), closed gracefully by close(). */
  #sessions: Set<Http2Session> | undefined
  /** The shutdown in progress or done: later calls get its result. */
  #shuttingDown: Promise<{ closed: number; terminated: number }> | undefined
  /** Port mode over Node's server: its open TCP connections, which shutdown() cuts once its timeout is spent. */
  #ownConnections: Set<Socket> | undefined
  #listener: TcpListener | undefined
  #removeListeners: (() => void) | undefined
  #state = RUNNING
  #emitCloseWhenEmpty = false
  readonly #deflate: DeflateConfig | undefined
  readonly #hub: SocketTopicHub
  readonly #stats: LimitStats = emptyLimitStats()
  /** What `metrics()` reports besides `limitStats` and `topicStats` (server-metrics.ts). */
  readonly #counters: ServerCounters = emptyServerCounters()
  #backplaneState: ServerMetrics['backplane']['state'] = 'none'
  readonly #context: SocketServerContext
  /** Handshakes in progress (head being read, or the upgrade being decided), shared fairly (handshake-pool.ts). */
  readonly #pool: HandshakePool<TcpTransport> | HandshakePool<Duplex>
  /** With `useNodeHttp` or `tls` in port mode: sockets whose request head Node's server is reading. */
  #nodeHeads: NodeHeads | undefined
  /** Whether upgraded connections from Node's HTTP server move onto tether's own transport (server.ts SocketChannel); not with `useNodeHttp`. */
  readonly #takeOver: boolean
  /** Open connections (tracked or not). */
  #open = 0
  /** With `maxConnectionsPerAddress`: open connections by client address, and each socket's address. */
  #openByAddress: Map<string, number> | undefined
  #addressOf: WeakMap<WebSocket, string> | undefined
  #trusted: BlockList | undefined
  /** Sockets to sweep when clientTracking is off. */
  #untracked: Set<WebSocket> | undefined
  #sweeper: NodeJS.Timeout | undefined

  constructor(options: ServerOptions<T, U, User>, callback?: () => void) {
    super()
    const resolved = {
      allowSynchronousEvents: true,
      autoPong: true,
      maxPayload: 100 * 1024 * 1024,
      skipUTF8Validation: false,
      perMessageDeflate: false,
      clientTracking: true,
      noServer: false,
      // ws lists every option it knows in `options`, the unset ones as null; code reading them sees the same.
      handleProtocols: null,
      verifyClient: null,
      closeTimeout: DEFAULT_CLOSE_TIMEOUT,
      maxFragments: 0,
      // ws 8.23's receive limits, listed with ws's values; tether bounds the same memory by maxPayload (one
      // message being assembled, however fragmented) and keeps at most one automatic pong waiting.
      maxBufferedChunks: 256 * 1024,
      maxPendingAutoPongs: 60,
      backlog: null,
      server: null,
      host: null,
      path: null,
      port: null,
      WebSocket,
      ...options,
    } as ServerOptions<T, U, User> & { noServer: boolean; clientTracking: boolean; perMessageDeflate: boolean | PerMessageDeflateOptions }
    if (
      (resolved.port == null && !resolved.server && !resolved.noServer) ||
      (resolved.port != null && (resolved.server || resolved.noServer)) ||
      (resolved.server && resolved.noServer)
    ) {
      throw new TypeError('One and only one of the "port", "server", or "noServer" options must be specified')
    }
    this.options = resolved as typeof this.options
    this.#takeOver = !resolved.useNodeHttp
    this.path = resolved.path ?? ''
    // Validates the option now, so a bad value throws here rather than at the first handshake.
    this.#deflate = resolveDeflateOptions(resolved.perMessageDeflate)
    this.clients = new Set<ServerSocket<T, User>>() as ClientSet<ServerSocket<T, User>>
    if (!resolved.clientTracking) (this as { clients: Set<WebSocket> | undefined }).clients = undefined
    const { backplane, acceptRemote, ...policy } = resolved.topics ?? {}
    this.#hub = new TopicHub<WebSocket, PreparedMessage>(
      (message) => new PreparedMessage(toBuffer(message.data), message.binary, message.compress),
      {
        policy,
        backplane,
        acceptRemote,
        onSlowConsumer: (socket, info) => {
          if (this.listenerCount('slowConsumer') > 0) this.emit('slowConsumer', socket, info)
        },
        onBackplaneEvent: (event) => {
          if (event.type === 'disconnected') this.#backplaneState = 'disconnected'
          else if (event.type === 'reconnected') this.#backplaneState = 'connected'
          this.emit('backplane', event)
        },
        startRun: (first) => new PublishedRun(first),
        onObserverError: (error, topic) => {
          if (this.listenerCount('error') > 0) {
            this.emit('error', Object.assign(new Error(`An onPublish listener of topic ${topic} threw`, { cause: error }), { code: 'TETHER_ERR_OBSERVER', topic }))
          }
        },
      },
    )
    if (backplane !== undefined) this.#backplaneState = 'connected'
    this.#context = { server: this, hub: this.#hub, stats: this.#stats, counters: this.#counters }
    // Validates the limit options now, and starts the one timer that sweeps every socket.
    const limits = socketLimits(resolved as WebSocketOptions, true)
    if (sweeps(limits)) {
      this.#sweeper = setInterval(() => this.#sweep(), sweepPeriod(limits))
      this.#sweeper.unref()
    }
    for (const name of ['maxConnections', 'maxConnectionsPerAddress', 'maxPendingHandshakes', 'maxPendingPerAddress', 'maxHeaderSize', 'maxHeaders', 'handshakeTimeout'] as const) {
      const value = resolved[name]
      if (value !== undefined && !(typeof value === 'number' && value >= 0)) throw new TypeError(`${name} must be a number, 0 or more`)
    }
    if (resolved.maxReceiveMemory !== undefined) configureReceiveMemory({ limit: resolved.maxReceiveMemory })
    if (resolved.maxSendMemory !== undefined) configureSendMemory({ limit: resolved.maxSendMemory })
    const poolOptions = {
      maxPending: resolved.maxPendingHandshakes ?? DEFAULT_MAX_PENDING,
      perAddress: resolved.maxPendingPerAddress ?? DEFAULT_MAX_PENDING_PER_ADDRESS,
      timeout: resolved.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
      trusted: (this.#trusted = trustedProxyList(resolved.trustedProxies)),
    }
    const ownsTcp = resolved.port != null && !resolved.useNodeHttp && !resolved.tls && !resolved.requestListener && !resolved.http2 && tcpHandlesAvailable()
    this.#pool = ownsTcp
      ? new HandshakePool<TcpTransport>(poolOptions, this.#tcpPoolHooks(), this.#stats)
      : new HandshakePool<Duplex>(poolOptions, this.#nodePoolHooks(), this.#stats)

    if (ownsTcp) {
      const listener = new TcpListener((transport) => this.#acceptTcp(transport))
      this.#listener = listener
      listener.listen(resolved.port!, resolved.host ?? undefined, resolved.backlog ?? undefined).then(
        () => {
          if (callback) this.once('listening', callback)
          this.emit('listening')
        },
        (error: Error) => {
          this.#listener = undefined
          this.emit('error', error)
        },
      )
    } else if (resolved.port != null) {
      const listener = resolved.requestListener
      const answer426 = (request: IncomingMessage, response: http.ServerResponse): void => {
        if (this.#nodeHeads?.headRead(request.socket) === true) {
          this.#pool.settle()
          if (this.#tooManyHeaders(request)) {
            response.shouldKeepAlive = false
            response.writeHead(431, { 'Content-Type': 'text/plain', 'Content-Length': 22 }).end('Too many header fields')
            return
          }
        }
        if (listener !== undefined) return listener(request, response)
        // Over HTTP/2 a 426 cannot name the protocol (no Upgrade field, RFC 9113 §8.2.2): say what is expected.
        const status = request.httpVersionMajor >= 2 ? 400 : 426
        const body = status === 400 ? 'This port serves WebSockets: an extended CONNECT with :protocol websocket (RFC 8441)' : http.STATUS_CODES[426]!
        response.writeHead(status, { 'Content-Length': Buffer.byteLength(body), 'Content-Type': 'text/plain' })
        response.end(body)
      }
      // Node's server reads the request here: give it the port-mode limits, and admit each
      // connection to the pool (per-address share, displacement, the head timeout) on 'connection'.
      const timeout = poolOptions.timeout
      const limits: http.ServerOptions = {
        maxHeaderSize: resolved.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
        ...(timeout > 0 ? { headersTimeout: timeout, requestTimeout: timeout } : {}),
      }
      const server = resolved.http2
        ? createHttp2PortServer({
            options: resolved,
            maxHeaders: resolved.maxHeaders ?? DEFAULT_MAX_HEADERS,
            limits,
            timeout,
            answer: answer426,
            onExtendedConnect: (stream, headers, rawHeaders) => this.#acceptStream(stream, headers, rawHeaders),
            sessions: (this.#sessions = new Set()),
          })
        : resolved.tls
          ? https.createServer({ ...limits, ...(timeout > 0 ? { handshakeTimeout: timeout } : {}), ...resolved.tls }, answer426)
          : http.createServer(limits, answer426)
      // Node's server keeps the first maxHeadersCount fields and drops the rest without a word: keep one more than
      // the limit, so that #tooManyHeaders sees a request over it and answers 431 as the port tether owns does
      // (tether serve took 1,500 fields, issue 16).
      ;(server as HttpServer).maxHeadersCount = (resolved.maxHeaders ?? DEFAULT_MAX_HEADERS) + 1
      // Over TLS, or HTTP/2 (whose clients expect frames, not an HTTP/1.1 answer), a refusal is a close.
      const heads = (this.#nodeHeads = new NodeHeads(
        { pool: this.#pool as HandshakePool<Duplex>, stats: this.#stats, refused: (reason, status, message, address) => this.#refused(reason, status, message, address) },
        Boolean(resolved.tls) || Boolean(resolved.http2),
      ))
      const connections = (this.#ownConnections = new Set())
      server.on('connection', (socket: Socket) => {
        connections.add(socket)
        socket.once('close', forgetConnection)
        heads.admit(socket)
      })
      const forgetConnection = function (this: Socket): void {
        connections.delete(this)
      }
      server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => heads.clientError(error, socket))
      server.listen(resolved.port, resolved.host, resolved.backlog, callback)
      this.#server = server
    } else if (resolved.server) {
      this.#server = resolved.server
    }

    if (this.#server) {
      const server = this.#server
      const onListening = (): void => {
        this.emit('listening')
      }
      const onError = (error: Error): void => {
        this.emit('error', error)
      }
      const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
        const emitConnection = (ws: WebSocket): void => {
          this.emit('connection', ws, request)
        }
        // Port mode over Node's server: the connection already holds its place in the pool.
        if (this.#nodeHeads?.headRead(socket) === true) {
          if (this.#tooManyHeaders(request)) {
            this.#pool.settle()
            return rejectUpgrade(socket, 431, 'Too many header fields')
          }
          return this.#upgrade(request, new SocketChannel(socket, this.#takeOver), head, emitConnection, this.#settler())
        }
        this.handleUpgrade(request as InstanceType<U>, socket, head, emitConnection)
      }
      server.on('listening', onListening)
      server.on('error', onError)
      server.on('upgrade', onUpgrade)
      // HTTP/2 (RFC 8441): WebSockets arrive as extended CONNECT streams, on the same connections as requests.
      let removeStreamListeners: (() => void) | undefined
      if (isHttp2Server(server)) {
        // Sessions the server opens from now on tell clients that they may send extended CONNECTs (§3).
        if (!resolved.http2) server.updateSettings({ enableConnectProtocol: true })
        removeStreamListeners = listenForStreams(server, (stream, headers, rawHeaders) => this.#acceptStream(stream, headers, rawHeaders))
      }
      this.#removeListeners = () => {
        server.removeListener('listening', onListening)
        server.removeListener('error', onError)
        server.removeListener('upgrade', onUpgrade)
        removeStreamListeners?.()
      }
    }
  }

  /** The bound address of the internal or attached server (ws `address()`). */
  address(): AddressInfo | string | null {
    if (this.options.noServer) throw new Error('The server is operating in "noServer" mode')
    if (this.#listener) return this.#listener.address()
    if (!this.#server) return null
    return this.#server.address()
  }

  /**
   * Stops accepting connections and closes the internal HTTP server if there
   * is one. Open connections are left alone (ws v8 behaviour); `close` is
   * emitted once they have all closed.
   */
  close(callback?: (error?: Error) => void): void {
    if (this.#state === CLOSED) {
      if (callback) this.once('close', () => callback(new Error('The server is not running')))
      process.nextTick(() => this.#emitClose())
      return
    }
    if (callback) this.once('close', callback)
    if (this.#state === CLOSING) return
    this.#state = CLOSING
    if (this.options.noServer || this.options.server) {
      this.#removeListeners?.()
      this.#removeListeners = undefined
      this.#server = undefined
      if (this.clients && this.clients.size > 0) this.#emitCloseWhenEmpty = true
      else process.nextTick(() => this.#emitClose())
    } else if (this.#listener) {
      // Like ws over its own HTTP server: stop accepting; 'close' once the connections are gone.
      this.#listener.close()
      this.#listener = undefined
      if (this.clients && this.clients.size > 0) this.#emitCloseWhenEmpty = true
      else process.nextTick(() => this.#emitClose())
    } else if (this.#server) {
      const server = this.#server
      this.#removeListeners?.()
      this.#removeListeners = undefined
      this.#server = undefined
      server.close(() => this.#emitClose())
      // HTTP/2 connections stay open for their streams: a GOAWAY (NO_ERROR) lets open WebSockets and
      // requests finish and refuses new ones; each connection then closes, and the server with the last.
      for (const session of this.#sessions ?? []) session.close()
    } else {
      // The port could not be bound; nothing is open.
      process.nextTick(() => this.#emitClose())
    }
  }

  /**
   * Graceful shutdown (tether's addition): stops accepting, closes every
   * connection with `code` (default 1001, Going Away) and `reason`, waits up
   * to `timeout` ms (default 10 000) for their closing handshakes, terminates
   * the rest, and resolves once the server emitted `close`. Messages sent
   * before it are delivered ahead of the close frame; those a terminated
   * connection could not deliver fail their send callbacks. A server that
   * owns its port also cuts, once `timeout` is spent, the connections that
   * are not WebSockets and still hold it open (an HTTP/2 connection whose
   * peer does not close it after the GOAWAY, a request in progress).
   * `timeout: Infinity` waits for every peer. A call while one runs, or
   * after it, gets that call's result (the connections are counted once).
   *
   * @example
   * ```ts
   * process.on('SIGTERM', async () => { await wss.shutdown({ timeout: 5_000 }); process.exit(0) })
   * ```
   */
  shutdown(options: { code?: number; reason?: string; timeout?: number } = {}): Promise<{ closed: number; terminated: number }> {
    const timeout = options.timeout ?? 10_000
    if (typeof timeout !== 'number' || Number.isNaN(timeout)) {
      return Promise.reject(new TypeError(`shutdown(): timeout must be a number of milliseconds (Infinity waits for every peer), got ${String(timeout)}`))
    }
    return (this.#shuttingDown ??= this.#shutdown(options.code ?? 1001, options.reason ?? 'server shutting down', Math.max(0, timeout)))
  }

  async #shutdown(code: number, reason: string, timeout: number): Promise<{ closed: number; terminated: number }> {
    const deadlineAt = Date.now() + timeout
    const sockets = [...(this.clients ?? this.#untracked ?? [])]
    const ownConnections = this.#ownConnections
    const closing = new Promise<void>((resolve) => this.close(() => resolve()))
    const gone = sockets.map(
      (ws) =>
        new Promise<boolean>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve(true)
          ws.once('close', () => resolve(true))
          if (ws.readyState === WebSocket.OPEN) ws.close(code, reason)
        }),
    )
    await settlesWithin(Promise.all(gone), timeout)
    let terminated = 0
    for (const ws of sockets) {
      if (ws.readyState !== WebSocket.CLOSED) {
        terminated++
        ws.terminate()
      }
    }
    await Promise.all(gone)
    // What else holds a server of our own open (an HTTP/2 connection after its GOAWAY, whose peer may never close
    // its side; a request in progress) gets the rest of the timeout, then is cut: shutdown() ends by its timeout.
    if (ownConnections !== undefined && !(await settlesWithin(closing, deadlineAt - Date.now()))) {
      for (const socket of ownConnections) socket.destroy()
    }
    await closing.catch(() => {})
    return { closed: sockets.length - terminated, terminated }
  }

  /** Whether this server handles `request` (the `path` option). */
  shouldHandle(request: IncomingMessage | UpgradeRequest): boolean {
    if (this.options.path) {
      const url = request.url ?? ''
      const query = url.indexOf('?')
      const pathname = query === -1 ? url : url.slice(0, query)
      if (pathname !== this.options.path) return false
    }
    return true
  }

  /** Completes (or refuses) the upgrade of `socket`; `callback` gets the new WebSocket. */
  handleUpgrade(
    request: InstanceType<U>,
    socket: Duplex,
    head: Buffer,
    callback: (client: ServerSocket<T, User>, request: InstanceType<U>) => void,
  ): void {
    const channel = new SocketChannel(socket, this.#takeOver)
    // The request is complete: it takes a place to be decided in, or 503 (it is not displaceable).
    if (!this.#pool.reserve()) {
      this.#stats.tooManyPending++
      this.#refused('too-many-pending', 503, 'Too many handshakes in progress', (socket as Socket).remoteAddress)
      return channel.reject(503, 'Too many handshakes in progress')
    }
    this.#upgrade(request, channel, head, callback, this.#settler())
  }

  /**
   * Completes (or refuses) a WebSocket over an HTTP/2 stream (tether's
   * addition, RFC 8441): `stream` and `headers` as Node's `http2` server
   * gives them in its 'stream' event, for an extended CONNECT with
   * `:protocol websocket`. The HTTP/2 counterpart of `handleUpgrade`, for
   * `noServer` setups; servers given as `server`, or owning their port with
   * `http2`, call it themselves. The request `callback` gets is an
   * `http.IncomingMessage` with `httpVersion` '2.0' and `headers.host` from
   * `:authority`.
   *
   * @example
   * ```ts
   * const server = http2.createSecureServer({ key, cert, allowHTTP1: true, settings: { enableConnectProtocol: true } })
   * const wss = new WebSocketServer({ noServer: true })
   * server.on('stream', (stream, headers) => {
   *   if (headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket')
   *     wss.handleStream(stream, headers, (ws, request) => wss.emit('connection', ws, request))
   * })
   * ```
   */
  handleStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    callback: (client: ServerSocket<T, User>, request: InstanceType<U>) => void,
    rawHeaders?: string[],
  ): void {
    const channel = new Http2StreamChannel(stream, headers)
    if (!this.#pool.reserve()) {
      this.#stats.tooManyPending++
      this.#refused('too-many-pending', 503, 'Too many handshakes in progress', () => (channel.socket as Socket).remoteAddress)
      return channel.reject(503, 'Too many handshakes in progress')
    }
    this.#upgrade(streamRequest(channel, rawHeaders), channel, undefined, callback as UpgradeCallback, this.#settler())
  }

  /** An extended CONNECT on the server's HTTP/2 connections (given as `server`, or owned with `http2`). */
  #acceptStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined): void {
    // Decided once the rest of what the connection sent with the HEADERS is read (after this turn's I/O: Node
    // runs the ticks between nghttp2's callbacks, before a RST_STREAM in the same read is seen): a stream its
    // client reset meanwhile ("rapid reset", CVE-2023-44487) is dropped here and never costs a WebSocket or the
    // application's 'connection' work (the outsider saw 4,800 such connections a second become WebSockets).
    setImmediate(() => {
      if (stream.destroyed || stream.closed) {
        this.#stats.streamsResetBeforeOpen++
        return
      }
      this.#acceptOpenStream(stream, headers, rawHeaders)
    })
  }

  #acceptOpenStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined): void {
    const channel = new Http2StreamChannel(stream, headers)
    const request = streamRequest(channel, rawHeaders)
    const emitConnection = (ws: WebSocket): void => {
      this.emit('connection', ws, request)
    }
    // Port mode: the connection's first request ends its head phase; its place in the pool decides this one.
    let held = false
    try {
      held = stream.session !== undefined && this.#nodeHeads?.headRead(stream.session.socket as unknown as Duplex) === true
    } catch {
      // The session lost its socket meanwhile (Node's proxy throws): the decision finds the stream unusable.
    }
    if (!held && !this.#pool.reserve()) {
      this.#stats.tooManyPending++
      this.#refused('too-many-pending', 503, 'Too many handshakes in progress', () => (channel.socket as Socket).remoteAddress)
      return channel.reject(503, 'Too many handshakes in progress')
    }
    this.#upgrade(request, channel, undefined, emitConnection, this.#settler())
  }

  /** How often each limit tripped (tether's addition): 408/431/503/403/401 refusals, 1009/1008/1013/1001 closes, timeouts, displaced handshakes. */
  get limitStats(): LimitStats {
    return { ...this.#stats }
  }

  /** Open connections, handshakes in progress, and the bytes the process holds for messages being received. */
  get load(): { connections: number; pendingHandshakes: number; receiveMemory: number; sendMemory: number } {
    return { connections: this.#open, pendingHandshakes: this.#pool.pending, receiveMemory: receiveMemoryStats().held, sendMemory: sendMemoryStats().held }
  }

  /**
   * A snapshot of the server (tether's addition): connections, handshakes
   * accepted and refused by reason, messages and bytes in and out, send-buffer
   * and slow-consumer actions, the backplane's state and totals, the limits'
   * counters and the process-wide memory budgets. Plain numbers, for any
   * exporter; taking one reads each open connection's byte counts (no cost
   * per connection otherwise). `HANDSHAKE_REFUSED_CHANNEL` tells each refusal
   * as it happens.
   *
   * @example
   * ```ts
   * const { connections, messages } = wss.metrics()
   * console.log(`${connections.open} open, ${messages.received} messages received`)
   * ```
   */
  metrics(): ServerMetrics {
    const counters = this.#counters
    let bytesReceived = counters.closedBytesReceived
    let bytesSent = counters.closedBytesSent
    for (const ws of this.clients ?? this.#untracked ?? []) {
      const socket = ws._socket
      if (socket === null || ws.readyState === WebSocket.CLOSED) continue
      bytesReceived += socket.bytesRead
      bytesSent += socket.bytesWritten
    }
    const topics = this.#hub.stats
    return {
      connections: { open: this.#open, accepted: counters.accepted, closed: counters.closed },
      handshakes: { pending: this.#pool.pending, accepted: counters.accepted, refused: { ...counters.refused } },
      messages: { received: counters.messagesReceived, sent: counters.messagesSent + topics.delivered },
      bytes: { received: bytesReceived, sent: bytesSent },
      sendBuffer: { dropped: counters.sendBufferDropped, closed: counters.sendBufferClosed },
      topics: { ...topics, active: this.#hub.registry.topics.length },
      backplane: { state: this.#backplaneState },
      limits: { ...this.#stats },
      memory: { receive: receiveMemoryStats(), send: sendMemoryStats(), deflate: deflateMemoryStats() },
    }
  }

  /** Counts a refused handshake and tells the diagnostics channel (server-metrics.ts Rule 2). */
  #refused(reason: HandshakeRefusalReason, status: number, message: string | undefined, address: string | undefined | (() => string | undefined)): void {
    countRefusal(this, this.#counters, reason, status, message, typeof address === 'function' ? address : () => address)
  }

  /** How the pool reaches connections on a port tether owns: their peer address, and a 408 (counted) when it stops waiting. */
  #tcpPoolHooks(): PoolHooks<TcpTransport> {
    return {
      addressOf: (transport) => transport.address('peer').address,
      expire: (transport, exit) => {
        this.#refused(exit === 'timeout' ? 'timeout' : 'displaced', 408, EXIT_MESSAGES[exit], () => transport.address('peer').address)
        transport.abandonHead(EXIT_MESSAGES[exit])
      },
      now: monotonicNow,
    }
  }

  /** A function that gives back a pending handshake's place in the pool, once however often it is called. */
  #settler(): () => void {
    let pending = true
    return () => {
      if (pending) this.#pool.settle()
      pending = false
    }
  }

  /** One heartbeat and idle check of every socket. */
  #sweep(): void {
    const now = coarseNow()
    for (const ws of this.clients ?? this.#untracked ?? []) ws._sweep(now)
  }

  /** A connection to the port tether owns: read its request, then upgrade it or answer. */
  #acceptTcp(transport: TcpTransport): void {
    const options = this.options
    const pool = this.#pool as HandshakePool<TcpTransport>
    const entry = pool.admit(transport)
    if (entry === undefined) {
      this.#stats.tooManyPending++
      this.#refused('too-many-pending', 503, 'Too many handshakes in progress', () => transport.address('peer').address)
      return transport.reject(503, 'Too many handshakes in progress')
    }
    const settled = this.#settler()
    const limits = { maxHeadSize: options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE, maxHeaders: options.maxHeaders ?? DEFAULT_MAX_HEADERS }
    transport.readHead(limits, (channel, result) => {
      pool.headDone(entry)
      if ('status' in result) {
        settled()
        if (result.status === 0) return
        // A 408 comes from the pool, which counted it (a timeout or a displacement).
        if (result.status === 431) this.#stats.headersTooLarge++
        if (result.status !== 408) {
          this.#refused(result.status === 431 ? 'headers-too-large' : 'invalid-request', result.status, result.message, () => transport.address('peer').address)
        }
        return channel.reject(result.status, result.message)
      }
      const request = new UpgradeRequest(result.head, channel)
      // Node's HTTP server treats a request as an upgrade only with both Upgrade and
      // "Connection: upgrade"; anything else is a plain request, answered as ws's server does.
      const upgrade = request.headers.upgrade !== undefined && hasToken(request.headers.connection, 'upgrade')
      if (!upgrade) {
        settled()
        this.#refused('not-upgrade', 426, http.STATUS_CODES[426], () => transport.address('peer').address)
        return channel.reject(426, http.STATUS_CODES[426], { Upgrade: 'websocket' })
      }
      this.#upgrade(request, channel, undefined, (ws) => this.emit('connection', ws, request), settled)
    })
  }

  /**
   * Whether an HTTP/1 request read by Node's server (port mode) has more
   * fields than `maxHeaders` (counted, 431 to answer). Over HTTP/2 the
   * session's `maxHeaderListPairs` holds the limit.
   */
  #tooManyHeaders(request: IncomingMessage): boolean {
    if (request.httpVersionMajor >= 2 || request.rawHeaders.length / 2 <= (this.options.maxHeaders ?? DEFAULT_MAX_HEADERS)) return false
    this.#stats.headersTooLarge++
    this.#refused('headers-too-large', 431, 'Too many header fields', request.socket?.remoteAddress)
    return true
  }

  /** How the pool reaches sockets of Node's server: their address, and (port mode over it) the head it stops waiting for. */
  #nodePoolHooks(): PoolHooks<Duplex> {
    return {
      addressOf: (socket) => (socket as Socket).remoteAddress,
      // Only heads admitted on 'connection' expire; they are the port mode's (node-heads.ts).
      expire: (socket, exit) => this.#nodeHeads?.expire(socket, exit),
      now: monotonicNow,
    }
  }

  #upgrade(
    request: IncomingMessage | UpgradeRequest,
    channel: UpgradeChannel,
    head: Buffer | undefined,
    callback: UpgradeCallback,
    settled: () => void,
  ): void {
    const address = (): string | undefined => (request.socket as Socket | undefined)?.remoteAddress
    const reject: RejectUpgrade = (reason, status, message, headers) => {
      settled()
      this.#refused(reason, status, message, address)
      channel.reject(status, message, headers)
    }
    // HTTP/1.1: RFC 6455 §4.2.1; an HTTP/2 stream: RFC 8441 §4, §5 (its channel knows).
    const accepted = channel.checkRequest?.() ?? checkUpgradeRequest(request as IncomingMessage)
    if (accepted instanceof HandshakeError) {
      settled()
      this.#refused('invalid-request', accepted.status, accepted.message, address)
      return this.#refuse(request, channel, accepted.status, accepted.message, accepted.headers, accepted)
    }
    const attempt: UpgradeAttempt = { request, channel, head, callback, accepted, settled, reject }
    if (!this.shouldHandle(request)) {
      settled()
      this.#refused('path', 400, undefined, address)
      // Not the client's fault: another path's server may share the HTTP server. ws answers 400 here without
      // 'wsClientError', so applications counting bad clients there see only bad requests.
      return channel.reject(400)
    }
    const allowOrigins = this.options.allowOrigins
    if (allowOrigins !== undefined) {
      const origin = accepted.origin
      const allowed =
        origin === undefined
          ? this.options.allowMissingOrigin !== false
          : allowOrigins === 'same-origin'
            ? sameOrigin(origin, request.headers.host as string | undefined)
            : allowOrigins.includes(origin) ||
              (allowOrigins.includes('same-origin') && sameOrigin(origin, request.headers.host as string | undefined))
      if (!allowed) {
        this.#stats.originRefused++
        // Not the Origin itself: this text goes to the handshake-refused channel, and so to logs (a 15 KB
        // Origin made each log line 15 KB, issue 16); the client knows what it sent.
        return reject('origin', 403, origin === undefined ? 'An Origin header is required' : 'This Origin is not allowed')
      }
    }

    const verifyClient = this.options.verifyClient
    if (verifyClient) {
      // A port tether owns is plain TCP; otherwise ask the socket (TLS sockets say so).
      const socket = request instanceof UpgradeRequest ? undefined : (request.socket as Socket & { authorized?: boolean; encrypted?: boolean })
      const info: VerifyClientInfo = {
        origin: accepted.origin as string,
        secure: channel.secure ?? Boolean(socket?.authorized || socket?.encrypted),
        req: request as IncomingMessage,
      }
      if (verifyClient.length === 2) {
        let answered = false
        const done: VerifyClientCallback = (verified, code, message, headers) => {
          if (answered) return
          answered = true
          if (!verified) return reject('verify-client', code || 401, message, headers as Record<string, string | number> | undefined)
          this.#authenticate(attempt)
        }
        try {
          ;(verifyClient as (info: VerifyClientInfo, callback: VerifyClientCallback) => void)(info, done)
        } catch (error) {
          if (!answered) {
            answered = true
            reject('callback-error', 500)
          }
          this.#reportCallbackError(error)
        }
        return
      }
      let verified: boolean
      try {
        verified = (verifyClient as (info: VerifyClientInfo) => boolean)(info)
      } catch (error) {
        reject('callback-error', 500)
        return this.#reportCallbackError(error)
      }
      if (!verified) return reject('verify-client', 401)
    }
    this.#authenticate(attempt)
  }

  /**
   * Sends one message to every tracked client (or those `filter` keeps),
   * framed once and compressed at most once per compression setting (a
   * prepared message). Returns how many clients it was sent to.
   *
   * @example
   * ```ts
   * wss.broadcast(JSON.stringify({ score: '2-1' }))
   * ```
   */
  broadcast(
    data: string | Buffer | ArrayBuffer | ArrayBufferView,
    options: { binary?: boolean; compress?: boolean } = {},
    filter?: (client: WebSocket) => boolean,
  ): number {
    const clients = this.clients
    if (clients === undefined) throw new Error('broadcast() needs clientTracking')
    const binary = options.binary ?? typeof data !== 'string'
    const bytes = typeof data === 'string' ? Buffer.from(data) : toBuffer(data)
    const prepared = new PreparedMessage(bytes, binary)
    let sent = 0
    for (const client of clients) {
      if (client.readyState !== WebSocket.OPEN || (filter && !filter(client))) continue
      client.send(prepared, { compress: options.compress ?? true })
      sent++
    }
    return sent
  }

  /**
   * Publishes a message to every subscriber of `topic` on this server, framed
   * once (compressed at most once per compression setting), and through the
   * backplane to the subscribers on other nodes. Subscribers over their
   * backpressure limit get the topic's slow-consumer policy. Never throws
   * because of a subscriber or the backplane: see the result, `topicStats`,
   * and the `slowConsumer` and `backplane` events.
   *
   * @example
   * ```ts
   * const { delivered } = wss.publish('room:lobby', JSON.stringify({ from: 'ada', text: 'hi' }))
   * ```
   */
  publish(topic: string, data: string | Buffer | ArrayBuffer | ArrayBufferView, options: PublishOptions = {}): PublishResult {
    checkTopic(topic, 'publish()')
    if (this.#state === CLOSED) {
      throw new Error('publish() on a closed WebSocketServer: publish before close(), or create a new server')
    }
    if (typeof data !== 'string' && !(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) {
      throw new TypeError(
        `publish(): data must be a string, Buffer, ArrayBuffer or typed array, got ${data === null ? 'null' : typeof data}`,
      )
    }
    if (options.key !== undefined && typeof options.key !== 'string') throw new TypeError('publish(): key must be a string')
    return this.#hub.publish({
      topic,
      data: typeof data === 'string' ? Buffer.from(data) : toBuffer(data),
      binary: options.binary ?? typeof data !== 'string',
      compress: options.compress ?? true,
      key: options.key,
    }, options.local === true)
  }

  /**
   * Calls `listener` with every message published on `topic`, on this server
   * or (through the backplane) on another node, before subscribers get it.
   * For what the server itself keeps, such as a room's recent history.
   * Returns a function that removes the listener.
   */
  onPublish(topic: string, listener: (data: Buffer, isBinary: boolean) => void): () => void {
    checkTopic(topic, 'onPublish()')
    if (typeof listener !== 'function') throw new TypeError('onPublish(): the listener must be a function')
    return this.#hub.observe(topic, (message) => listener(toBuffer(message.data), message.binary))
  }

  /** How many sockets of this server are subscribed to `topic`. */
  subscriberCount(topic: string): number {
    checkTopic(topic, 'subscriberCount()')
    return this.#hub.registry.subscriberCount(topic)
  }

  /** Topics with at least one subscriber on this server. */
  get topics(): string[] {
    return this.#hub.registry.topics
  }

  /** Sets the slow-consumer policy of one topic, over the server's (`topics` option). */
  setTopicPolicy(topic: string, policy: Partial<TopicPolicy>): TopicPolicy {
    checkTopic(topic, 'setTopicPolicy()')
    return this.#hub.setPolicy(topic, policy)
  }

  /** Running totals of publishing: delivered, dropped, conflated, closed, and backplane traffic and losses. */
  get topicStats(): TopicStats {
    return { ...this.#hub.stats }
  }

  /** The backplane given in the `topics` option, if any. */
  get backplane(): Backplane | undefined {
    return this.#hub.backplane
  }

  /** The `authenticate` hook, if any, then the upgrade. */
  #authenticate(attempt: UpgradeAttempt): void {
    const { accepted, request, channel, reject } = attempt
    const authenticate = this.options.authenticate
    const complete = (user?: unknown): void => this.#complete(attempt, user)
    if (authenticate === undefined) return complete()
    const socket = request instanceof UpgradeRequest ? undefined : (request.socket as Socket & { encrypted?: boolean })
    const info = { origin: accepted.origin, protocols: accepted.protocols, secure: channel.secure ?? Boolean(socket?.encrypted) }
    const decide = (result: AuthResult): void => {
      if (result === true) return complete()
      if (typeof result === 'object' && result !== null && 'user' in result) return complete(result.user)
      if (typeof result === 'object' && result !== null && 'status' in result && typeof result.status === 'number') {
        const reason = result.reason === 'path' || result.reason === 'host' ? result.reason : 'authenticate'
        if (reason === 'authenticate') this.#stats.authRefused++
        return reject(reason, result.status, result.message, result.headers)
      }
      this.#stats.authRefused++
      reject('authenticate', 401)
    }
    const failed = (error: unknown): void => {
      reject('callback-error', 500)
      this.#reportCallbackError(error)
    }
    let result: AuthResult | Promise<AuthResult>
    try {
      result = authenticate(request as InstanceType<U>, info)
    } catch (error) {
      return failed(error)
    }
    if (result instanceof Promise) result.then(decide, failed)
    else decide(result)
  }

  #complete(attempt: UpgradeAttempt, user?: unknown): void {
    const { accepted, request, channel, head, callback } = attempt
    attempt.settled()
    // Before `usable`: a connection taken over from its net.Socket left that socket destroyed.
    if (channel.upgraded) {
      throw new Error(
        'server.handleUpgrade() was called more than once with the same socket, possibly due to a misconfiguration',
      )
    }
    if (!channel.usable) {
      channel.destroy()
      return
    }
    const address = (): string | undefined => (request.socket as Socket | undefined)?.remoteAddress
    if (this.#state > RUNNING) {
      this.#refused('shutting-down', 503, undefined, address)
      return channel.reject(503)
    }
    const maxConnections = this.options.maxConnections ?? 0
    if (maxConnections > 0 && this.#open >= maxConnections) {
      this.#stats.tooManyConnections++
      this.#refused('too-many-connections', 503, 'Too many connections', address)
      return channel.reject(503, 'Too many connections')
    }
    const perAddress = this.options.maxConnectionsPerAddress ?? 0
    let client: string | undefined
    if (perAddress > 0) {
      client = clientAddress((request.socket as Socket | undefined)?.remoteAddress)
      if (client !== undefined && this.#trusted?.check(client, isIPv4(client) ? 'ipv4' : 'ipv6')) client = undefined
      if (client !== undefined && (this.#openByAddress?.get(client) ?? 0) >= perAddress) {
        this.#stats.tooManyFromAddress++
        this.#refused('too-many-from-address', 503, 'Too many connections from this address', address)
        return channel.reject(503, 'Too many connections from this address')
      }
    }

    const { protocols, extensions: extensionOffers } = accepted
    let protocol: string | undefined
    if (protocols.length > 0) {
      const handleProtocols = this.options.handleProtocols
      const chosen = handleProtocols ? handleProtocols(new Set(protocols), request as InstanceType<U>) : protocols[0]
      if (chosen) protocol = chosen
    }
    // RFC 7692 §5: the first acceptable offer, or none (then no compression, not a refusal).
    const deflate = this.#deflate ? acceptDeflate(extensionOffers, this.#deflate) : undefined
    const agreed = deflate ? [deflate.response] : []
    // HTTP/1.1: 101 with the key's Accept; an HTTP/2 stream: 200, no key (RFC 8441 §5).
    const lines = channel.answerLines?.(protocol, agreed) ?? upgradeResponseLines(accepted.key ?? '', protocol, agreed)
    const Class = (this.options.WebSocket ?? WebSocket) as typeof WebSocket
    const ws = new Class(null, undefined, this.options as WebSocketOptions)
    ws[kServer] = this.#context
    if (user !== undefined) ws.user = user
    ws._setNegotiated(protocol ?? '', deflate ? PERMESSAGE_DEFLATE : '')
    this.emit('headers', lines, request)
    const transport = channel.accept(serializeResponseHead(lines), lines, request)
    ws._attach(transport, head, this.options as WebSocketOptions, deflate?.session)

    this.#open++
    this.#counters.accepted++
    if (client !== undefined) {
      const counts = (this.#openByAddress ??= new Map())
      counts.set(client, (counts.get(client) ?? 0) + 1)
      ;(this.#addressOf ??= new WeakMap()).set(ws, client)
    }
    if (this.clients) this.clients.add(ws as ServerSocket<T, User>)
    else if (this.#sweeper !== undefined) (this.#untracked ??= new Set()).add(ws)
    ws.on('close', WebSocketServer.#onClientClose)
    callback(ws, request as IncomingMessage)
  }

  #refuse(
    request: IncomingMessage | UpgradeRequest,
    channel: UpgradeChannel,
    status: number,
    message?: string,
    headers?: Readonly<Record<string, string>>,
    error?: Error,
  ): void {
    // An HTTP/2 stream is answered with HEADERS, not with bytes a wsClientError listener would write.
    if (channel.checkRequest === undefined && this.listenerCount('wsClientError') > 0) {
      this.emit('wsClientError', error ?? new Error(message ?? http.STATUS_CODES[status]), channel.socket, request)
      return
    }
    channel.reject(status, message, headers)
  }

  /** A tracked client closed; one shared listener (no closure per connection): `this` is the client. */
  static #onClientClose(this: WebSocket): void {
    const server = this[kServer]!.server as WebSocketServer
    server.#open--
    const counters = server.#counters
    counters.closed++
    const socket = this._socket
    if (socket !== null) {
      counters.closedBytesReceived += socket.bytesRead
      counters.closedBytesSent += socket.bytesWritten
    }
    const address = server.#addressOf?.get(this)
    if (address !== undefined) {
      const left = server.#openByAddress!.get(address)! - 1
      if (left === 0) server.#openByAddress!.delete(address)
      else server.#openByAddress!.set(address, left)
    }
    server.#untracked?.delete(this)
    const clients = server.clients
    if (clients === undefined) return
    clients.delete(this)
    if (server.#emitCloseWhenEmpty && clients.size === 0) process.nextTick(() => server.#emitClose())
  }

  #emitClose(): void {
    this.#state = CLOSED
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper)
    // The backplane's own trouble while closing is reported like any other (Rule 1 of hub.ts).
    this.#hub.close().catch((error: Error) => this.emit('backplane', { type: 'error', stage: 'connect', error }))
    this.emit('close')
  }

  /** An application callback threw during a handshake: report it without crashing. */
  #reportCallbackError(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }
}

/** A client's address as a map key: an IPv4 client of a dual-stack socket ("::ffff:a.b.c.d") is "a.b.c.d". */
function clientAddress(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

/** A view of bytes as a Buffer, without copying. */
function toBuffer(data: ArrayBuffer | ArrayBufferView): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return Buffer.from(data)
}

// tether's read-only additions give way to an application's own field of the same name (websocket.ts).
allowShadowing(WebSocketServer.prototype, ['limitStats', 'load', 'topics', 'topicStats', 'backplane'])

/** The longest delay setTimeout takes; a longer one fires at once (Node warns, TimeoutOverflowWarning). */
const MAX_TIMER_DELAY = 2 ** 31 - 1

/** Whether `promise` settles within `ms` (at once when `ms` is spent; no limit past the longest timer). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms > MAX_TIMER_DELAY) return promise.then(() => true, () => true)
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<false>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), false)))
  const settled = await Promise.race([promise.then(() => true, () => true), expired])
  clearTimeout(timer)
  return settled
}
