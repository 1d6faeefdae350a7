// The benchmark's /echo and /broadcast endpoints on Bun's own WebSocket server (Bun.serve), for
// comparison in the same run as tether: Bun is not a dependency of tether; bench/peers.mjs
// installs the npm package `bun` (which brings Bun's binary) apart, in .tmp/bench-peers.
//
//   bun bench/servers/bun-server.mjs <port> [--deflate]
//
// Speaks node-server.mjs's protocol: "ready <port>" once listening; on stdin "rss" (after a
// full GC), "mem", "exit". Fan-out uses Bun's own server.publish (framed once, natively).
const [portArg, ...flags] = process.argv.slice(2)
const deflate = flags.includes('--deflate')
let clients = 0

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(portArg),
  fetch(request, server) {
    const path = new URL(request.url).pathname
    if (server.upgrade(request, { data: { path } })) return undefined
    return new Response('Upgrade Required', { status: 426 })
  },
  websocket: {
    // As the other servers: 64 MiB messages, nothing dropped or closed for backpressure.
    maxPayloadLength: 64 * 1024 * 1024,
    backpressureLimit: 64 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    perMessageDeflate: deflate,
    open(ws) {
      clients++
      if (ws.data.path === '/broadcast') ws.subscribe('broadcast')
    },
    message(ws, message) {
      if (ws.data.path === '/broadcast') server.publish('broadcast', message, deflate)
      else ws.send(message, deflate)
    },
    close() {
      clients--
    },
  },
})
console.log(`ready ${server.port}`)

for await (const chunk of Bun.stdin.stream()) {
  for (const line of new TextDecoder().decode(chunk).split('\n')) {
    if (line === 'rss') {
      Bun.gc(true)
      await Bun.sleep(50)
      Bun.gc(true)
      const memory = process.memoryUsage()
      console.log(`rss ${memory.rss} ${clients} 0 ${memory.heapUsed} ${memory.external}`)
    } else if (line === 'mem') {
      console.log(`mem ${process.memoryUsage().rss} 0 ${clients}`)
    } else if (line === 'exit') {
      process.exit(0)
    }
  }
}
