// A minimal tether server: echoes every message back to its sender.
// Run with `npm start` (or `node examples/echo-server.mjs [port]`).
import { WebSocketServer } from 'tether-ws'

const port = Number(process.argv[2] ?? process.env.PORT ?? 8080)
const wss = new WebSocketServer({ port, host: process.env.HOST ?? '127.0.0.1' })

wss.on('listening', () => {
  const { address, port } = wss.address()
  console.log(`tether echo server on ws://${address}:${port}`)
})
wss.on('error', (error) => {
  console.error(`tether: ${error.message}`)
  process.exit(1)
})
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const client of wss.clients) client.close(1001, 'server shutting down')
    wss.close(() => process.exit(0))
    setTimeout(() => process.exit(0), 2000).unref()
  })
}
