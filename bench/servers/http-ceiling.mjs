#!/usr/bin/env node
// The ceiling of the noServer path: Node's http.Server with an 'upgrade' listener that answers 101
// (a real Sec-WebSocket-Accept) and holds the socket until the peer leaves; no WebSocket at all. For the
// handshake workload only, raced as an extra server:
//   npm run bench -- --only handshake --peers none --server 'ceiling=node bench/servers/http-ceiling.mjs {port}'
import http from 'node:http'
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
const server = http.createServer((q, r) => r.writeHead(426).end())
server.on('upgrade', (request, socket) => {
  const accept = createHash('sha1').update(request.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
  socket.on('error', () => {})
  socket.on('data', () => {})
})
server.listen(Number(process.argv[2]), '127.0.0.1', 4096, () => console.log(`ready ${server.address().port}`))
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'rss') console.log(`rss ${process.memoryUsage().rss} 0 0 0 0`)
  else if (line === 'exit') process.exit(0)
}
