// What the attackers share: target servers in child processes with a control channel,
// server memory from /proc, raw client frames, a streaming reader of server frames,
// and a raw upgrade on loopback. Every child process and socket made here is
// registered so that `cleanup()` (also run at exit) ends it, whatever happened.
import { spawn } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import { freePort, root } from '../bench/lib.mjs'

export { executable, freePort, root } from '../bench/lib.mjs'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB
/** The attacker's address, and the address real clients come from. */
export const ATTACKER = '127.0.0.1'
export const CLIENT = '127.0.0.2'
export const HOST = '127.0.0.1'

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------
// Cleanup: children and sockets made by the harness.

const children = new Set()
const sockets = new Set()

/** Registers a child process to be killed at cleanup. */
export function track(child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Registers a socket to be destroyed at cleanup. */
export function trackSocket(socket) {
  sockets.add(socket)
  socket.once('close', () => sockets.delete(socket))
  return socket
}

/** Destroys every socket and kills every child the harness started. */
export function cleanup() {
  for (const socket of sockets) socket.destroy()
  sockets.clear()
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
}
process.once('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanup()
    process.exit(130)
  })
}

// ---------------------------------------------------------------------------
// Memory of another process, from /proc.

/** VmRSS and VmHWM (the peak since start or since `resetPeak`) of `pid`, in bytes; NaN once it is gone. */
export function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) * 1024
    return { rss: field('VmRSS'), peak: field('VmHWM') }
  } catch {
    return { rss: NaN, peak: NaN }
  }
}

/** Resets VmHWM to the current RSS (Linux clear_refs 5); false when the kernel refuses. */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/**
 * Samples a process's RSS every `intervalMs` until `stop()`. The peak is the larger of
 * the samples and the kernel's VmHWM (reset at start), so a spike between samples counts.
 * `mark(fields)` attaches figures (e.g. attacker bytes so far) to the following samples.
 */
export function sampleMemory(pid, intervalMs = 100) {
  const peakReset = resetPeak(pid)
  const samples = []
  let extra = {}
  const take = () => {
    const { rss } = memoryOf(pid)
    if (!Number.isNaN(rss)) samples.push({ t: Math.round(performance.now() - started), rss, ...extra })
  }
  const started = performance.now()
  take()
  const timer = setInterval(take, intervalMs)
  return {
    samples,
    mark(fields) {
      extra = { ...extra, ...fields }
    },
    stop() {
      clearInterval(timer)
      take()
      const sampled = Math.max(...samples.map((s) => s.rss))
      const hwm = peakReset ? memoryOf(pid).peak : NaN
      return { peak: Number.isNaN(hwm) ? sampled : Math.max(sampled, hwm), samples }
    },
  }
}

// ---------------------------------------------------------------------------
// Target servers: attack/servers/target.mjs in a child process.

const TARGET = join(root, 'attack', 'servers', 'target.mjs')

/** A line-based JSON channel over a child's stdio: commands with ids, answers, and unsolicited events. */
function channel(child) {
  let nextId = 1
  const waiting = new Map()
  const events = []
  const lines = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    let message
    try {
      message = JSON.parse(line)
    } catch {
      lines.push(line)
      return
    }
    if (message.id !== undefined && waiting.has(message.id)) {
      const { resolve, timer } = waiting.get(message.id)
      waiting.delete(message.id)
      clearTimeout(timer)
      resolve(message)
    } else events.push(message)
  })
  child.once('exit', () => {
    for (const { resolve, timer } of waiting.values()) {
      clearTimeout(timer)
      resolve(undefined)
    }
    waiting.clear()
  })
  return {
    events,
    lines,
    /** Sends a command; resolves with the answer, or undefined after `timeoutMs` or if the child exits. */
    command(cmd, fields = {}, timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null || !child.stdin.writable) return Promise.resolve(undefined)
      const id = nextId++
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id)
          resolve(undefined)
        }, timeoutMs)
        waiting.set(id, { resolve, timer })
        child.stdin.write(JSON.stringify({ id, cmd, ...fields }) + '\n')
      })
    },
    async event(predicate, timeoutMs) {
      const deadline = performance.now() + timeoutMs
      while (performance.now() < deadline) {
        const found = events.find(predicate)
        if (found) return found
        if (child.exitCode !== null || child.signalCode !== null) return undefined
        await delay(20)
      }
      return undefined
    },
  }
}

/** Spawns a node script with --expose-gc; stderr is kept (last 8 KiB) for the report. */
export function spawnNode(script, args, { expose = true } = {}) {
  const child = track(spawn(process.execPath, [...(expose ? ['--expose-gc'] : []), script, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] }))
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-8192)))
  child.stdin.on('error', () => {})
  const control = channel(child)
  return { child, control, stderr: () => stderr }
}

export const SERVER_LABELS = {
  'tether:port': 'tether port',
  'tether:server': 'tether {server}',
  'tether:noserver': 'tether noServer',
  'ws:port': 'ws port',
  'ws:server': 'ws {server}',
  'ws:noserver': 'ws noServer',
}

/**
 * Starts one target server (`impl` tether or ws, `mode` port, server or noserver) with
 * default options (plus `perMessageDeflate: true` with `deflate`), echoing every message.
 */
export async function startTarget(impl, mode, { deflate = false } = {}) {
  const port = await freePort()
  const { child, control, stderr } = spawnNode(TARGET, [impl, mode, String(port), ...(deflate ? ['--deflate'] : [])])
  const ready = await control.event((e) => e.ready !== undefined || e.fatal !== undefined, 15_000)
  if (!ready || ready.fatal) {
    child.kill('SIGKILL')
    throw new Error(`${impl} ${mode} did not start: ${ready?.fatal ?? stderr()}`)
  }
  const server = {
    impl,
    mode,
    label: impl === 'ws' ? SERVER_LABELS[`ws:${mode}`].replace('ws', `ws ${ready.version}`) : SERVER_LABELS[`${impl}:${mode}`],
    version: ready.version,
    port,
    pid: child.pid,
    child,
    control,
    stderr,
    get alive() {
      return child.exitCode === null && child.signalCode === null
    },
    get exit() {
      return { code: child.exitCode, signal: child.signalCode }
    },
    rss: () => memoryOf(child.pid).rss,
    /** The server's counters, without a GC (answers late while it is busy). */
    stats: (timeoutMs = 10_000) => control.command('stats', {}, timeoutMs),
    /** Full GCs, then the counters; RSS read from /proc afterwards. */
    async settle(waitMs = 0) {
      if (waitMs > 0) await delay(waitMs)
      const stats = await control.command('gc', {}, 60_000)
      return { rss: memoryOf(child.pid).rss, stats }
    },
    async stop() {
      if (!server.alive) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.stdin.end()
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000)
      await exited
      clearTimeout(timer)
    },
  }
  return server
}

// ---------------------------------------------------------------------------
// Frames a client sends (masked, RFC 6455 §5.2).

const maskPool = Buffer.alloc(64 * KiB)
let maskOffset = maskPool.length

function nextMask() {
  if (maskOffset + 4 > maskPool.length) {
    randomFillSync(maskPool)
    maskOffset = 0
  }
  maskOffset += 4
  return maskPool.subarray(maskOffset - 4, maskOffset)
}

export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa }

/** The byte length of a masked frame carrying `length` payload bytes. */
export function frameSize(length) {
  return 2 + (length < 126 ? 0 : length < 65536 ? 2 : 8) + 4 + length
}

/** Writes a masked frame into `target` at `offset`; returns the offset after it. */
export function writeFrame(target, offset, { opcode, payload, fin = true, rsv1 = false }) {
  const length = payload?.length ?? 0
  target[offset++] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode
  if (length < 126) target[offset++] = 0x80 | length
  else if (length < 65536) {
    target[offset++] = 0x80 | 126
    target.writeUInt16BE(length, offset)
    offset += 2
  } else {
    target[offset++] = 0x80 | 127
    target.writeBigUInt64BE(BigInt(length), offset)
    offset += 8
  }
  const mask = nextMask()
  mask.copy(target, offset)
  offset += 4
  for (let i = 0; i < length; i++) target[offset + i] = payload[i] ^ mask[i & 3]
  return offset + length
}

/** One masked frame as a new Buffer. */
export function clientFrame(frame) {
  const bytes = Buffer.allocUnsafe(frameSize(frame.payload?.length ?? 0))
  writeFrame(bytes, 0, frame)
  return bytes
}

/** `count` copies of one frame shape, each with its own mask, in one Buffer. */
export function repeatFrames(count, frame) {
  const size = frameSize(frame.payload?.length ?? 0)
  const bytes = Buffer.allocUnsafe(size * count)
  for (let i = 0, offset = 0; i < count; i++) offset = writeFrame(bytes, offset, frame)
  return bytes
}

// ---------------------------------------------------------------------------
// Frames the server sends, read as a stream (the payload is never kept, only hashed).

/**
 * Counts the frames of a stream by opcode, keeps the close frame's code and reason, and
 * gives each complete data message's length and SHA-256 to `onMessage`.
 */
export class FrameReader {
  frames = {}
  bytes = 0
  close = undefined
  messages = 0
  #header = []
  #remaining = 0
  #frame = undefined
  #message = undefined
  #control = []

  constructor({ onMessage, hash = true } = {}) {
    this.onMessage = onMessage
    this.hash = hash
  }

  push(chunk) {
    this.bytes += chunk.length
    let offset = 0
    while (offset < chunk.length) {
      if (this.#frame === undefined) {
        this.#header.push(chunk[offset++])
        this.#tryHeader()
        continue
      }
      const take = Math.min(this.#remaining, chunk.length - offset)
      this.#payload(chunk.subarray(offset, offset + take))
      offset += take
      this.#remaining -= take
      if (this.#remaining === 0) this.#endFrame()
    }
  }

  #tryHeader() {
    const h = this.#header
    if (h.length < 2) return
    const masked = (h[1] & 0x80) !== 0
    const short = h[1] & 0x7f
    const extended = short === 126 ? 2 : short === 127 ? 8 : 0
    const needed = 2 + extended + (masked ? 4 : 0)
    if (h.length < needed) return
    let length = short
    if (short === 126) length = (h[2] << 8) | h[3]
    else if (short === 127) length = Number(Buffer.from(h.slice(2, 10)).readBigUInt64BE())
    const opcode = h[0] & 0x0f
    this.#frame = { fin: (h[0] & 0x80) !== 0, opcode, length }
    this.#header = []
    this.frames[opcode] = (this.frames[opcode] ?? 0) + 1
    if (opcode === OPCODE.text || opcode === OPCODE.binary) {
      this.#message = { length: 0, hash: this.hash ? createHash('sha256') : undefined, frames: 0 }
    }
    if (this.#message && opcode < 8) this.#message.frames++
    this.#remaining = length
    this.#control = []
    if (length === 0) this.#endFrame()
  }

  #payload(bytes) {
    if (this.#frame.opcode >= 8) {
      this.#control.push(Buffer.from(bytes))
      return
    }
    if (!this.#message) return
    this.#message.length += bytes.length
    this.#message.hash?.update(bytes)
  }

  #endFrame() {
    const frame = this.#frame
    this.#frame = undefined
    if (frame.opcode === OPCODE.close) {
      const payload = Buffer.concat(this.#control)
      this.close ??= { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString() }
    } else if (frame.opcode < 8 && frame.fin && this.#message) {
      const message = this.#message
      this.#message = undefined
      this.messages++
      this.onMessage?.({ length: message.length, sha256: message.hash?.digest('hex'), frames: message.frames })
    }
  }
}

// ---------------------------------------------------------------------------
// A raw WebSocket upgrade over TCP.

/** The bytes of a client's upgrade request. */
export function upgradeRequest({ port, path = '/', headers = {} }) {
  const key = randomFillSync(Buffer.alloc(16)).toString('base64')
  const lines = [`GET ${path} HTTP/1.1`, `Host: ${HOST}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13']
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n')
}

/**
 * Connects from `localAddress`, sends an upgrade request and reads the response head.
 * Resolves with the socket paused (attach a listener, then resume), the status, the
 * response headers, the bytes after the head, and the request's size. Rejects on a
 * failure or after `timeoutMs`, with the socket destroyed.
 */
export function rawUpgrade(port, { localAddress = ATTACKER, path = '/', headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = trackSocket(net.connect({ port, host: HOST, localAddress }))
    const request = upgradeRequest({ port, path, headers })
    let received = Buffer.alloc(0)
    const fail = (error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    }
    const timer = setTimeout(() => fail(new Error('upgrade timed out')), timeoutMs)
    socket.once('connect', () => socket.write(request))
    socket.on('error', fail)
    const onClose = () => fail(new Error(`closed before a response (${received.length} bytes)`))
    socket.once('close', onClose)
    const onData = (chunk) => {
      received = Buffer.concat([received, chunk])
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) return
      clearTimeout(timer)
      socket.pause()
      socket.removeListener('data', onData)
      socket.removeListener('error', fail)
      socket.removeListener('close', onClose)
      socket.on('error', () => {})
      const head = received.subarray(0, end).toString('latin1')
      const [statusLine, ...fields] = head.split('\r\n')
      const responseHeaders = {}
      for (const field of fields) {
        const colon = field.indexOf(':')
        responseHeaders[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim()
      }
      resolve({ socket, status: Number(statusLine.split(' ')[1]), headers: responseHeaders, rest: received.subarray(end + 4), requestBytes: request.length })
    }
    socket.on('data', onData)
  })
}

/**
 * Watches an upgraded socket: its frames (through a FrameReader), and how it ended.
 * `ended` resolves with `{ how, at, error }` once the socket closes.
 */
export function watchSocket(socket, rest, { onMessage, hash = true, read = true } = {}) {
  const reader = new FrameReader({ onMessage, hash })
  const state = { reader, ended: undefined, error: undefined, endedAt: undefined }
  const started = performance.now()
  state.done = new Promise((resolve) => {
    socket.on('error', (error) => (state.error ??= error.code ?? error.message))
    socket.once('close', () => {
      state.endedAt = performance.now() - started
      state.ended = state.error ? `error ${state.error}` : 'closed'
      resolve(state)
    })
  })
  socket.on('data', (chunk) => reader.push(chunk))
  if (rest.length) reader.push(rest)
  if (read) socket.resume()
  return state
}

/** `promise` resolves true once `predicate()` holds (polled every 50 ms); `stop()` ends the polling. */
export function whenTrue(predicate) {
  let timer
  const promise = new Promise((resolve) => {
    timer = setInterval(() => {
      if (!predicate()) return
      clearInterval(timer)
      resolve(true)
    }, 50)
  })
  return { promise, stop: () => clearInterval(timer) }
}

/** Writes `bytes`; resolves true when the socket takes more, false after `stallMs` without a drain or on close. */
export function writeWithBackpressure(socket, bytes, stallMs) {
  if (socket.destroyed) return Promise.resolve(false)
  if (socket.write(bytes)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const finish = (ok) => {
      clearTimeout(timer)
      socket.removeListener('drain', onDrain)
      socket.removeListener('close', onClose)
      resolve(ok)
    }
    const onDrain = () => finish(true)
    const onClose = () => finish(false)
    const timer = setTimeout(() => finish(false), stallMs)
    socket.once('drain', onDrain)
    socket.once('close', onClose)
  })
}

// ---------------------------------------------------------------------------
// Formatting.

export function mib(bytes) {
  if (bytes === undefined || Number.isNaN(bytes)) return '-'
  const value = bytes / MiB
  return `${value >= 100 || value <= -100 ? value.toFixed(0) : value.toFixed(1)} MiB`
}

export function size(bytes) {
  if (bytes === undefined || Number.isNaN(bytes)) return '-'
  if (Math.abs(bytes) >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`
  if (Math.abs(bytes) >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`
  if (Math.abs(bytes) >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`
  return `${bytes} B`
}

export function median(values) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Counts of each value, as an object (`{ 503: 1976, 408: 1024 }`). */
export function tally(values) {
  const counts = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

export function describeTally(counts) {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([key, count]) => `${count} ${key}`)
    .join(', ')
}

/** A close as the server's counters saw it (code histogram) in words. */
export function describeCloses(stats) {
  if (!stats?.closes || Object.keys(stats.closes).length === 0) return 'no close seen by the server'
  return `server closes: ${describeTally(stats.closes)}`
}

// ---------------------------------------------------------------------------
// Running one attack against one server.

/** The servers an attack runs against, narrowed to the implementations asked for. */
export function serversFor(specs, targets) {
  return specs.filter(([impl]) => targets.includes(impl))
}

/**
 * Starts a target, measures its settled RSS, runs `attack(server, before)` and stops the
 * server whatever happens. The row gets the server's label, its liveness at the end and,
 * if the attack threw, the error as its outcome.
 */
export async function againstTarget(impl, mode, options, attack) {
  const server = await startTarget(impl, mode, options)
  const base = { server: server.label }
  try {
    const settled = await server.settle()
    const row = await attack(server, settled.rss)
    return { ...base, ...row, alive: row.alive ?? server.alive, exit: server.alive ? undefined : server.exit, serverStderr: server.alive ? undefined : server.stderr().slice(-2000) }
  } catch (error) {
    return { ...base, outcome: `harness error: ${error.message}`, error: String(error.stack ?? error), alive: server.alive }
  } finally {
    await server.stop()
  }
}

/** Keeps at most `count` evenly spaced samples (for the JSON report). */
export function thin(samples, count = 60) {
  if (samples.length <= count) return samples
  const step = samples.length / count
  return Array.from({ length: count }, (_, i) => samples[Math.floor(i * step)]).concat(samples.at(-1))
}

// ---------------------------------------------------------------------------
// One message in many fragments, echoed back.

/** The repeating pattern a fragmented message is cut from (random, so nothing compresses it). */
const PATTERN = randomFillSync(Buffer.alloc(MiB + 7))
/** Bytes per write while sending fragments. */
const WRITE_BATCH = 512 * KiB

/**
 * Sends one binary message of `total` bytes in `fragments` frames (sizes differ by at
 * most one byte), with backpressure, while reading the echo as a stream. Resolves once
 * the echo is complete, the server closed, or `maxMs` passed: the bytes sent, the echo's
 * length and SHA-256 against the message's, and the close frame if any.
 */
export async function sendFragmented(port, { total, fragments, maxMs, stallMs = 10_000, path = '/fragmented', onProgress }) {
  const { socket, status, rest, requestBytes } = await rawUpgrade(port, { path })
  if (status !== 101) {
    socket.destroy()
    return { status, requestBytes, sent: requestBytes, outcome: `upgrade refused: HTTP ${status}` }
  }
  let echo
  const watch = watchSocket(socket, rest, { onMessage: (message) => (echo ??= message) })
  const hash = createHash('sha256')
  const base = Math.floor(total / fragments)
  const longer = total % fragments
  const started = performance.now()
  let offset = 0
  let stopped
  let batch = Buffer.allocUnsafe(WRITE_BATCH + frameSize(base + 1))
  let used = 0
  const flush = async () => {
    if (used === 0) return true
    const bytes = batch.subarray(0, used)
    batch = Buffer.allocUnsafe(batch.length)
    used = 0
    return writeWithBackpressure(socket, bytes, stallMs)
  }
  for (let i = 0; i < fragments && !stopped; i++) {
    const length = base + (i < longer ? 1 : 0)
    const start = offset % PATTERN.length
    const payload = start + length <= PATTERN.length ? PATTERN.subarray(start, start + length) : Buffer.concat([PATTERN.subarray(start), PATTERN.subarray(0, length - (PATTERN.length - start))])
    hash.update(payload)
    offset += length
    if (used + frameSize(length) > batch.length) batch = Buffer.concat([batch.subarray(0, used), Buffer.allocUnsafe(frameSize(length) + WRITE_BATCH)])
    used = writeFrame(batch, used, { opcode: i === 0 ? OPCODE.binary : OPCODE.continuation, fin: i === fragments - 1, payload })
    if (used >= WRITE_BATCH) {
      if (!(await flush())) stopped = socket.destroyed ? 'socket closed' : `stalled: no drain for ${stallMs / 1000} s`
      onProgress?.(socket.bytesWritten)
    }
    if (watch.reader.close || socket.destroyed) stopped ??= 'the server closed'
    if (performance.now() - started > maxMs) stopped ??= 'time cap'
  }
  if (!stopped && !(await flush())) stopped = 'stalled at the end'
  onProgress?.(socket.bytesWritten)
  const sent = socket.bytesWritten
  const expected = hash.digest('hex')
  const deadline = started + maxMs
  while (!echo && !watch.reader.close && !socket.destroyed && performance.now() < deadline) await delay(20)
  // A close frame may come just before the socket ends: give it a moment.
  if (!echo && !watch.reader.close) await Promise.race([watch.done, delay(200)])
  socket.destroy()
  const intact = echo !== undefined && echo.length === total && echo.sha256 === expected
  const close = watch.reader.close
  const outcome = intact
    ? 'accepted, echoed intact'
    : echo
      ? `echo differs (${echo.length} bytes)`
      : close
        ? `closed ${close.code}${close.reason ? ` "${close.reason}"` : ''} after ${size(sent)} sent`
        : `no echo: ${stopped ?? (watch.ended ? `connection ${watch.ended}` : 'timed out waiting')} after ${size(sent)} sent`
  return { status, requestBytes, sent, intact, echo, expected: { length: total, sha256: expected }, close, stopped, ended: watch.ended, outcome, ms: Math.round(performance.now() - started) }
}
