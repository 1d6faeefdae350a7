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
  logger: HubLogger
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
}

/** HS256 wants a key at least as long as its hash: 32 bytes (RFC 7518 §3.2). */
const MIN_SECRET_BYTES = 32

async function read(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new CliError(`cannot read ${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
}

/**
 * The certificate and key of --tls-cert and --tls-key, checked here so that a
 * wrong file is named (Node's own error is "PEM routines::no start line").
 */
async function readTls(certFile: string, keyFile: string): Promise<{ cert: string; key: string }> {
  const cert = await read(certFile, '--tls-cert')
  const key = await read(keyFile, '--tls-key')
  const firstLine = (error: unknown): string => String((error as Error).message).split('\n')[0]!.replace(/^error:[0-9A-F]+:/, '')
  try {
    new X509Certificate(cert)
  } catch (error) {
    throw new CliError(`--tls-cert ${certFile} is not a PEM certificate: ${firstLine(error)}`)
  }
  try {
    createPrivateKey(key)
  } catch (error) {
    throw new CliError(`--tls-key ${keyFile} is not a PEM private key: ${firstLine(error)}`)
  }
  try {
    createSecureContext({ cert, key })
  } catch (error) {
    throw new CliError(`--tls-key ${keyFile} does not go with --tls-cert ${certFile}: ${firstLine(error)}`)
  }
  return { cert, key }
}

/** The hub's configuration for these options (reads the files they name). */
export async function hubConfig(options: ServeOptions): Promise<Partial<HubConfig>> {
  if (options.redis && options.nats) throw new CliError('Choose one backplane: --redis or --nats, not both')
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) throw new CliError('--tls-cert and --tls-key go together')
  if (options.http2 && !options.tlsCert) throw new CliError('--http2 needs --tls-cert and --tls-key: browsers speak HTTP/2 only over TLS')
  const tls = options.tlsCert && options.tlsKey ? await readTls(options.tlsCert, options.tlsKey) : undefined
  let auth: HubConfig['auth'] = { kind: 'none' }
  if (options.auth === 'jwt') {
    const sources = [options.jwtSecret, options.jwtPublicKey, options.jwtJwks].filter((value) => value !== undefined)
    if (sources.length !== 1) throw new CliError('--auth jwt needs one of --jwt-secret, --jwt-public-key FILE or --jwt-jwks FILE')
    if (options.jwtSecret !== undefined && Buffer.byteLength(options.jwtSecret) < MIN_SECRET_BYTES) {
      throw new CliError(`--jwt-secret is too short: use at least ${MIN_SECRET_BYTES} bytes (a random one: openssl rand -base64 32)`)
    }
    let jwks: { keys: object[] } | undefined
    if (options.jwtJwks !== undefined) {
      try {
        jwks = JSON.parse(await read(options.jwtJwks, '--jwt-jwks')) as { keys: object[] }
        if (!Array.isArray(jwks.keys)) throw new Error('no "keys" list')
      } catch (error) {
        if (error instanceof CliError) throw error
        throw new CliError(`--jwt-jwks ${options.jwtJwks} is not a JSON Web Key Set: ${(error as Error).message}`)
      }
    }
    auth = {
      kind: 'jwt',
      secret: options.jwtSecret,
      publicKey: options.jwtPublicKey === undefined ? undefined : await read(options.jwtPublicKey, '--jwt-public-key'),
      jwks,
      issuer: options.jwtIssuer,
      audience: options.jwtAudience,
    }
  } else if (options.auth !== 'none') {
    throw new CliError(`--auth is none or jwt, not ${options.auth}`)
  }
  if (options.publishLimitAction !== 'close' && options.publishLimitAction !== 'drop') {
    throw new CliError(`--publish-limit-action is close or drop, not ${options.publishLimitAction}`)
  }
  const url = options.redis ?? options.nats
  const historyBackend = (options.historyBackend ?? (options.redis ? 'redis' : options.nats ? 'jetstream' : 'memory')) as 'memory' | 'redis' | 'jetstream'
  if ((historyBackend === 'redis' && !options.redis) || (historyBackend === 'jetstream' && !options.nats)) {
    throw new CliError(`--history-backend ${historyBackend} keeps history on the cluster's broker: add --${historyBackend === 'redis' ? 'redis' : 'nats'} URL`)
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
    metrics: { enabled: options.metrics, token: options.metricsToken, port: options.metricsPort, host: options.metricsHost },
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
    if (error instanceof TypeError) throw new CliError(error.message)
    throw new CliError((error as Error).message)
  }
}
