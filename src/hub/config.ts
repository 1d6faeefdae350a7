/**
 * The hub's configuration: one typed record with its defaults. The command
 * line (`tether serve`), the environment (`TETHER_*`) and a config file all
 * turn into this (the settings sources at the end of this file: flags > env >
 * file > defaults); `createHub` takes nothing else.
 */
import * as z from 'zod/mini'
import type { Backplane, HistoryStore } from 'tether-ws/pubsub'
import type { HubLogger } from './log.js'

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
  /**
   * With `tls`: HTTP/2 beside HTTP/1.1 on the port (ALPN), so a browser loads
   * the pages and opens their WebSockets on one connection (RFC 8441).
   */
  http2?: boolean | undefined
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
  /** A line for the operator (stderr by default), when no `logger` is given. Never message contents or tokens. */
  log: (line: string) => void
  /** Structured logs (log.ts; a pino logger is one); without one, each record is a line through `log`. */
  logger?: HubLogger | undefined
  /**
   * `/metrics` (Prometheus text format). `token`: scrapers must send
   * `Authorization: Bearer TOKEN` (401 otherwise). `port`: serve `/metrics`
   * and `/health/*` on their own listener at `host:port` (127.0.0.1 by
   * default) instead of the public port, which then answers `/metrics` with 404.
   */
  metrics: {
    enabled: boolean
    token?: string | undefined
    port?: number | undefined
    host: string
    /** How long a rendered scrape is answered again, in ms (metrics.ts Rule 3); 0: render every scrape. */
    cacheMs?: number | undefined
  }
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
  metrics: { enabled: true, host: '127.0.0.1' },
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
    metrics: { ...HUB_DEFAULTS.metrics, ...config.metrics },
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
  if (resolved.http2 && !resolved.tls) throw new TypeError('http2 needs tls: browsers speak HTTP/2 only over TLS')
  const metrics = resolved.metrics
  if (metrics.port !== undefined) {
    count('metrics.port', metrics.port)
    if (metrics.port > 65535 || !Number.isInteger(metrics.port)) throw new TypeError('metrics.port must be a whole number from 0 to 65535')
  }
  if (metrics.cacheMs !== undefined) count('metrics.cacheMs', metrics.cacheMs)
  if (metrics.token !== undefined && (typeof metrics.token !== 'string' || metrics.token.length < 16)) {
    throw new TypeError('metrics.token must be a string of 16 characters or more')
  }
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

// ------------------------------------------------------------------ settings sources
//
// `tether serve` takes every setting from three sources, and the command line
// wins over the environment, which wins over a config file, which wins over
// the defaults: flags > env > file > defaults. One table (the command's
// options) names each setting three ways: its flag (`--max-payload`), its
// environment variable (`TETHER_MAX_PAYLOAD`) and its key in the file
// (`maxPayload`). Values from the environment and a file go through the flag's
// own parser, so the three sources accept the same values, and a wrong one is
// reported naming where it came from.

/** One setting, as the three sources name it. */
export interface SettingSpec {
  /** The key in a config file and in the merged settings: the flag's name in camelCase (`compression` for `--no-compression`). */
  key: string
  /** The environment variable. */
  env: string
  /**
   * `string`: a value (parsed by `parse`); `number`: the same, given as a JSON number in a file (a string there
   * is refused); `boolean`: on or off; `list`: repeatable (comma-separated in the environment).
   */
  kind: 'string' | 'number' | 'boolean' | 'list'
  /** Turns text into the value, or throws an Error whose message starts with `name`. */
  parse?: ((text: string, name: string) => unknown) | undefined
  choices?: readonly string[] | undefined
}

/** A wrong setting in the environment or a config file: the message names the variable or the file and key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** `maxPayload` → `TETHER_MAX_PAYLOAD`. */
export function envName(key: string): string {
  return `TETHER_${key.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()}`
}

function convert(spec: SettingSpec, text: string, name: string): unknown {
  if (spec.choices !== undefined && !spec.choices.includes(text)) {
    throw new ConfigError(`${name} must be one of ${spec.choices.join(', ')}, not ${JSON.stringify(text)}`)
  }
  if (spec.parse === undefined) return text
  try {
    return spec.parse(text, name)
  } catch (error) {
    throw new ConfigError((error as Error).message)
  }
}

const BOOLEANS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false, on: true, off: false }

/**
 * The settings given in the environment (`TETHER_*` variables). An empty one is an error: TETHER_PORT=''
 * used to mean the default port without a word (outsider finding 8); unset a variable to leave a setting out.
 */
export function settingsFromEnv(specs: readonly SettingSpec[], env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const settings: Record<string, unknown> = {}
  for (const spec of specs) {
    const text = env[spec.env]?.trim()
    if (text === undefined) continue
    if (text === '') throw new ConfigError(`${spec.env} is empty: give it a value, or unset it for the default`)
    if (spec.kind === 'boolean') {
      const value = BOOLEANS[text.toLowerCase()]
      if (value === undefined) throw new ConfigError(`${spec.env} must be true or false, not ${JSON.stringify(text)}`)
      settings[spec.key] = value
    } else if (spec.kind === 'list') {
      const items = text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '')
      // Only commas ("," or ", ,") is no list, not the default: an empty value is an error (above), and so is this.
      if (items.length === 0) throw new ConfigError(`${spec.env} has no values: give some (comma-separated), or unset it for the default`)
      settings[spec.key] = items.map((item) => convert(spec, item, spec.env))
    } else settings[spec.key] = convert(spec, text, spec.env)
  }
  return settings
}

/** The settings of a config file's text (JSON: an object of keys); `file` names it in errors. */
export function settingsFromFile(specs: readonly SettingSpec[], file: string, text: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new ConfigError(`${file} is not JSON: ${(error as Error).message}`)
  }
  const shape: Record<string, z.ZodMiniType> = {}
  for (const spec of specs) {
    // A number is a JSON number: "port": "8080" is refused, as a string where a number goes is likely a mistake.
    const scalar = spec.kind === 'number' ? z.number() : z.string()
    shape[spec.key] = z.optional(spec.kind === 'boolean' ? z.boolean() : spec.kind === 'list' ? z.union([z.array(scalar), scalar]) : scalar)
  }
  const result = z.strictObject(shape).safeParse(parsed)
  if (!result.success) {
    const issue = result.error.issues[0]!
    if (issue.code === 'unrecognized_keys') {
      const known = specs.map((spec) => spec.key)
      const key = issue.keys[0]!
      const near = known.find((candidate) => candidate.toLowerCase() === key.toLowerCase().replace(/[-_]/g, ''))
      throw new ConfigError(`${file}: unknown key ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`)
    }
    if (issue.path.length === 0) throw new ConfigError(`${file}: expected an object of settings, e.g. { "port": 8080 }`)
    const key = String(issue.path[0])
    const spec = specs.find((candidate) => candidate.key === key)!
    const expected = spec.kind === 'boolean' ? 'true or false' : spec.kind === 'list' ? 'a list of strings' : spec.kind === 'number' ? 'a number' : 'a string'
    throw new ConfigError(`${file}: ${key} must be ${expected}`)
  }
  const settings: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(result.data as Record<string, unknown>)) {
    if (value === undefined) continue
    const spec = specs.find((candidate) => candidate.key === key)!
    const name = `${file}: ${key}`
    if (spec.kind === 'boolean') settings[key] = value
    else if (spec.kind === 'list') settings[key] = (Array.isArray(value) ? value : [value]).map((item) => convert(spec, String(item), name))
    else settings[key] = convert(spec, String(value), name)
  }
  return settings
}

/**
 * The `TETHER_*` variables of `env` that name no setting (nor one of `others`), each with the setting's
 * variable it is closest to, if one is near (`TETHER_PORTT` → `TETHER_PORT`, `TETHER_NO_COMPRESSION` →
 * `TETHER_COMPRESSION`).
 */
export function unknownEnvNames(
  specs: readonly SettingSpec[],
  env: Readonly<Record<string, string | undefined>>,
  others: readonly string[] = [],
): Array<{ name: string; near: string | undefined }> {
  const known = new Set([...specs.map((spec) => spec.env), ...others])
  return Object.keys(env)
    .filter((name) => name.startsWith('TETHER_') && !known.has(name))
    .sort()
    .map((name) => {
      const bare = name.replace(/^TETHER_NO_/, 'TETHER_')
      const near = specs.map((spec) => spec.env).find((candidate) => candidate === bare || editDistance(candidate, name) <= 2)
      return { name, near }
    })
}

/** Levenshtein distance (short names only: variable names). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    previous = current
  }
  return previous[b.length]!
}

/** The settings in force: flags over the environment over the file over the defaults. */
export function mergeSettings<T extends object>(defaults: T, file: Record<string, unknown>, env: Record<string, unknown>, flags: Record<string, unknown>): T {
  return { ...defaults, ...file, ...env, ...flags }
}
