// A ws program written against @types/ws (default import); only the module name differs.
import { createServer, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer, createWebSocketStream } from 'tether-ws'

const clients = new Map<string, WebSocket>()

function onMessage(this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
  const text = isBinary ? null : data.toString()
  for (const client of clients.values()) {
    if (client !== this && client.readyState === WebSocket.OPEN) client.send(text ?? (data as Buffer), { binary: isBinary })
  }
}

const options: WebSocket.ServerOptions = {
  noServer: true,
  clientTracking: true,
  maxPayload: 1 << 20,
  perMessageDeflate: { threshold: 1024, zlibDeflateOptions: { level: 3 } },
  verifyClient: (info: { origin: string; secure: boolean; req: IncomingMessage }) => info.origin !== 'https://evil.example',
  handleProtocols: (protocols: Set<string>, _request: IncomingMessage) => (protocols.has('chat') ? 'chat' : false),
}
const wss: WebSocketServer = new WebSocketServer(options)
const same: WebSocketServer = wss
same.on('connection', (ws: WebSocket, request: IncomingMessage) => {
  clients.set(request.socket.remoteAddress ?? '?', ws)
  ws.on('message', onMessage)
  ws.on('close', (code: number, reason: Buffer) => console.log(code, reason.toString()))
  ws.on('error', (error: Error) => console.error(error.message))
  ws.on('pong', (payload: Buffer) => payload.length)
  ws.send('welcome', (err?: Error) => {
    if (err) console.error(err)
  })
  ws.ping()
})
wss.on('headers', (headers: string[], request: IncomingMessage) => headers.push(`X-Url: ${request.url}`))
wss.on('wsClientError', (error: Error, socket: Duplex) => socket.destroy(error))

const server = createServer()
server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
  wss.handleUpgrade(request, socket, head, (ws: WebSocket, req: IncomingMessage) => wss.emit('connection', ws, req))
})

const client: WebSocket = new WebSocket('ws://127.0.0.1:1', ['chat'], { handshakeTimeout: 1000, headers: { authorization: 'x' } })
const clientOptions: WebSocket.ClientOptions = { perMessageDeflate: false, followRedirects: true }
const second = new WebSocket(new URL('ws://127.0.0.1:1'), clientOptions)
client.binaryType = 'arraybuffer'
client.onopen = (event: WebSocket.Event) => event.target.send('hi')
client.onmessage = (event: WebSocket.MessageEvent) => {
  const data: WebSocket.Data = event.data
  if (typeof data === 'string') console.log(data.toUpperCase())
}
client.onclose = (event: WebSocket.CloseEvent) => console.log(event.code, event.reason, event.wasClean)
client.onerror = (event: WebSocket.ErrorEvent) => console.log(event.message)
client.addEventListener('message', (event) => console.log(event.data, event.type))
client.addEventListener('close', (event) => console.log(event.code), { once: true })
client.addEventListener('error', { handleEvent: (event) => console.log(event.error) })
client.on('upgrade', (response: IncomingMessage) => response.headers['set-cookie'])
client.on('unexpected-response', (_request, response) => response.statusCode)
second.terminate()
const state: number = client.readyState
if (state === client.CLOSED || client.bufferedAmount > 0) client.close(1000, 'bye')

const stream: Duplex = createWebSocketStream(client, { encoding: 'utf8' })
stream.pipe(process.stdout)

class Tracked extends WebSocket {
  isAlive = true
}
const trackedServer = new WebSocketServer<typeof Tracked>({ port: 0, WebSocket: Tracked })
trackedServer.on('connection', (socket) => {
  socket.isAlive = true
  socket.on('pong', () => (socket.isAlive = true))
})
const interval = setInterval(() => {
  for (const socket of trackedServer.clients) {
    if (!socket.isAlive) socket.terminate()
    socket.isAlive = false
    socket.ping()
  }
}, 30_000)
trackedServer.on('close', () => clearInterval(interval))
const address = trackedServer.address() as WebSocket.AddressInfo
console.log(address.port, address.family)

const asyncVerify: WebSocket.VerifyClientCallbackAsync = (info, done) => {
  if (info.req.headers.authorization) done(true)
  else done(false, 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer' })
}
new WebSocketServer({ port: 0, verifyClient: asyncVerify }).close((err?: Error) => err)

export function broadcast(server: WebSocketServer, message: WebSocket.Data): void {
  server.clients.forEach((socket: WebSocket) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(message)
  })
}
