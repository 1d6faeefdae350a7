#!/usr/bin/env node
// A Node load generator that opens WebSockets either as TCP connections (HTTP/1.1 upgrades) or
// as streams of HTTP/2 connections (RFC 8441 extended CONNECTs over h2c), and drives them the
// same way, for bench/http2.mjs. The C generator (bench/loadgen) speaks HTTP/1.1 only; here both
// transports go through one client, so their figures compare the server's cost, not two clients.
//
//   node bench/h2-load.mjs --transport tcp|h2 --port P --mode echo|open|idle
//        [--conns N] [--sessions S] [--inflight K] [--size B] [--concurrency C]
//        [--duration SECONDS] [--warmup SECONDS]
//
//   echo  N WebSockets (over S HTTP/2 connections, or N TCP connections), K messages of B bytes
//         in flight on each; prints {"rate": echoes per second, "cpu": this process's CPU share}
//   open  C loops of: open a WebSocket (TCP: connect and upgrade; h2: a new stream on one
//         existing connection), wait for the 101/200, then drop it (TCP: a reset, as bench/loadgen
//         does; h2: END_STREAM, since servers answer a flood of RST_STREAMs, the "rapid reset"
//         attack, with GOAWAY); prints the rate
//   idle  N WebSockets opened and held; prints {"open": n} and waits for "close" on stdin
//
// Every frame it sends is masked (a client's, RFC 6455 §5.3) and built once; what comes back is
// counted by its frame headers, never copied.
import { randomBytes } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import { createInterface } from 'node:readline'

const args = parseArgs(process.argv.slice(2))
const HOST = '127.0.0.1'

function parseArgs(argv) {
  const out = { transport: 'tcp', mode: 'echo', conns: 100, sessions: 10, inflight: 16, size: 32, concurrency: 64, duration: 5, warmup: 1, path: '/echo' }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '')
    if (!(name in out) && name !== 'port') throw new Error(`unknown option ${argv[i]}`)
    out[name] = ['transport', 'mode', 'path'].includes(name) ? argv[i + 1] : Number(argv[i + 1])
  }
  if (!out.port) throw new Error('--port is required')
  return out
}

/** `count` copies of one masked text frame of `size` bytes. */
function maskedFrames(size, count) {
  const header = size < 126 ? 2 : 4
  const one = Buffer.alloc(header + 4 + size)
  one[0] = 0x81
  if (size < 126) one[1] = 0x80 | size
  else {
    one[1] = 0x80 | 126
    one.writeUInt16BE(size, 2)
  }
  const mask = randomBytes(4)
  mask.copy(one, header)
  for (let i = 0; i < size; i++) one[header + 4 + i] = 0x61 ^ mask[i & 3]
  return Buffer.concat(Array.from({ length: count }, () => one))
}

/** Counts whole frames in a byte stream by their headers (server frames are unmasked). */
function frameCounter(onFrames) {
  let need = 0 // payload bytes left of the current frame
  let partial // a header split between reads (rare)
  return (data) => {
    let chunk = data
    if (partial !== undefined) {
      chunk = Buffer.concat([partial, data])
      partial = undefined
    }
    let at = 0
    let frames = 0
    while (at < chunk.length) {
      if (need > 0) {
        const take = Math.min(need, chunk.length - at)
        need -= take
        at += take
        if (need === 0) frames++
        continue
      }
      if (chunk.length - at < 2) {
        partial = chunk.subarray(at)
        break
      }
      const length7 = chunk[at + 1] & 0x7f
      const size = length7 < 126 ? 2 : length7 === 126 ? 4 : 10
      if (chunk.length - at < size) {
        partial = chunk.subarray(at)
        break
      }
      need = length7 < 126 ? length7 : length7 === 126 ? chunk.readUInt16BE(at + 2) : Number(chunk.readBigUInt64BE(at + 2))
      at += size
      if (need === 0) frames++
    }
    if (frames > 0) onFrames(frames)
  }
}

// ------------------------------------------------------------ opening WebSockets

const KEY = randomBytes(16).toString('base64')
const UPGRADE = `GET ${args.path} HTTP/1.1\r\nHost: ${HOST}:${args.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`

/** A WebSocket over TCP: resolves with the socket once the 101 was read (bytes after it go to `onData`). */
function openTcp(onData) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: args.port, host: HOST, noDelay: true })
    let head = Buffer.alloc(0)
    const onHead = (chunk) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.removeListener('data', onHead)
      if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(`refused: ${head.subarray(0, 40)}`))
      if (onData) {
        socket.on('data', onData)
        if (head.length > end + 4) onData(head.subarray(end + 4))
      }
      resolve(socket)
    }
    socket.on('data', onHead)
    socket.once('error', reject)
    socket.write(UPGRADE)
  })
}

/** An HTTP/2 connection (h2c), once the server's SETTINGS arrived. */
function openSession() {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${HOST}:${args.port}`, { settings: { enablePush: false } })
    session.once('error', reject)
    session.once('remoteSettings', () => resolve(session))
  })
}

const CONNECT = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': args.path, ':authority': `${HOST}:${args.port}`, 'sec-websocket-version': '13' }

/** A WebSocket as a stream of `session`: resolves with the stream once the 200 arrived. */
function openStream(session, onData) {
  return new Promise((resolve, reject) => {
    const stream = session.request(CONNECT, { endStream: false })
    stream.once('response', (headers) => {
      if (headers[':status'] !== 200) return reject(new Error(`refused: ${headers[':status']}`))
      if (onData) stream.on('data', onData)
      resolve(stream)
    })
    stream.once('error', reject)
  })
}

// ------------------------------------------------------------ modes

async function openMany(n, onDataFor) {
  if (args.transport === 'tcp') {
    const sockets = []
    // In batches, so the listen backlog is never the limit.
    for (let i = 0; i < n; i += 200) {
      const batch = await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) => openTcp(onDataFor?.(i + j))))
      sockets.push(...batch)
    }
    return { sockets, sessions: [] }
  }
  const sessions = await Promise.all(Array.from({ length: Math.min(args.sessions, n) }, () => openSession()))
  const sockets = []
  for (let i = 0; i < n; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) => openStream(sessions[(i + j) % sessions.length], onDataFor?.(i + j))))
    sockets.push(...batch)
  }
  return { sockets, sessions }
}

function measure(counter, done) {
  let startCount = 0
  let startCpu
  let startAt = 0
  setTimeout(() => {
    startCount = counter()
    startCpu = process.cpuUsage()
    startAt = performance.now()
    setTimeout(() => {
      const seconds = (performance.now() - startAt) / 1000
      const cpu = process.cpuUsage(startCpu)
      done({ rate: (counter() - startCount) / seconds, cpu: (cpu.user + cpu.system) / 1e6 / seconds, seconds })
    }, args.duration * 1000)
  }, args.warmup * 1000)
}

async function echo() {
  const batch = maskedFrames(args.size, args.inflight)
  const frameLength = batch.length / args.inflight
  let echoes = 0
  const { sockets, sessions } = await openMany(args.conns, (i) =>
    frameCounter((frames) => {
      echoes += frames
      // Keep `inflight` messages outstanding: one write for every batch of echoes.
      const target = sockets[i]
      if (target !== undefined) target.write(batch.subarray(0, frames * frameLength))
    }),
  )
  for (const socket of sockets) socket.write(batch)
  measure(() => echoes, (result) => {
    print({ mode: 'echo', transport: args.transport, conns: args.conns, sessions: sessions.length, ...result })
    process.exit(0)
  })
}

async function openRate() {
  let opened = 0
  let errors = 0
  let stopping = false
  const session = args.transport === 'h2' ? await openSession() : undefined
  const loop = async () => {
    while (!stopping) {
      try {
        if (session) {
          const stream = await openStream(session)
          await new Promise((resolve) => {
            stream.once('close', resolve)
            stream.resume()
            stream.end()
          })
        } else {
          const socket = await openTcp()
          socket.resetAndDestroy()
        }
        opened++
      } catch {
        errors++
        // Never spin: a failing open yields to the event loop, and too many end the run.
        if (errors > 1000) throw new Error('more than 1,000 failed opens')
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
  }
  for (let i = 0; i < args.concurrency; i++) void loop()
  measure(() => opened, (result) => {
    stopping = true
    print({ mode: 'open', transport: args.transport, concurrency: args.concurrency, errors, ...result })
    process.exit(0)
  })
}

async function idle() {
  const started = performance.now()
  const { sockets, sessions } = await openMany(args.conns)
  for (const socket of sockets) socket.on('error', () => {})
  print({ mode: 'idle', transport: args.transport, conns: args.conns, open: sockets.length, sessions: sessions.length, setupSeconds: (performance.now() - started) / 1000 })
  for await (const line of createInterface({ input: process.stdin })) if (line === 'close') break
  process.exit(0)
}

function print(result) {
  process.stdout.write(JSON.stringify(result) + '\n')
}

const modes = { echo, open: openRate, idle }
if (!modes[args.mode]) throw new Error(`unknown mode ${args.mode}`)
await modes[args.mode]()
