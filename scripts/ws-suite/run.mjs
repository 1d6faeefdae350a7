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
// It runs every test but the excluded ones (exclusions.mjs), then those alone, and
// prints, per file, how many tests passed, every failure with the reason it is
// excluded, or FAILED; the exit status is 1 when a test fails that is not
// excluded, or an excluded test passes (so the list stays true).
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
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
// Mocha matches --grep against each test's full title.
const excludedPattern = `^(?:${[...EXCLUSIONS.keys()].map(escape).join('|')})$`

/** Runs one test file with mocha; returns each test's last outcome (a second failure of one test counts once). */
function runFile(name, phase, extra) {
  const results = join(work, `${name}-${phase}.jsonl`)
  const args = [
    join(mochaDir, 'bin', 'mocha'),
    '--throw-deprecation',
    '--exit',
    '--require', join(here, 'preload.cjs'),
    '--reporter', join(here, 'reporter.cjs'),
    ...extra,
    join(wsRoot, 'test', `${name}.test.js`),
  ]
  const run = spawnSync(process.execPath, args, {
    cwd: wsRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 15 * 60_000,
    env: { ...process.env, WS_SUITE_ROOT: wsRoot, WS_SUITE_TARGET: entry, WS_SUITE_RESULTS: results, WS_SUITE_MOCHA: mochaDir },
  })
  const records = existsSync(results)
    ? readFileSync(results, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line))
    : []
  // A failing hook is not a test (the tests it stopped show as not run).
  const failedTitles = new Set(records.filter((r) => r.state === 'failed').map((r) => r.title))
  const passed = [...new Set(records.filter((r) => r.state === 'passed' && !failedTitles.has(r.title)).map((r) => r.title))]
  const failed = [...failedTitles].map((title) => records.find((r) => r.title === title && r.state !== 'passed'))
  if (run.signal) console.log(`${name} (${phase}): ended by ${run.signal}`)
  return { passed, failed }
}

// Phase 1: every test but the excluded ones (against ws itself: every test). Phase 2: the excluded ones alone.
const splitting = target !== 'ws' && !grep
const outcomes = []
for (const name of files) {
  const started = Date.now()
  const main = runFile(name, 'main', grep ? ['--grep', grep] : splitting ? ['--grep', excludedPattern, '--invert'] : [])
  const excluded = splitting ? runFile(name, 'excluded', ['--grep', excludedPattern]) : { passed: [], failed: [] }
  const passed = main.passed.length + excluded.passed.length
  const failed = main.failed.length + excluded.failed.length
  console.log(`${name}: ${passed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(0)} s)`)
  outcomes.push({ name, main, excluded })
}

let unexpected = 0
let stale = 0
let passedTotal = 0
let excludedTotal = 0
console.log('')
for (const { name, main, excluded } of outcomes) {
  passedTotal += main.passed.length + excluded.passed.length
  for (const failure of main.failed) {
    const reason = EXCLUSIONS.get(failure.title)
    if (reason === undefined) unexpected++
    console.log(`${reason === undefined ? 'FAILED' : 'excluded'}  ${name}: ${failure.title}\n    ${failure.error}`)
  }
  for (const failure of excluded.failed) {
    excludedTotal++
    const [kind, why] = EXCLUSIONS.get(failure.title) ?? ['?', failure.error]
    console.log(`excluded (${kind})  ${name}: ${failure.title}\n    ${why}`)
  }
  for (const title of excluded.passed) {
    stale++
    console.log(`EXCLUDED BUT PASSES  ${name}: ${title}`)
  }
}
const failedTotal = outcomes.reduce((sum, o) => sum + o.main.failed.length + o.excluded.failed.length, 0)
if (splitting && files === PUBLIC_FILES) {
  const seen = new Set(outcomes.flatMap((o) => [...o.excluded.passed, ...o.excluded.failed.map((f) => f.title)]))
  for (const [title, [kind, why]] of EXCLUSIONS) {
    if (!seen.has(title)) console.log(`excluded (${kind}), not run: an excluded test before it failed a hook  ${title}\n    ${why}`)
  }
}
console.log(`\n${target}: ${passedTotal} passed, ${failedTotal} failed (${excludedTotal} excluded, ${unexpected} not excluded${stale ? `, ${stale} excluded but passing` : ''})`)
process.exit(target === 'ws' || (unexpected === 0 && stale === 0) ? 0 : 1)
