// A Redis backplane pointed at a port where nothing listens: RedisBackplane.connect()
// as an application calls it, and `tether serve --redis URL` as an operator runs it.
// Each is a child process, killed at the cap if it has not settled by then; recorded:
// whether and when the promise rejected (with its message), and the command's exit
// status, stderr and time.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { join } from 'node:path'

import { freePort, HOST, root, spawnNode, track } from '../lib.mjs'

export const name = 'redis-unreachable'
export const title = 'Redis backplane with nothing listening'

const SETTINGS = {
  long: { capMs: 15_000 },
  quick: { capMs: 10_000 },
}
/** The port the CLI is pointed at, as in the report: nothing listens there unless checked otherwise. */
const CLI_PORT = 1
const CONNECT_SCRIPT = join(root, 'attack', 'servers', 'redis-connect.mjs')
const CLI = join(root, 'dist', 'cli', 'main.js')

export async function run({ quick, targets }) {
  if (!targets.includes('tether')) return []
  const { capMs } = quick ? SETTINGS.quick : SETTINGS.long
  const connectPort = await freePort()
  const cliPort = (await refused(CLI_PORT)) ? CLI_PORT : await freePort()
  // Both at once: each is mostly waiting.
  return Promise.all([connect(`redis://${HOST}:${connectPort}`, capMs), cli(`redis://${HOST}:${cliPort}`, capMs)])
}

async function connect(url, capMs) {
  const started = performance.now()
  const { child, control, stderr } = spawnNode(CONNECT_SCRIPT, [url], { expose: false })
  const result = await control.event((e) => e.outcome !== undefined, capMs)
  const ms = Math.round(performance.now() - started)
  child.kill('SIGKILL')
  const settled = result !== undefined
  return {
    attack: name,
    variant: `RedisBackplane.connect({ url: '${url}' })`,
    server: 'tether (library)',
    outcome: settled
      ? `${result.outcome} after ${(result.ms / 1000).toFixed(1)} s${result.message ? `: ${result.message}` : ''}`
      : `still waiting at the ${capMs / 1000} s cap, nothing printed${stderr() ? ` (stderr: ${stderr().trim().split('\n')[0]})` : ''}`,
    measures: { settled, rejected: result?.outcome === 'rejected', result, ms, capMs },
  }
}

async function cli(url, capMs) {
  const started = performance.now()
  const child = track(spawn(process.execPath, [CLI, 'serve', '--redis', url, '--port', '0', '--host', HOST], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const exit = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), capMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
  const ms = Math.round(performance.now() - started)
  if (!exit) child.kill('SIGKILL')
  const stderrLines = stderr.split('\n').filter(Boolean)
  return {
    attack: name,
    variant: `tether serve --redis ${url}`,
    server: 'tether (CLI)',
    outcome: exit
      ? `exited ${exit.code ?? exit.signal} after ${(ms / 1000).toFixed(1)} s; stderr: ${stderrLines.length ? stderrLines.slice(0, 3).join(' | ') : '(empty)'}`
      : `still running at the ${capMs / 1000} s cap; ${stderrLines.length} stderr line(s)${stderrLines.length ? `: ${stderrLines.slice(0, 3).join(' | ')}` : ''}; ${stdout ? `stdout: ${stdout.trim().split('\n')[0]}` : 'nothing on stdout'}`,
    measures: { exited: exit !== undefined, exit, ms, capMs, stderrLines: stderrLines.slice(0, 20), stdout: stdout.slice(0, 2000) },
  }
}

/** Whether a connection to `port` on loopback is refused (nothing listens there). */
function refused(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST)
    socket.once('connect', () => (socket.destroy(), resolve(false)))
    socket.once('error', (error) => resolve(error.code === 'ECONNREFUSED'))
  })
}
