#!/usr/bin/env node
// Runs ws's own test suite (its test/*.test.js, the definition of ws v8's
// behaviour) against tether: ws's public entry points (the package,
// lib/websocket, lib/websocket-server, lib/stream) are answered with tether's
// CommonJS build, and the private modules the tests use as tools stay ws's
// (preload.cjs). A local development aid: it needs a checkout of websockets/ws
// and mocha, fetches nothing, and CI does not run it.
//
//   node scripts/ws-suite/run.mjs --ws /tmp/ws --mocha /tmp/wsrunner [--target ws] [--file websocket-server] [--grep TEXT]
//
// --ws     a checkout of websockets/ws (v8)            default: $WS_CHECKOUT
// --mocha  a folder whose node_modules holds mocha 8   default: the checkout, then $WS_SUITE_MOCHA_DIR
// --target tether (the built package, dist/) or ws (the checkout itself, for reference)
//
// It prints, per file, how many tests passed, and every failure with the reason
// it is excluded (exclusions.mjs) or "NOT EXCLUDED"; the exit status is 1 when a
// failure is not excluded, or an excluded test no longer fails (so the list stays true).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EXCLUSIONS, PUBLIC_FILES } from './exclusions.mjs'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..', '..')
const argv = process.argv.slice(2)
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback)
const wsRoot = arg('--ws', process.env.WS_CHECKOUT)
const target = arg('--target', 'tether')
const files = argv.includes('--file') ? argv.filter((_, i) => argv[i - 1] === '--file') : PUBLIC_FILES
const grep = arg('--grep', undefined)
if (!wsRoot || !existsSync(join(wsRoot, 'test', 'websocket.test.js'))) {
  console.error('usage: node scripts/ws-suite/run.mjs --ws <checkout of websockets/ws> [--mocha <folder with node_modules/mocha>]')
  process.exit(2)
}
const mochaDir = [arg('--mocha', undefined), wsRoot, process.env.WS_SUITE_MOCHA_DIR]
  .filter(Boolean)
  .map((dir) => join(dir, 'node_modules', 'mocha'))
  .find((dir) => existsSync(join(dir, 'package.json')))
if (!mochaDir) {
  console.error('mocha not found: `npm install mocha@8` in a folder and pass it with --mocha')
  process.exit(2)
}
const entry = target === 'ws' ? 'ws' : arg('--entry', join(root, 'dist', 'cjs', 'main.js'))
if (target !== 'ws' && !existsSync(entry)) {
  console.error(`${relative(process.cwd(), entry)} is missing: run npm run build first`)
  process.exit(2)
}

const work = mkdtempSync(join(tmpdir(), 'ws-suite-'))
const outcomes = []
for (const name of files) {
  const results = join(work, `${name}.jsonl`)
  const args = [
    join(mochaDir, 'bin', 'mocha'),
    '--throw-deprecation',
    '--exit',
    '--require', join(here, 'preload.cjs'),
    '--reporter', join(here, 'reporter.cjs'),
    ...(grep ? ['--grep', grep] : []),
    join(wsRoot, 'test', `${name}.test.js`),
  ]
  const started = Date.now()
  const run = spawnSync(process.execPath, args, {
    cwd: wsRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 15 * 60_000,
    env: { ...process.env, WS_SUITE_ROOT: wsRoot, WS_SUITE_TARGET: entry, WS_SUITE_RESULTS: results, WS_SUITE_MOCHA: mochaDir },
  })
  const records = existsSync(results)
    ? readFileSync(results, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line))
    : []
  // A test that fails twice (a second done(), an error after it passed) counts once, as failed.
  const failedTitles = new Set(records.filter((r) => r.state !== 'passed' && r.state !== 'pending').map((r) => r.title))
  const passed = new Set(records.filter((r) => r.state === 'passed' && !failedTitles.has(r.title)).map((r) => r.title)).size
  const failed = [...failedTitles].map((title) => records.find((r) => r.title === title && r.state !== 'passed'))
  console.log(`${name}: ${passed} passed, ${failed.length} failed (${((Date.now() - started) / 1000).toFixed(0)} s${run.signal ? `, ended by ${run.signal}` : ''})`)
  outcomes.push({ name, passed, failed, records })
}

const passed = outcomes.reduce((sum, o) => sum + o.passed, 0)
const failures = outcomes.flatMap((o) => o.failed.map((f) => ({ ...f, file: o.name })))
const excluded = EXCLUSIONS
let unexpected = 0
console.log('')
for (const failure of failures) {
  const reason = excluded.get(failure.title)
  if (reason === undefined) unexpected++
  console.log(`${reason === undefined ? 'NOT EXCLUDED' : 'excluded'}  ${failure.file}: ${failure.title}`)
  console.log(`    ${reason ?? failure.error}`)
}
let stale = 0
if (target !== 'ws' && !grep && files === PUBLIC_FILES) {
  const failedTitles = new Set(failures.map((f) => f.title))
  for (const [title] of excluded) {
    if (!failedTitles.has(title)) {
      stale++
      console.log(`EXCLUDED BUT PASSES  ${title}`)
    }
  }
}
console.log(`\n${target}: ${passed} passed, ${failures.length} failed (${failures.length - unexpected} excluded, ${unexpected} not excluded)`)
process.exit(target === 'ws' || (unexpected === 0 && stale === 0) ? 0 : 1)
