#!/usr/bin/env node
// Builds the package (dist/, scripts/build.mjs) and the tests, fuzz targets and tools (build/).
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const run = (args) => {
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
run([join(root, 'scripts', 'build.mjs')])
// From scratch, so that a test file removed from test/ does not run on from an old build.
rmSync(join(root, 'build'), { recursive: true, force: true })
run([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.test.json'])
