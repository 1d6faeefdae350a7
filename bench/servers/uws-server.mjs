#!/usr/bin/env node
// The benchmark's /echo and /broadcast endpoints on uWebSockets.js (v20.30.0, as the npm package
// @trufflesuite/uws-js-unofficial builds it), for comparison in the same run as tether: it is not
// a dependency of tether, and bench/peers.mjs installs it apart, in .tmp/bench-peers.
//
//   node bench/servers/uws-server.mjs <port> [--deflate]
//
// Speaks node-server.mjs's protocol: "ready <port>" once listening; on stdin "rss" (after a full
// GC, node --expose-gc), "mem", "exit". Fan-out uses uWS's own publish (framed once, in C++).
import { createInterface } from 'node:readline'
import { getHeapSpaceStatistics } from 'node:v8'
import { peerRequire } from '../peers.mjs'

const uWS = peerRequire('@trufflesuite/uws-js-unofficial')
const [portArg, ...flags] = process.argv.slice(2)
const deflate = flags.includes('--deflate')
let clients = 0

const behavior = (path) => ({
  // As the other servers: 64 MiB messages, and no message dropped for backpressure (uWS's
  // default limits are 16 KiB messages and 64 KiB of backpressure, past which it drops).
  maxPayloadLength: 64 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  // Every message compressed, however small, as the other servers are told (a context per connection, as ws).
  compression: deflate ? uWS.DEDICATED_COMPRESSOR | uWS.DEDICATED_DECOMPRESSOR : uWS.DISABLED,
  open: (ws) => {
    clients++
    if (path === '/broadcast') ws.subscribe('broadcast')
  },
  message:
    path === '/broadcast'
      ? (ws, message, isBinary) => app.publish('broadcast', message, isBinary)
      : (ws, message, isBinary) => ws.send(message, isBinary, deflate),
  close: () => {
    clients--
  },
})

const app = uWS.App().ws('/echo', behavior('/echo')).ws('/broadcast', behavior('/broadcast'))
app.listen('127.0.0.1', Number(portArg), (token) => {
  if (!token) {
    console.error(`uws: cannot listen on ${portArg}`)
    process.exit(1)
  }
  console.log(`ready ${portArg}`)
})

const young = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'rss') {
    for (let i = 0; i < 3; i++) {
      globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const memory = process.memoryUsage()
    console.log(`rss ${memory.rss} ${clients} ${young()} ${memory.heapUsed} ${memory.external}`)
  } else if (line === 'mem') {
    console.log(`mem ${process.memoryUsage().rss} ${young()} ${clients}`)
  } else if (line === 'exit') {
    process.exit(0)
  }
}
