/**
 * The hub's configuration: one typed record with its defaults. The command
 * line (`tether serve`), and later the environment and a config file, all
 * turn into this; `createHub` takes nothing else.
 */
import type { Backplane, HistoryStore } from 'tether-ws/pubsub'

/** What a client may publish, per connection: two token buckets (messages and bytes). */
export interface PublishLimit {
  /** Messages per second, sustained. */
  messagesPerSecond: number
  /** Bytes per second, sustained. */
  bytesPerSecond: number
  /** Messages a client may send at once above the rate (the bucket's size). */
  burstMessages: number
  /** Bytes a client may send at once above the rate. */
  burstBytes: number
  /** Over the limit: `close` the connection with 1008 and a reason (the default), or `drop` the message (counted, and the client told). */
  action: 'close' | 'drop'
}

export type AuthConfig =
  | { kind: 'none' }
  | {
      kind: 'jwt'
      /** An HMAC secret (HS256/384/512). */
      secret?: string | undefined
      /** A public key in PEM (RS*, PS*, ES*, EdDSA). */
      publicKey?: string | undefined
      /** A JSON Web Key Set (the parsed JSON of a JWKS file). */
      jwks?: { keys: object[] } | undefined
      /** Required `iss` and `aud`, when set. */
      issuer?: string | undefined
      audience?: string | undefined
    }

/**
 * Topic history for reliable delivery (`/v1`, tether.v1): which relay topics
 * keep it (by pattern, first match wins; the apps' own topics, the chat's
 * rooms and the scores feed, keep it whatever this says) and where it is
 * kept: in this process (one node), Redis Streams or NATS JetStream (a
 * cluster; `url` defaults to the backplane's broker), or a store the caller
 * connected. Default: the backplane's broker with a Redis or NATS
 * backplane, the process otherwise (with a custom backplane too: nodes in
 * several processes then need a shared store given as `{ store }`, or each
 * keeps its own rooms).
 */
export interface HistoryConfig {
  backend: 'memory' | 'redis' | 'jetstream' | { store: HistoryStore }
  url?: string | undefined
  topics: ReadonlyArray<{ pattern: string; maxCount: number; maxAge: number }>
}

/** Where the backplane is: a broker URL to connect to, or one the caller connected. */
export type BackplaneConfig = { kind: 'redis' | 'nats'; url: string; connectTimeout: number } | { kind: 'custom'; backplane: Backplane }

export interface HubConfig {
  port: number
  host: string
  /** PEM certificate and key: https:// and wss://. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined
  /** Without one, topics live in this process. */
  backplane?: BackplaneConfig | undefined
  /** permessage-deflate for clients that offer it. */
  compression: boolean
  /** Largest message a client may send, in bytes. */
  maxPayload: number
  maxConnections: number
  /** How long shutdown waits for the closing handshakes, in ms. */
  shutdownTimeout: number
  /**
   * Origins allowed besides the pages' own (the Host they were served from):
   * exact `scheme://host[:port]` strings; `['*']` allows every origin.
   */
  allowOrigins: readonly string[]
  auth: AuthConfig
  /** Per-connection publish limits, and overrides by topic pattern (first match wins). */
  publish: { limit: PublishLimit; topics: ReadonlyArray<{ pattern: string; limit: Partial<PublishLimit> }> }
  /**
   * The HTTP server's limits, the library's port-mode defaults: the time to
   * send a request head (slow loris: 408), its size (431) and its number of
   * fields. Idle keep-alive connections close after Node's 5 s.
   */
  http: { headersTimeout: number; maxHeaderSize: number; maxHeaders: number }
  /** Which relay topics keep history, and where (the `/v1` endpoint serves them). */
  history: HistoryConfig
  /** Which apps run. */
  apps: { echo: boolean; relay: boolean; chat: boolean; scores: boolean; delivery: boolean }
  /** Open WebSockets one client address may have (its publish limits are shared too); 0: no limit. */
  maxConnectionsPerAddress: number
  /**
   * Reverse proxies in front (addresses or CIDR ranges): exempt from the
   * per-address limits, and the client's address is the last one they add to
   * `X-Forwarded-For`.
   */
  trustedProxies: readonly string[]
  /**
   * Host names the hub answers to (DNS rebinding: a page of another site that
   * resolves its name to this machine). Default: when listening on a loopback
   * address, its loopback names only; otherwise any.
   */
  allowedHosts: readonly string[] | undefined
  /** A line for the operator (stderr by default). Never message contents or tokens. */
  log: (line: string) => void
}

export const DEFAULT_PUBLISH_LIMIT: PublishLimit = {
  messagesPerSecond: 100,
  bytesPerSecond: 1024 * 1024,
  burstMessages: 200,
  burstBytes: 2 * 1024 * 1024,
  action: 'close',
}

export const HUB_DEFAULTS: HubConfig = {
  port: 8080,
  host: '127.0.0.1',
  compression: true,
  maxPayload: 1024 * 1024,
  maxConnections: 10_000,
  shutdownTimeout: 5_000,
  allowOrigins: [],
  auth: { kind: 'none' },
  publish: { limit: DEFAULT_PUBLISH_LIMIT, topics: [] },
  http: { headersTimeout: 10_000, maxHeaderSize: 16 * 1024, maxHeaders: 100 },
  history: { backend: 'memory', topics: [] },
  apps: { echo: true, relay: true, chat: true, scores: true, delivery: true },
  maxConnectionsPerAddress: 100,
  trustedProxies: [],
  allowedHosts: undefined,
  log: (line) => process.stderr.write(`${line}\n`),
}

/** Whether `text` is exactly an origin as browsers send it: `scheme://host[:port]`. */
export function isOrigin(text: string): boolean {
  try {
    const url = new URL(text)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === text
  } catch {
    return false
  }
}

/** Where history is kept when the configuration does not say: on the cluster's broker, if there is one (hub history.ts Rule 3). */
function defaultHistoryBackend(backplane: BackplaneConfig | undefined): HistoryConfig['backend'] {
  if (backplane?.kind === 'redis') return 'redis'
  if (backplane?.kind === 'nats') return 'jetstream'
  return 'memory'
}

/** The configuration with defaults filled in, checked: a wrong value throws a TypeError naming its key. */
export function resolveHubConfig(config: Partial<HubConfig> = {}): HubConfig {
  const resolved: HubConfig = {
    ...HUB_DEFAULTS,
    ...config,
    publish: {
      limit: { ...DEFAULT_PUBLISH_LIMIT, ...config.publish?.limit },
      topics: config.publish?.topics ?? [],
    },
    http: { ...HUB_DEFAULTS.http, ...config.http },
    history: { ...HUB_DEFAULTS.history, backend: defaultHistoryBackend(config.backplane), ...config.history },
    apps: { ...HUB_DEFAULTS.apps, ...config.apps },
  }
  const count = (key: string, value: number, min = 0): void => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw new TypeError(`${key} must be a number, ${min} or more`)
  }
  count('port', resolved.port)
  if (resolved.port > 65535 || !Number.isInteger(resolved.port)) throw new TypeError('port must be a whole number from 0 to 65535')
  count('maxPayload', resolved.maxPayload, 1)
  count('maxConnections', resolved.maxConnections, 1)
  count('shutdownTimeout', resolved.shutdownTimeout)
  const limit = resolved.publish.limit
  count('publish.limit.messagesPerSecond', limit.messagesPerSecond)
  count('publish.limit.bytesPerSecond', limit.bytesPerSecond)
  count('publish.limit.burstMessages', limit.burstMessages)
  count('publish.limit.burstBytes', limit.burstBytes)
  if (limit.action !== 'close' && limit.action !== 'drop') throw new TypeError("publish.limit.action must be 'close' or 'drop'")
  // A message larger than the byte bucket could never pass.
  if (limit.burstBytes < resolved.maxPayload) resolved.publish.limit = { ...limit, burstBytes: resolved.maxPayload }
  for (const [key, value] of Object.entries(resolved.http)) count(`http.${key}`, value)
  if (!Array.isArray(resolved.allowOrigins) || resolved.allowOrigins.some((origin) => typeof origin !== 'string')) {
    throw new TypeError('allowOrigins must be a list of origins')
  }
  for (const origin of resolved.allowOrigins) {
    if (origin !== '*' && !isOrigin(origin)) throw new TypeError(`allowOrigins: ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path)`)
  }
  count('maxConnectionsPerAddress', resolved.maxConnectionsPerAddress)
  const auth = resolved.auth
  if (auth.kind === 'jwt' && auth.secret === undefined && auth.publicKey === undefined && auth.jwks === undefined) {
    throw new TypeError('auth: a JWT needs a secret, a publicKey or a jwks to verify it with')
  }
  const history = resolved.history
  for (const [i, topic] of history.topics.entries()) {
    count(`history.topics[${i}].maxCount`, topic.maxCount, 1)
    count(`history.topics[${i}].maxAge`, topic.maxAge, 1)
  }
  if ((history.backend === 'redis' || history.backend === 'jetstream') && history.url === undefined) {
    const broker = resolved.backplane
    const same = broker !== undefined && broker.kind === (history.backend === 'redis' ? 'redis' : 'nats')
    if (!same) throw new TypeError(`history.backend ${history.backend} needs history.url (or a ${history.backend === 'redis' ? 'Redis' : 'NATS'} backplane to share)`)
    resolved.history = { ...history, url: (broker as { url: string }).url }
  }
  return resolved
}
