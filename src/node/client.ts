/**
 * The client side of the opening handshake over Node's own HTTP client
 * (RFC 6455 §4.1): `ws://`, `wss://` and `ws+unix:` URLs, extra headers,
 * origin, handshake timeout, redirects, agents and custom connections.
 *
 * Theory of operation: `startClientHandshake` sends the upgrade request with
 * `http.request`/`https.request` and reports what happens through the hooks:
 * a redirect it follows (a new request, same hooks), an unexpected response,
 * the 101 answer once the core has verified it, or an error. Node parses the
 * HTTP; the core checks the WebSocket rules (`verifyUpgradeResponse`).
 *
 * Rule 1: credentials (Authorization, Cookie, URL user info) are not carried
 * to a different host, nor from `wss:` down to `ws:`, when a redirect is
 * followed without a `redirect` listener to decide.
 * Rule 2: every failure reaches `hooks.failed` exactly once; the WebSocket reports it asynchronously.
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import https from 'node:https'
import type { RequestOptions as HttpsRequestOptions } from 'node:https'
import net, { type Socket } from 'node:net'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import { type HandshakeError, TetherError } from '../core/errors.js'
import { isToken } from '../core/handshake/headers.js'
import type { ExtensionOffer } from '../core/handshake/headers.js'
import { type ProxySetting, resolveProxy, serverNameFor, tunnel } from './proxy.js'
import {
  type AcceptedResponse,
  clientRequestHeaders,
  createClientKey,
  verifyUpgradeResponse,
} from '../core/handshake/http1.js'

/** Options of the client handshake; everything else is passed to `http.request`. */
export interface ClientHandshakeOptions extends Omit<HttpsRequestOptions, 'timeout'> {
  /** Milliseconds before the handshake is abandoned. */
  handshakeTimeout?: number
  followRedirects?: boolean
  /** Default 10. */
  maxRedirects?: number
  origin?: string
  /** 13 (RFC 6455) or 8 (the last draft, same framing). Default 13. */
  protocolVersion?: number
  /** Called with the request instead of `request.end()` (ws `finishRequest`). */
  finishRequest?: (request: ClientRequest, context: unknown) => void
  /** Extensions to offer. */
  extensionOffers?: readonly ExtensionOffer[]
  /**
   * A forward proxy to tunnel through (HTTP CONNECT): a URL such as
   * `http://user:password@proxy:3128` or `https://...`, full `ProxyOptions`,
   * or `'env'` to use HTTPS_PROXY / HTTP_PROXY / NO_PROXY. tether's addition.
   */
  proxy?: ProxySetting
}

export interface ClientHandshakeHooks {
  /** The context passed to `finishRequest` (the WebSocket). */
  readonly context: unknown
  /** A request was sent to `url`; `redirected` when it follows a redirect. */
  requestCreated(url: string, request: ClientRequest, redirected: boolean): void
  /** A redirect is being followed (counted before it is checked, as ws counts `_redirects`). */
  redirectReceived?(): void
  /** Emits the `redirect` event; false if nobody listens. */
  hasRedirectListener(): boolean
  /** A non-101 answer; return true if the application handles it. */
  unexpectedResponse(request: ClientRequest, response: IncomingMessage): boolean
  /** The 101 answer arrived (before it is verified): the `upgrade` event. */
  upgradeReceived(response: IncomingMessage): void
  /** Whether the attempt was abandoned meanwhile (close() during the handshake). */
  isAbandoned(): boolean
  /** The server accepted; the socket now speaks WebSocket. */
  opened(socket: Socket, head: Buffer, accepted: AcceptedResponse, request: ClientRequest): void
  failed(error: Error): void
}

/** A parsed WebSocket URL. */
export interface WebSocketUrl {
  url: URL
  secure: boolean
  ipc: boolean
}

/** Parses and checks a WebSocket URL the way `ws` does; throws SyntaxError. */
export function parseWebSocketUrl(address: string | URL): WebSocketUrl {
  let url: URL
  if (address instanceof URL) {
    url = address
  } else {
    try {
      url = new URL(address)
    } catch {
      throw new SyntaxError(`Invalid URL: ${address}`)
    }
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    url = new URL(url)
    url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:'
  }
  const secure = url.protocol === 'wss:'
  const ipc = url.protocol === 'ws+unix:'
  if (url.protocol !== 'ws:' && !secure && !ipc) {
    throw new SyntaxError('The URL\'s protocol must be one of "ws:", "wss:", "http:", "https:", or "ws+unix:"')
  }
  if (ipc && !url.pathname) throw new SyntaxError("The URL's pathname is empty")
  if (url.hash) throw new SyntaxError('The URL contains a fragment identifier')
  return { url, secure, ipc }
}

/** Checks the subprotocols a client offers; throws SyntaxError like `ws`. */
export function checkSubprotocols(protocols: readonly unknown[]): string[] {
  const seen = new Set<string>()
  for (const protocol of protocols) {
    if (typeof protocol !== 'string' || !isToken(protocol) || seen.has(protocol)) {
      throw new SyntaxError('An invalid or duplicated subprotocol was specified')
    }
    seen.add(protocol)
  }
  return [...seen]
}

/** Where the first request went, for the credential rule on redirects (Rule 1). */
interface Origin {
  ipc: boolean
  secure: boolean
  hostOrSocketPath: string
  /** The Authorization the first request sent (from its URL's userinfo or the headers): redirects keep it, as ws does. */
  authorization?: string | undefined
}

/**
 * Sends the upgrade request and reports the outcome through `hooks`. Throws
 * only for an invalid first URL (as `new WebSocket(url)` does); later
 * failures go to `hooks.failed`.
 */
export function startClientHandshake(
  address: string | URL,
  protocols: readonly string[],
  options: ClientHandshakeOptions,
  hooks: ClientHandshakeHooks,
): void {
  attempt(address, protocols, options, hooks, 0, undefined)
}

function attempt(
  address: string | URL,
  protocols: readonly string[],
  userOptions: ClientHandshakeOptions,
  hooks: ClientHandshakeHooks,
  redirects: number,
  origin: Origin | undefined,
): void {
  let target: WebSocketUrl
  try {
    target = parseWebSocketUrl(address)
  } catch (error) {
    if (redirects === 0) throw error
    return fail(hooks, error as Error)
  }
  const { url, secure, ipc } = target
  const key = createClientKey()
  const {
    handshakeTimeout,
    followRedirects = false,
    maxRedirects = 10,
    origin: originHeader,
    protocolVersion = 13,
    finishRequest,
    extensionOffers,
    headers: userHeaders,
    proxy,
    ...requestOptions
  } = userOptions
  if (protocolVersion !== 13 && protocolVersion !== 8) {
    throw new RangeError(`Unsupported protocol version: ${protocolVersion} (supported versions: 8, 13)`)
  }

  const headers: Record<string, string | string[] | number> = {}
  for (const [name, value] of Object.entries(userHeaders ?? {})) {
    if (value !== undefined) headers[followRedirects ? name.toLowerCase() : name] = value as string
  }
  Object.assign(
    headers,
    clientRequestHeaders({ key, protocols, extensions: extensionOffers ?? [] }),
    { 'Sec-WebSocket-Version': String(protocolVersion) },
  )
  if (originHeader) headers[protocolVersion === 8 ? 'Sec-WebSocket-Origin' : 'Origin'] = originHeader

  const options: https.RequestOptions = {
    ...requestOptions,
    method: 'GET',
    headers,
    path: url.pathname + url.search,
    timeout: handshakeTimeout,
  }
  options.createConnection ??= (secure ? tlsConnect : netConnect) as unknown as https.RequestOptions['createConnection']
  options.defaultPort ??= secure ? 443 : 80
  if (ipc) {
    const path = url.pathname + url.search
    const colon = path.indexOf(':')
    options.socketPath = colon === -1 ? path : path.slice(0, colon)
    options.path = colon === -1 ? '' : path.slice(colon + 1)
    options.host = undefined
    options.port = undefined
  } else {
    options.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    options.port = url.port || (secure ? 443 : 80)
  }
  if (url.username || url.password) {
    options.auth = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
  }
  const viaProxy = ipc || proxy === undefined ? undefined : resolveProxy(url, proxy)
  if (viaProxy !== undefined) {
    const host = String(options.host)
    const port = Number(options.port)
    const targetTls = requestOptions as tls.ConnectionOptions
    // Node's request accepts a connection made asynchronously (the callback form).
    options.createConnection = ((_: unknown, created: (error: Error | null, socket?: Duplex) => void) => {
      tunnel(viaProxy, { host, port, secure, tls: targetTls }, created)
      return undefined
    }) as unknown as https.RequestOptions['createConnection']
  }

  const here: Origin = { ipc, secure, hostOrSocketPath: ipc ? String(options.socketPath) : url.host }
  const first = origin ?? here
  // ws keeps the first request's credentials for its redirects: a Location's own userinfo does not replace them.
  if (followRedirects && redirects > 0 && first.authorization !== undefined && headers.authorization === undefined) {
    headers.authorization = first.authorization
  }
  if (followRedirects && redirects > 0 && !hooks.hasRedirectListener()) {
    // Rule 1.
    const sameHost = here.ipc === first.ipc && here.hostOrSocketPath === first.hostOrSocketPath
    if (!sameHost || (first.secure && !secure)) {
      delete headers.authorization
      delete headers.cookie
      if (!sameHost) delete headers.host
      options.auth = undefined
    }
  }
  if (followRedirects && options.auth && !headers.authorization) {
    headers.authorization = 'Basic ' + Buffer.from(options.auth).toString('base64')
    options.auth = undefined
  }
  if (followRedirects && redirects === 0 && typeof headers.authorization === 'string') here.authorization = headers.authorization

  const request = (secure ? https.request : http.request)(options)
  let settled = false
  const settle = (): boolean => {
    if (settled) return false
    settled = true
    return true
  }
  hooks.requestCreated(url.href, request, redirects > 0)

  if (handshakeTimeout) {
    request.on('timeout', () => {
      if (!settle()) return
      abortRequest(request)
      fail(hooks, new TetherError('TETHER_ERR_HANDSHAKE_TIMEOUT', 'Opening handshake has timed out'))
    })
  }
  request.on('error', (error) => {
    if (!settle()) return
    fail(hooks, error)
  })
  request.on('response', (response) => {
    if (!settle()) return
    const location = response.headers.location
    const status = response.statusCode ?? 0
    if (location && followRedirects && status >= 300 && status < 400) {
      abortRequest(request)
      hooks.redirectReceived?.()
      if (redirects + 1 > maxRedirects) {
        return fail(hooks, new TetherError('TETHER_ERR_HANDSHAKE_REDIRECTS', 'Maximum redirects exceeded'))
      }
      let next: URL
      try {
        next = new URL(location, url)
      } catch {
        return fail(hooks, new SyntaxError(`Invalid URL: ${location}`))
      }
      attempt(next, protocols, userOptions, hooks, redirects + 1, first)
    } else if (!hooks.unexpectedResponse(request, response)) {
      abortRequest(request)
      fail(hooks, new TetherError('TETHER_ERR_HANDSHAKE_STATUS', `Unexpected server response: ${status}`))
    }
  })
  request.on('upgrade', (response: IncomingMessage, socket: Socket, head: Buffer) => {
    if (!settle()) return
    hooks.upgradeReceived(response)
    if (hooks.isAbandoned()) {
      socket.destroy()
      return
    }
    const verdict = verifyUpgradeResponse(
      { status: response.statusCode ?? 0, headers: response.headers },
      { key, protocols, extensions: (extensionOffers ?? []).map((offer) => offer.name) },
    )
    if (verdict instanceof Error) {
      socket.destroy()
      return fail(hooks, verdict as HandshakeError)
    }
    hooks.opened(socket, head, verdict, request)
  })

  if (finishRequest) finishRequest(request, hooks.context)
  else request.end()
}

function fail(hooks: ClientHandshakeHooks, error: Error): void {
  // Rule 2: the hook hears it at once and reports it asynchronously (so that listeners attached after the
  // constructor hear it), as ws's abortHandshake does: the socket is CLOSING from here on.
  hooks.failed(error)
}

function abortRequest(request: ClientRequest): void {
  request.destroy()
  if (request.socket && !request.socket.destroyed) request.socket.destroy()
}

function netConnect(options: net.NetConnectOpts & { socketPath?: string }): Duplex {
  return net.connect({ ...options, path: options.socketPath } as net.NetConnectOpts)
}

function tlsConnect(options: tls.ConnectionOptions & { host?: string }): Duplex {
  const servername = options.servername ?? (options.host ? serverNameFor(options.host) : undefined)
  return tls.connect({ ...options, path: undefined, servername } as tls.ConnectionOptions)
}
