'use strict'
// Loaded into mocha (--require) by scripts/ws-suite/run.mjs. ws's test files
// reach the library through `require('..')` and `require('../lib/<name>')`.
// The public entry points among them (the package, lib/websocket,
// lib/websocket-server, lib/stream) are answered with tether's; every other
// lib/* module (sender, constants, event-target, ...) stays ws's own, as the
// tests use those as tools (frames built by hand) or reach into privates.
// Only requires made from the test files are redirected: ws's own modules
// keep loading each other.
const Module = require('node:module')
const path = require('node:path')

const wsRoot = process.env.WS_SUITE_ROOT
const entry = process.env.WS_SUITE_TARGET
if (!wsRoot || !entry) throw new Error('WS_SUITE_ROOT and WS_SUITE_TARGET must be set (scripts/ws-suite/run.mjs sets them)')

if (entry !== 'ws') {
  const tether = require(entry)
  const stand_ins = new Map([
    ['index.js', tether],
    [path.join('lib', 'websocket.js'), tether.WebSocket],
    [path.join('lib', 'websocket-server.js'), tether.WebSocketServer],
    [path.join('lib', 'stream.js'), tether.createWebSocketStream],
  ])
  const redirected = new Map()
  for (const [file, exported] of stand_ins) {
    const id = path.join(wsRoot, file)
    const virtual = `${id}#tether`
    const module = new Module(virtual, null)
    module.filename = virtual
    module.loaded = true
    module.exports = exported
    require.cache[virtual] = module
    redirected.set(id, virtual)
  }
  const testDir = path.join(wsRoot, 'test') + path.sep
  const resolve = Module._resolveFilename
  Module._resolveFilename = function (request, parent, ...rest) {
    const resolved = resolve.call(this, request, parent, ...rest)
    if (parent?.filename?.startsWith(testDir) && redirected.has(resolved)) return redirected.get(resolved)
    return resolved
  }
}
