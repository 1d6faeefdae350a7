/**
 * `npm run conformance`: runs the conformance suite against tether in both
 * roles (or those chosen), prints a table per group and a summary line per
 * role, and exits non-zero if any case FAILED.
 *
 *   npm run conformance -- --role server --group 6 --group 7
 *   npm run conformance -- --case 6.4 --case 5.19
 *   npm run conformance -- --transport h2        (WebSockets as HTTP/2 streams, RFC 8441)
 */
import type { Role } from './cases.js'
import { formatReport, summaryLine } from './report.js'
import { type Transport, runRole } from './suite.js'
import type { CaseResult } from './verdict.js'

function parseArguments(argv: string[]): { roles: Role[]; groups: number[]; ids: string[]; transport: Transport } {
  let transport: Transport = 'tcp'
  const roles: Role[] = []
  const groups: number[] = []
  const ids: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const value = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value`)
      return v
    }
    if (flag === '--role') {
      for (const role of value().split(',')) {
        if (role !== 'server' && role !== 'client') throw new Error(`--role must be server or client, not ${role}`)
        roles.push(role)
      }
    } else if (flag === '--group') {
      for (const group of value().split(',')) {
        const n = Number(group)
        if (!Number.isInteger(n)) throw new Error(`--group needs a number, not ${group}`)
        groups.push(n)
      }
    } else if (flag === '--transport') {
      const chosen = value()
      if (chosen !== 'tcp' && chosen !== 'h2') throw new Error(`--transport must be tcp or h2, not ${chosen}`)
      transport = chosen
    } else if (flag === '--case') {
      ids.push(...value().split(','))
    } else if (flag === '--help' || flag === '-h') {
      console.log('usage: run.js [--role server|client] [--group N]... [--case ID]... [--transport tcp|h2]')
      process.exit(0)
    } else {
      throw new Error(`unknown argument ${arg}`)
    }
  }
  return { roles: roles.length ? roles : ['server', 'client'], groups, ids, transport }
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parseArguments>
  try {
    options = parseArguments(process.argv.slice(2))
  } catch (error) {
    console.error((error as Error).message)
    process.exit(2)
  }
  const started = performance.now()
  const all: Array<[Role, CaseResult[]]> = []
  for (const role of options.roles) {
    const results = await runRole(role, { groups: options.groups, ids: options.ids, transport: options.transport })
    console.log(formatReport(role, results))
    all.push([role, results])
  }
  console.log('')
  for (const [role, results] of all) console.log(summaryLine(role, results))
  console.log(`conformance run: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const failed = all.some(([, results]) => results.some((r) => r.verdict === 'FAILED'))
  if (all.every(([, results]) => results.length === 0)) {
    console.error('No case matched the filters.')
    process.exitCode = 1
  } else if (failed) process.exitCode = 1
}

await main()
