/**
 * Running the `tether` command as a user would: a child process of
 * dist/cli/main.js, through pipes (or a pseudo-terminal, via Python's pty
 * module), with bounded waits.
 */
import assert from 'node:assert/strict'
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
export async function runCli(args: string[], options: { input?: string; ms?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
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
  /** The metrics listener's URL, with --metrics-port. */
  metricsUrl: string | undefined
  wsUrl: string
  port: number
  stderr: () => string
  /** Every stdout line but the start record (the logs: JSON lines, as stdout is a pipe). */
  logs: () => string[]
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `tether serve` on a free port (or `port`) and waits until it listens. */
export async function startServe(args: string[] = [], port: number | null = 0, options: { env?: Record<string, string> } = {}): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [CLI, 'serve', ...(port === null ? [] : ['--port', String(port)]), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  })
  let stderr = ''
  proc.stderr!.on('data', (chunk) => (stderr += chunk))
  const lines = createInterface({ input: proc.stdout! })
  const logs: string[] = []
  // The start record carries the URL (a JSON line when stdout is a pipe); warnings may come before it.
  const urlOf = (line: string): { url?: string; metricsUrl?: string } => {
    if (line.startsWith('{')) {
      try {
        return JSON.parse(line) as { url?: string; metricsUrl?: string }
      } catch {
        return {}
      }
    }
    return { url: /on (https?:\/\/\S+)/.exec(line)?.[1] }
  }
  const start = await withTimeout(
    new Promise<{ url?: string; metricsUrl?: string }>((resolve, reject) => {
      lines.on('line', (line) => {
        const found = urlOf(line)
        if (found.url?.startsWith('http') !== true) return void logs.push(line)
        lines.removeAllListeners('line')
        lines.on('line', (next) => logs.push(next))
        resolve(found)
      })
      proc.once('exit', (code) => reject(new Error(`tether serve exited ${code}: ${stderr}`)))
    }),
    20_000,
    'tether serve to start',
  ).catch((error) => {
    proc.kill('SIGKILL')
    throw new Error(`${(error as Error).message}\nstdout: ${logs.join('\n')}`)
  })
  const url = start.url!
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return {
    proc,
    url,
    metricsUrl: start.metricsUrl,
    wsUrl: url.replace(/^http/, 'ws'),
    port: Number(new URL(url).port),
    stderr: () => stderr,
    logs: () => logs,
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

/** No stack trace: no "    at " frame lines, and one line of error output, with the `tether: ` prefix (issue 16). */
export function assertOneLineError(stderr: string, pattern: RegExp): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `a stack trace leaked:\n${stderr}`)
  assert.match(stderr, /^[^\n]*\n$/, `one line expected:\n${JSON.stringify(stderr)}`)
  assert.match(stderr, /^tether: /)
  assert.match(stderr, pattern)
}

/** Runs a Python program that drives `tether ...args` in a pseudo-terminal; resolves with what the terminal showed and the exit status. */
export async function inTerminal(driver: string, args: string[], ms = 30_000): Promise<{ output: string; status: number | null }> {
  const child = spawn('python3', ['-c', PTY_PRELUDE + driver, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let errors = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (errors += chunk))
  const status = await withTimeout(new Promise<number | null>((resolve) => child.once('close', resolve)), ms, 'the pty session').catch((error) => {
    child.kill('SIGKILL')
    throw new Error(`${(error as Error).message}\noutput: ${output}\nerrors: ${errors}`)
  })
  return { output, status }
}

/**
 * The start of every pty driver: forks the command in a pseudo-terminal
 * (`fd`), `read_for(seconds)` and `read_until(marker, seconds)` collect what
 * it shows into `out`, `finish()` prints it and exits with the command's status.
 */
const PTY_PRELUDE = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
def read_for(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                return
def read_until(marker, seconds):
    end = time.time() + seconds
    while marker not in out and time.time() < end:
        read_for(0.05)
def finish(seconds=10):
    read_for(0.3)
    end = time.time() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > end:
            os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
            break
        read_for(0.1)
    sys.stdout.write(out.decode('utf-8', 'replace'))
    sys.exit(os.waitstatus_to_exitcode(status))
`
