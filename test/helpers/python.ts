/**
 * Helpers to run the Python `websockets` peers of test/interop/python/ as
 * child processes: the Debian interpreter (/usr/bin/python3, the one
 * python3-websockets installs into), JSON-lines on stdout, bounded waits,
 * and a kill that callers run in `finally`.
 *
 * A missing interpreter or module is a test failure with a hint, never a
 * skip: a green run must mean the interop was checked.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { HOST, ROOT, TIMEOUT, until, withTimeout } from './net.js'

/** Debian's interpreter; the pyenv `python3` on PATH does not have websockets. */
export const PYTHON = process.env.TETHER_TEST_PYTHON ?? '/usr/bin/python3'
export const PYTHON_DIR = join(ROOT, 'test', 'interop', 'python')

const HINT =
  `The Python interop tests need ${PYTHON} with the websockets module (Debian package python3-websockets, ` +
  'version 10.x); .ci/run installs python3-websockets (or: sudo apt-get install python3-websockets).'

let checked: { version?: string; error?: string } | undefined

/** The websockets version; throws an Error with the install hint if Python or the module is missing. */
export function requirePythonWebsockets(): string {
  if (checked === undefined) {
    const result = spawnSync(PYTHON, ['-c', 'import sys, websockets; sys.stdout.write(websockets.__version__)'], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    if (result.error) checked = { error: `cannot run ${PYTHON}: ${result.error.message}` }
    else if (result.status !== 0) checked = { error: `${PYTHON} cannot import websockets: ${result.stderr.trim().split('\n').pop()}` }
    else checked = { version: result.stdout.trim() }
  }
  if (checked.error !== undefined) throw new Error(`${checked.error}\n${HINT}`)
  return checked.version!
}

const H2_HINT =
  `The HTTP/2 interop tests need ${PYTHON} with the h2 and wsproto modules (Debian packages python3-h2 and ` +
  'python3-wsproto); .ci/run installs them (or: sudo apt-get install python3-h2 python3-wsproto).'

let checkedH2: { version?: string; error?: string } | undefined

/** The h2 and wsproto versions; throws an Error with the install hint if Python or a module is missing. */
export function requirePythonH2(): string {
  if (checkedH2 === undefined) {
    const result = spawnSync(PYTHON, ['-c', 'import sys, h2, wsproto; sys.stdout.write(h2.__version__ + " " + wsproto.__version__)'], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    if (result.error) checkedH2 = { error: `cannot run ${PYTHON}: ${result.error.message}` }
    else if (result.status !== 0) checkedH2 = { error: `${PYTHON} cannot import h2 or wsproto: ${result.stderr.trim().split('\n').pop()}` }
    else checkedH2 = { version: result.stdout.trim() }
  }
  if (checkedH2.error !== undefined) throw new Error(`${checkedH2.error}\n${H2_HINT}`)
  return checkedH2.version!
}

/** A Python process whose stdout is a stream of JSON objects, one a line. */
export class PythonProcess {
  readonly child: ChildProcess
  readonly lines: any[] = []
  stderr = ''
  exitCode: number | null | undefined
  private partial = ''
  readonly exited: Promise<number | null>

  /** `requirement` checks the modules the script needs first (websockets unless told otherwise). */
  constructor(script: string, args: string[] = [], requirement: () => string = requirePythonWebsockets) {
    requirement()
    this.child = spawn(PYTHON, ['-u', join(PYTHON_DIR, script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdout!.setEncoding('utf8')
    this.child.stdout!.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n')
      this.partial = parts.pop()!
      for (const line of parts) if (line.trim() !== '') this.lines.push(parseLine(line))
    })
    this.child.stderr!.setEncoding('utf8')
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.child.stdin!.on('error', () => {})
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => {
        if (this.partial.trim() !== '') this.lines.push(parseLine(this.partial))
        this.exitCode = code
        resolve(code)
      })
      this.child.on('error', (error) => {
        this.stderr += String(error)
        this.exitCode = -1
        resolve(-1)
      })
    })
  }

  /** What the process said, for assertion messages. */
  describe(): string {
    return `stdout: ${JSON.stringify(this.lines)}\nstderr: ${this.stderr.slice(-4000)}`
  }

  /** Takes the first line that `predicate` accepts, once it arrived; other lines stay. */
  async next(predicate: (line: any) => boolean, ms = TIMEOUT, label = 'a line'): Promise<any> {
    let found = -1
    try {
      await until(() => {
        found = this.lines.findIndex(predicate)
        return found !== -1 || this.exitCode !== undefined
      }, ms, `${label} from Python`)
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.describe()}`)
    }
    if (found === -1) throw new Error(`Python exited (${this.exitCode}) before ${label}\n${this.describe()}`)
    const [line] = this.lines.splice(found, 1)
    return line
  }

  /** Ends the process: stdin EOF, then SIGKILL if it lingers. Safe to call twice. */
  async kill(): Promise<void> {
    if (this.exitCode !== undefined) return
    this.child.stdin!.end()
    this.child.kill('SIGTERM')
    try {
      await withTimeout(this.exited, 2000, 'python to exit')
    } catch {
      this.child.kill('SIGKILL')
      await withTimeout(this.exited, 5000, 'python to exit after SIGKILL')
    }
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line)
  } catch {
    return { unparsed: line }
  }
}

/** test/interop/python/echo_server.py, listening; `url(path)` addresses one of its routes. */
export interface PythonServer {
  process: PythonProcess
  port: number
  tls: boolean
  version: string
  url(path: string): string
  /** The "closed" report of the connection whose query had `id`. */
  closed(id: string, ms?: number): Promise<{ code: number; reason: string; path: string }>
}

export async function startPythonServer(args: string[] = []): Promise<PythonServer> {
  const proc = new PythonProcess('echo_server.py', args)
  try {
    const line = await proc.next((l) => l.event === 'listening' || l.event === 'fatal', TIMEOUT, 'the listening port')
    if (line.event === 'fatal') throw new Error(`${line.message}\n${HINT}`)
    const port = line.port as number
    return {
      process: proc,
      port,
      tls: line.tls,
      version: line.version,
      url: (path) => `${line.tls ? 'wss' : 'ws'}://${HOST}:${port}${path}`,
      closed: (id, ms = TIMEOUT) => proc.next((l) => l.event === 'closed' && l.id === id, ms, `"closed" of ${id}`),
    }
  } catch (error) {
    await proc.kill()
    throw error
  }
}

export type ClientStep =
  | { op: 'send'; text: string }
  | { op: 'send'; binary: boolean; size: number; fill?: 'random' | 'compressible'; block?: number }
  | { op: 'send_fragments'; binary: boolean; sizes: number[]; fill?: 'random' | 'compressible'; block?: number }
  | { op: 'raw_text_fragments'; hex: string[] }
  | { op: 'recv' }
  | { op: 'ping'; data: string }
  | { op: 'close'; code?: number; reason?: string }
  | { op: 'expect_close' }
  | { op: 'close_empty' }
  | { op: 'bad_utf8' }

export interface ClientSpec {
  url: string
  /** PEM certificate to trust (wss://). */
  ca?: string
  subprotocols?: string[] | null
  compression?: 'deflate' | null | Record<string, unknown>
  timeout?: number
  steps: ClientStep[]
}

/**
 * Runs test/interop/python/client.py with `spec` on stdin while the caller's
 * server runs; resolves with its report lines once it exited (status 0
 * required: its failure is reported with everything it said).
 */
export async function runPythonClient(spec: ClientSpec, ms = 30_000): Promise<any[]> {
  const proc = new PythonProcess('client.py')
  try {
    proc.child.stdin!.end(JSON.stringify({ timeout: ms / 1000 - 2, ...spec }))
    const code = await withTimeout(proc.exited, ms, 'the Python client').catch((error: Error) => {
      throw new Error(`${error.message}\n${proc.describe()}`)
    })
    const fatal = proc.lines.find((line) => line.op === 'fatal')
    if (fatal) throw new Error(`${fatal.message}\n${HINT}`)
    if (code !== 0) throw new Error(`the Python client failed (exit ${code})\n${proc.describe()}`)
    return proc.lines
  } finally {
    await proc.kill()
  }
}
