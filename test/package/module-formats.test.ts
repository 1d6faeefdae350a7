/**
 * One implementation, two module formats (issue 15): `require('tether-ws')`
 * gives the WebSocket class with the rest attached, as `require('ws')` does;
 * `import` gets the same objects (the ES entry points re-export the CommonJS
 * ones), so `instanceof` holds whichever way a library loads the package; and
 * loaders that compile modules themselves get the classes too: tsx (which
 * socket.io's own tests run under) and a bundler (esbuild).
 *
 * Each program runs in a child process against the built package (dist/),
 * resolved by name from inside the repository, and echoes one message.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT, withTimeout } from '../helpers/net.js'

const DIR = join(ROOT, 'build', 'module-formats')
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs')

/** An echo round trip and the shape of the module, printed as one JSON line. */
const ECHO = String.raw`
function shapeOf(WebSocket, named) {
  return {
    isClass: typeof WebSocket === 'function',
    server: WebSocket.Server === named.WebSocketServer && WebSocket.WebSocketServer === named.WebSocketServer,
    self: WebSocket.WebSocket === WebSocket,
    stream: typeof WebSocket.createWebSocketStream === 'function',
    sender: typeof WebSocket.Sender?.frame === 'function',
    constants: [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED],
  }
}
function echo(WebSocket, shape, done) {
  const wss = new WebSocket.Server({ port: 0, host: '127.0.0.1' }, () => {
    const client = new WebSocket('ws://127.0.0.1:' + wss.address().port)
    client.on('open', () => client.send('round trip'))
    client.on('message', (data, isBinary) => {
      shape.echo = [String(data), isBinary]
      client.close(1000)
    })
    client.on('close', (code) => {
      shape.closeCode = code
      wss.close(() => done(shape))
    })
  })
  wss.on('connection', (ws) => {
    shape.serverSide = ws instanceof WebSocket
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
}
`
const EXPECTED = {
  isClass: true,
  server: true,
  self: true,
  stream: true,
  sender: true,
  constants: [0, 1, 2, 3],
  serverSide: true,
  echo: ['round trip', false],
  closeCode: 1000,
}

async function run(args: string[], label: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  try {
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 30_000, label)
    assert.equal(code, 0, `${label}: ${stderr}`)
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
  } finally {
    if (child.exitCode === null) child.kill()
  }
}

function write(name: string, text: string): string {
  mkdirSync(DIR, { recursive: true })
  const file = join(DIR, name)
  writeFileSync(file, text)
  return file
}

describe('require() and import of tether-ws', () => {
  it("require('tether-ws') is the WebSocket class with Server and the rest attached, as require('ws')", async () => {
    const file = write(
      'require.cjs',
      `'use strict'\nconst WebSocket = require('tether-ws')\nconst named = require('tether-ws')\n${ECHO}\necho(WebSocket, shapeOf(WebSocket, named), (shape) => console.log(JSON.stringify(shape)))\n`,
    )
    assert.deepEqual(await run([file], 'the CommonJS program'), EXPECTED)
  })

  it('import gets the very objects require gets (no second copy): default, named and subpath exports', async () => {
    const file = write(
      'import.mjs',
      `import WebSocket, * as named from 'tether-ws'
import { createRequire } from 'node:module'
import * as core from 'tether-ws/core'
import * as pubsub from 'tether-ws/pubsub'
import * as testing from 'tether-ws/testing'
import * as wsEntry from 'tether-ws/ws'
const require = createRequire(import.meta.url)
const same = (esm, cjs) => Object.keys(cjs).filter((k) => k !== '__esModule' && k !== 'default').every((k) => esm[k] === cjs[k])
const required = require('tether-ws')
${ECHO}
const shape = shapeOf(WebSocket, named)
shape.identical = WebSocket === required && named.WebSocketServer === required.WebSocketServer && named.PreparedMessage === required.PreparedMessage
shape.subpaths = same(core, require('tether-ws/core')) && same(pubsub, require('tether-ws/pubsub')) && same(testing, require('tether-ws/testing')) && same(wsEntry, require('tether-ws/ws'))
shape.namedAsAttached = Object.keys(named).filter((k) => k !== 'default').every((k) => named[k] === WebSocket[k])
shape.crossInstanceof = new required.Server({ noServer: true }) instanceof named.WebSocketServer
echo(WebSocket, shape, (result) => console.log(JSON.stringify(result)))
`,
    )
    assert.deepEqual(await run([file], 'the ES module program'), { ...EXPECTED, identical: true, subpaths: true, namedAsAttached: true, crossInstanceof: true })
  })
})

describe('loaders that compile modules themselves', () => {
  it("tsx: a TypeScript program using require('tether-ws') (CommonJS) gets the class and Server", async () => {
    const file = write(
      'tsx-require.cts',
      `// @ts-nocheck\nimport WebSocket = require('tether-ws')\nconst named = require('tether-ws')\n${ECHO}\necho(WebSocket, shapeOf(WebSocket, named), (shape) => console.log(JSON.stringify(shape)))\n`,
    )
    assert.deepEqual(await run([TSX, file], 'tsx (require)'), EXPECTED)
  })

  it('tsx: an ES module TypeScript program importing tether-ws', async () => {
    const file = write(
      'tsx-import.mts',
      `// @ts-nocheck\nimport WebSocket, { WebSocketServer, createWebSocketStream } from 'tether-ws'\n${ECHO}\necho(WebSocket, shapeOf(WebSocket, { WebSocketServer, createWebSocketStream }), (shape) => console.log(JSON.stringify(shape)))\n`,
    )
    assert.deepEqual(await run([TSX, file], 'tsx (import)'), EXPECTED)
  })

  for (const format of ['cjs', 'esm'] as const) {
    it(`a bundle (esbuild, ${format}, platform node) of a program importing tether-ws runs`, async () => {
      const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild')
      const entry = write(
        `bundle-entry-${format}.mjs`,
        `import WebSocket, { WebSocketServer } from 'tether-ws'\n${ECHO}\necho(WebSocket, shapeOf(WebSocket, { WebSocketServer }), (shape) => console.log(JSON.stringify(shape)))\n`,
      )
      const outfile = join(DIR, `bundle.${format === 'cjs' ? 'cjs' : 'mjs'}`)
      // redis and nats are optional peers, loaded only by the backplanes: left out of the bundle, as an app without them would.
      // An ES module bundle of CommonJS code (tether-ws, as ws) needs a require for Node's built-ins: esbuild's usual banner.
      const banner: Record<string, string> = format === "esm" ? { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" } : {}
      await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'node', format, outfile, banner, external: ['redis', 'nats'], logLevel: 'silent' })
      assert.deepEqual(await run([outfile], `the ${format} bundle`), EXPECTED)
    })
  }
})
