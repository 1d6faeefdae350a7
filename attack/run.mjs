#!/usr/bin/env node
// tether's attack suite: what an outsider with raw sockets on loopback can make a server
// with default options do, measured against tether and ws 8 in the same run.
//
//   npm run attack                          every attack, long version (minutes; GiBs of RSS)
//   npm run attack -- --quick               small caps, fewer sockets (well under 2 minutes)
//   npm run attack -- --only ping-flood,slow-loris
//   npm run attack -- --quick --target tether --json /tmp/attack.json
//
// Each attack is a module in attack/attacks/, bounded in time and bytes. Servers run in
// child processes (attack/servers/target.mjs); their RSS comes from /proc (peak: the
// larger of 100 ms samples and the kernel's VmHWM), "after" is read once the attacker has
// gone, the server has idled and run three full GCs. Results: a table on stdout and
// attack/results/latest.json (quick.json with --quick, only-NAMES.json with --only,
// or the file given with --json). Nothing here judges the figures: the CI test
// (test/security/attack-suite.test.ts) does, against its targets.
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, totalmem } from 'node:os'
import { dirname, join } from 'node:path'

import * as bigFragmented from './attacks/big-fragmented.mjs'
import * as compressedFragments from './attacks/compressed-fragments.mjs'
import * as continuationFlood from './attacks/continuation-flood.mjs'
import * as legitFragments from './attacks/legit-fragments.mjs'
import * as natsOutage from './attacks/nats-outage.mjs'
import * as pingFlood from './attacks/ping-flood.mjs'
import * as redisUnreachable from './attacks/redis-unreachable.mjs'
import * as slowLoris from './attacks/slow-loris.mjs'
import { cleanup, mib, root, size } from './lib.mjs'

const ATTACKS = [pingFlood, slowLoris, compressedFragments, bigFragmented, legitFragments, continuationFlood, natsOutage, redisUnreachable]
const IMPLEMENTATIONS = ['tether', 'ws']

const USAGE = `usage: npm run attack -- [--quick] [--only NAME,NAME] [--target tether|ws] [--json FILE]
attacks: ${ATTACKS.map((a) => a.name).join(', ')}`

function parseArgs(argv) {
  const args = { quick: false, only: undefined, targets: IMPLEMENTATIONS, json: undefined }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE)
      process.exit(0)
    } else if (arg === '--quick') args.quick = true
    else if (arg === '--only') args.only = (argv[++i] ?? '').split(',').filter(Boolean)
    else if (arg === '--target') args.targets = (argv[++i] ?? '').split(',').filter(Boolean)
    else if (arg === '--json') args.json = argv[++i]
    else {
      console.error(`attack: unknown option ${arg}\n\n${USAGE}`)
      process.exit(2)
    }
  }
  const unknown = [...(args.only ?? []).filter((n) => !ATTACKS.some((a) => a.name === n)), ...args.targets.filter((t) => !IMPLEMENTATIONS.includes(t))]
  if (unknown.length > 0 || args.targets.length === 0 || args.json === '') {
    console.error(`attack: unknown attack or target: ${unknown.join(', ') || '(none given)'}\n\n${USAGE}`)
    process.exit(2)
  }
  return args
}

const pad = (text, n) => String(text ?? '-').padEnd(n)

function printTable(rows) {
  const headers = ['attack', 'server', 'RSS before', 'peak', 'after', 'attacker bytes', 'real clients', 'outcome']
  const cells = rows.map((row) => {
    const rss = row.rss ?? {}
    return [
      row.variant ? `${row.attack}: ${row.variant}` : row.attack,
      row.server,
      mib(rss.before),
      mib(rss.peak),
      mib(rss.after),
      size(row.attackerBytes),
      row.realClients ?? '-',
      `${row.outcome}${row.alive === false ? ' [SERVER DIED]' : ''}`,
    ]
  })
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((c) => String(c[i]).length)))
  const line = (values) => values.map((value, i) => (i === values.length - 1 ? value : pad(value, widths[i]))).join('  ')
  console.log(line(headers))
  console.log(line(widths.map((w) => '-'.repeat(w))))
  for (const row of cells) console.log(line(row))
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const attacks = ATTACKS.filter((a) => !args.only || args.only.includes(a.name))
  const rows = []
  const started = performance.now()
  for (const attack of attacks) {
    process.stderr.write(`${attack.name} ... `)
    const attackStarted = performance.now()
    let produced
    try {
      produced = await attack.run({ quick: args.quick, targets: args.targets })
    } catch (error) {
      produced = [{ attack: attack.name, server: '-', outcome: `harness error: ${error.message}`, error: String(error.stack ?? error) }]
    }
    cleanup()
    rows.push(...produced)
    process.stderr.write(`${produced.length} row(s), ${((performance.now() - attackStarted) / 1000).toFixed(1)} s\n`)
  }
  const machine = `${availableParallelism()} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform}`
  console.log(`tether attack suite (${args.quick ? 'quick' : 'long'}): ${machine}; ${((performance.now() - started) / 1000).toFixed(0)} s`)
  printTable(rows)
  const report = { machine, date: new Date().toISOString(), quick: args.quick, only: args.only, targets: args.targets, rows }
  const file = args.json ?? join(root, 'attack', 'results', args.quick ? 'quick.json' : args.only ? `only-${args.only.join('+')}.json` : 'latest.json')
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  console.log(`\nJSON: ${file}`)
}

await main()
cleanup()
process.exit(0)
