/**
 * Port mode asks Node for its internal TCP bindings only where the runtime
 * will not warn (issue 15): under `--pending-deprecation` Node reports
 * DEP0111 for process.binding(), and `--throw-deprecation` makes that a
 * crash. There the server falls back to Node's http and net, silently; so it
 * does with TETHER_TCP_HANDLES=0 (CI runs the whole suite that way too).
 * Each case runs a child process against the built package: a server on
 * port 0, a client, one echo.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { bindingsRefusal } from '../../src/node/tcp-bindings.js'
import { ROOT, withTimeout } from '../helpers/net.js'

const PROGRAM = String.raw`
'use strict'
const net = require('node:net')
const { WebSocket, WebSocketServer } = require('tether-ws')
const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' }, () => {
  const client = new WebSocket('ws://127.0.0.1:' + wss.address().port)
  client.on('open', () => client.send('echo me'))
  client.on('message', (data) => {
    result.echo = String(data)
    client.close(1000)
  })
  client.on('close', (code) => {
    result.close = code
    wss.close(() => console.log(JSON.stringify(result)))
  })
})
const result = {}
wss.on('connection', (ws, request) => {
  // Node's own net.Socket on the fallback; tether's stand-in over a bare handle otherwise.
  result.netSocket = request.socket instanceof net.Socket
  ws.on('message', (data) => ws.send(data))
})
`

// The same over an http.Server with a noServer WebSocketServer (issue 18): there the connection is taken
// off Node's net.Socket once the upgrade is accepted, unless the bindings are not to be had.
const NO_SERVER_PROGRAM = String.raw`
'use strict'
const http = require('node:http')
const net = require('node:net')
const { WebSocket, WebSocketServer } = require('tether-ws')
const wss = new WebSocketServer({ noServer: true })
const server = http.createServer()
server.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)))
server.listen(0, '127.0.0.1', () => {
  const client = new WebSocket('ws://127.0.0.1:' + server.address().port)
  client.on('open', () => client.send('echo me'))
  client.on('message', (data) => {
    result.echo = String(data)
    client.close(1000)
  })
  client.on('close', (code) => {
    result.close = code
    wss.close(() => server.close(() => console.log(JSON.stringify(result))))
  })
})
const result = {}
wss.on('connection', (ws) => {
  result.netSocket = ws._socket instanceof net.Socket
  ws.on('message', (data) => ws.send(data))
})
`

async function run(
  execArgv: string[],
  env: Record<string, string | undefined>,
  program = PROGRAM,
): Promise<{ result: Record<string, unknown>; stderr: string }> {
  const dir = join(ROOT, 'build', 'tcp-bindings')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, program === PROGRAM ? 'echo.cjs' : 'no-server.cjs')
  writeFileSync(file, program)
  const childEnv: NodeJS.ProcessEnv = { ...process.env }
  delete childEnv.TETHER_TCP_HANDLES
  delete childEnv.NODE_PENDING_DEPRECATION
  for (const [name, value] of Object.entries(env)) if (value !== undefined) childEnv[name] = value
  const child = spawn(process.execPath, [...execArgv, file], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  try {
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 20_000, 'the child')
    assert.equal(code, 0, stderr)
    return { result: JSON.parse(stdout.trim()) as Record<string, unknown>, stderr }
  } finally {
    if (child.exitCode === null) child.kill()
  }
}

describe('port mode and the deprecated process.binding()', () => {
  it('node --pending-deprecation --throw-deprecation: new WebSocketServer({ port: 0 }) works, on net, with no warning', async () => {
    const { result, stderr } = await run(['--pending-deprecation', '--throw-deprecation'], {})
    assert.deepEqual(result, { netSocket: true, echo: 'echo me', close: 1000 })
    assert.equal(stderr, '')
  })

  it('the same with the flags in NODE_OPTIONS, and with NODE_PENDING_DEPRECATION=1', async () => {
    const viaOptions = await run([], { NODE_OPTIONS: '--pending-deprecation --throw-deprecation' })
    assert.deepEqual(viaOptions.result, { netSocket: true, echo: 'echo me', close: 1000 })
    assert.equal(viaOptions.stderr, '')
    const viaEnv = await run(['--throw-deprecation'], { NODE_PENDING_DEPRECATION: '1' })
    assert.deepEqual(viaEnv.result, { netSocket: true, echo: 'echo me', close: 1000 })
    assert.equal(viaEnv.stderr, '')
  })

  it('TETHER_TCP_HANDLES=0 forces net; by default the server owns its handles', async () => {
    assert.equal((await run([], { TETHER_TCP_HANDLES: '0' })).result.netSocket, true)
    const plain = await run(['--throw-deprecation'], {})
    assert.deepEqual(plain.result, { netSocket: false, echo: 'echo me', close: 1000 })
    assert.equal(plain.stderr, '')
  })

  it('noServer: TETHER_TCP_HANDLES=0 and --pending-deprecation keep the upgraded connection on net; by default it is taken off', async () => {
    const off = await run([], { TETHER_TCP_HANDLES: '0' }, NO_SERVER_PROGRAM)
    assert.deepEqual(off.result, { netSocket: true, echo: 'echo me', close: 1000 })
    const deprecated = await run(['--pending-deprecation', '--throw-deprecation'], {}, NO_SERVER_PROGRAM)
    assert.deepEqual(deprecated.result, { netSocket: true, echo: 'echo me', close: 1000 })
    assert.equal(deprecated.stderr, '')
    const taken = await run(['--throw-deprecation'], {}, NO_SERVER_PROGRAM)
    assert.deepEqual(taken.result, { netSocket: false, echo: 'echo me', close: 1000 })
    assert.equal(taken.stderr, '')
  })

  it('bindingsRefusal names the reason from flags and environment', () => {
    assert.equal(bindingsRefusal({}, []), undefined)
    assert.equal(bindingsRefusal({}, ['--throw-deprecation']), undefined)
    assert.match(bindingsRefusal({}, ['--pending-deprecation'])!, /DEP0111/)
    assert.match(bindingsRefusal({ NODE_OPTIONS: '--max-old-space-size=100 --pending-deprecation' }, [])!, /DEP0111/)
    assert.match(bindingsRefusal({ NODE_PENDING_DEPRECATION: '1' }, [])!, /DEP0111/)
    assert.equal(bindingsRefusal({ TETHER_TCP_HANDLES: '0' }, []), 'TETHER_TCP_HANDLES=0')
  })
})
