#!/usr/bin/env node
// Builds the package into dist/, one implementation in two module formats
// (as ws ships CommonJS and a wrapper.mjs):
//   dist/cjs/     the whole library, compiled to CommonJS once (tsconfig.json), with its .d.ts files;
//                 main.js is the package's require() entry: the WebSocket class with the
//                 rest attached, as require('ws') gives (main.d.ts: `export =` it)
//   dist/esm/     one small ES module per entry point, re-exporting the CommonJS one's exports,
//                 so `import` and `require` share every class and all module state
//   dist/cli/     the `tether` command (an ES module importing the package by its name)
//   dist/web/     the demo pages the command serves
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const dist = join(root, 'dist')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const compile = (project) => {
  const result = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

/** The entry points: package subpath, CommonJS module (under dist/cjs), ES module (under dist/esm). */
export const ENTRIES = [
  { subpath: '.', cjs: 'main.js', esm: 'index.mjs', from: 'index.js' },
  { subpath: './ws', cjs: 'ws/index.js', esm: 'ws.mjs' },
  { subpath: './core', cjs: 'core/index.js', esm: 'core.mjs' },
  { subpath: './pubsub', cjs: 'pubsub/index.js', esm: 'pubsub.mjs' },
  { subpath: './pubsub/redis', cjs: 'pubsub/redis.js', esm: 'pubsub-redis.mjs' },
  { subpath: './pubsub/nats', cjs: 'pubsub/nats.js', esm: 'pubsub-nats.mjs' },
  { subpath: './testing', cjs: 'testing/index.js', esm: 'testing.mjs' },
  // tether.v1's client; browsers load the same source built as ES modules (dist/web/src/client, tsconfig.web.json).
  { subpath: './client', cjs: 'client/index.js', esm: 'client.mjs' },
]

rmSync(dist, { recursive: true, force: true })
compile('tsconfig.json')
// dist/cjs is CommonJS whatever the package's own "type" says.
writeFileSync(join(dist, 'cjs', 'package.json'), '{ "type": "commonjs" }\n')
writeFileSync(
  join(dist, 'cjs', 'main.js'),
  `'use strict'\n// require('tether-ws'): the WebSocket class, with the other exports attached (src/ws/index.ts), as require('ws') gives.\nmodule.exports = require('./index.js').default\n`,
)
writeFileSync(
  join(dist, 'cjs', 'main.d.ts'),
  `// require('tether-ws') and import WebSocket from 'tether-ws': the class, merged with its namespace of types and attached exports, as @types/ws declares ws.\nimport { WebSocket } from './index.js'\nexport = WebSocket\n`,
)
const require = createRequire(import.meta.url)
mkdirSync(join(dist, 'esm'), { recursive: true })
for (const entry of ENTRIES) {
  // The names come from the CommonJS module itself, so the two formats cannot drift apart.
  const source = `../cjs/${entry.from ?? entry.cjs}`
  const exported = require(join(dist, 'cjs', entry.from ?? entry.cjs))
  const names = Object.keys(exported).filter((name) => name !== 'default' && name !== '__esModule')
  const lines = [
    `// ${entry.subpath === '.' ? 'tether-ws' : `tether-ws/${entry.subpath.slice(2)}`} for import: the CommonJS module's exports (one implementation; scripts/build.mjs writes this file).`,
    `import cjs from '${source}'`,
    `export const { ${names.join(', ')} } = cjs`,
  ]
  if ('default' in exported) lines.push('export default cjs.default')
  writeFileSync(join(dist, 'esm', entry.esm), lines.join('\n') + '\n')
  if (!('default' in exported)) continue
  // An entry with a default export gets ES-module typings for `import` (the CommonJS ones describe
  // module.exports): the default is then the class itself, re-exported, so a program's module
  // augmentation (`declare module 'tether-ws' { interface WebSocket { isAlive: boolean } }`, as ws
  // users write for @types/ws's ES typings) merges with the class every socket is made from.
  const defaultName = names.find((name) => exported[name] === exported.default)
  if (defaultName === undefined) throw new Error(`${entry.subpath}: the default export has no name to re-export it by`)
  writeFileSync(
    join(dist, 'esm', entry.esm.replace(/\.mjs$/, '.d.mts')),
    `// Types of ${entry.esm}: the CommonJS declarations, with the default export as the ${defaultName} it is.\n` +
      `import { ${defaultName} } from '${source}'\nexport * from '${source}'\nexport default ${defaultName}\n`,
  )
}
compile('tsconfig.cli.json')
compile('tsconfig.web.json')
