#!/usr/bin/env node
// A target for the attack suite: one WebSocket server with default options that echoes
// every message (same type), in one of the three ways an application runs one:
//
//   node --expose-gc attack/servers/target.mjs <tether|ws> <port|server|noserver> <port> [--deflate]
//
//   port      new WebSocketServer({ port })                       (bound to 127.0.0.1)
//   server    new WebSocketServer({ server }) on an http.Server
//   noserver  new WebSocketServer({ noServer: true }) and handleUpgrade from the
//             http.Server's 'upgrade' event
//
// --deflate adds perMessageDeflate: true (both libraries default to false); nothing else
// is set. It prints {"ready": port, "version": ...} once listening, and {"event": "close", ...}
// for the first closes. Commands on stdin, one JSON object a line with an id:
//   {"id": 1, "cmd": "stats"}   the counters below and process.memoryUsage(), at once
//   {"id": 2, "cmd": "gc"}      three full GCs (node --expose-gc), then the same
// End of stdin ends the process.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'

const [impl, mode, portArg, ...flags] = process.argv.slice(2)
const print = (message) => process.stdout.write(JSON.stringify(message) + '\n')

let library
let version
if (impl === 'tether') {
  library = await import('tether-ws')
  version = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
} else if (impl === 'ws') {
  library = await import('ws')
  version = createRequire(import.meta.url)('ws/package.json').version
} else {
  print({ fatal: `unknown implementation ${impl}` })
  process.exit(2)
}
const { WebSocketServer } = library
const options = flags.includes('--deflate') ? { perMessageDeflate: true } : {}
const port = Number(portArg)

/** What the harness reads back: connections, closes by code, errors, messages. */
const state = {
  opened: 0,
  open: new Set(),
  closes: {},
  errors: {},
  messages: 0,
  messageBytes: 0,
  largest: undefined,
  closeEvents: 0,
}
const HASHED = 1024 * 1024
const REPORTED_CLOSES = 50

function onConnection(ws) {
  state.opened++
  state.open.add(ws)
  const openedAt = performance.now()
  ws.on('message', (data, isBinary) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
    state.messages++
    state.messageBytes += bytes.length
    if (state.largest === undefined || bytes.length >= state.largest.length) {
      state.largest = { length: bytes.length, sha256: bytes.length >= HASHED ? createHash('sha256').update(bytes).digest('hex') : undefined }
    }
    ws.send(bytes, { binary: isBinary })
  })
  ws.on('error', (error) => {
    const key = error.code ?? error.message
    state.errors[key] = (state.errors[key] ?? 0) + 1
  })
  ws.on('close', (code, reason) => {
    state.open.delete(ws)
    state.closes[code] = (state.closes[code] ?? 0) + 1
    if (state.closeEvents++ < REPORTED_CLOSES) {
      print({ event: 'close', code, reason: String(reason), lifetimeMs: Math.round(performance.now() - openedAt), at: Date.now() })
    }
  })
}

let wss
let httpServer
try {
  if (mode === 'port') {
    wss = new WebSocketServer({ port, host: '127.0.0.1', ...options })
    wss.on('connection', onConnection)
    await new Promise((resolve, reject) => {
      wss.once('listening', resolve)
      wss.once('error', reject)
    })
  } else if (mode === 'server' || mode === 'noserver') {
    httpServer = http.createServer()
    if (mode === 'server') {
      wss = new WebSocketServer({ server: httpServer, ...options })
    } else {
      wss = new WebSocketServer({ noServer: true, ...options })
      httpServer.on('upgrade', (request, socket, head) => {
        wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
      })
    }
    wss.on('connection', onConnection)
    await new Promise((resolve, reject) => {
      httpServer.once('error', reject)
      httpServer.listen(port, '127.0.0.1', resolve)
    })
  } else {
    throw new Error(`unknown mode ${mode}`)
  }
} catch (error) {
  print({ fatal: error.message })
  process.exit(1)
}
wss.on('error', (error) => {
  const key = `server ${error.code ?? error.message}`
  state.errors[key] = (state.errors[key] ?? 0) + 1
})
print({ ready: port, version })

function stats() {
  let buffered = 0
  for (const ws of state.open) buffered += ws.bufferedAmount ?? 0
  const read = (name) => {
    try {
      const value = wss[name]
      return value === undefined ? undefined : JSON.parse(JSON.stringify(value))
    } catch {
      return undefined
    }
  }
  return {
    memory: process.memoryUsage(),
    opened: state.opened,
    open: state.open.size,
    buffered,
    closes: state.closes,
    errors: state.errors,
    messages: state.messages,
    messageBytes: state.messageBytes,
    largest: state.largest,
    // tether's counters, when the library has them (read at run time: they may change).
    limitStats: read('limitStats'),
    load: read('load'),
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  let command
  try {
    command = JSON.parse(line)
  } catch {
    continue
  }
  if (command.cmd === 'gc') {
    for (let i = 0; i < 3; i++) {
      globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  print({ id: command.id, ...stats() })
}
process.exit(0)
