/**
 * Running the `tether` command as a user would: a child process of
 * dist/cli/main.js, through pipes (or a pseudo-terminal, via Python's pty
 * module), with bounded waits.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ROOT, withTimeout } from './net.js'

export const CLI = join(ROOT, 'dist', 'cli', 'main.js')

export interface CliResult {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs `tether ...args` to completion, feeding `input` to stdin. */
export async function runCli(args: string[], options: { input?: string; ms?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  child.stdin.end(options.input ?? '')
  const status = await withTimeout(
    new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code))),
    options.ms ?? 20_000,
    `tether ${args.join(' ')}`,
  ).catch((error) => {
    child.kill('SIGKILL')
    throw new Error(`${(error as Error).message}\nstdout: ${stdout}\nstderr: ${stderr}`)
  })
  return { status, stdout, stderr }
}

export interface ServeProcess {
  proc: ChildProcess
  /** http://127.0.0.1:PORT (https with TLS) */
  url: string
  wsUrl: string
  port: number
  stderr: () => string
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `tether serve` on a free port (or `port`) and waits until it listens. */
export async function startServe(args: string[] = [], port = 0): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', String(port), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr!.on('data', (chunk) => (stderr += chunk))
  const lines = createInterface({ input: proc.stdout! })
  const first = await withTimeout(
    new Promise<string>((resolve, reject) => {
      lines.once('line', resolve)
      proc.once('exit', (code) => reject(new Error(`tether serve exited ${code}: ${stderr}`)))
    }),
    20_000,
    'tether serve to start',
  )
  // Not a terminal: the first line is the JSON log record of the start, with the URL.
  const url = first.startsWith('{') ? (JSON.parse(first) as { url?: string }).url : /on (https?:\/\/\S+)/.exec(first)?.[1]
  if (!url) throw new Error(`unexpected first line: ${first}`)
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return {
    proc,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    port: Number(new URL(url).port),
    stderr: () => stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode
      proc.kill(signal)
      return withTimeout(exited, 15_000, 'tether serve to stop').catch(() => {
        proc.kill('SIGKILL')
        return null
      })
    },
  }
}
