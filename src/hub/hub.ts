/**
 * `createHub`: tether's real-time hub as a library, the application behind
 * `tether serve`. One port serves the pages, `/health` and the WebSocket
 * endpoints of its apps (echo, relay, chat, scores, and `/v1` for reliable
 * delivery), on the package's public API only. The hub owns what its apps
 * share: the backplane, and the history store with its delivery node
 * (history.ts), connected before it listens.
 *
 * Theory of operation: a single WebSocketServer owns the port, in port mode
 * over Node's HTTP server (`requestListener` answers the pages), so every
 * protection of the library applies to every connection: the head timeout
 * and header limits, the fair pending-handshake pool, `maxConnections`, the
 * origin check, and the counters of `limitStats`. An upgrade goes through
 * the library's checks, then the hub's `authenticate` hook: the route (404
 * for no app), the app's own check (e.g. the relay's topic name), and the
 * token (401). The accepted connection carries what was decided as its
 * `user` (identity, app, parameter); the hub then hands it to the app.
 *
 * Rule 1 (the process stays up): whatever a client sends, and whatever an
 * app or an `onPublish` listener throws, is caught, counted and reported
 * (app.ts Rule 2); nothing is rethrown where nobody can catch it.
 * Rule 2 (namespaces): clients name relay topics only; apps' topics are
 * apart (topics.ts).
 * Rule 3 (fair share): a client's publishes meet its own limits first
 * (rate-limit.ts), so one fast publisher cannot make the server close the
 * subscribers that read normally. Each connection has its own buckets (past
 * them: the configured action, closing by default), and a client's
 * connections together share one more set with the same limits, past which
 * messages are dropped: a client cannot multiply its share by opening
 * connections, and a quiet connection that shares an address with a flooder
 * loses messages while the flood lasts, not its connection. A client is its
 * token's subject, or else its address (behind a trusted proxy, the one the
 * proxy names); one address may hold at most `maxConnectionsPerAddress`
 * WebSockets.
 * Rule 4 (the hub answers to its own names): listening on a loopback address,
 * it serves only loopback host names (a page elsewhere whose name resolves
 * to this machine, DNS rebinding, gets 403), unless `allowedHosts` says more.
 * Rule 5 (untrusted nodes): a message from another node larger than
 * `maxPayload`, or on an app's `local:` topic, is refused at the backplane.
 */
import { randomUUID } from 'node:crypto'
import diagnostics from 'node:diagnostics_channel'
import { type IncomingMessage, type Server as HttpServer, createServer } from 'node:http'
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type BackplaneEvent, HANDSHAKE_REFUSED_CHANNEL, type HandshakeRefusedMessage, WebSocket, WebSocketServer } from 'tether-ws'
import { type Backplane, selectDeliveryProtocol } from 'tether-ws/pubsub'
import type { AdmitOutcome, App, AppServices, HubClient, Refusal } from './app.js'
import { chatApp } from './apps/chat.js'
import { deliveryApp } from './apps/delivery.js'
import { echoApp } from './apps/echo.js'
import { relayApp } from './apps/relay.js'
import { scoresApp } from './apps/scores.js'
import { AuthError, type Authenticator, HUB_PROTOCOL, type Identity, createAuthenticator } from './auth.js'
import { type HubConfig, resolveHubConfig } from './config.js'
import { HubHistory } from './history.js'
import { type MetricsRoute, operatorListener, requestListener, requestPath } from './http.js'
import { lineLogger } from './log.js'
import { LogBudget, REFUSAL_LOG_BUDGET } from './log-budget.js'
import { createMetrics } from './metrics.js'
import { ClientPublishLimiter, PublishLimits } from './rate-limit.js'
import { LOCAL_PREFIX } from './topics.js'

/** What the hub counts (besides the library's `limitStats` and `topicStats`). */
export interface HubStats {
  /** Exceptions thrown by an app (the client's connection was closed with 1011). */
  appErrors: number
  /** Exceptions thrown by an `onPublish` listener (the library reports them; the hub counts). */
  observerErrors: number
  /** Publishes refused because the client may not publish on the topic. */
  publishNotAllowed: number
  /** Publishes dropped, and connections closed (1008), for exceeding the publish limits. */
  publishDropped: number
  publishClosed: number
  /** Connections closed (4001) because their token expired, and tokens refreshed in time. */
  tokensExpired: number
  tokensRefreshed: number
  /** Connections accepted, by endpoint (app name). */
  connections: Record<string, number>
}

export interface Hub {
  readonly wss: WebSocketServer
  readonly port: number
  /** http://host:port (https:// with TLS). */
  readonly url: string
  readonly config: HubConfig
  readonly stats: HubStats
  /** http://host:port of the metrics listener (`metrics.port`), if it has its own. */
  readonly metricsUrl: string | undefined
  /** Whether the hub should get traffic: listening, not shutting down, and with a backplane, connected (`/health/ready`). */
  ready(): boolean
  /** Stops being ready, closes every socket with 1001, waits up to the shutdown timeout, then stops. */
  close(): Promise<void>
}

/** What an accepted connection carries as its `user`. */
interface Admission {
  identity: Identity
  app: App
  param: string
  /** Who the client is, for publish limits shared by its connections (Rule 3). */
  client: string
  /** The client's address, as the socket has it (for logs). */
  address: string
}

/** Loopback names a hub listening on a loopback address answers to (Rule 4). */
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '::1']

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

/** The host name of a Host header (without the port), lower case. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  try {
    return new URL(`http://${header}`).hostname.toLowerCase()
  } catch {
    return undefined
  }
}

/** The client's address (Rule 3): the socket's, or behind a trusted proxy, the last one it put in X-Forwarded-For. */
function clientAddress(request: IncomingMessage, proxies: BlockList | undefined): string {
  let address = request.socket?.remoteAddress ?? ''
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) address = address.slice(7)
  if (proxies !== undefined && address !== '' && proxies.check(address, isIPv4(address) ? 'ipv4' : 'ipv6')) {
    const forwarded = request.headers['x-forwarded-for']
    const last = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded)?.split(',').pop()?.trim()
    if (last !== undefined && (isIPv4(last) || isIPv6(last))) return last
  }
  return address
}

/** `trustedProxies` as a BlockList (addresses and CIDR ranges). */
function proxyList(entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined
  const list = new BlockList()
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/')
    const family = isIPv4(address) ? 'ipv4' : 'ipv6'
    if (prefix === undefined) list.addAddress(address, family)
    else list.addSubnet(address, Number(prefix), family)
  }
  return list
}

/** The package root, where `web/` is: two levels up from dist/hub (three from a test build's build/src/hub). */
const root = ((): string => {
  for (const up of ['../../', '../../../']) {
    const candidate = fileURLToPath(new URL(up, import.meta.url))
    if (existsSync(join(candidate, 'web', 'index.html'))) return candidate
  }
  return fileURLToPath(new URL('../../', import.meta.url))
})()

/** The default apps, as `config.apps` selects them. */
export function defaultApps(config: HubConfig): App[] {
  const apps: App[] = []
  if (config.apps.echo) apps.push(echoApp())
  if (config.apps.relay) apps.push(relayApp())
  if (config.apps.chat) apps.push(chatApp())
  if (config.apps.scores) apps.push(scoresApp())
  if (config.apps.delivery) apps.push(deliveryApp(config))
  return apps
}

/** The app reached at `path`, and its parameter (decoded), or a refusal. */
function route(apps: readonly App[], path: string): { app: App; param: string } | Refusal {
  for (const app of apps) {
    if ('path' in app.route) {
      if (path === app.route.path) return { app, param: '' }
    } else if (path.startsWith(app.route.prefix)) {
      try {
        return { app, param: decodeURIComponent(path.slice(app.route.prefix.length)) }
      } catch {
        return { status: 400, message: 'The path is not valid percent-encoding', reason: 'path' }
      }
    }
  }
  return { status: 404, reason: 'path', message: `No WebSocket endpoint here: try ${apps.map((app) => ('path' in app.route ? app.route.path : `${app.route.prefix}NAME`)).join(', ')}` }
}

async function connectBackplane(config: HubConfig): Promise<{ backplane: Backplane | undefined; kind: string }> {
  const spec = config.backplane
  // No broker: kind `none`, the library's word (`wss.metrics().backplane.state`), in /health and /metrics alike.
  if (spec === undefined) return { backplane: undefined, kind: 'none' }
  if (spec.kind === 'custom') return { backplane: spec.backplane, kind: 'custom' }
  if (spec.kind === 'redis') {
    const { RedisBackplane } = await import('tether-ws/pubsub/redis')
    return { backplane: await RedisBackplane.connect({ url: spec.url, connectTimeout: spec.connectTimeout }), kind: 'redis' }
  }
  const { NatsBackplane } = await import('tether-ws/pubsub/nats')
  return { backplane: await NatsBackplane.connect({ servers: spec.url, connectTimeout: spec.connectTimeout }), kind: 'nats' }
}

/**
 * Starts a hub: resolves once it listens (rejects with the reason when it
 * cannot: a port in use, a broker out of reach, a bad configuration).
 *
 * @example
 * ```ts
 * import { createHub } from 'tether-ws/hub'
 * const hub = await createHub({ port: 8080, allowOrigins: ['https://app.example'] })
 * process.on('SIGTERM', () => void hub.close())
 * ```
 */
export async function createHub(options: Partial<HubConfig> = {}, apps?: App[]): Promise<Hub> {
  const config = resolveHubConfig(options)
  const logger = config.logger ?? lineLogger(config.log)
  /** A line of the hub's own (apps' `services.log` too). */
  const log = (line: string): void => logger.info({}, line)
  const authenticator: Authenticator = await createAuthenticator(config.auth)
  const { backplane, kind } = await connectBackplane(config)
  const hubApps = apps ?? defaultApps(config)
  let history: HubHistory
  try {
    history = await HubHistory.connect(config, hubApps)
  } catch (error) {
    await backplane?.close()
    throw error
  }
  try {
    for (const app of hubApps) await app.prepare?.()
  } catch (error) {
    await Promise.allSettled(hubApps.map((app) => app.stop?.()))
    await history.close()
    await backplane?.close()
    throw error
  }
  const limits = new PublishLimits(config.publish.limit, config.publish.topics)
  const node = randomUUID()
  const started = Date.now()
  const stats: HubStats = {
    appErrors: 0,
    observerErrors: 0,
    publishNotAllowed: 0,
    publishDropped: 0,
    publishClosed: 0,
    tokensExpired: 0,
    tokensRefreshed: 0,
    connections: Object.fromEntries(hubApps.map((app) => [app.name, 0])),
  }
  let backplaneState = backplane ? 'connected' : 'none'
  let listeningNow = false
  let stopping = false
  const ready = (): boolean => listeningNow && !stopping && backplaneState !== 'disconnected'
  const clients = new Map<WebSocket, ClientState>()

  const anyOrigin = config.allowOrigins.includes('*')
  if (anyOrigin) logger.warn({}, "--allow-origin * lets any web page use this hub through its visitors' browsers")
  const proxies = proxyList(config.trustedProxies)
  // Rule 4: the names this hub answers to (undefined: any).
  const allowedHosts =
    config.allowedHosts !== undefined
      ? new Set(config.allowedHosts.map((host) => host.toLowerCase()))
      : isLoopback(config.host)
        ? new Set(LOOPBACK_HOSTS)
        : undefined
  const hostAllowed = (request: IncomingMessage): boolean => {
    if (allowedHosts === undefined) return true
    // HTTP/2 requests name their host in :authority (a WebSocket's request has both).
    const allowed = (name: string | undefined): boolean => name !== undefined && (allowedHosts.has(name) || allowedHosts.has(`[${name}]`))
    if (!allowed(hostName(request.headers.host ?? (request.headers[':authority'] as string | undefined)))) return false
    // A request line in absolute form names the host itself, and it wins over Host (RFC 9112 §3.2.2): check it too.
    const url = request.url ?? ''
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return true
    return URL.canParse(url) && allowed(hostName(new URL(url).host))
  }
  const limiters = new Map<string, { limiter: ClientPublishLimiter; connections: number }>()

  // /metrics renders the library's and the hub's counters (metrics.ts); `wss` exists by the first scrape.
  const registry = config.metrics.enabled
    ? createMetrics({
        server: () => wss.metrics(),
        openByEndpoint: () => {
          const open: Record<string, number> = Object.fromEntries(hubApps.map((app) => [app.name, 0]))
          for (const ws of wss.clients) {
            const name = (ws.user as Admission | undefined)?.app.name
            if (name !== undefined && ws.readyState === WebSocket.OPEN) open[name] = (open[name] ?? 0) + 1
          }
          return open
        },
        acceptedByEndpoint: () => stats.connections,
        hub: () => stats,
        backplaneKind: kind,
        ready,
      }, { cacheMs: config.metrics.cacheMs })
    : undefined
  const metricsRoute: MetricsRoute | undefined = registry && {
    token: config.metrics.token,
    render: async () => ({ contentType: registry.contentType, body: await registry.render() }),
  }

  const wss: WebSocketServer = new WebSocketServer({
    port: config.port,
    host: config.host,
    ...(config.tls ? { tls: { cert: config.tls.cert, key: config.tls.key }, ...(config.http2 ? { http2: true } : {}) } : {}),
    requestListener: requestListener({
      root,
      health: () => health(),
      ready,
      metrics: config.metrics.port === undefined ? metricsRoute : undefined,
      isWebSocketPath: (path) => !('status' in route(hubApps, path)),
      hostAllowed,
    }),
    maxPayload: config.maxPayload,
    perMessageDeflate: config.compression,
    maxConnections: config.maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    trustedProxies: config.trustedProxies,
    handshakeTimeout: config.http.headersTimeout,
    maxHeaderSize: config.http.maxHeaderSize,
    maxHeaders: config.http.maxHeaders,
    // The pages' own origin, and those listed; any with '*'. Clients that are not browsers send none.
    ...(anyOrigin ? {} : { allowOrigins: ['same-origin', ...config.allowOrigins] }),
    allowMissingOrigin: true,
    // A page carries its token as a subprotocol next to `tether` (auth.ts): select `tether`, never the token;
    // a reliable-delivery client offers `tether.v1` (or its JSON form).
    handleProtocols: (protocols) => (protocols.has(HUB_PROTOCOL) ? HUB_PROTOCOL : selectDeliveryProtocol(protocols)),
    authenticate: async (request) => {
      if (!hostAllowed(request)) return { status: 403, message: 'This Host is not served here', reason: 'host' }
      const path = requestPath(request.url)
      if (path === undefined) return { status: 400, message: 'Bad request target', reason: 'path' }
      const found = route(hubApps, path)
      if ('status' in found) return found
      let identity: Identity
      try {
        identity = await authenticator.identify(request)
      } catch (error) {
        if (error instanceof AuthError) return { status: 401, message: `Unauthorized: ${error.message}` }
        throw error
      }
      const refusal = found.app.check?.(found.param, identity)
      if (refusal !== undefined) return refusal
      const address = clientAddress(request, proxies)
      const admission: Admission = { identity, app: found.app, param: found.param, client: identity.subject !== undefined ? `sub:${identity.subject}` : `ip:${address}`, address }
      return { user: admission }
    },
    topics: {
      backplane,
      // Rule 5: from another node, nothing larger than a client may send, and nothing on this node's own topics.
      acceptRemote: (message) => message.size <= config.maxPayload && !message.topic.startsWith(LOCAL_PREFIX),
    },
  })

  const onServerError = (error: Error & { code?: string }): void => {
    if (error.code === 'TETHER_ERR_OBSERVER') {
      stats.observerErrors++
      logger.error({ event: 'app.error' }, `an app's topic listener threw: ${String((error.cause as Error | undefined)?.message ?? error.message)}`)
    } else logger.error({ event: 'server.error' }, `server error: ${error.message}`)
  }
  // One line per refused handshake: reason, status and address only (log.ts Rule 1: the refusal's text may
  // quote what the client sent, a path or a topic name); within a budget, since clients refuse themselves at will.
  const refusalBudget = new LogBudget(REFUSAL_LOG_BUDGET, (count, byReason) => {
    const reasons = Object.entries(byReason).map(([reason, n]) => `${reason} ${n}`).join(', ')
    logger.warn({ event: 'handshake.refused.summary', count, byReason }, `${count} refused handshake(s) not logged (${reasons}): the metrics count every one`)
  })
  const onRefused = (message: unknown): void => {
    const refusal = message as HandshakeRefusedMessage
    if (refusal.server !== wss || !refusalBudget.take(refusal.reason)) return
    logger.info({ event: 'handshake.refused', reason: refusal.reason, status: refusal.status, address: refusal.remoteAddress }, 'handshake refused')
  }
  diagnostics.subscribe(HANDSHAKE_REFUSED_CHANNEL, onRefused)
  // Unsent messages arrive one batch at a time; an outage's are told in one line when it ends (and in /health),
  // from the counters, so that the line and `stats.unsent` agree.
  let unsentAtOutage = 0
  wss.on('backplane', (event: BackplaneEvent) => {
    if (event.type === 'disconnected') {
      backplaneState = 'disconnected'
      unsentAtOutage = wss.topicStats.unsent
      logger.warn({ event: 'backplane.disconnected', backplane: kind }, 'backplane disconnected')
    } else if (event.type === 'reconnected') {
      backplaneState = 'connected'
      for (const app of hubApps) {
        try {
          app.backplaneReconnected?.()
        } catch (error) {
          stats.appErrors++
          logger.error({ event: 'app.error', app: app.name }, `app ${app.name} threw on a backplane reconnect: ${(error as Error)?.message ?? String(error)}`)
        }
      }
      const unsent = wss.topicStats.unsent - unsentAtOutage
      logger.info(
        { event: 'backplane.reconnected', backplane: kind, unsent },
        unsent > 0 ? `backplane reconnected: ${unsent} message(s) published meanwhile were not sent` : 'backplane reconnected',
      )
    } else if (event.type === 'lost') {
      logger.warn({ event: 'backplane.lost', backplane: kind, count: event.count, origin: event.origin.slice(0, 8) }, `backplane: ${event.count} message(s) from node ${event.origin.slice(0, 8)} lost`)
    } else if (event.type === 'error') {
      logger.error({ event: 'backplane.error', backplane: kind, stage: event.stage }, `backplane ${event.stage} error: ${event.error.message}`)
    }
  })

  /** Runs app code for a client (app.ts Rule 2). */
  const guard = (app: App, ws: WebSocket, work: () => void): void => {
    try {
      work()
    } catch (error) {
      stats.appErrors++
      logger.error({ event: 'app.error', app: app.name }, `app ${app.name} threw: ${(error as Error)?.message ?? String(error)}`)
      if (ws.readyState === WebSocket.OPEN) ws.close(1011, 'internal error')
    }
  }

  history.start((topic, data, publishOptions) => wss.publish(topic, data, publishOptions), log)
  const services = (app: App): AppServices => ({
    node,
    publish: (topic, data, publishOptions) => {
      wss.publish(topic, data, publishOptions)
    },
    onPublish: (topic, listener) =>
      wss.onPublish(topic, (data, isBinary) => {
        try {
          listener(data, isBinary)
        } catch (error) {
          stats.appErrors++
          logger.error({ event: 'app.error', app: app.name }, `app ${app.name} threw on a published message: ${(error as Error)?.message ?? String(error)}`)
        }
      }),
    setTopicPolicy: (topic, policy) => {
      wss.setTopicPolicy(topic, policy)
    },
    history: {
      append: (name, data, appendOptions) => history.append(app.name, name, data, appendOptions),
      serve: (client) => history.serve(client),
      stats: () => history.summary(),
    },
    log,
  })
  for (const app of hubApps) app.start?.(services(app))

  /** The longest token a refresh may carry (what a request head may carry, 16 KiB). */
  const MAX_TOKEN = 16 * 1024
  /** Rule 3: the buckets a client's connections share (past them, messages are dropped). */
  const sharedLimits = new PublishLimits(
    { ...config.publish.limit, action: 'drop' },
    config.publish.topics.map(({ pattern, limit }) => ({ pattern, limit: { ...limit, action: 'drop' as const } })),
  )
  const limiterFor = (key: string): ClientPublishLimiter => {
    let entry = limiters.get(key)
    if (entry === undefined) limiters.set(key, (entry = { limiter: new ClientPublishLimiter(sharedLimits), connections: 0 }))
    entry.connections++
    return entry.limiter
  }
  const releaseLimiter = (key: string): void => {
    const entry = limiters.get(key)
    if (entry !== undefined && --entry.connections === 0) limiters.delete(key)
  }

  let nextConnection = 0
  wss.on('connection', (ws: WebSocket) => {
    const admission = ws.user as Admission
    const state = new ClientState(ws, admission, new ClientPublishLimiter(limits), limiterFor(admission.client))
    clients.set(ws, state)
    const { app } = admission
    const id = ++nextConnection
    const openedAt = performance.now()
    stats.connections[app.name] = (stats.connections[app.name] ?? 0) + 1
    logger.info({ event: 'connection.open', id, endpoint: app.name, address: admission.address, subject: admission.identity.subject }, 'connection opened')
    const client = state.client(wss, stats, (error) => log(error))
    ws.on('error', () => {})
    state.armExpiry(() => {
      stats.tokensExpired++
      if (ws.readyState === WebSocket.OPEN) ws.close(4001, 'token expired')
    })
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // A fresh token (auth.ts Rule 1) is the hub's, on every endpoint: such a message is never relayed.
      if (!isBinary && authenticator.required && data.includes('"tether.auth"')) {
        const refresh = refreshOf(data)
        if (refresh !== undefined) return refreshToken(state, ws, refresh)
      }
      if (app.message !== undefined) guard(app, ws, () => app.message!(client, data, isBinary))
    })
    ws.on('close', (code: number) => {
      const socket = ws._socket
      logger.info(
        {
          event: 'connection.close',
          id,
          endpoint: app.name,
          code,
          durationMs: Math.round(performance.now() - openedAt),
          bytesReceived: socket?.bytesRead,
          bytesSent: socket?.bytesWritten,
        },
        'connection closed',
      )
      state.disarm()
      releaseLimiter(admission.client)
      clients.delete(ws)
      if (app.close !== undefined) guard(app, ws, () => app.close!(client))
    })
    guard(app, ws, () => app.open(client))
  })

  /** A `tether.auth` message: its token (undefined: not such a message; '' : one without a usable token). */
  const refreshOf = (data: Buffer): string | undefined => {
    let value: unknown
    try {
      value = JSON.parse(data.toString())
    } catch {
      return undefined
    }
    if (typeof value !== 'object' || value === null || (value as { type?: unknown }).type !== 'tether.auth') return undefined
    const token = (value as { token?: unknown }).token
    return typeof token === 'string' && token.length <= MAX_TOKEN ? token : ''
  }
  const refreshToken = (state: ClientState, ws: WebSocket, token: string): void => {
    // A refresh counts against the client's limits like a publish (a flood of them costs verifications).
    if (state.limiter.check('tether.auth', 0, performance.now()) !== 'ok') {
      stats.publishClosed++
      return ws.close(1008, 'publish rate limit exceeded')
    }
    if (token === '') return ws.close(1008, 'invalid token')
    authenticator.verify(token).then(
      (identity) => {
        if (identity.subject !== state.identity.subject) return ws.close(1008, 'a refreshed token must have the same subject')
        stats.tokensRefreshed++
        state.identity = identity
        state.armExpiry(() => {
          stats.tokensExpired++
          if (ws.readyState === WebSocket.OPEN) ws.close(4001, 'token expired')
        })
      },
      () => ws.close(1008, 'invalid token'),
    )
  }

  /** /health: what an operator checks often: counts only (cheap, and naming nothing of the users'). */
  const health = (): object => ({
    status: 'ok',
    ready: ready(),
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    connections: wss.clients.size,
    topics: wss.topics.length,
    backplane: { kind, state: backplaneState },
    apps: Object.fromEntries(hubApps.map((app) => [app.name, app.summary?.() ?? {}])),
    hub: { ...stats },
    limits: wss.limitStats,
    stats: wss.topicStats,
  })

  const listening = new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      wss.off('listening', onListening)
      reject(error)
    }
    const onListening = (): void => {
      wss.off('error', onError)
      // From now on, errors are reported, never thrown (Rule 1).
      wss.on('error', onServerError)
      resolve()
    }
    wss.once('error', onError)
    wss.once('listening', onListening)
  })
  // The metrics port, when it has its own (config.ts `metrics`): the operator's routes only.
  let operator: HttpServer | undefined
  const metricsListening = async (): Promise<void> => {
    if (config.metrics.port === undefined) return
    operator = createServer(operatorListener({ health: () => health(), ready, metrics: metricsRoute }))
    const server = operator
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.metrics.port, config.metrics.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  }
  await Promise.all([listening, metricsListening()]).then(() => (listeningNow = true)).catch(async (error) => {
    diagnostics.unsubscribe(HANDSHAKE_REFUSED_CHANNEL, onRefused)
    await Promise.allSettled(hubApps.map((app) => Promise.resolve().then(() => app.stop?.())))
    operator?.close()
    wss.close()
    await history.close()
    await backplane?.close()
    throw error
  })
  const address = wss.address() as { port: number }
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `${config.tls ? 'https' : 'http'}://${host}:${address.port}`
  let metricsUrl: string | undefined
  if (operator !== undefined) {
    const metricsHost = config.metrics.host.includes(':') ? `[${config.metrics.host}]` : config.metrics.host
    metricsUrl = `http://${metricsHost}:${(operator.address() as { port: number }).port}`
  }
  if (config.metrics.enabled && config.metrics.port === undefined && config.metrics.token === undefined && !isLoopback(config.host)) {
    logger.warn({}, '/metrics is served to anyone who reaches this port: set a metrics token or a metrics port')
  }

  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stopping = true
      // Apps stop alongside the shutdown (the delivery app flushes its store), and are waited for.
      const appsStopped = hubApps.map((app) => Promise.resolve().then(() => app.stop?.()))
      for (const state of clients.values()) state.disarm()
      const { closed, terminated } = await wss.shutdown({ code: 1001, reason: 'server shutting down', timeout: config.shutdownTimeout })
      await Promise.allSettled(appsStopped)
      await history.close().catch((error: Error) => logger.error({ event: 'history.error' }, `history close error: ${error.message}`))
      diagnostics.unsubscribe(HANDSHAKE_REFUSED_CHANNEL, onRefused)
      refusalBudget.flush()
      if (operator !== undefined) {
        operator.closeAllConnections()
        await new Promise((resolve) => operator!.close(resolve))
      }
      logger.info({ event: 'hub.stopped', closed, terminated }, 'stopped')
    })())

  return { wss, port: address.port, url, metricsUrl, config, stats, ready, close }
}

/** One client's identity, limits and token timer. */
class ClientState {
  identity: Identity
  readonly #ws: WebSocket
  readonly #admission: Admission
  /** This connection's buckets, and those its client's connections share (Rule 3). */
  readonly limiter: ClientPublishLimiter
  readonly shared: ClientPublishLimiter
  #timer: NodeJS.Timeout | undefined

  constructor(ws: WebSocket, admission: Admission, limiter: ClientPublishLimiter, shared: ClientPublishLimiter) {
    this.#ws = ws
    this.#admission = admission
    this.identity = admission.identity
    this.limiter = limiter
    this.shared = shared
  }

  /** Closes the connection when its token expires (auth.ts Rule 1). */
  armExpiry(onExpired: () => void): void {
    this.disarm()
    const expiresAt = this.identity.expiresAt
    if (expiresAt === undefined) return
    const wait = Math.max(0, Math.min(expiresAt - Date.now(), 2 ** 31 - 1))
    this.#timer = setTimeout(() => (Date.now() >= expiresAt ? onExpired() : this.armExpiry(onExpired)), wait)
    this.#timer.unref()
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  client(wss: WebSocketServer, stats: HubStats, log: (line: string) => void): HubClient {
    const ws = this.#ws
    const state = this
    const admit = (publicName: string, bytes: number, overLimit: 'close' | 'refuse' = 'close'): AdmitOutcome => {
      // Messages read after the connection began closing (the rest of a flood) are not published.
      if (ws.readyState !== WebSocket.OPEN) return 'closed'
      if (!state.identity.can('publish', publicName)) {
        stats.publishNotAllowed++
        return 'not-allowed'
      }
      const now = performance.now()
      let verdict = state.limiter.check(publicName, bytes, now)
      if (verdict === 'ok') verdict = state.shared.check(publicName, bytes, now)
      if (verdict === 'close' && overLimit === 'refuse') verdict = 'drop'
      if (verdict === 'close') {
        stats.publishClosed++
        if (ws.readyState === WebSocket.OPEN) ws.close(1008, 'publish rate limit exceeded')
        return 'closed'
      }
      if (verdict === 'drop') {
        stats.publishDropped++
        return 'dropped'
      }
      return 'ok'
    }
    return {
      ws,
      get identity() {
        return state.identity
      },
      param: this.#admission.param,
      send(message) {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message))
      },
      error(code, message, id) {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id }))
      },
      admit,
      publish(internalTopic, publicName, data, options) {
        const admitted = admit(publicName, typeof data === 'string' ? Buffer.byteLength(data) : data.length)
        if (admitted !== 'ok') return admitted
        try {
          wss.publish(internalTopic, data, options?.binary === undefined ? {} : { binary: options.binary })
        } catch (error) {
          log(`publish failed: ${(error as Error).message}`)
          return 'dropped'
        }
        return 'published'
      },
      subscribe(internalTopic, publicName) {
        if (!state.identity.can('subscribe', publicName)) {
          this.error('not-allowed', `Not allowed to subscribe to ${publicName}`)
          return false
        }
        ws.subscribe(internalTopic)
        return true
      },
    }
  }
}
