/**
 * The hub's plain HTTP: the pages (index, chat, live scores, their scripts
 * and style), the operator's routes (`/health`, `/health/live`,
 * `/health/ready`, `/metrics`), and the answers to everything else: 405 for a
 * method other than GET or HEAD, 426 for a WebSocket endpoint asked for over
 * plain HTTP, 404 otherwise; 403 for a Host the hub does not answer to.
 *
 * Liveness and readiness: `/health/live` is 200 while the process serves
 * HTTP at all (restart it when this fails); `/health/ready` is 200 when the
 * hub should get traffic (listening and, with a backplane, connected) and
 * 503 otherwise, also while it drains at shutdown (take it out of the load
 * balancer; do not restart it).
 *
 * Rule 1: serving a page costs no disk read: files are read once and kept
 * (a few KiB each), so a client pipelining thousands of requests costs
 * little; and a connection is closed after MAX_REQUESTS_PER_SOCKET requests
 * (found by an outsider: 50,000 pipelined GETs on one socket held the event
 * loop for 11 s); over HTTP/2 (`--http2`), with a GOAWAY that lets its open
 * streams (WebSockets too) finish.
 * Rule 2: over HTTP/2 the listener gets Node's compatibility objects, which
 * refuse HTTP/1.1's connection fields: a WebSocket endpoint asked for with
 * a GET is a 400 there (there is no Upgrade to name: RFC 8441 uses CONNECT).
 */
import { timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type http from 'node:http'
import { extname, join } from 'node:path'

const PAGES: Record<string, string> = {
  '/': 'web/index.html',
  '/chat': 'web/chat.html',
  '/scores': 'web/scores.html',
  '/style.css': 'web/style.css',
  '/favicon.ico': 'web/favicon.svg',
}
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
}
/** Headers every page gets: no framing by other sites, no sniffing, no referrer to other origins. */
const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
}

/** Rule 1. */
const MAX_REQUESTS_PER_SOCKET = 100

export interface HttpRoutes {
  /** The package root, where `web/` and `dist/web/` are. */
  root: string
  /** The body of /health. */
  health(): object
  /** Whether the hub should get traffic: /health/ready answers 200, or 503. */
  ready(): boolean
  /** /metrics on this listener; undefined: not here (404). */
  metrics?: MetricsRoute | undefined
  /** Whether a path is a WebSocket endpoint (426 over plain HTTP). */
  isWebSocketPath(path: string): boolean
  /** Whether the request's Host is one the hub answers to (hub.ts Rule 4). */
  hostAllowed(request: http.IncomingMessage): boolean
}

/** How /metrics answers: the registry's text, behind a bearer token if one is set. */
export interface MetricsRoute {
  token: string | undefined
  render(): Promise<{ contentType: string; body: string }>
}

/**
 * Whether `request` carries `Authorization: Bearer TOKEN` (compared in constant time). The scheme's name is
 * case-insensitive ("It uses a case-insensitive token as a means to identify the authentication scheme",
 * RFC 9110 §11.1): `bearer TOKEN` was refused (outsider finding 15).
 */
function bearerMatches(request: http.IncomingMessage, token: string): boolean {
  const header = request.headers.authorization
  const scheme = typeof header === 'string' ? /^bearer +/i.exec(header) : null
  if (scheme === null) return false
  const given = Buffer.from(header!.slice(scheme[0].length).trim())
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** The operator's routes (shared by the public listener and the metrics one); false: not one of them. */
function operatorRoute(path: string, request: http.IncomingMessage, response: http.ServerResponse, routes: Pick<HttpRoutes, 'health' | 'ready' | 'metrics'>): boolean {
  const head = request.method === 'HEAD'
  const json = (status: number, body: object): void => {
    response.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(head ? undefined : JSON.stringify(body))
  }
  if (path === '/health') json(200, routes.health())
  else if (path === '/health/live') json(200, { status: 'live' })
  else if (path === '/health/ready') {
    const ready = routes.ready()
    json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' })
  } else if (path === '/metrics' && routes.metrics !== undefined) {
    const metrics = routes.metrics
    if (metrics.token !== undefined && !bearerMatches(request, metrics.token)) {
      response.setHeader('WWW-Authenticate', 'Bearer realm="metrics"')
      text(response, 401, 'Unauthorized: /metrics needs Authorization: Bearer TOKEN\n')
      return true
    }
    void metrics.render().then(
      ({ contentType, body }) => {
        response.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) }).end(head ? undefined : body)
      },
      () => text(response, 500, 'Internal Server Error\n'),
    )
  } else return false
  return true
}

/**
 * The path of a request target, or undefined if it is not one. An origin-form target is a path as it
 * stands: resolving it against a base read `//x/chat` as the URL of host x, path `/chat`, so `GET //anything`
 * got the index page and `//x/echo` a WebSocket (outsider finding 15); now `//x/chat` is a path no page
 * has (404). An absolute-form target (`GET http://host/path`, RFC 9112 §3.2.2) gives its path.
 */
export function requestPath(target: string | undefined): string | undefined {
  try {
    if (target === undefined || target === '') return '/'
    if (target.startsWith('/')) return new URL(`http://localhost${target}`).pathname
    const url = new URL(target)
    return url.protocol === 'http:' || url.protocol === 'https:' || url.protocol === 'ws:' || url.protocol === 'wss:' ? url.pathname : undefined
  } catch {
    return undefined
  }
}

/** The path of a GET or HEAD request; anything else is answered here (400 or 405) and gives undefined. */
function readablePath(request: http.IncomingMessage, response: http.ServerResponse): string | undefined {
  const path = requestPath(request.url)
  if (path === undefined) {
    text(response, 400, 'Bad Request\n')
    return undefined
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD')
    text(response, 405, 'Method Not Allowed\n')
    return undefined
  }
  return path
}

/** The request listener of the metrics port (`metrics.port`): the operator's routes only. */
export function operatorListener(routes: Pick<HttpRoutes, 'health' | 'ready' | 'metrics'>): (request: http.IncomingMessage, response: http.ServerResponse) => void {
  return (request, response) => {
    const path = readablePath(request, response)
    if (path === undefined) return
    if (!operatorRoute(path, request, response, routes)) text(response, 404, 'Not Found\n')
  }
}

/** The request listener for everything that is not a WebSocket upgrade. */
export function requestListener(routes: HttpRoutes): (request: http.IncomingMessage, response: http.ServerResponse) => void {
  const files = new Map<string, Promise<Buffer | undefined>>()
  const read = (file: string): Promise<Buffer | undefined> => {
    let body = files.get(file)
    if (body === undefined) {
      body = readFile(join(routes.root, file)).catch(() => undefined)
      files.set(file, body)
    }
    return body
  }
  const requests = new WeakMap<object, number>()
  const handle = async (request: http.IncomingMessage, response: http.ServerResponse): Promise<void> => {
    const http2 = request.httpVersionMajor >= 2
    // Over HTTP/2 a request's socket is a stand-in per stream: count by the connection (its session).
    const connection: object = (http2 ? (request as unknown as { stream?: { session?: object } }).stream?.session : undefined) ?? request.socket
    const count = (requests.get(connection) ?? 0) + 1
    requests.set(connection, count)
    if (count >= MAX_REQUESTS_PER_SOCKET) {
      if (http2) (request as unknown as { stream?: { session?: { close(): void } } }).stream?.session?.close()
      else response.shouldKeepAlive = false
    }
    if (!routes.hostAllowed(request)) return text(response, 403, 'Forbidden: this Host is not served here\n')
    const path = readablePath(request, response)
    if (path === undefined) return
    if (operatorRoute(path, request, response, routes)) return
    if (routes.isWebSocketPath(path)) {
      // Rule 2.
      if (http2) return text(response, 400, 'Bad Request: this is a WebSocket endpoint (open it with an extended CONNECT)\n')
      response.setHeader('Upgrade', 'websocket')
      return text(response, 426, 'Upgrade Required: this is a WebSocket endpoint\n')
    }
    const file =
      PAGES[path] ??
      // The reliable-delivery client (src/client), built for browsers: /js/client/index.js imports ./protocol.js.
      (/^\/js\/client\/[\w-]+\.js$/.test(path) ? `dist/web/src/client/${path.slice(11)}` : undefined) ??
      (/^\/js\/[\w-]+\.js$/.test(path) ? `dist/web/web/src/${path.slice(4)}` : undefined)
    if (file === undefined) return text(response, 404, 'Not Found\n')
    const body = await read(file)
    if (body === undefined) return text(response, 404, 'Not Found\n')
    response.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length })
    response.end(request.method === 'HEAD' ? undefined : body)
  }
  return (request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) text(response, 500, 'Internal Server Error\n')
      else response.destroy()
    })
  }
}

function text(response: http.ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body)
}
