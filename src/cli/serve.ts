/**
 * `tether serve`: turns the command's options into the hub's configuration
 * (src/hub) and runs it. Everything the hub does lives there; this file
 * only reads files the options name and words errors for the terminal.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import { type Hub, type HubConfig, type HubLogger, HUB_DEFAULTS, createHub } from '../hub/index.js'
import { CliError } from './errors.js'

export interface ServeOptions {
  port: number
  host: string
  tlsCert?: string | undefined
  tlsKey?: string | undefined
  /** HTTP/2 beside HTTP/1.1 (needs TLS). */
  http2?: boolean | undefined
  redis?: string | undefined
  nats?: string | undefined
  /** How long to wait for the broker at start, in ms; then exit with one line. */
  brokerTimeout: number
  compression: boolean
  maxPayload: number
  maxConnections: number
  shutdownTimeout: number
  /** Origins allowed besides the pages' own (`*`: any). */
  allowOrigin: string[]
  /** `none` or `jwt`. */
  auth: string
  jwtSecret?: string | undefined
  jwtPublicKey?: string | undefined
  jwtJwks?: string | undefined
  jwtIssuer?: string | undefined
  jwtAudience?: string | undefined
  /** Per-client publish limits: messages and bytes per second, and what happens past them. */
  publishRate: number
  publishBytes: number
  publishLimitAction: string
  maxConnectionsPerAddress: number
  trustedProxy: string[]
  allowedHost: string[]
  /** Relay topics (patterns) that keep history for reliable delivery at /v1, how much, and where. */
  history: string[]
  historySize: number
  historyAge: number
  historyBackend?: string | undefined
  /** Serve /metrics (`--no-metrics`: false); behind a bearer token; on a port of its own. */
  metrics: boolean
  metricsToken?: string | undefined
  metricsPort?: number | undefined
  metricsHost: string
  /** How long a rendered /metrics is answered again, in ms. */
  metricsCache: number
  logger: HubLogger
  /**
   * Where a setting came from, as errors name it: `--tls-cert`, `TETHER_TLS_CERT` or `tether.json: tlsCert`
   * (by its key; default: the flag).
   */
  sourceOf?: ((key: string) => string) | undefined
}

/** A wrong setting: one line naming where it came from, exit status 2, as for a value that does not parse. */
function settingError(message: string): CliError {
  return new CliError(message, 2)
}

/** `tlsCert` → `--tls-cert`: how a setting is named when nothing says where it came from. */
function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`
}

export const SERVE_DEFAULTS = {
  port: HUB_DEFAULTS.port,
  host: HUB_DEFAULTS.host,
  compression: HUB_DEFAULTS.compression,
  maxPayload: HUB_DEFAULTS.maxPayload,
  maxConnections: HUB_DEFAULTS.maxConnections,
  shutdownTimeout: HUB_DEFAULTS.shutdownTimeout,
  brokerTimeout: 5_000,
  allowOrigin: [] as string[],
  auth: 'none',
  publishRate: HUB_DEFAULTS.publish.limit.messagesPerSecond,
  publishBytes: HUB_DEFAULTS.publish.limit.bytesPerSecond,
  publishLimitAction: HUB_DEFAULTS.publish.limit.action,
  maxConnectionsPerAddress: HUB_DEFAULTS.maxConnectionsPerAddress,
  trustedProxy: [] as string[],
  allowedHost: [] as string[],
  history: [] as string[],
  historySize: 100,
  historyAge: 300_000,
  metrics: HUB_DEFAULTS.metrics.enabled,
  metricsHost: HUB_DEFAULTS.metrics.host,
  metricsCache: 1_000,
}

/** HS256 wants a key at least as long as its hash: 32 bytes (RFC 7518 §3.2). */
const MIN_SECRET_BYTES = 32

async function read(file: string, name: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw settingError(`cannot read ${name} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
}

/** The first line of an error's message (OpenSSL's and JSON.parse's can run to several). */
function firstLine(error: unknown): string {
  return String((error as Error).message).split('\n')[0]!.replace(/^error:[0-9A-F]+:/, '')
}

/**
 * The certificate and key of --tls-cert and --tls-key, checked here so that a
 * wrong file is named (Node's own error is "PEM routines::no start line").
 */
async function readTls(certFile: string, keyFile: string, name: (key: string) => string): Promise<{ cert: string; key: string }> {
  const cert = await read(certFile, name('tlsCert'))
  const key = await read(keyFile, name('tlsKey'))
  try {
    new X509Certificate(cert)
  } catch (error) {
    throw settingError(`${name('tlsCert')} ${certFile} is not a PEM certificate: ${firstLine(error)}`)
  }
  try {
    createPrivateKey(key)
  } catch (error) {
    throw settingError(`${name('tlsKey')} ${keyFile} is not a PEM private key: ${firstLine(error)}`)
  }
  try {
    createSecureContext({ cert, key })
  } catch (error) {
    throw settingError(`${name('tlsKey')} ${keyFile} does not go with ${name('tlsCert')} ${certFile}: ${firstLine(error)}`)
  }
  return { cert, key }
}

/** The hub's configuration for these options (reads the files they name). */
export async function hubConfig(options: ServeOptions): Promise<Partial<HubConfig>> {
  // Errors name each setting as it was given (a flag, a variable, a file's key), and exit 2 (outsider finding 7).
  const name = options.sourceOf ?? flagOf
  if (options.redis && options.nats) throw settingError(`Choose one backplane: ${name('redis')} or ${name('nats')}, not both`)
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) throw settingError(`${name(options.tlsCert ? 'tlsCert' : 'tlsKey')} needs ${name(options.tlsCert ? 'tlsKey' : 'tlsCert')} too`)
  if (options.http2 && !options.tlsCert) throw settingError(`${name('http2')} needs --tls-cert and --tls-key: browsers speak HTTP/2 only over TLS`)
  const tls = options.tlsCert && options.tlsKey ? await readTls(options.tlsCert, options.tlsKey, name) : undefined
  let auth: HubConfig['auth'] = { kind: 'none' }
  if (options.auth === 'jwt') {
    const given = (['jwtSecret', 'jwtPublicKey', 'jwtJwks'] as const).filter((key) => options[key] !== undefined)
    if (given.length === 0) throw settingError(`${name('auth')} jwt needs a key to verify tokens with: --jwt-secret, --jwt-public-key FILE or --jwt-jwks FILE (or TETHER_JWT_SECRET, ...)`)
    if (given.length > 1) throw settingError(`${name(given[0]!)} and ${name(given[1]!)}: give one key to verify tokens with`)
    if (options.jwtSecret !== undefined && Buffer.byteLength(options.jwtSecret) < MIN_SECRET_BYTES) {
      throw settingError(`${name('jwtSecret')} is too short: use at least ${MIN_SECRET_BYTES} bytes (a random one: openssl rand -base64 32)`)
    }
    let jwks: { keys: object[] } | undefined
    if (options.jwtJwks !== undefined) {
      const text = await read(options.jwtJwks, name('jwtJwks'))
      try {
        jwks = JSON.parse(text) as { keys: object[] }
        if (!Array.isArray(jwks?.keys)) throw new Error('no "keys" list')
      } catch (error) {
        throw settingError(`${name('jwtJwks')} ${options.jwtJwks} is not a JSON Web Key Set: ${firstLine(error)}`)
      }
    }
    auth = {
      kind: 'jwt',
      secret: options.jwtSecret,
      publicKey: options.jwtPublicKey === undefined ? undefined : await read(options.jwtPublicKey, name('jwtPublicKey')),
      jwks,
      issuer: options.jwtIssuer,
      audience: options.jwtAudience,
    }
  } else if (options.auth !== 'none') {
    throw settingError(`${name('auth')} is none or jwt, not ${options.auth}`)
  }
  if (options.publishLimitAction !== 'close' && options.publishLimitAction !== 'drop') {
    throw settingError(`${name('publishLimitAction')} is close or drop, not ${options.publishLimitAction}`)
  }
  const url = options.redis ?? options.nats
  const historyBackend = (options.historyBackend ?? (options.redis ? 'redis' : options.nats ? 'jetstream' : 'memory')) as 'memory' | 'redis' | 'jetstream'
  if ((historyBackend === 'redis' && !options.redis) || (historyBackend === 'jetstream' && !options.nats)) {
    throw settingError(`${name('historyBackend')} ${historyBackend} keeps history on the cluster's broker: add --${historyBackend === 'redis' ? 'redis' : 'nats'} URL`)
  }
  return {
    port: options.port,
    host: options.host,
    tls,
    http2: options.http2 === true,
    backplane: url === undefined ? undefined : { kind: options.redis ? 'redis' : 'nats', url, connectTimeout: options.brokerTimeout },
    compression: options.compression,
    maxPayload: options.maxPayload,
    maxConnections: options.maxConnections,
    shutdownTimeout: options.shutdownTimeout,
    allowOrigins: options.allowOrigin,
    auth,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress,
    trustedProxies: options.trustedProxy,
    allowedHosts: options.allowedHost.length > 0 ? options.allowedHost : undefined,
    publish: {
      limit: {
        ...HUB_DEFAULTS.publish.limit,
        messagesPerSecond: options.publishRate,
        burstMessages: options.publishRate * 2,
        bytesPerSecond: options.publishBytes,
        burstBytes: options.publishBytes * 2,
        action: options.publishLimitAction,
      },
      topics: [],
    },
    history: {
      backend: historyBackend,
      url,
      topics: (options.history ?? []).map((pattern) => ({ pattern, maxCount: options.historySize, maxAge: options.historyAge })),
    },
    log: (line) => options.logger.info({}, line),
    logger: options.logger,
    metrics: { enabled: options.metrics, token: options.metricsToken, port: options.metricsPort, host: options.metricsHost, cacheMs: options.metricsCache },
  }
}

/** Starts the hub for the command; every failure becomes a CliError (one line). */
export async function serve(options: ServeOptions): Promise<Hub> {
  const config = await hubConfig(options)
  try {
    return await createHub(config)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') {
      const port = (error as NodeJS.ErrnoException & { port?: number }).port ?? options.port
      const which = options.metricsPort !== undefined && port === options.metricsPort ? '--metrics-port' : '--port'
      throw new CliError(`port ${port} is already in use on ${which === '--port' ? options.host : options.metricsHost}: stop the other server or choose ${which}`)
    }
    if (code === 'EACCES') throw new CliError(`no permission to listen on port ${options.port}: choose a port above 1023`)
    // The hub's own checks of its configuration (the options' parsers catch these first).
    if (error instanceof TypeError) throw settingError(error.message)
    throw new CliError((error as Error).message)
  }
}
