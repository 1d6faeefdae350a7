// What the benchmark and soak scripts share: the load generator's build, free ports, and
// waiting for a server to listen.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const loadgen = join(root, 'build', 'loadgen')

/** Builds the C load generator with the machine's cc. */
export function buildLoadgen() {
  mkdirSync(dirname(loadgen), { recursive: true })
  execFileSync('cc', ['-O2', '-Wall', '-o', loadgen, join(root, 'bench', 'loadgen', 'loadgen.c'), '-lm'], { stdio: 'inherit' })
}

export const echoServer = join(root, 'build', 'echo-server')

/** Builds the C echo server (the floor of the echo and latency workloads); false where there is no C compiler. */
export function buildEchoServer() {
  mkdirSync(dirname(echoServer), { recursive: true })
  return spawnSync('cc', ['-O2', '-Wall', '-o', echoServer, join(root, 'bench', 'servers', 'echo-server.c')], { stdio: 'inherit' }).status === 0
}

/** A port nothing listens on now (the kernel's choice), so runs never collide with other servers. */
export async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Resolves once something accepts connections on `port` (at most 10 s). */
export async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => (socket.destroy(), resolve(true)))
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listening on ${port}`)
}

/** A Debian executable, on PATH or in /usr/sbin (where nats-server is). */
export function executable(name) {
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()
  if (onPath) return onPath
  for (const candidate of [`/usr/sbin/${name}`, `/usr/bin/${name}`]) if (spawnSync('test', ['-x', candidate]).status === 0) return candidate
  throw new Error(`${name} is not installed (Debian package ${name})`)
}

/** A reader of `stream`'s lines: each call resolves with the next line, or rejects after `timeoutMs`. */
export function lines(stream, defaultTimeoutMs = 30_000) {
  const queue = []
  const waiters = []
  createInterface({ input: stream }).on('line', (line) => (waiters.length ? waiters.shift()(line) : queue.push(line)))
  return (timeoutMs = defaultTimeoutMs) =>
    queue.length
      ? Promise.resolve(queue.shift())
      : new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('timed out waiting for a line')), timeoutMs)
          waiters.push((line) => {
            clearTimeout(timer)
            resolve(line)
          })
        })
}

const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100

/** CPU seconds (user + system) process `pid` has used, from /proc; NaN where there is none. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return NaN
  }
}
