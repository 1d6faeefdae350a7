/**
 * The conformance suite (test/conformance) under node:test: every case of
 * the catalogue against tether as a server and as a client. The tables are
 * printed so they appear in CI output. A case that is FAILED fails the test,
 * and so does one that is only NON-STRICT: the goal is every case strictly OK.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Role } from './cases.js'
import { formatProblems, formatReport } from './report.js'
import { runRole } from './suite.js'

for (const role of ['server', 'client'] as Role[]) {
  test(`conformance: tether as a ${role}, every case strictly OK`, { timeout: 115_000 }, async () => {
    // A budget below the test timeout: a broken testee still produces the full table.
    const results = await runRole(role, { budgetMs: 90_000 })
    console.log(formatReport(role, results))
    assert.ok(results.length > 0, 'the catalogue is empty')
    const notOk = results.filter((r) => r.verdict !== 'OK')
    assert.equal(notOk.length, 0, `${notOk.length} case(s) not strictly OK:\n${formatProblems(notOk)}`)
  })
}
