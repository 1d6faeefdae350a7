// A ws program written against @types/ws with named imports only.
import type { IncomingMessage } from 'node:http'
import {
  type AddressInfo,
  type ClientOptions,
  type Data,
  type RawData,
  type ServerOptions,
  type VerifyClientCallbackAsync,
  type VerifyClientCallbackSync,
  WebSocket,
  WebSocketServer,
  createWebSocketStream,
} from 'tether-ws'

const verify: VerifyClientCallbackSync = ({ origin, secure, req }) => secure || origin === req.headers.origin
const verifyLater: VerifyClientCallbackAsync<IncomingMessage> = ({ origin }, callback) => callback(origin.length > 0)
const serverOptions: ServerOptions = { port: 0, host: '127.0.0.1', verifyClient: verify, backlog: 10 }
const wss = new WebSocketServer(serverOptions, () => {
  const { port } = wss.address() as AddressInfo
  const clientOptions: ClientOptions = { origin: 'http://127.0.0.1', maxPayload: 1024, rejectUnauthorized: false }
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, clientOptions)
  ws.on('open', () => ws.send(Buffer.from('ping'), { compress: false }, (error) => error && console.error(error)))
  ws.on('message', (data: RawData) => {
    const chunks: Buffer[] = Array.isArray(data) ? data : [Buffer.isBuffer(data) ? data : Buffer.from(data)]
    console.log(Buffer.concat(chunks).length)
    ws.close()
  })
  const duplex = createWebSocketStream(ws)
  duplex.on('data', (chunk: Buffer) => chunk)
})
wss.on('connection', function connection(this: WebSocketServer, ws, request) {
  ws.on('message', (message, isBinary) => ws.send(message, { binary: isBinary }))
  console.log(request.headers['sec-websocket-key'], this.clients.size)
})
wss.on('error', (error) => console.error(error))
new WebSocketServer({ noServer: true, verifyClient: verifyLater })

export function size(data: Data): number {
  return typeof data === 'string' ? data.length : Array.isArray(data) ? data.length : data.byteLength
}
export const sockets: WebSocket[] = [...wss.clients]
