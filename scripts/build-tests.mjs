#!/usr/bin/env node
// Builds the package (dist/) and the tests, fuzz targets and tools (build/).
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
for (const project of ['tsconfig.json', 'tsconfig.web.json', 'tsconfig.test.json']) {
  const result = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
