/**
 * Reaching a WebSocket server through a forward proxy: an HTTP CONNECT
 * tunnel (RFC 9110 §9.3.6) through an `http://` or `https://` proxy, with
 * basic credentials from the proxy URL, then TLS to the target for `wss:`.
 *
 * The environment's `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (or their
 * lower-case forms) are used only when asked (`proxy: 'env'`), so a library
 * does not change route because of a variable set for something else.
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import https from 'node:https'
import net, { type Socket } from 'node:net'
import tls, { type ConnectionOptions } from 'node:tls'
import { TetherError } from '../core/errors.js'

export interface ProxyOptions {
  /** `http://[user:password@]host:port` or `https://...` */
  url: string | URL
  /** More headers for the CONNECT request. */
  headers?: Record<string, string>
  /** TLS options for an `https:` proxy (e.g. `ca`). */
  tls?: ConnectionOptions
}

/** The `proxy` option: a URL, full options, or `'env'` to follow the environment. */
export type ProxySetting = string | URL | ProxyOptions | 'env'

function asOptions(setting: string | URL | ProxyOptions): ProxyOptions {
  return typeof setting === 'string' || setting instanceof URL ? { url: setting } : setting
}

/** Whether NO_PROXY (comma-separated hosts, `.suffix`es, `host:port`s, or `*`) exempts `target`. */
export function bypassesProxy(target: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase()
  const port = target.port || (target.protocol === 'wss:' ? '443' : '80')
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase()
    if (entry === '') continue
    if (entry === '*') return true
    // [v6]:port, a bare IPv6 address (several colons), or host[:port].
    const [name, entryPort] = entry.startsWith('[')
      ? [entry.slice(1, entry.indexOf(']')), entry.split(']:')[1]]
      : entry.indexOf(':') !== entry.lastIndexOf(':')
        ? [entry, undefined]
        : entry.split(':')
    if (entryPort !== undefined && entryPort !== port) continue
    const bare = name!.replace(/^\*?\./, '')
    if (host === bare || host.endsWith(`.${bare}`)) return true
  }
  return false
}

/** The proxy to use for `target`, if any. */
export function resolveProxy(target: URL, setting: ProxySetting | undefined, env: NodeJS.ProcessEnv = process.env): ProxyOptions | undefined {
  if (setting === undefined) return undefined
  if (setting !== 'env') return asOptions(setting)
  const secure = target.protocol === 'wss:' || target.protocol === 'https:'
  const url = secure ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy) : (env.HTTP_PROXY ?? env.http_proxy)
  if (!url || bypassesProxy(target, env.NO_PROXY ?? env.no_proxy)) return undefined
  return { url }
}

/** A proxy failure, with the proxy's HTTP status when it answered. */
export class ProxyError extends TetherError {
  readonly status: number | undefined
  constructor(message: string, status?: number, cause?: unknown) {
    super('TETHER_ERR_PROXY', message, { cause })
    this.status = status
  }
}

/** The TLS server name for `host`: SNI names a host, never an address (RFC 6066 §3; Node 26 throws for one). */
export function serverNameFor(host: string): string | undefined {
  return net.isIP(host) === 0 ? host : undefined
}

/**
 * Opens a tunnel to `host:port` through `proxy`; for `secure`, TLS to the
 * target runs inside it. Calls back once with the socket to speak HTTP on.
 */
export function tunnel(
  proxy: ProxyOptions,
  target: { host: string; port: number; secure: boolean; tls?: ConnectionOptions },
  callback: (error: Error | null, socket?: Socket) => void,
): void {
  let url: URL
  try {
    url = new URL(proxy.url)
  } catch (error) {
    return callback(new ProxyError(`Invalid proxy URL: ${String(proxy.url)}`, undefined, error))
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return callback(new ProxyError(`Unsupported proxy protocol ${url.protocol}: use http: or https:`))
  }
  const authority = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
  const headers: Record<string, string> = { Host: authority, ...proxy.headers }
  if (url.username || url.password) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`
  }
  const secureProxy = url.protocol === 'https:'
  const proxyHost = url.hostname.replace(/^\[|\]$/g, '')
  let request: ClientRequest
  try {
    request = (secureProxy ? https : http).request({
      host: proxyHost,
      port: url.port || (secureProxy ? 443 : 80),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
      ...(secureProxy ? { servername: serverNameFor(proxyHost), ...proxy.tls } : {}),
    })
  } catch (error) {
    return callback(new ProxyError(`Cannot reach the proxy ${url.host}: ${(error as Error).message}`, undefined, error))
  }
  let done = false
  const finish = (error: Error | null, socket?: Socket): void => {
    if (done) return
    done = true
    callback(error, socket)
  }
  request.once('connect', (response: IncomingMessage, socket: Socket, head: Buffer) => {
    if (response.statusCode !== 200) {
      socket.destroy()
      return finish(new ProxyError(`The proxy refused the tunnel to ${authority}: HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trimEnd(), response.statusCode))
    }
    // Bytes the proxy sent after its answer belong to the target.
    if (head.length > 0) socket.unshift(head)
    if (!target.secure) return finish(null, socket)
    let secured: tls.TLSSocket
    try {
      secured = tls.connect({ ...target.tls, socket, servername: target.tls?.servername ?? serverNameFor(target.host) })
    } catch (error) {
      socket.destroy()
      return finish(error as Error)
    }
    secured.once('secureConnect', () => finish(null, secured))
    secured.once('error', (error) => finish(error))
  })
  request.once('error', (error: NodeJS.ErrnoException) =>
    finish(new ProxyError(`Cannot reach the proxy ${url.host}: ${error.code ?? error.message}`, undefined, error)),
  )
  request.end()
}
