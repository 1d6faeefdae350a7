/**
 * `tether bench URL`: a load generator for any WebSocket server.
 *
 * Modes: `echo` (N connections, D messages in flight each: throughput and
 * round-trip percentiles), `latency` (one message in flight), `ramp` (open N
 * connections as fast as the server accepts them: handshakes per second),
 * and `fanout` (N subscribers and one publisher on the same URL, e.g. a
 * `tether serve` topic: deliveries per second and publish-to-delivery
 * latency). It shows its own CPU use: near one core, the client, not the
 * server, is the limit (for precise server measurements, see the project's
 * C load generator in bench/).
 *
 * Rule 1: `-d` bounds every mode (ramp too: it stops opening at the deadline).
 * Rule 2: before measuring, each connection makes one round trip (fanout: one
 * delivery to every subscriber) that is not sampled, so the first message's
 * cost (the server setting the connection up, code warming up) is not `max`.
 * Rule 3: an interruption (Ctrl-C: the `signal`) ends the measurement early:
 * the report covers what was measured until then and says `interrupted`.
 */
import { WebSocket } from 'tether-ws'
import { CliError } from './errors.js'
import { describeFailure, parseUrl } from './connect.js'

export type BenchMode = 'echo' | 'latency' | 'ramp' | 'fanout'

export interface BenchOptions {
  mode: BenchMode
  connections?: number | undefined
  inFlight: number
  size: number
  duration: number
  json: boolean
  insecure: boolean
  header: string[]
}

export interface BenchReport {
  url: string
  mode: BenchMode
  connections: number
  seconds: number
  /** Messages (echo, latency), deliveries (fanout) or handshakes (ramp) per second. */
  rate: number
  count: number
  megabytesPerSecond?: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  errors: number
  /**
   * The errors by reason (`HTTP 503: Too many connections from this address`, a connection error), so that
   * a ramp that met a server's limit says which (issue 16: "errors 900" and nothing else).
   */
  errorReasons: Record<string, number>
  /** The client's own CPU use, in cores. */
  clientCpu: number
  /** Ended early by Ctrl-C (Rule 3): the numbers cover the time measured. */
  interrupted?: boolean
}

const DEFAULT_CONNECTIONS: Record<BenchMode, number> = { echo: 50, latency: 1, ramp: 1000, fanout: 100 }
const OPEN_CONCURRENCY = 64

class Samples {
  #values = new Float64Array(1 << 16)
  #count = 0
  #seen = 0
  add(value: number): void {
    this.#seen++
    if (this.#count < this.#values.length) this.#values[this.#count++] = value
    else {
      // Reservoir sampling: a uniform sample of everything seen, in bounded memory.
      const slot = Math.floor(Math.random() * this.#seen)
      if (slot < this.#values.length) this.#values[slot] = value
    }
  }
  percentiles(): BenchReport['latencyMs'] {
    const sorted = this.#values.slice(0, this.#count).sort()
    const at = (q: number): number => (sorted.length === 0 ? 0 : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 1000) / 1000)
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length === 0 ? 0 : Math.round(sorted[sorted.length - 1]! * 1000) / 1000 }
  }
}

/** A connection that failed, and why in a few words (the key of `errorReasons`). */
class OpenFailure extends CliError {
  readonly reason: string
  constructor(message: string, reason: string) {
    super(message)
    this.reason = reason
  }
}

/** The most of a refusal's body kept as its reason: a line, not a page. */
const REASON_LENGTH = 120

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]+/g

function open(url: URL, options: BenchOptions, headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, rejectUnauthorized: !options.insecure, handshakeTimeout: 10_000 })
    ws.once('open', () => {
      ws.removeAllListeners('error')
      ws.on('error', () => {})
      resolve(ws)
    })
    ws.once('unexpected-response', (_request, response) => {
      ws.removeAllListeners('error')
      ws.on('error', () => {})
      // The body says why (tether's refusals have one line): read the start of it, for a moment at most.
      let body = ''
      const done = (): void => {
        clearTimeout(timer)
        ws.terminate()
        const why = body.replace(CONTROL, ' ').trim().slice(0, REASON_LENGTH)
        const reason = `HTTP ${response.statusCode}${why ? `: ${why}` : response.statusMessage ? ` ${response.statusMessage}` : ''}`
        reject(new OpenFailure(`the server refused the WebSocket handshake: ${reason}`, reason))
      }
      const timer = setTimeout(done, 1000)
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        if (body.length < REASON_LENGTH) body += chunk
      })
      response.once('end', done)
      response.once('error', done)
    })
    ws.once('error', (error: NodeJS.ErrnoException) => {
      const message = describeFailure(error, url)
      reject(new OpenFailure(message, message))
    })
  })
}

async function openMany(
  url: URL,
  count: number,
  options: BenchOptions,
  headers: Record<string, string>,
  onOpen?: (ms: number) => void,
  stopped: () => boolean = () => false,
): Promise<{ sockets: WebSocket[]; errors: number; errorReasons: Record<string, number>; firstError?: Error }> {
  const sockets: WebSocket[] = []
  let next = 0
  let errors = 0
  const errorReasons: Record<string, number> = {}
  let firstError: Error | undefined
  const worker = async (): Promise<void> => {
    while (next < count && !stopped()) {
      next++
      const started = performance.now()
      try {
        sockets.push(await open(url, options, headers))
        onOpen?.(performance.now() - started)
      } catch (error) {
        errors++
        const reason = error instanceof OpenFailure ? error.reason : (error as Error).message
        errorReasons[reason] = (errorReasons[reason] ?? 0) + 1
        firstError ??= error as Error
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, worker))
  return { sockets, errors, errorReasons, firstError }
}

function progress(enabled: boolean, started: number, seconds: number, count: () => number, unit: string): () => void {
  if (!enabled) return () => {}
  const width = 30
  const timer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000
    const done = Math.min(1, elapsed / seconds)
    const bar = '#'.repeat(Math.round(done * width)).padEnd(width, '.')
    process.stderr.write(`\r[${bar}] ${elapsed.toFixed(1)}/${seconds} s  ${Math.round(count() / Math.max(elapsed, 0.001)).toLocaleString('en')} ${unit}   `)
  }, 200)
  return () => {
    clearInterval(timer)
    process.stderr.write('\r\x1b[K')
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Rule 2: one unsampled round trip on every connection (bounded: 10 s). */
async function warmUp(sockets: WebSocket[], payload: Buffer, signal: AbortSignal | undefined): Promise<void> {
  const replies = sockets.map(
    (ws) =>
      new Promise<void>((resolve) => {
        ws.once('message', () => resolve())
        ws.send(payload, { binary: true })
      }),
  )
  await Promise.race([Promise.all(replies), sleep(10_000, signal)])
}

/**
 * Runs a benchmark. `signal` (Ctrl-C) ends it early with the partial result
 * (Rule 3); before the measurement started, it is a CliError (exit 130).
 */
export async function bench(urlText: string, options: BenchOptions, showProgress: boolean, signal?: AbortSignal): Promise<BenchReport> {
  const url = parseUrl(urlText)
  const headers: Record<string, string> = {}
  for (const line of options.header) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new CliError(`invalid --header ${JSON.stringify(line)}: use "Name: value"`)
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
  }
  const connections = options.connections ?? DEFAULT_CONNECTIONS[options.mode]
  if (!(connections >= 1)) throw new CliError('--connections must be 1 or more')
  if (!(options.duration > 0)) throw new CliError('--duration must be more than 0 seconds')
  const samples = new Samples()
  const cpuBefore = process.cpuUsage()
  const wallBefore = performance.now()
  let errorReasons: Record<string, number> = {}
  const finish = (count: number, seconds: number, errors: number, bytes?: number): BenchReport => {
    const cpu = process.cpuUsage(cpuBefore)
    return {
      url: url.href,
      mode: options.mode,
      connections,
      seconds: Math.round(seconds * 1000) / 1000,
      rate: Math.round(count / seconds),
      count,
      ...(bytes === undefined ? {} : { megabytesPerSecond: Math.round((bytes / seconds / 1e6) * 100) / 100 }),
      latencyMs: samples.percentiles(),
      errors,
      errorReasons,
      clientCpu: Math.round(((cpu.user + cpu.system) / 1e6 / ((performance.now() - wallBefore) / 1000)) * 100) / 100,
      ...(signal?.aborted ? { interrupted: true } : {}),
    }
  }
  const interrupted = (sockets: WebSocket[]): CliError => {
    for (const ws of sockets) ws.terminate()
    return new CliError('interrupted before the measurement started', 130)
  }

  if (options.mode === 'ramp') {
    const started = performance.now()
    // Rule 1: up to `connections`, for at most the duration.
    const deadline = started + options.duration * 1000
    let opened = 0
    const stop = progress(showProgress, started, options.duration, () => opened, 'handshakes/s')
    const result = await openMany(
      url,
      connections,
      options,
      headers,
      (ms) => {
        opened++
        samples.add(ms)
      },
      () => signal?.aborted === true || performance.now() >= deadline,
    )
    const seconds = (performance.now() - started) / 1000
    stop()
    for (const ws of result.sockets) ws.terminate()
    if (result.sockets.length === 0 && result.firstError) throw result.firstError
    errorReasons = result.errorReasons
    return finish(result.sockets.length, seconds, result.errors)
  }

  const extra = options.mode === 'fanout' ? 1 : 0
  const { sockets, errors, errorReasons: reasons, firstError } = await openMany(url, connections + extra, options, headers, undefined, () => signal?.aborted === true)
  errorReasons = reasons
  if (signal?.aborted) throw interrupted(sockets)
  if (sockets.length < connections + extra) {
    for (const ws of sockets) ws.terminate()
    throw new CliError(`only ${sockets.length} of ${connections + extra} connections opened: ${firstError?.message ?? 'unknown error'}`)
  }
  const payload = Buffer.alloc(Math.max(options.size, 8), 0x61)
  if (options.mode === 'fanout') {
    // Rule 2: one delivery to every subscriber before measuring.
    const publisher = sockets[sockets.length - 1]!
    const delivered = sockets.slice(0, -1).map((ws) => new Promise<void>((resolve) => ws.once('message', () => resolve())))
    publisher.send(payload, { binary: true })
    await Promise.race([Promise.all(delivered), sleep(10_000, signal)])
  } else await warmUp(sockets, payload, signal)
  if (signal?.aborted) throw interrupted(sockets)
  let count = 0
  let running = true
  const started = performance.now()

  if (options.mode === 'fanout') {
    const publisher = sockets.pop()!
    const received = new Array<number>(sockets.length).fill(0)
    let published = 0
    const window = Math.max(1, options.inFlight)
    const publish = (): void => {
      const slowest = Math.min(...received)
      while (running && published - slowest < window) {
        payload.writeDoubleLE(performance.now(), 0)
        publisher.send(payload, { binary: true })
        published++
      }
    }
    sockets.forEach((ws, index) => {
      ws.on('message', (data: Buffer) => {
        if (data.length >= 8) samples.add(performance.now() - data.readDoubleLE(0))
        received[index]!++
        count++
        if (received[index] === published || index === 0) publish()
      })
    })
    publisher.on('message', () => {})
    const stop = progress(showProgress, started, options.duration, () => count, 'deliveries/s')
    publish()
    await sleep(options.duration * 1000, signal)
    running = false
    stop()
    const seconds = (performance.now() - started) / 1000
    for (const ws of [...sockets, publisher]) ws.terminate()
    return finish(count, seconds, errors, count * payload.length)
  }

  const inFlight = options.mode === 'latency' ? 1 : Math.max(1, options.inFlight)
  for (const ws of sockets) {
    const sentAt: number[] = []
    const send = (): void => {
      sentAt.push(performance.now())
      ws.send(payload, { binary: true })
    }
    ws.on('message', () => {
      samples.add(performance.now() - sentAt.shift()!)
      count++
      if (running) send()
    })
    for (let i = 0; i < inFlight; i++) send()
  }
  const stop = progress(showProgress, started, options.duration, () => count, 'msg/s')
  await sleep(options.duration * 1000, signal)
  running = false
  stop()
  const seconds = (performance.now() - started) / 1000
  for (const ws of sockets) ws.terminate()
  return finish(count, seconds, errors, count * payload.length * 2)
}

export function formatReport(report: BenchReport): string {
  const unit = report.mode === 'ramp' ? 'handshakes/s' : report.mode === 'fanout' ? 'deliveries/s' : 'messages/s'
  const rows: Array<[string, string]> = [
    ['url', report.url],
    ['mode', `${report.mode}, ${report.connections} connection(s), ${report.seconds} s`],
    ['rate', `${report.rate.toLocaleString('en')} ${unit}`],
  ]
  if (report.megabytesPerSecond !== undefined) rows.push(['throughput', `${report.megabytesPerSecond} MB/s`])
  const l = report.latencyMs
  rows.push([report.mode === 'ramp' ? 'handshake' : 'latency', `p50 ${l.p50} ms   p90 ${l.p90} ms   p99 ${l.p99} ms   max ${l.max} ms`])
  rows.push(['errors', String(report.errors)])
  for (const [reason, count] of Object.entries(report.errorReasons).sort(([, a], [, b]) => b - a)) {
    // A server's limit per client address is the usual reason a ramp from one machine stops short.
    const hint = /from (this|one) address/i.test(reason) ? ' (the server limits connections per client address: tether serve --max-connections-per-address)' : ''
    rows.push(['', `${count} × ${reason}${hint}`])
  }
  if (report.interrupted) rows.push(['interrupted', 'yes: Ctrl-C ended the run early; the numbers cover the time measured'])
  rows.push([
    'client CPU',
    `${report.clientCpu} core${report.clientCpu >= 0.9 ? '  (near one core: the client may be the bottleneck, not the server)' : ''}`,
  ])
  return rows.map(([name, value]) => `${name.padEnd(11)} ${value}`).join('\n')
}
