/**
 * A short soak in CI (`npm run soak` with small numbers): 2,000 connections
 * with echo traffic, three rounds; the script itself judges memory (no growth
 * after warm-up, none across rounds once every connection closed) and exits 1
 * otherwise, here with a generous ceiling (32 MiB: a busy CI machine moves RSS
 * by several MiB with no leak; a leak of a connection's worth per message
 * would not fit). The long run, with the tight figure, is in the README.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT } from '../helpers/net.js'

test('soak: 2,000 connections, 3 rounds of 8 s: memory flat after warm-up and after close', { timeout: 120_000 }, () => {
  const output = join(mkdtempSync(join(tmpdir(), 'tether-soak-')), 'soak.json')
  const run = spawnSync(process.execPath, [join(ROOT, 'scripts', 'soak.mjs'), '--connections', '2000', '--duration', '8', '--rounds', '3', '--allowed-growth', '32', '--json', output], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 110_000,
  })
  assert.equal(run.status, 0, `soak failed:\n${run.stdout}\n${run.stderr}`)
  const report = JSON.parse(readFileSync(output, 'utf8'))
  assert.equal(report.passed, true)
  assert.equal(report.rounds.length, 3)
  for (const round of report.rounds) {
    assert.ok(round.messages > 0, 'traffic flowed')
    assert.equal(round.errors, 0)
    assert.equal(round.clientsAfterClose, 0)
    assert.ok(round.samples.length >= 5, 'RSS was sampled over time')
  }
})
