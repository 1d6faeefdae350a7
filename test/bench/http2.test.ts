/**
 * The HTTP/2 benchmark's harness works end to end (bench/http2.mjs with the
 * Node generator bench/h2-load.mjs): for each workload, tether over TCP and
 * over HTTP/2 streams both measured something. No figure is judged here.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT as repoRoot } from '../helpers/net.js'

test('bench/http2.mjs --smoke measures idle memory, opens and echo over TCP and HTTP/2 in one run', { timeout: 120_000 }, () => {
  const run = spawnSync(process.execPath, [join(repoRoot, 'bench', 'http2.mjs'), '--smoke'], { cwd: repoRoot, encoding: 'utf8', timeout: 110_000 })
  assert.equal(run.status, 0, `bench failed:\n${run.stdout}\n${run.stderr}`)
  const report = JSON.parse(readFileSync(join(repoRoot, 'bench', 'results', 'http2-smoke.json'), 'utf8'))
  assert.deepEqual(report.rows.map((row: { name: string }) => row.name), ['idle-10k', 'open', 'echo-32B', 'echo-32B-1'])
  for (const row of report.rows) {
    if (row.name === 'idle-10k') {
      // 500 WebSockets are too few for a memory figure above the noise: that they were all held is the check.
      for (const transport of ['tcp', 'h2']) {
        const [sample] = report.samples['idle-10k'][transport]
        assert.equal(sample.open, 500, `${transport}: ${sample.open} of 500 WebSockets open`)
        assert.ok(Number.isFinite(row[transport].median), `${transport}: no memory figure`)
      }
      continue
    }
    assert.ok(row.tcp.median > 0, `${row.name}: nothing measured over TCP`)
    assert.ok(row.h2.median > 0, `${row.name}: nothing measured over HTTP/2`)
    assert.ok(Number.isFinite(row.ratio) && row.ratio > 0, `${row.name}: no ratio`)
  }
  // Every HTTP/2 run really used streams: the idle run held its WebSockets on 5 connections.
  assert.equal(report.samples['idle-10k'].h2[0].sessions, 5)
  assert.equal(report.samples['idle-10k'].tcp[0].sessions, 0)
  assert.match(run.stdout, /h2\/TCP/)
})
