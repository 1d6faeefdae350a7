#!/usr/bin/env node
// Soak: thousands of connections with echo traffic for a set time, the server's RSS sampled
// every second, in rounds (connect, traffic, close everything). It passes when the RSS does
// not grow after warm-up within a round, and does not grow from one round's end to the next
// once all connections closed (what a leak would show).
//
// The RSS judged is net of V8's young generation, which V8 enlarges under sustained
// allocation (4, then 16, then 32 MiB of semi-spaces) and keeps: that step is the engine
// adapting, not memory held by connections, and it would read as a leak. Raw RSS and the
// young generation are in the report too.
//
//   npm run soak                                   5,000 connections, 3 rounds of 60 s
//   npm run soak -- --connections 2000 --duration 15 --rounds 3
//
// Round 1 is the warm-up across rounds too (V8 sizes its heaps during it): from round 2 on,
// the memory left after every connection closed must not grow, both RSS (net of the young
// generation) and what JavaScript retains (heap used + external, after full GCs).
//
// The server is bench/servers/node-server.mjs (tether); the traffic comes from the C load
// generator of the benchmark suite (built with cc). Writes bench/results/soak.json (or the
// file given with --json) and exits 1 if a check fails.
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'

import { number, parseOptions } from '../bench/args.mjs'
import { buildLoadgen, freePort, loadgen, root } from '../bench/lib.mjs'
const USAGE = 'usage: npm run soak -- [--connections 5000] [--duration 60] [--rounds 3] [--allowed-growth 8] [--json FILE]'
const options = parseOptions('scripts/soak.mjs', USAGE, {
  connections: { type: 'string', default: 5000, parse: number({ min: 1, integer: true }) },
  duration: { type: 'string', default: 60, parse: number({ min: 1 }) },
  rounds: { type: 'string', default: 3, parse: number({ min: 1, integer: true }) },
  'allowed-growth': { type: 'string', default: 8, parse: number({ min: 0 }) },
  json: { type: 'string', default: join(root, 'bench', 'results', 'soak.json') },
})
const { connections, duration, rounds, json: output } = options
const MiB = 1024 * 1024
// The growth a round may show after its warm-up, in MiB (at least 5% of the level). CI passes a generous
// figure: a loaded machine moves RSS by several MiB with no leak at all.
const allowedGrowthMiB = options.allowedGrowth



buildLoadgen()

const port = await freePort()
const server = spawn(process.execPath, ['--expose-gc', join(root, 'bench', 'servers', 'node-server.mjs'), 'tether', String(port)], {
  stdio: ['pipe', 'pipe', 'inherit'],
})
const lines = createInterface({ input: server.stdout })
const nextLine = () => new Promise((resolve) => lines.once('line', resolve))
if (!(await nextLine()).startsWith('ready')) throw new Error('the server did not start')
let queue = Promise.resolve()
/** Asks the server one thing at a time (its answers are lines, in order). */
const ask = (command) => {
  const answer = queue.then(async () => {
    server.stdin.write(`${command}\n`)
    return (await nextLine()).split(' ').slice(1).map(Number)
  })
  queue = answer.catch(() => {})
  return answer
}
/** After a full GC: RSS net of the young generation, raw RSS, and the clients the server still has. */
const settled = async () => {
  const [rss, clients, young, heapUsed, external] = await ask('rss')
  return { rss: rss - young, rawRss: rss, young, clients, retained: heapUsed + external }
}
/** Now, without a GC (the per-second samples). */
const sample = async () => {
  const [rss, young, clients] = await ask('mem')
  return { rss: rss - young, rawRss: rss, young, clients }
}

const report = { connections, duration, rounds, node: process.version, start: await settled(), rounds_: [] }
let failed = false
for (let round = 1; round <= rounds; round++) {
  const samples = []
  const started = Date.now()
  const pending = []
  const sampler = setInterval(() => pending.push(sample().then((m) => samples.push({ t: (Date.now() - started) / 1000, ...m }))), 1000)
  // Retained memory during traffic: after full GCs, once warmed up and near the end.
  const checkpoints = []
  const timers = [0.25, 0.95].map((at) => setTimeout(() => pending.push(settled().then((m) => checkpoints.push({ t: (Date.now() - started) / 1000, ...m }))), duration * at * 1000))
  const gen = spawn(loadgen, ['--port', String(port), '--mode', 'echo', '--conns', String(connections), '--inflight', '1', '--size', '64', '--duration', String(duration), '--warmup', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  gen.stdout.on('data', (chunk) => (out += chunk))
  const code = await new Promise((resolve) => gen.once('exit', resolve))
  clearInterval(sampler)
  timers.forEach(clearTimeout)
  await Promise.all(pending)
  if (code !== 0) throw new Error(`the load generator exited ${code}`)
  const traffic = JSON.parse(out.trim().split('\n').pop())
  // Connections are gone once the generator exited; let the server see every close.
  let after = await settled()
  for (let i = 0; i < 50 && after.clients > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    after = await settled()
  }
  const [warmed, late] = checkpoints
  // The level to grow from: this round's after warm-up, or the previous round's near its end if higher (a
  // checkpoint taken just after the allocator gave memory back reads low, and is not where a leak starts from).
  const previous = report.rounds_.at(-1)?.rssNearEnd ?? 0
  const first = Math.max(warmed?.rss ?? 0, previous)
  const last = late?.rss ?? first
  const peak = Math.max(...samples.map((m) => m.rss))
  const growth = last - first
  const allowed = Math.max(allowedGrowthMiB * MiB, first * 0.05)
  const result = {
    round,
    messages: traffic.messages ?? traffic.count,
    rate: traffic.rate,
    errors: traffic.errors,
    rssAfterWarmup: first,
    rssNearEnd: last,
    peak,
    growthAfterWarmup: growth,
    allowedGrowth: allowed,
    rssAfterClose: after.rss,
    retainedAfterClose: after.retained,
    rawRssAfterClose: after.rawRss,
    youngAfterClose: after.young,
    clientsAfterClose: after.clients,
    checkpoints,
    samples,
  }
  report.rounds_.push(result)
  const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`
  console.log(
    `round ${round}: ${Math.round(traffic.rate)} msg/s over ${connections} connections, errors ${traffic.errors}; ` +
      `RSS after GC (net of young gen.) at 25% ${mib(first)}, at 95% ${mib(last)} (growth ${mib(growth)}, allowed ${mib(allowed)}), sampled peak ${mib(peak)}, ` +
      `after close ${mib(after.rss)} (JS heap + external ${mib(after.retained)}) with ${after.clients} clients left`,
  )
  if (growth > allowed) {
    failed = true
    console.log(`  FAIL: RSS grew ${mib(growth)} after warm-up`)
  }
  if (after.clients !== 0) {
    failed = true
    console.log(`  FAIL: ${after.clients} connections still tracked after all closed`)
  }
  if (traffic.errors > 0) {
    failed = true
    console.log(`  FAIL: ${traffic.errors} connection errors`)
  }
}
if (rounds >= 2) {
  const from = report.rounds_[rounds >= 3 ? 1 : 0]
  const to = report.rounds_.at(-1)
  const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`
  const allowedRss = Math.max(8 * MiB, from.rssAfterClose * 0.05)
  report.growthAcrossRounds = { from: from.round, to: to.round, rss: to.rssAfterClose - from.rssAfterClose, retained: to.retainedAfterClose - from.retainedAfterClose }
  console.log(
    `after all connections closed, round ${from.round} -> ${to.round}: RSS ${mib(from.rssAfterClose)} -> ${mib(to.rssAfterClose)}, ` +
      `JS heap + external ${mib(from.retainedAfterClose)} -> ${mib(to.retainedAfterClose)}` +
      (rounds >= 3 ? ` (round 1, the warm-up: RSS ${mib(report.rounds_[0].rssAfterClose)})` : ''),
  )
  if (to.rssAfterClose - from.rssAfterClose > allowedRss) {
    failed = true
    console.log(`  FAIL: RSS after close grew ${mib(to.rssAfterClose - from.rssAfterClose)} (allowed ${mib(allowedRss)})`)
  }
  if (to.retainedAfterClose - from.retainedAfterClose > 2 * MiB) {
    failed = true
    console.log(`  FAIL: JavaScript retained ${mib(to.retainedAfterClose - from.retainedAfterClose)} more after close`)
  }
}
report.passed = !failed
report.rounds = report.rounds_
delete report.rounds_
server.stdin.write('exit\n')
mkdirSync(dirname(output), { recursive: true })
writeFileSync(output, JSON.stringify(report, null, 2) + '\n')
console.log(failed ? 'soak: FAILED' : 'soak: passed')
process.exit(failed ? 1 : 0)
