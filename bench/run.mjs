#!/usr/bin/env node
// tether's benchmark suite: tether and ws (and any server given with --server) driven
// in one run, interleaved, by a C load generator, with the ratio to ws for each workload.
//
//   npm run bench                       all workloads, 3 repetitions
//   npm run bench -- --quick            1 repetition, shorter runs
//   npm run bench -- --only echo-32B,handshake --reps 5
//   npm run bench -- --server 'uws=node my-uws-server.mjs {port}'
//   npm run bench -- --only http2       WebSockets over HTTP/2 streams against TCP (bench/http2.mjs)
//
// The server runs pinned to CPU 0 and the generator to CPU 1 (taskset) when the machine
// has two or more. The generator reports its own CPU use: a value near 1.0 means the
// client, not the server, was the limit, and the table flags it. The server's CPU use
// (from /proc, averaged over the generator's whole run) is shown beside it: a server well
// under 1.0 was waiting for the generator or the kernel. Results: a table on
// stdout, bench/results/latest.json and bench/results/chart.svg (a run with --only writes
// bench/results/only-NAMES.json instead, and --quick quick.json).
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { createInterface } from 'node:readline'
import { deflateRawSync, constants as zlibConstants } from 'node:zlib'
import { join } from 'node:path'

import { list, namedCommand, number, oneOf, parseOptions } from './args.mjs'
import { buildLoadgen, freePort, loadgen, root, waitForPort } from './lib.mjs'
import { runHttp2Bench } from './http2.mjs'
const results = join(root, 'bench', 'results')

/** Each workload: what the generator does, which figure counts, and the target ratio (tether / ws). */
const WORKLOADS = [
  { name: 'echo-32B', title: 'small echo 32 B, 100 conns x 16 in flight', gen: ['--mode', 'echo', '--conns', '100', '--inflight', '16', '--size', '32'], metric: 'rate', unit: 'msg/s', target: ['>=', 2.0] },
  { name: 'echo-1MiB', title: 'large echo 1 MiB, 4 conns x 2 in flight', gen: ['--mode', 'echo', '--conns', '4', '--inflight', '2', '--size', String(1 << 20)], metric: 'bytesPerSecond', unit: 'MB/s', scale: 1e-6, target: ['>=', 4.0] },
  { name: 'latency-1', title: 'latency p50, 1 connection', gen: ['--mode', 'latency', '--conns', '1', '--size', '32'], metric: 'p50us', unit: 'us', lower: true, target: ['<=', 0.9] },
  { name: 'latency-100', title: 'latency p50, 100 connections', gen: ['--mode', 'latency', '--conns', '100', '--size', '32'], metric: 'p50us', unit: 'us', lower: true, target: ['<=', 0.6] },
  { name: 'handshake', title: 'handshakes per second, 64 concurrent', gen: ['--mode', 'handshake', '--concurrency', '64'], metric: 'rate', unit: '/s', target: ['>=', 2.0] },
  { name: 'idle-10k', title: 'RSS per idle connection, 10,000 connections (young gen. excluded)', gen: ['--mode', 'idle', '--conns', '10000'], metric: 'rssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true, target: ['<=', 0.45] },
  { name: 'broadcast-1k', title: 'fan-out 64 B, 1,000 subscribers (deliveries)', gen: ['--mode', 'broadcast', '--conns', '1000', '--size', '64', '--window', '32'], path: '/broadcast', metric: 'rate', unit: 'msg/s', target: ['>=', 4.0] },
  { name: 'broadcast-10k', title: 'fan-out 64 B, 10,000 subscribers (deliveries)', gen: ['--mode', 'broadcast', '--conns', '10000', '--size', '64', '--window', '32'], path: '/broadcast', metric: 'rate', unit: 'msg/s', target: ['>=', 3.0] },
  { name: 'deflate-32B', title: 'permessage-deflate echo 32 B, 100 conns x 16', gen: ['--mode', 'echo', '--conns', '100', '--inflight', '16'], deflate: 32, metric: 'rate', unit: 'msg/s', target: ['>=', 5.0] },
  { name: 'deflate-16KiB', title: 'permessage-deflate echo 16 KiB, 100 conns x 4', gen: ['--mode', 'echo', '--conns', '100', '--inflight', '4'], deflate: 16384, metric: 'rate', unit: 'msg/s', target: ['>=', 1.3] },
]

/**
 * Not a load-generator workload: real clients from 127.0.0.2 opening while 3,000 slow-loris
 * sockets from 127.0.0.1 each send a byte a second (the attack suite's attacker, attack/),
 * against tether (port, { server }, noServer) and ws. Target, for every tether mode: at
 * least 99% of the real clients get in, with a median handshake under 100 ms.
 */
const SLOW_LORIS = { name: 'slow-loris', title: 'handshakes during a slow-loris attack', minServed: 0.99, maxMedianMs: 100 }

/** Not against ws (which has no HTTP/2): tether's WebSockets over HTTP/2 streams against its TCP connections (bench/http2.mjs). */
const HTTP2 = { name: 'http2' }

/**
 * Reliable delivery (issue 17), tether against itself: fan-out of a topic with in-process
 * history (tether.v1 deliveries with positions, /broadcast-history) against the same topic
 * without (/broadcast), 1,000 subscribers, interleaved; target: at most 30% slower. And the
 * time 10,000 clients take to resume after their node is killed (bench/resume.mjs; reported).
 */
const HISTORY = {
  name: 'history-1k',
  title: 'fan-out 64 B, 1,000 subscribers, topic with history / without',
  gen: ['--mode', 'broadcast', '--conns', '1000', '--size', '64', '--window', '32'],
  target: 0.7,
}
const RESUME = { name: 'resume-10k', title: '10,000 clients resume after their node is killed (SIGKILL)' }

const USAGE = `usage: npm run bench -- [--quick] [--reps N] [--only NAME,NAME] [--server 'name=command {port}']
workloads: ${[...WORKLOADS.map((w) => w.name), SLOW_LORIS.name, HISTORY.name, RESUME.name, HTTP2.name].join(', ')}`

function parseArgs(argv) {
  const args = parseOptions(
    'bench/run.mjs',
    USAGE,
    {
      quick: { type: 'boolean', default: false },
      reps: { type: 'string', default: 3, parse: number({ min: 1, integer: true }) },
      only: { type: 'string', parse: list(oneOf([...WORKLOADS.map((w) => w.name), SLOW_LORIS.name])) },
      server: { type: 'string', multiple: true, default: [], parse: namedCommand },
    },
    argv,
  )
  if (args.quick) args.reps = Math.min(args.reps, 1)
  return { reps: args.reps, quick: args.quick, only: args.only, servers: args.server }
}

const pinned = availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
const pin = (cpu, command) => (pinned ? ['taskset', ['-c', String(cpu), ...command]] : [command[0], command.slice(1)])


/** A compressible payload, raw-DEFLATE compressed with the 00 00 FF FF tail removed (RFC 7692 §7.2.1). */
function deflatePayload(size) {
  const text = Buffer.from(JSON.stringify({ type: 'update', id: 12345, items: Array.from({ length: 400 }, (_, i) => ({ n: i, v: `value-${i % 17}` })) })).subarray(0, size)
  const compressed = deflateRawSync(text, { finishFlush: zlibConstants.Z_SYNC_FLUSH })
  const file = join(results, `deflate-${size}.bin`)
  writeFileSync(file, compressed.subarray(0, compressed.length - 4))
  return file
}

function lines(stream) {
  const queue = []
  const waiters = []
  createInterface({ input: stream }).on('line', (line) => (waiters.length ? waiters.shift()(line) : queue.push(line)))
  return (timeoutMs = 30_000) =>
    queue.length
      ? Promise.resolve(queue.shift())
      : new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('timed out waiting for a line')), timeoutMs)
          waiters.push((line) => {
            clearTimeout(timer)
            resolve(line)
          })
        })
}

async function startServer(impl, workload, port) {
  let command
  if (impl.command) command = ['sh', '-c', impl.command.replaceAll('{port}', String(port))]
  else command = [process.execPath, '--expose-gc', join(root, 'bench', 'servers', 'node-server.mjs'), impl.name, String(port), ...(workload.deflate ? ['--deflate'] : [])]
  const [file, args] = pin(0, command)
  const proc = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const next = lines(proc.stdout)
  if (impl.command) {
    await waitForPort(port)
  } else {
    const ready = await next()
    if (!ready.startsWith('ready')) throw new Error(`${impl.name}: ${ready}`)
  }
  return {
    proc,
    async rss() {
      if (impl.command) return { rss: readRss(proc.pid), clients: NaN, young: 0 }
      proc.stdin.write('rss\n')
      const [, rss, clients, young] = (await next()).split(' ')
      return { rss: Number(rss), clients: Number(clients), young: Number(young) }
    },
    async stop() {
      if (!impl.command) proc.stdin.write('exit\n')
      else proc.kill('SIGTERM')
      await new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve()
        proc.once('exit', resolve)
        setTimeout(() => proc.kill('SIGKILL'), 5000).unref()
      })
    },
  }
}

const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100

/** User + system CPU seconds the process has used so far (warm-up included, so a run's figure is an average). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return NaN
  }
}

function readRss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
  return kib * 1024
}

async function runOnce(impl, workload, args) {
  const port = await freePort()
  const server = await startServer(impl, workload, port)
  try {
    const gen = [loadgen, '--port', String(port), '--path', workload.path ?? '/echo', ...workload.gen]
    if (workload.deflate) gen.push('--deflate', deflatePayload(workload.deflate), '--size', String(workload.deflate))
    gen.push('--duration', args.quick ? '2' : '5', '--warmup', args.quick ? '0.5' : '1')
    const [file, genArgs] = pin(1, gen)
    if (workload.metric === 'rssPerConnection') {
      const before = await server.rss()
      const proc = spawn(file, genArgs, { stdio: ['pipe', 'pipe', 'inherit'] })
      const next = lines(proc.stdout)
      const report = JSON.parse(await next(180_000))
      const after = await server.rss()
      proc.stdin.end('close\n')
      await new Promise((resolve) => proc.once('exit', resolve))
      if (report.open !== report.conns) throw new Error(`${impl.name}: ${report.open} of ${report.conns} connections open`)
      // The burst of connections makes V8 grow its young generation (for every library; V8
      // shrinks it again once the process is idle): that growth is not held per connection.
      const youngGrowth = after.young - before.young
      return {
        ...report,
        rssPerConnection: (after.rss - before.rss - youngGrowth) / report.conns,
        rawRssPerConnection: (after.rss - before.rss) / report.conns,
        youngGrowth,
        serverClients: after.clients,
      }
    }
    const cpuBefore = cpuSeconds(server.proc.pid)
    const started = performance.now()
    const out = spawnSync(file, genArgs, { encoding: 'utf8', timeout: 300_000 })
    const serverCpu = (cpuSeconds(server.proc.pid) - cpuBefore) / ((performance.now() - started) / 1000)
    if (out.status !== 0) throw new Error(`${impl.name} ${workload.name}: loadgen exited ${out.status}: ${out.stderr}`)
    const report = JSON.parse(out.stdout.trim().split('\n').pop())
    if (report.errors > 0) throw new Error(`${impl.name} ${workload.name}: ${report.errors} connection errors`)
    return { ...report, serverCpu }
  } finally {
    await server.stop()
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function chart(rows) {
  const width = 760
  const rowHeight = 28
  const left = 290
  const maxRatio = Math.max(...rows.flatMap((r) => [r.ratio ?? 0, r.targetValue]), 1) * 1.15
  const x = (ratio) => left + (ratio / maxRatio) * (width - left - 60)
  const height = 50 + rows.length * rowHeight
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">\n`
  svg += `<text x="10" y="20" font-size="14" font-weight="bold">tether / ws, same run (higher is better for rates; lower for latency and memory)</text>\n`
  svg += `<line x1="${x(1)}" y1="30" x2="${x(1)}" y2="${height - 10}" stroke="#999" stroke-dasharray="3,3"/><text x="${x(1) + 3}" y="${height - 12}" fill="#666">1x</text>\n`
  rows.forEach((row, i) => {
    const y = 36 + i * rowHeight
    const met = row.met
    svg += `<text x="10" y="${y + 14}">${row.title.replace(/&/g, '&amp;')}</text>\n`
    if (row.ratio !== undefined) {
      svg += `<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(row.ratio) - left)}" height="16" fill="${met ? '#3a7' : '#c54'}"/>\n`
      svg += `<text x="${x(row.ratio) + 4}" y="${y + 15}">${row.ratio.toFixed(2)}x</text>\n`
    }
    svg += `<line x1="${x(row.targetValue)}" y1="${y}" x2="${x(row.targetValue)}" y2="${y + 22}" stroke="#000" stroke-width="2"/>\n`
  })
  return svg + '</svg>\n'
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  buildLoadgen()
  mkdirSync(results, { recursive: true })
  const impls = [{ name: 'tether' }, { name: 'ws' }, ...args.servers]
  const workloads = WORKLOADS.filter((w) => !args.only || args.only.includes(w.name))
  const special = [SLOW_LORIS.name, HISTORY.name, RESUME.name, HTTP2.name]
  if (args.only && !args.only.every((name) => special.includes(name) || WORKLOADS.some((w) => w.name === name))) {
    console.error(`bench: unknown workload in --only ${args.only.join(',')}\n\n${USAGE}`)
    process.exit(2)
  }
  const samples = {}
  for (const workload of workloads) {
    for (let rep = 0; rep < args.reps; rep++) {
      for (const impl of impls) {
        process.stderr.write(`${workload.name} ${impl.name} #${rep + 1} ... `)
        const report = await runOnce(impl, workload, args)
        ;((samples[workload.name] ??= {})[impl.name] ??= []).push(report)
        process.stderr.write(`${(report[workload.metric] * (workload.scale ?? 1)).toFixed(1)} ${workload.unit} (server cpu ${report.serverCpu?.toFixed(2) ?? '-'}, loadgen cpu ${(report.cpu ?? 0).toFixed(2)})\n`)
      }
    }
  }
  const rows = workloads.map((workload) => {
    const byImpl = {}
    for (const impl of impls) {
      const values = samples[workload.name][impl.name].map((r) => r[workload.metric] * (workload.scale ?? 1))
      const cpus = samples[workload.name][impl.name].map((r) => r.cpu ?? 0)
      const serverCpus = samples[workload.name][impl.name].map((r) => r.serverCpu ?? NaN)
      byImpl[impl.name] = { median: median(values), min: Math.min(...values), max: Math.max(...values), loadgenCpu: median(cpus), serverCpu: median(serverCpus) }
    }
    const ratio = byImpl.tether.median / byImpl.ws.median
    const [op, targetValue] = workload.target
    const met = op === '>=' ? ratio >= targetValue : ratio <= targetValue
    return { name: workload.name, title: workload.title, unit: workload.unit, byImpl, ratio, target: `${op} ${targetValue}x`, targetValue, met }
  })
  const machine = `${availableParallelism()} CPUs, Node ${process.version}, ${pinned ? 'server on CPU 0, generator on CPU 1' : 'not pinned'}`
  console.log(`tether benchmark suite: ${machine}; ${args.reps} interleaved repetition(s), medians (min-max)`)
  const pad = (text, n) => String(text).padEnd(n)
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1))
  console.log(`${pad('workload', 48)} ${impls.map((i) => pad(i.name, 26)).join(' ')} ratio   target           server cpu  loadgen cpu`)
  for (const row of rows) {
    const cells = impls.map((i) => pad(`${fmt(row.byImpl[i.name].median)} (${fmt(row.byImpl[i.name].min)}-${fmt(row.byImpl[i.name].max)}) ${row.unit}`, 26))
    const cpu = impls.map((i) => row.byImpl[i.name].loadgenCpu.toFixed(2)).join('/')
    const serverCpu = impls.map((i) => (Number.isNaN(row.byImpl[i.name].serverCpu) ? '-' : row.byImpl[i.name].serverCpu.toFixed(2))).join('/')
    const flag = impls.some((i) => row.byImpl[i.name].loadgenCpu > 0.9) ? ' (generator near its limit)' : ''
    console.log(`${pad(row.title, 48)} ${cells.join(' ')} ${pad(row.ratio.toFixed(2) + 'x', 7)} ${pad(row.target + (row.met ? ' met' : ' MISSED'), 16)} ${pad(serverCpu, 11)} ${cpu}${flag}`)
  }
  const slowLoris = !args.only || args.only.includes(SLOW_LORIS.name) ? await runSlowLoris(args) : undefined
  const history = !args.only || args.only.includes(HISTORY.name) ? await runHistory(args) : undefined
  const resume = !args.only || args.only.includes(RESUME.name) ? await runResume(args) : undefined
  const http2 = !args.only || args.only.includes(HTTP2.name) ? await runHttp2Bench({ quick: args.quick, reps: args.reps }) : undefined
  const json = { machine, date: new Date().toISOString(), reps: args.reps, quick: args.quick, rows, samples, slowLoris, history, resume, http2 }
  // A partial run (--only) or a quick one does not replace the full run's report and chart.
  const partial = args.quick || args.only !== undefined
  const name = args.quick ? 'quick.json' : args.only ? `only-${args.only.join('+')}.json` : 'latest.json'
  writeFileSync(join(results, name), JSON.stringify(json, null, 2) + '\n')
  if (!partial) writeFileSync(join(results, 'chart.svg'), chart(rows))
}

/** HISTORY: tether's /broadcast and /broadcast-history, interleaved, the ratio of the medians. */
async function runHistory(args) {
  const variants = [
    { label: 'without history', workload: { name: HISTORY.name, gen: HISTORY.gen, path: '/broadcast' } },
    // Each connection's first message is the `subscribed` answer, not a delivery.
    { label: 'with history', workload: { name: HISTORY.name, gen: [...HISTORY.gen, '--ignore-first', '1'], path: '/broadcast-history' } },
  ]
  const rates = { 'without history': [], 'with history': [] }
  // Deliveries per second of the server's CPU: what a machine shared with other work disturbs least.
  const perCpu = { 'without history': [], 'with history': [] }
  for (let rep = 0; rep < args.reps; rep++) {
    for (const { label, workload } of variants) {
      process.stderr.write(`${HISTORY.name} ${label} #${rep + 1} ... `)
      const report = await runOnce({ name: 'tether' }, workload, args)
      rates[label].push(report.rate)
      perCpu[label].push(report.rate / report.serverCpu)
      process.stderr.write(`${report.rate.toFixed(0)} deliveries/s (server cpu ${report.serverCpu?.toFixed(2)}, loadgen cpu ${report.cpu.toFixed(2)})\n`)
    }
  }
  // Each repetition runs both back to back: the median of those pairs' ratios is what a shared machine's drift
  // disturbs least (the ratio of the two medians is shown too).
  const pairs = rates['with history'].map((rate, i) => rate / rates['without history'][i])
  const ratio = median(pairs)
  const ofMedians = median(rates['with history']) / median(rates['without history'])
  const fmt = (values) => `${median(values).toFixed(0)} (${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)})`
  console.log(
    `\n${HISTORY.title}: with ${fmt(rates['with history'])}, without ${fmt(rates['without history'])} deliveries/s; ` +
      `median of paired ratios ${ratio.toFixed(2)}x (pairs ${pairs.map((pair) => pair.toFixed(2)).join(', ')}; ratio of medians ${ofMedians.toFixed(2)}x) ` +
      `(target >= ${HISTORY.target}x: ${ratio >= HISTORY.target ? 'met' : 'MISSED'}); ` +
      `per second of server CPU: with ${median(perCpu['with history']).toFixed(0)}, without ${median(perCpu['without history']).toFixed(0)} = ` +
      `${(median(perCpu['with history']) / median(perCpu['without history'])).toFixed(2)}x`,
  )
  const cpuRatio = median(perCpu['with history']) / median(perCpu['without history'])
  return { rates, perCpu, pairs, ratio, ratioOfMedians: ofMedians, cpuRatio, target: HISTORY.target, met: ratio >= HISTORY.target }
}

/** RESUME: bench/resume.mjs (10,000 clients unless --quick: 2,000). */
async function runResume(args) {
  const { run } = await import('./resume.mjs')
  const result = await run({ clients: args.quick ? 2_000 : 10_000, topics: 100 })
  console.log(
    `\n${RESUME.title}: ${result.clients} clients resumed and caught up in ${result.seconds.toFixed(2)} s ` +
      `(median ${(result.p50ms / 1000).toFixed(2)} s, p99 ${(result.p99ms / 1000).toFixed(2)} s; node B cpu ${result.nodeBCpu.toFixed(2)}, clients' process cpu ${result.clientsCpu.toFixed(2)}; ` +
      `handshakes refused while ${result.nodeB.refusedPending} were pending, ${result.nodeB.displaced} displaced; ${result.wrong} clients not exact)`,
  )
  return result
}

/** The slow-loris workload (SLOW_LORIS): the attack suite's attacker, its long settings unless --quick. */
async function runSlowLoris(args) {
  const { run } = await import('../attack/attacks/slow-loris.mjs')
  process.stderr.write(`${SLOW_LORIS.name} ... `)
  const rows = await run({ quick: args.quick, targets: ['tether', 'ws'] })
  process.stderr.write('done\n')
  console.log(`\n${SLOW_LORIS.title} (${rows[0]?.variant}): real clients from 127.0.0.2 served, median handshake (target, tether: >= ${SLOW_LORIS.minServed * 100}%, < ${SLOW_LORIS.maxMedianMs} ms)`)
  const out = rows.map((row) => {
    const { realServed, realTotal, handshakeMedianMs } = row.measures ?? {}
    const share = realTotal > 0 ? realServed / realTotal : 0
    const tether = row.server.startsWith('tether')
    const met = share >= SLOW_LORIS.minServed && handshakeMedianMs < SLOW_LORIS.maxMedianMs
    const median = Number.isFinite(handshakeMedianMs) ? `${handshakeMedianMs.toFixed(0)} ms` : '-'
    console.log(`  ${row.server.padEnd(18)} ${`${realServed}/${realTotal}`.padEnd(8)} median ${median.padEnd(8)} ${tether ? (met ? 'met' : 'MISSED') : ''}  ${row.outcome}`)
    return { server: row.server, variant: row.variant, realServed, realTotal, handshakeMedianMs, met: tether ? met : undefined, outcome: row.outcome }
  })
  return out
}

await main()
