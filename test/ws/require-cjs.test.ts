/**
 * CommonJS users: `require('tether')` gives the WebSocket class with the
 * other exports attached, exactly as `require('ws')` does (Node >= 20.19
 * loads the ES module through require(esm)). A child process runs a small
 * CommonJS program against the built package and echoes one message.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT, withTimeout } from '../helpers/net.js'

const PROGRAM = String.raw`
'use strict'
const WebSocket = require('tether')
const { WebSocketServer, createWebSocketStream } = require('tether')
const reference = require('ws')

const shape = {
  isClass: typeof WebSocket === 'function',
  serverAlias: WebSocket.Server === WebSocketServer,
  serverProp: WebSocket.WebSocketServer === WebSocketServer,
  selfProp: WebSocket.WebSocket === WebSocket,
  stream: typeof createWebSocketStream === 'function' && WebSocket.createWebSocketStream === createWebSocketStream,
  constants: [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED],
  sameKeysAsWs: ['WebSocket', 'WebSocketServer', 'Server', 'createWebSocketStream'].every((k) => k in WebSocket && k in reference),
}

const wss = new WebSocket.Server({ port: 0, host: '127.0.0.1' }, () => {
  const client = new WebSocket('ws://127.0.0.1:' + wss.address().port)
  client.on('open', () => client.send('round trip'))
  client.on('message', (data, isBinary) => {
    shape.echo = [String(data), isBinary]
    client.close(1000)
  })
  client.on('close', (code) => {
    shape.closeCode = code
    wss.close(() => {
      console.log(JSON.stringify(shape))
    })
  })
})
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
`

describe('require() from CommonJS', () => {
  it("require('tether') works like require('ws'): WebSocket with Server attached, echo round trip", async () => {
    const dir = join(ROOT, 'build', 'require-cjs')
    mkdirSync(dir, { recursive: true })
    const file = join(dir, 'echo.cjs')
    writeFileSync(file, PROGRAM)
    const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    try {
      const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 20_000, 'the CommonJS program')
      assert.equal(code, 0, stderr)
      assert.deepEqual(JSON.parse(stdout), {
        isClass: true,
        serverAlias: true,
        serverProp: true,
        selfProp: true,
        stream: true,
        constants: [0, 1, 2, 3],
        sameKeysAsWs: true,
        echo: ['round trip', false],
        closeCode: 1000,
      })
    } finally {
      if (child.exitCode === null) child.kill()
    }
  })
})
