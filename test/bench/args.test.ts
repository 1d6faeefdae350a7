/**
 * The benchmark and soak scripts parse their options with node:util's parseArgs
 * (issue 16: `bench/fanout-cluster.mjs --only` crashed with a stack trace): --help
 * prints the usage; a mistake is one line and exit status 2, before any work starts.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { ROOT } from '../helpers/net.js'

function run(script: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(ROOT, script), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('bench/ and scripts/ options', () => {
  test('a missing or wrong value is one line naming the option, exit 2', () => {
    for (const [script, args, expected] of [
      ['bench/fanout-cluster.mjs', ['--only'], /^bench\/fanout-cluster\.mjs: Option '--only <value>' argument missing \(see --help\)\n$/],
      ['bench/fanout-cluster.mjs', ['--only', 'redis,mongo'], /--only must be one of redis, nats, not "mongo"/],
      ['bench/fanout-cluster.mjs', ['--subscribers', '1000,lots'], /--subscribers must be a whole number, 1 or more, not "lots"/],
      ['bench/run.mjs', ['--reps', 'three'], /^bench\/run\.mjs: --reps must be a whole number, 1 or more, not "three"/],
      ['bench/run.mjs', ['--only', 'echo-32B,nonsense'], /--only must be one of echo-32B, /],
      ['bench/run.mjs', ['--server', 'no-equals-sign'], /--server takes 'name=command \{port\}'/],
      ['bench/run.mjs', ['--fast'], /Unknown option '--fast'/],
      ['bench/deflate-memory.mjs', ['--counts', '1000,'], /--counts takes a comma-separated list/],
      ['scripts/soak.mjs', ['--duration'], /^scripts\/soak\.mjs: Option '--duration <value>' argument missing/],
      ['scripts/soak.mjs', ['--rounds', '0'], /--rounds must be a whole number, 1 or more, not "0"/],
    ] as const) {
      const result = run(script, [...args])
      assert.equal(result.status, 2, `${script} ${args.join(' ')}: ${result.stderr}`)
      assert.equal(result.stdout, '')
      assert.match(result.stderr, /^[^\n]*\n$/, `one line: ${result.stderr}`)
      assert.match(result.stderr, expected)
    }
  })

  test("bench/run.mjs --only takes every workload its --help names (the README's --only http2 and history-1k were refused)", () => {
    const help = run('bench/run.mjs', ['--help']).stdout
    const named = /^workloads: (.*)$/m.exec(help)![1]!.split(', ')
    const refusal = run('bench/run.mjs', ['--only', 'nonsense']).stderr
    const accepted = /--only must be one of (.*), not "nonsense"/.exec(refusal)![1]!.split(', ')
    assert.deepEqual([...accepted].sort(), [...named].sort())
    assert.ok(named.includes('http2') && named.includes('history-1k') && named.includes('resume-10k'))
  })

  test('--help prints the usage and exits 0', () => {
    for (const script of ['bench/fanout-cluster.mjs', 'bench/run.mjs', 'bench/deflate-memory.mjs', 'scripts/soak.mjs']) {
      const result = run(script, ['--help'])
      assert.equal(result.status, 0, script)
      assert.match(result.stdout, /^usage: npm run /)
    }
  })
})
