/**
 * The client side of WebSockets over HTTP/2 (RFC 8441): `new WebSocket(url,
 * { http2: true })` opens its WebSocket as a stream of an HTTP/2 session
 * shared by every WebSocket to the same origin; `http2: 'auto'` does so when
 * the server offers it and otherwise takes the HTTP/1.1 way (client.ts).
 *
 * Theory of operation: a process-wide pool holds at most one usable session
 * per origin and set of connection options (TLS trust, certificates,
 * address family...). A WebSocket acquires the session (connecting it if
 * needed), waits for the server's first SETTINGS, and, if they carry
 * SETTINGS_ENABLE_CONNECT_PROTOCOL (§3), sends its extended CONNECT (§4) on a
 * new stream. A 2xx answer whose subprotocol and extensions check out
 * (core/handshake/http2.ts) opens the WebSocket over that stream
 * (http2-transport.ts).
 *
 * `auto` over TLS offers both `h2` and `http/1.1` through ALPN on the first
 * connection to an origin: the server's choice, and then its SETTINGS,
 * decide. A server that chose HTTP/1.1 hands its TLS connection to the
 * HTTP/1.1 handshake (no second TLS handshake); one without the setting
 * makes that WebSocket and later ones to the origin go over HTTP/1.1 for a
 * while (`NO_H2_MEMORY`). `ws://` with `auto` is HTTP/1.1 (browsers never use
 * clear-text HTTP/2); `http2: true` with `ws://` is h2c with prior knowledge.
 *
 * Rule 1 (sessions close when idle): a session counts the WebSockets
 * opening or open on it; when the last one is gone, the session stops
 * holding the process open (`unref`) and closes after `http2IdleTimeout`
 * (default 5 s) unless a new WebSocket takes it first.
 * Rule 2: a session that received a GOAWAY, failed, or closed leaves the
 * pool at once: its open streams end as the server decided (a GOAWAY lets
 * them finish; a session's end resets them, 1006), new WebSockets get a new
 * session.
 * Rule 3: every failure reaches `hooks.failed` once, or `hooks.fallback` for
 * `auto`; nothing here throws because of what the server or network did.
 */
import { IncomingMessage } from 'node:http'
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { HandshakeError, TetherError } from '../core/errors.js'
import type { ExtensionOffer } from '../core/handshake/headers.js'
import type { AcceptedResponse } from '../core/handshake/http1.js'
import { connectRequestHeaders, verifyConnectResponse } from '../core/handshake/http2.js'
import { serverNameFor } from './proxy.js'

const { NGHTTP2_CANCEL } = http2.constants

/** How long an idle session stays open for the next WebSocket (Rule 1), by default. */
export const DEFAULT_HTTP2_IDLE_TIMEOUT = 5_000
/** How long `auto` remembers that an origin offers no WebSockets over HTTP/2, in ms. */
const NO_H2_MEMORY = 5 * 60_000

/** Connection options that make two sessions to one origin different (compared by identity). */
const CONNECTION_OPTIONS = [
  'ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername', 'checkServerIdentity', 'ciphers',
  'ecdhCurve', 'minVersion', 'maxVersion', 'secureContext', 'family', 'localAddress', 'lookup', 'crl', 'sigalgs',
] as const

/** Fields HTTP/2 does not carry (RFC 9113 §8.2.2), or that the handshake sets itself. */
const DROPPED_HEADERS = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions'])

export interface Http2ClientOptions {
  /** true: HTTP/2 or fail; 'auto': HTTP/2 where the server offers WebSockets over it, HTTP/1.1 otherwise. */
  http2: true | 'auto'
  handshakeTimeout?: number | undefined
  headers?: Record<string, unknown> | undefined
  origin?: string | undefined
  protocolVersion?: number | undefined
  extensionOffers?: readonly ExtensionOffer[] | undefined
  /** How long the session stays open once its last WebSocket closed (Rule 1). */
  http2IdleTimeout?: number | undefined
  [option: string]: unknown
}

export interface Http2HandshakeHooks {
  /** The attempt started; `abort` gives it up (close() while CONNECTING). */
  started(url: string, abort: () => void): void
  /** The server answered (before the answer is checked): the `upgrade` event. */
  upgradeReceived(response: IncomingMessage): void
  /** Whether the WebSocket was closed meanwhile. */
  isAbandoned(): boolean
  /** The server accepted; the stream now carries the WebSocket. */
  opened(stream: ClientHttp2Stream, accepted: AcceptedResponse): void
  failed(error: Error): void
  /** `auto` found no WebSockets over HTTP/2 here: go on over HTTP/1.1 (on `socket`, the TLS connection ALPN gave HTTP/1.1). */
  fallback(socket: Duplex | undefined): void
}

/** What the pool hands a waiting WebSocket. */
type Outcome = { session: ClientHttp2Session } | { error: Error } | { fallback: Duplex | undefined }

/** One session of the pool (Rules 1 and 2). */
class PooledSession {
  readonly origin: string
  readonly identity: Record<string, unknown>
  session: ClientHttp2Session | undefined = undefined
  state: 'connecting' | 'ready' | 'gone' = 'connecting'
  /** WebSockets waiting for the session; each says whether it took what it was given. */
  readonly waiters = new Set<(outcome: Outcome) => boolean>()
  users = 0
  idleTimeout: number
  idleTimer: NodeJS.Timeout | undefined = undefined

  constructor(origin: string, identity: Record<string, unknown>, idleTimeout: number) {
    this.origin = origin
    this.identity = identity
    this.idleTimeout = idleTimeout
  }

  /** Another WebSocket uses the session: it may not close, and holds the process open. */
  take(): void {
    this.users++
    if (this.idleTimer !== undefined) {
      clearTimeout(this.idleTimer)
      this.idleTimer = undefined
    }
    if (this.session !== undefined && !this.session.destroyed) this.session.ref()
  }

  /** Rule 1: the last WebSocket gone, the session waits `idleTimeout`, not holding the process, then closes. */
  release(): void {
    this.users = Math.max(0, this.users - 1)
    if (this.users > 0) return
    const session = this.session
    if (session === undefined || session.destroyed) return
    session.unref()
    if (this.state === 'gone') return session.close()
    this.idleTimer = setTimeout(closeIdle, this.idleTimeout, this)
    this.idleTimer.unref()
  }

  settle(outcome: Outcome): void {
    for (const waiter of [...this.waiters]) {
      this.waiters.delete(waiter)
      waiter(outcome)
    }
  }
}

function closeIdle(entry: PooledSession): void {
  entry.idleTimer = undefined
  if (entry.users > 0) return
  forget(entry)
  if (entry.session !== undefined && !entry.session.destroyed) entry.session.close()
}

/** Sessions by origin (Rule 2: only usable ones). */
const pool = new Map<string, PooledSession[]>()
/** Origins that `auto` goes to over HTTP/1.1, until when (ms since the epoch). */
const noH2Until = new Map<string, number>()

function forget(entry: PooledSession): void {
  entry.state = 'gone'
  const list = pool.get(entry.origin)
  if (list === undefined) return
  const at = list.indexOf(entry)
  if (at !== -1) list.splice(at, 1)
  if (list.length === 0) pool.delete(entry.origin)
}

function identityOf(options: Record<string, unknown>): Record<string, unknown> {
  const identity: Record<string, unknown> = {}
  for (const name of CONNECTION_OPTIONS) if (options[name] !== undefined) identity[name] = options[name]
  return identity
}

function sameIdentity(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const names = Object.keys(a)
  return names.length === Object.keys(b).length && names.every((name) => a[name] === b[name])
}

/** What the pool holds (for tests): its sessions and the WebSockets opening or open on each, by origin. */
export function http2SessionStats(): Array<{ origin: string; state: string; webSockets: number }> {
  const out: Array<{ origin: string; state: string; webSockets: number }> = []
  for (const [origin, list] of pool) for (const entry of list) out.push({ origin, state: entry.state, webSockets: entry.users })
  return out
}

/**
 * Opens a WebSocket over HTTP/2 and reports through `hooks`. Throws only for
 * options that cannot work (as `new WebSocket` does for a bad URL).
 */
export function startHttp2Handshake(url: URL, protocols: readonly string[], options: Http2ClientOptions, hooks: Http2HandshakeHooks): void {
  const secure = url.protocol === 'wss:'
  const mode = options.http2
  if (mode === true && url.protocol === 'ws+unix:') throw new SyntaxError('http2 is not available for ws+unix: URLs')
  if (mode === true && options.proxy !== undefined) throw new SyntaxError('http2 cannot go through a proxy: use http2: "auto" or leave it off')
  const origin = `${secure ? 'https' : 'http'}://${url.host}`
  const protocolVersion = options.protocolVersion ?? 13
  if (protocolVersion !== 13 && protocolVersion !== 8) {
    throw new RangeError(`Unsupported protocol version: ${protocolVersion} (supported versions: 8, 13)`)
  }
  // Rule 3: the outcome is reported once.
  let settled = false
  let stream: ClientHttp2Stream | undefined
  let entry: PooledSession | undefined
  let timer: NodeJS.Timeout | undefined
  const finish = (): boolean => {
    if (settled) return false
    settled = true
    if (timer !== undefined) clearTimeout(timer)
    return true
  }
  const fail = (error: Error): void => {
    if (!finish()) return
    if (stream !== undefined && !stream.destroyed) {
      stream.close(NGHTTP2_CANCEL)
      // A refusal's body nobody reads would keep the stream from closing, and so the session from ever going idle.
      stream.resume()
    }
    // The stream's 'close' releases the session; without a stream, release it here.
    if (stream === undefined) entry?.release()
    hooks.failed(error)
  }
  const waiter = (outcome: Outcome): boolean => {
    if (settled) return false
    if ('error' in outcome) {
      fail(outcome.error)
      return true
    }
    if ('fallback' in outcome) {
      // An 'auto' attempt shared with this one found HTTP/1.1: only 'auto' may take that way.
      if (mode === true) {
        fail(new HandshakeError('TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED', 'The server chose HTTP/1.1 (ALPN): no WebSockets over HTTP/2 there'))
        return false
      }
      finish()
      entry?.release()
      hooks.fallback(outcome.fallback)
      return true
    }
    open(outcome.session)
    return true
  }
  const open = (session: ClientHttp2Session): void => {
    if (hooks.isAbandoned()) return fail(new Error('WebSocket was closed before the connection was established'))
    // §3: a client must not send :protocol unless the server's SETTINGS allowed it; with 'auto', HTTP/1.1 instead.
    if (session.remoteSettings.enableConnectProtocol !== true) {
      if (mode === 'auto') {
        noH2Until.set(origin, Date.now() + NO_H2_MEMORY)
        finish()
        entry?.release()
        return hooks.fallback(undefined)
      }
      return fail(new HandshakeError('TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED', 'The server does not accept WebSockets over HTTP/2 (no SETTINGS_ENABLE_CONNECT_PROTOCOL)'))
    }
    const headers = requestHeaders(url, secure, protocols, options, protocolVersion)
    try {
      stream = session.request(headers, { endStream: false })
    } catch (error) {
      return fail(error as Error)
    }
    const opened = stream
    opened.on('error', ignore)
    opened.once('close', () => {
      entry?.release()
      if (!settled) fail(new TetherError('TETHER_ERR_HANDSHAKE_STATUS', `The server reset the stream during the handshake (HTTP/2 error code ${opened.rstCode ?? 0})`))
    })
    opened.once('response', (fields: IncomingHttpHeaders) => {
      if (settled) return
      const status = Number(fields[':status'] ?? 0)
      hooks.upgradeReceived(responseMessage(status, fields))
      if (hooks.isAbandoned()) return fail(new Error('WebSocket was closed before the connection was established'))
      const verdict = verifyConnectResponse(
        { status, headers: fields },
        { protocols, extensions: (options.extensionOffers ?? []).map((offer) => offer.name) },
      )
      if (verdict instanceof Error) return fail(verdict)
      finish()
      hooks.opened(opened, verdict)
    })
  }

  hooks.started(url.href, () => fail(new Error('WebSocket was closed before the connection was established')))
  if (options.handshakeTimeout) {
    timer = setTimeout(() => fail(new TetherError('TETHER_ERR_HANDSHAKE_TIMEOUT', 'Opening handshake has timed out')), options.handshakeTimeout)
  }
  // `auto` without TLS, through a proxy, or to an origin known to lack HTTP/2 WebSockets: HTTP/1.1 at once.
  if (mode === 'auto' && (!secure || options.proxy !== undefined || options.createConnection !== undefined || options.agent !== undefined)) {
    finish()
    return hooks.fallback(undefined)
  }
  if (mode === 'auto' && (noH2Until.get(origin) ?? 0) > Date.now()) {
    finish()
    return hooks.fallback(undefined)
  }
  entry = acquire(url, origin, secure, options, mode)
  entry.take()
  if (entry.state === 'ready') open(entry.session!)
  else entry.waiters.add(waiter)
}

/** The pool's session for this origin and these options, or a new one being connected. */
function acquire(url: URL, origin: string, secure: boolean, options: Http2ClientOptions, mode: true | 'auto'): PooledSession {
  const identity = identityOf(options)
  const list = pool.get(origin) ?? []
  const known = list.find((entry) => entry.state !== 'gone' && sameIdentity(entry.identity, identity))
  if (known !== undefined) return known
  const entry = new PooledSession(origin, identity, options.http2IdleTimeout ?? DEFAULT_HTTP2_IDLE_TIMEOUT)
  list.push(entry)
  pool.set(origin, list)
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const port = Number(url.port || (secure ? 443 : 80))
  const tlsOptions: tls.ConnectionOptions = { ...identity, host, port, servername: (identity.servername as string | undefined) ?? serverNameFor(host) }
  if (mode === 'auto' && secure) {
    // ALPN decides (the module comment): h2 becomes the session, http/1.1 goes to the HTTP/1.1 handshake.
    const socket = tls.connect({ ...tlsOptions, ALPNProtocols: ['h2', 'http/1.1'] })
    const onError = (error: Error): void => {
      forget(entry)
      entry.settle({ error })
    }
    socket.once('error', onError)
    socket.once('secureConnect', () => {
      socket.removeListener('error', onError)
      if (socket.alpnProtocol === 'h2') return connectSession(entry, origin, { createConnection: () => socket })
      noH2Until.set(origin, Date.now() + NO_H2_MEMORY)
      forget(entry)
      // The first WebSocket still waiting takes this connection for its HTTP/1.1 handshake; others open their own.
      let taken = false
      for (const waiter of [...entry.waiters]) {
        entry.waiters.delete(waiter)
        if (!taken) taken = waiter({ fallback: socket })
        else waiter({ fallback: undefined })
      }
      if (!taken) socket.destroy()
    })
    return entry
  }
  connectSession(entry, origin, secure ? tlsOptions : {})
  return entry
}

/** Starts the HTTP/2 session of a pool entry and settles its waiters once the server's SETTINGS arrived. */
function connectSession(entry: PooledSession, origin: string, options: http2.SecureClientSessionOptions): void {
  let session: ClientHttp2Session
  try {
    session = http2.connect(origin, { ...options, settings: { enablePush: false } })
  } catch (error) {
    forget(entry)
    return entry.settle({ error: error as Error })
  }
  entry.session = session
  // Rule 2.
  session.on('error', (error: Error & { code?: string }) => {
    forget(entry)
    // A TLS server that does not offer h2 refuses the handshake with this alert: say so in the handshake's words.
    const refused = error.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'
      ? Object.assign(new HandshakeError('TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED', 'The server does not speak HTTP/2 (no h2 in ALPN)'), { cause: error })
      : error
    entry.settle({ error: refused })
  })
  session.on('goaway', () => forget(entry))
  session.once('close', () => {
    forget(entry)
    if (entry.idleTimer !== undefined) clearTimeout(entry.idleTimer)
    entry.settle({ error: new TetherError('TETHER_ERR_HANDSHAKE_STATUS', 'The HTTP/2 connection closed before the WebSocket opened') })
  })
  session.once('remoteSettings', () => {
    if (entry.state === 'gone') return
    entry.state = 'ready'
    entry.settle({ session })
    // Everyone may have given up while the session connected.
    if (entry.users === 0) {
      entry.users = 1
      entry.release()
    }
  })
}

/** The extended CONNECT's fields: the handshake's, then the application's own (lower case, HTTP/2-legal). */
function requestHeaders(url: URL, secure: boolean, protocols: readonly string[], options: Http2ClientOptions, version: number): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = connectRequestHeaders({
    scheme: secure ? 'https' : 'http',
    authority: url.host,
    path: url.pathname + url.search,
    protocols,
    extensions: options.extensionOffers ?? [],
    version: String(version),
  })
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const lower = name.toLowerCase()
    if (value === undefined || value === null || lower.startsWith(':') || DROPPED_HEADERS.has(lower)) continue
    if (lower === 'host') headers[':authority'] = String(value)
    else headers[lower] = Array.isArray(value) ? value.map(String) : String(value)
  }
  if (options.origin) headers[version === 8 ? 'sec-websocket-origin' : 'origin'] = options.origin
  return headers
}

/** The answer as an `http.IncomingMessage` (the `upgrade` event's argument), `httpVersion` '2.0'. */
function responseMessage(status: number, fields: IncomingHttpHeaders): IncomingMessage {
  const response = new IncomingMessage(undefined as unknown as Socket)
  response.statusCode = status
  response.httpVersion = '2.0'
  response.httpVersionMajor = 2
  response.httpVersionMinor = 0
  const headers: Record<string, string | string[]> = {}
  const raw: string[] = []
  for (const [name, value] of Object.entries(fields)) {
    if (name.startsWith(':') || value === undefined) continue
    headers[name] = value as string | string[]
    for (const one of Array.isArray(value) ? value : [value]) raw.push(name, String(one))
  }
  response.headers = headers
  response.rawHeaders = raw
  response.complete = true
  return response
}

function ignore(): void {}
