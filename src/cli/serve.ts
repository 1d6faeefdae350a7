/**
 * `tether serve`: the demo hub. One HTTP(S) server carries the pages
 * (index, chat, live scores), a health endpoint, and four WebSocket
 * endpoints: /echo, /topics/NAME (a relay: what a client sends is published
 * on NAME, and every client there receives what is published on NAME, on any
 * node), /chat/ws and /scores/ws. With --redis or --nats, several processes
 * form one cluster; without, topics live in this process.
 */
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import type { Duplex } from 'node:stream'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type WebSocket, WebSocketServer } from 'tether-ws'
import type { Backplane, BackplaneEvent } from 'tether-ws/pubsub'
import { ChatApp } from './apps/chat.js'
import { acceptScoresClient, startScoresFeed } from './apps/scores.js'
import { CliError } from './errors.js'

export interface ServeOptions {
  port: number
  host: string
  tlsCert?: string | undefined
  tlsKey?: string | undefined
  redis?: string | undefined
  nats?: string | undefined
  /** How long to wait for the broker at start, in ms; then exit with one line. */
  brokerTimeout: number
  /** permessage-deflate for clients that offer it. */
  compression: boolean
  maxPayload: number
  maxConnections: number
  /** How long shutdown waits for clients to finish the closing handshake, in ms. */
  shutdownTimeout: number
  log: (line: string) => void
}

export const SERVE_DEFAULTS = {
  port: 8080,
  host: '127.0.0.1',
  compression: true,
  maxPayload: 1024 * 1024,
  maxConnections: 10_000,
  shutdownTimeout: 5_000,
  brokerTimeout: 5_000,
}

export interface RunningServer {
  readonly wss: WebSocketServer
  readonly port: number
  /** http://host:port (https:// with TLS). */
  readonly url: string
  /** Closes every socket with 1001, waits up to the shutdown timeout, then stops. */
  close(): Promise<void>
}

const root = fileURLToPath(new URL('../../', import.meta.url))
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
const MAX_TOPIC = 200

async function connectBackplane(options: ServeOptions): Promise<{ backplane?: Backplane; kind: string }> {
  if (options.redis && options.nats) throw new CliError('Choose one backplane: --redis or --nats, not both')
  try {
    if (options.redis) {
      const { RedisBackplane } = await import('tether-ws/pubsub/redis')
      return { backplane: await RedisBackplane.connect({ url: options.redis, connectTimeout: options.brokerTimeout }), kind: 'redis' }
    }
    if (options.nats) {
      const { NatsBackplane } = await import('tether-ws/pubsub/nats')
      return { backplane: await NatsBackplane.connect({ servers: options.nats, connectTimeout: options.brokerTimeout }), kind: 'nats' }
    }
  } catch (error) {
    throw new CliError((error as Error).message)
  }
  return { kind: 'memory' }
}

async function readTls(options: ServeOptions): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (!options.tlsCert && !options.tlsKey) return undefined
  if (!options.tlsCert || !options.tlsKey) throw new CliError('--tls-cert and --tls-key go together')
  const read = async (file: string, flag: string): Promise<Buffer> => {
    try {
      return await readFile(file)
    } catch (error) {
      throw new CliError(`cannot read ${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  return { cert: await read(options.tlsCert, '--tls-cert'), key: await read(options.tlsKey, '--tls-key') }
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  const tls = await readTls(options)
  const { backplane, kind } = await connectBackplane(options)
  let backplaneState = backplane ? 'connected' : 'none'
  const started = Date.now()

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayload,
    perMessageDeflate: options.compression,
    topics: { backplane },
  })
  // Unsent messages arrive one batch at a time; an outage's are told in one line when it ends (and in /health).
  let unsentInOutage = 0
  wss.on('backplane', (event: BackplaneEvent) => {
    if (event.type === 'disconnected') backplaneState = 'disconnected'
    if (event.type === 'reconnected') backplaneState = 'connected'
    if (event.type === 'lost') options.log(`backplane: ${event.count} message(s) from node ${event.origin.slice(0, 8)} lost`)
    else if (event.type === 'error') options.log(`backplane ${event.stage} error: ${event.error.message}`)
    else if (event.type === 'unsent') unsentInOutage += backplaneState === 'disconnected' ? event.count : 0
    else if (event.type === 'reconnected' && unsentInOutage > 0) {
      options.log(`backplane reconnected: ${unsentInOutage} message(s) published during the outage were not sent`)
      unsentInOutage = 0
    } else options.log(`backplane ${event.type}`)
  })
  const chat = new ChatApp(wss)
  const stopFeed = startScoresFeed(wss)

  const onRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    void handleRequest(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500).end()
      else response.destroy()
    })
  }
  const handleRequest = async (request: http.IncomingMessage, response: http.ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('Method Not Allowed\n')
      return
    }
    if (path === '/health') {
      const body = JSON.stringify({
        status: 'ok',
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        connections: wss.clients.size,
        topics: wss.topics.length,
        backplane: { kind, state: backplaneState },
        chatRooms: chat.summary(),
        stats: wss.topicStats,
      })
      response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body)
      return
    }
    const file = PAGES[path] ?? (/^\/js\/[\w-]+\.js$/.test(path) ? `dist/web/${path.slice(4)}` : undefined)
    if (file === undefined) {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not Found\n')
      return
    }
    let body: Buffer
    try {
      body = await readFile(join(root, file))
    } catch {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not Found\n')
      return
    }
    response.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length })
    response.end(request.method === 'HEAD' ? undefined : body)
  }

  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest)
  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const path = new URL(request.url ?? '/', 'http://localhost').pathname
    const reject = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`)
    }
    let accept: ((ws: WebSocket) => void) | undefined
    if (path === '/echo') accept = (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    else if (path === '/chat/ws') accept = (ws) => chat.accept(ws)
    else if (path === '/scores/ws') accept = (ws) => acceptScoresClient(ws)
    else if (path.startsWith('/topics/')) {
      let topic: string
      try {
        topic = decodeURIComponent(path.slice('/topics/'.length))
      } catch {
        return reject(400, 'The topic in the path is not valid percent-encoding\n')
      }
      if (topic.length === 0 || topic.length > MAX_TOPIC) return reject(400, `A topic is 1-${MAX_TOPIC} characters: /topics/NAME\n`)
      accept = (ws) => {
        ws.subscribe(topic)
        ws.on('message', (data, isBinary) => wss.publish(topic, data as Buffer, { binary: isBinary }))
      }
    }
    if (accept === undefined) return reject(404, 'No WebSocket endpoint here: try /echo, /topics/NAME, /chat/ws or /scores/ws\n')
    if (wss.clients.size >= options.maxConnections) return reject(503, 'Too many connections\n')
    wss.handleUpgrade(request, socket, head, (ws) => {
      ws.on('error', () => {})
      accept!(ws)
    })
  })

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening)
      reject(
        error.code === 'EADDRINUSE'
          ? new CliError(`port ${options.port} is already in use on ${options.host}: stop the other server or choose --port`)
          : error.code === 'EACCES'
            ? new CliError(`no permission to listen on port ${options.port}: choose a port above 1023`)
            : new CliError(`cannot listen on ${options.host}:${options.port}: ${error.message}`),
      )
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(options.port, options.host)
  }).catch(async (error) => {
    stopFeed()
    await backplane?.close()
    throw error
  })
  const address = server.address() as { port: number }
  const host = options.host.includes(':') ? `[${options.host}]` : options.host
  const url = `${tls ? 'https' : 'http'}://${host}:${address.port}`

  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stopFeed()
      server.close()
      await wss.shutdown({ code: 1001, reason: 'server shutting down', timeout: options.shutdownTimeout })
      server.closeAllConnections()
    })())

  return { wss, port: address.port, url, close }
}
