/**
 * The conformance suite (test/conformance) under node:test: every case of
 * the catalogue against tether as a server and as a client, over TCP and over
 * HTTP/2 streams. The tables are
 * printed so they appear in CI output. A case that is FAILED fails the test,
 * and so does one that is only NON-STRICT: the goal is every case strictly OK.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Role } from './cases.js'
import { formatProblems, formatReport } from './report.js'
import { type Transport, runRole } from './suite.js'

for (const transport of ['tcp', 'h2'] as Transport[]) {
  for (const role of ['server', 'client'] as Role[]) {
    const over = transport === 'h2' ? ' over HTTP/2 streams (RFC 8441)' : ''
    test(`conformance: tether as a ${role}${over}, every case strictly OK`, { timeout: 115_000 }, async () => {
      // A budget below the test timeout: a broken testee still produces the full table.
      const results = await runRole(role, { budgetMs: 90_000, transport })
      console.log(`${role}${over}:\n${formatReport(role, results)}`)
      assert.ok(results.length > 0, 'the catalogue is empty')
      const notOk = results.filter((r) => r.verdict !== 'OK')
      assert.equal(notOk.length, 0, `${notOk.length} case(s) not strictly OK:\n${formatProblems(notOk)}`)
    })
  }
}
