#!/usr/bin/env node
// Builds the package and the tests, then runs every test file with Node's own
// test runner. Arguments narrow the run: `npm test -- core` runs the files
// whose path contains "core".
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-tests.mjs')], { cwd: root, stdio: 'inherit' })
if (build.status !== 0) process.exit(build.status ?? 1)

const filters = process.argv.slice(2)
const files = readdirSync(join(root, 'build', 'test'), { recursive: true })
  .map((file) => join(root, 'build', 'test', String(file)))
  .filter((file) => file.endsWith('.test.js'))
  .filter((file) => filters.length === 0 || filters.some((filter) => relative(root, file).includes(filter)))
  .sort()

if (files.length === 0) {
  console.error('No test files matched.')
  process.exit(1)
}

// On a terminal Node's own reporter stays; elsewhere (CI) TAP with the failed
// tests listed before the summary, so a log's tail names them.
const reporter = process.stdout.isTTY
  ? []
  : ['--test-reporter', join(root, 'scripts', 'test-reporter.mjs'), '--test-reporter-destination', 'stdout']

const result = spawnSync(
  process.execPath,
  ['--test', '--test-timeout=120000', '--test-concurrency=2', ...reporter, ...files],
  { cwd: root, stdio: 'inherit' },
)
process.exit(result.status ?? 1)
