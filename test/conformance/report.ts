/**
 * Text report of a conformance run: one table per case group (id,
 * description, verdict, reason, duration) and a summary line per role,
 * "server: N OK, M NON-STRICT, K FAILED".
 */
import { GROUP_TITLES, type Role } from './cases.js'
import type { CaseResult, Verdict } from './verdict.js'

const DESCRIPTION_WIDTH = 72
const REASON_WIDTH = 70

function fit(text: string, width: number): string {
  return text.length <= width ? text.padEnd(width) : text.slice(0, width - 1) + '…'
}

/** The tables of one role, group by group. */
export function formatTables(role: Role, results: readonly CaseResult[]): string {
  const lines: string[] = []
  const groups = [...new Set(results.map((r) => r.group))]
  const idWidth = Math.max(4, ...results.map((r) => r.id.length))
  for (const group of groups) {
    const rows = results.filter((r) => r.group === group)
    const total = rows.reduce((sum, r) => sum + r.durationMs, 0)
    lines.push('')
    lines.push(`${role} role, group ${group}: ${GROUP_TITLES[group] ?? ''} (${rows.length} cases, ${total} ms)`)
    const header = `${'id'.padEnd(idWidth)} | ${fit('description', DESCRIPTION_WIDTH)} | ${'verdict'.padEnd(10)} | ${fit('reason', REASON_WIDTH)} | ${'ms'.padStart(6)}`
    lines.push(header)
    lines.push('-'.repeat(header.length))
    for (const r of rows) {
      lines.push(
        `${r.id.padEnd(idWidth)} | ${fit(r.description, DESCRIPTION_WIDTH)} | ${r.verdict.padEnd(10)} | ${fit(r.reason, REASON_WIDTH)} | ${String(r.durationMs).padStart(6)}`,
      )
    }
  }
  return lines.join('\n')
}

export function counts(results: readonly CaseResult[]): Record<Verdict, number> {
  const out: Record<Verdict, number> = { OK: 0, 'NON-STRICT': 0, FAILED: 0 }
  for (const r of results) out[r.verdict]++
  return out
}

/** "server: N OK, M NON-STRICT, K FAILED". */
export function summaryLine(role: Role, results: readonly CaseResult[]): string {
  const c = counts(results)
  return `${role}: ${c.OK} OK, ${c['NON-STRICT']} NON-STRICT, ${c.FAILED} FAILED`
}

/** Every case that is not OK, one per line, with its full description and reason. */
export function formatProblems(results: readonly CaseResult[]): string {
  return results
    .filter((r) => r.verdict !== 'OK')
    .map((r) => `${r.role} ${r.id} ${r.verdict}: ${r.description} -> ${r.reason}`)
    .join('\n')
}

/** The tables, the cases that are not OK in full, and the summary line. */
export function formatReport(role: Role, results: readonly CaseResult[]): string {
  const problems = formatProblems(results)
  return [formatTables(role, results), '', problems ? `Not OK:\n${problems}\n` : '', summaryLine(role, results)].join('\n')
}
