// A CommonJS ws program written against @types/ws: `import x = require()`.
import WebSocket = require('tether-ws')
import http = require('node:http')

const server = http.createServer()
const wss = new WebSocket.Server({ server, path: '/feed' })
const alias: WebSocket.WebSocketServer = wss
alias.on('connection', (ws: WebSocket, request: http.IncomingMessage) => {
  ws.on('message', (data: WebSocket.RawData) => ws.send(data))
  ws.send(JSON.stringify({ url: request.url }))
})
const client: WebSocket = new WebSocket('ws://127.0.0.1:1/feed')
client.on('open', function (this: WebSocket) {
  this.send('x', (err?: Error) => void err)
})
const other: WebSocket.WebSocket = client
const stream = WebSocket.createWebSocketStream(other)
const states: number[] = [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED]
function onServerOptions(options: WebSocket.ServerOptions): WebSocket.Server {
  return new WebSocket.WebSocketServer(options)
}
export = { stream, states, onServerOptions }
