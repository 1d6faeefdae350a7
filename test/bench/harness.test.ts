/**
 * The benchmark harness works end to end: it builds the C load generator,
 * starts tether and ws, drives both, and writes a JSON report with a ratio.
 * No figure is judged here (speed lives in `npm run bench`, not in tests);
 * only that every workload run measured something on both servers.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT as repoRoot } from '../helpers/net.js'

// --peers none: a test installs nothing (uWebSockets.js and Bun are fetched by `npm run bench` itself).
test('npm run bench -- --quick drives tether (port and noServer) and ws in one run and reports ratios', { timeout: 120_000 }, () => {
  const run = spawnSync(process.execPath, [join(repoRoot, 'bench', 'run.mjs'), '--quick', '--only', 'echo-32B,broadcast-1k', '--peers', 'none'], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 110_000,
  })
  assert.equal(run.status, 0, `bench failed:\n${run.stdout}\n${run.stderr}`)
  const report = JSON.parse(readFileSync(join(repoRoot, 'bench', 'results', 'quick.json'), 'utf8'))
  assert.deepEqual(report.rows.map((row: { name: string }) => row.name), ['echo-32B', 'broadcast-1k'])
  for (const row of report.rows) {
    assert.ok(row.byImpl.tether.median > 0, `${row.name}: tether measured nothing`)
    assert.ok(row.byImpl.ws.median > 0, `${row.name}: ws measured nothing`)
    assert.ok(row.byImpl['tether-noserver'].median > 0, `${row.name}: tether on noServer measured nothing`)
    assert.ok(Number.isFinite(row.ratio) && row.ratio > 0, `${row.name}: no ratio`)
    assert.ok(row.byImpl.tether.loadgenCpu > 0 && row.byImpl.tether.loadgenCpu <= 1.5, `${row.name}: generator CPU not reported`)
  }
  // The ratios: each server against ws, and round 2's targets (issue 18).
  assert.match(run.stdout, /tether\/ws/)
  assert.match(run.stdout, /tether-noserver\/tether \d/)
})
