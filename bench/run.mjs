#!/usr/bin/env node
// tether's benchmark suite: tether (port mode, and noServer on an application's http.Server),
// ws, uWebSockets.js and Bun (and any server given with --server) driven in one run,
// interleaved, by a C load generator, with the ratios the targets name for each workload.
//
//   npm run bench                       all workloads, 3 repetitions
//   npm run bench -- --quick            1 repetition, shorter runs
//   npm run bench -- --only echo-32B,handshake --reps 5
//   npm run bench -- --peers none       without uWebSockets.js and Bun (--peers uws: only uWS)
//   npm run bench -- --server 'other=node my-server.mjs {port}'
//   npm run bench -- --only http2       WebSockets over HTTP/2 streams against TCP (bench/http2.mjs)
//
// uWebSockets.js and Bun are optional peers (bench/peers.mjs): installed on first use into
// .tmp/bench-peers, never dependencies of tether, skipped with a message where they cannot be.
// A small C echo server (bench/servers/echo-server.c, 'c-floor') joins the echo and latency
// workloads: what the kernel and loopback alone cost here, the floor under every server.
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
import { deflateRawSync, constants as zlibConstants } from 'node:zlib'
import { join } from 'node:path'

import { list, namedCommand, number, oneOf, parseOptions } from './args.mjs'
import { buildLoadgen, buildEchoServer, cpuSeconds, echoServer, freePort, lines, loadgen, root, waitForPort } from './lib.mjs'
import { runHttp2Bench } from './http2.mjs'
import { PEERS, bunPath, ensurePeers } from './peers.mjs'
const results = join(root, 'bench', 'results')

/** Each workload: what the generator does, which figure counts, and the target ratio (tether / ws). */
const WORKLOADS = [
  { name: 'echo-32B', title: 'small echo 32 B, 100 conns x 16 in flight', gen: ['--mode', 'echo', '--conns', '100', '--inflight', '16', '--size', '32'], metric: 'rate', unit: 'msg/s', target: ['>=', 2.0], floor: true,
    round2: [['tether', 'uws', '>=', 0.8], ['tether-noserver', 'tether', '>=', 0.9]] },
  { name: 'echo-1MiB', title: 'large echo 1 MiB, 4 conns x 2 in flight', gen: ['--mode', 'echo', '--conns', '4', '--inflight', '2', '--size', String(1 << 20)], metric: 'bytesPerSecond', unit: 'MB/s', scale: 1e-6, target: ['>=', 4.0], floor: true,
    round2: [['tether', 'uws', '>=', 0.8]] },
  { name: 'latency-1', title: 'latency p50, 1 connection', gen: ['--mode', 'latency', '--conns', '1', '--size', '32'], metric: 'p50us', unit: 'us', lower: true, target: ['<=', 0.9], floor: true },
  { name: 'latency-100', title: 'latency p50, 100 connections', gen: ['--mode', 'latency', '--conns', '100', '--size', '32'], metric: 'p50us', unit: 'us', lower: true, target: ['<=', 0.6], floor: true },
  { name: 'handshake', title: 'handshakes per second, 64 concurrent', gen: ['--mode', 'handshake', '--concurrency', '64'], metric: 'rate', unit: '/s', target: ['>=', 2.0],
    round2: [['tether', 'uws', '>=', 0.8], ['tether-noserver', 'ws', '>=', 1.5]] },
  // RSS as the OS counts it (V8's young generation included: a user pays for it). A reading net of the young
  // generation was dropped (issue 18): it subtracted V8's committed semi-space size, not its resident pages, and
  // read 0.1 KiB or less for tether, which no connection costs.
  { name: 'idle-10k', title: 'RSS per idle connection, 10,000 connections (as the OS counts it)', gen: ['--mode', 'idle', '--conns', '10000'], metric: 'rawRssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true, target: ['<=', 0.45],
    round2: [['tether', 'uws', '<=', 2.0], ['tether-noserver', 'tether', '<=', 1.25]],
    // The same runs, read two more ways: after they were held idle (--settle), and the rate at which the 10,000
    // connections were opened (256 connecting at a time).
    views: [
      { name: 'idle-10k-settled', title: 'RSS per idle connection, 10,000 connections, after 40 s idle (as the OS counts it)', metric: 'settledRssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true,
        round2: [['tether', 'uws', '<=', 2.0], ['tether-noserver', 'tether', '<=', 1.25]] },
      { name: 'open-10k', title: 'handshakes per second, opening 10,000 connections', metric: 'openRate', unit: '/s',
        round2: [['tether', 'uws', '>=', 0.8], ['tether-noserver', 'ws', '>=', 1.5]] },
    ] },
  { name: 'idle-1k', title: 'RSS per idle connection, 1,000 connections (as the OS counts it)', gen: ['--mode', 'idle', '--conns', '1000'], metric: 'rawRssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true, extra: true,
    views: [{ name: 'idle-1k-settled', title: 'RSS per idle connection, 1,000 connections, after 40 s idle (as the OS counts it)', metric: 'settledRssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true }] },
  // RLIMIT_NOFILE bounds how many a server can hold (20,000 here, hard): 19,000 is the most this machine allows for the amortisation.
  { name: 'idle-19k', title: 'RSS per idle connection, 19,000 connections (as the OS counts it)', gen: ['--mode', 'idle', '--conns', '19000'], metric: 'rawRssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true, extra: true,
    round2: [['tether', 'uws', '<=', 2.0], ['tether-noserver', 'tether', '<=', 1.25]],
    views: [
      { name: 'idle-19k-settled', title: 'RSS per idle connection, 19,000 connections, after 40 s idle (as the OS counts it)', metric: 'settledRssPerConnection', unit: 'KiB', scale: 1 / 1024, lower: true,
        round2: [['tether', 'uws', '<=', 2.0], ['tether-noserver', 'tether', '<=', 1.25]] },
    ] },
  { name: 'broadcast-1k', title: 'fan-out 64 B, 1,000 subscribers (deliveries)', gen: ['--mode', 'broadcast', '--conns', '1000', '--size', '64', '--window', '32'], path: '/broadcast', metric: 'rate', unit: 'msg/s', target: ['>=', 4.0],
    round2: [['tether', 'uws', '>=', 1.0]] },
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

const PEER_NAMES = Object.keys(PEERS)
const USAGE = `usage: npm run bench -- [--quick] [--reps N] [--only NAME,NAME] [--peers uws,bun|none] [--out NAME] [--server 'name=command {port}'] [--settle S]
--out NAME writes bench/results/NAME.json and NAME.svg (a partial run otherwise writes only-NAMES.json)
--settle S: how long the idle workloads hold their connections before the settled reading (default 40 s, --quick 5 s; 0: none)
workloads: ${[...WORKLOADS.map((w) => w.name), SLOW_LORIS.name, HISTORY.name, RESUME.name, HTTP2.name].join(', ')}
(idle-1k and idle-19k run only when named in --only)`

function parseArgs(argv) {
  const args = parseOptions(
    'bench/run.mjs',
    USAGE,
    {
      quick: { type: 'boolean', default: false },
      reps: { type: 'string', default: 3, parse: number({ min: 1, integer: true }) },
      only: { type: 'string', parse: list(oneOf([...WORKLOADS.map((w) => w.name), SLOW_LORIS.name, HISTORY.name, RESUME.name, HTTP2.name])) },
      server: { type: 'string', multiple: true, default: [], parse: namedCommand },
      peers: { type: 'string', default: PEER_NAMES, parse: list(oneOf([...PEER_NAMES, 'none'])) },
      out: { type: 'string' },
      settle: { type: 'string', parse: number({ min: 0 }) },
    },
    argv,
  )
  if (args.quick) args.reps = Math.min(args.reps, 1)
  const settle = args.settle ?? (args.quick ? 5 : 40)
  return { reps: args.reps, quick: args.quick, only: args.only, servers: args.server, peers: args.peers.filter((name) => name !== 'none'), out: args.out, settle }
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


/** The command line of each built-in server; those with `command` (from --server) are started with sh and waited for on their port. */
function serverCommand(impl, workload, port) {
  const deflate = workload.deflate ? ['--deflate'] : []
  const servers = join(root, 'bench', 'servers')
  // exec: the server is the process the bench signals and measures, not a shell that would outlive it.
  if (impl.command) return ['sh', '-c', `exec ${impl.command.replaceAll('{port}', String(port))}`]
  if (impl.name === 'uws') return [process.execPath, '--expose-gc', join(servers, 'uws-server.mjs'), String(port), ...deflate]
  if (impl.name === 'bun') return [bunPath(), join(servers, 'bun-server.mjs'), String(port), ...deflate]
  if (impl.name === 'c-floor') return [echoServer, String(port)]
  return [process.execPath, '--expose-gc', join(servers, 'node-server.mjs'), impl.name, String(port), ...deflate]
}

async function startServer(impl, workload, port) {
  const command = serverCommand(impl, workload, port)
  const [file, args] = pin(0, command)
  const proc = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const next = lines(proc.stdout)
  // A server that died is reported by its exit code below, not by an EPIPE on the 'exit' we write it.
  proc.stdin.on('error', () => {})
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
    /** RSS as the OS counts it now, no collection forced (and the clients the server holds). */
    async mem() {
      if (impl.command) return { rss: readRss(proc.pid), clients: NaN }
      proc.stdin.write('mem\n')
      const [, rss, , clients] = (await next()).split(' ')
      return { rss: Number(rss), clients: Number(clients) }
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${impl.name}: the server died during the run (exit ${proc.exitCode ?? proc.signalCode})`)
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
    // Every idle workload (idle-10k, and idle-1k and idle-19k, whose figure is read as the OS counts it).
    if (workload.gen[workload.gen.indexOf('--mode') + 1] === 'idle') {
      const before = await server.rss()
      const proc = spawn(file, genArgs, { stdio: ['pipe', 'pipe', 'inherit'] })
      const next = lines(proc.stdout)
      const report = JSON.parse(await next(180_000))
      const after = await server.rss()
      // The same connections once idle a while (the generator answers pings, as a client does): V8 gives back
      // the young generation it grew for the burst once the process is idle (its memory reducer, some 10-20 s
      // here), and heartbeats come in between (tether's every 30 s; uWebSockets.js's at its idleTimeout, 120 s).
      // Read as the OS counts it, without forcing a collection.
      let settled
      if (args.settle > 0) {
        await new Promise((resolve) => setTimeout(resolve, args.settle * 1000))
        settled = await server.mem()
        if (settled.clients < report.conns) throw new Error(`${impl.name}: ${settled.clients} of ${report.conns} connections left after ${args.settle} s idle`)
      }
      proc.stdin.end('close\n')
      await new Promise((resolve) => proc.once('exit', resolve))
      if (report.open !== report.conns) throw new Error(`${impl.name}: ${report.open} of ${report.conns} connections open`)
      // RSS as the OS counts it needs no help from the server; the young generation only Node servers report.
      // The burst of connections makes V8 grow its young generation (for every library; V8
      // shrinks it again once the process is idle): that growth is not held per connection.
      const youngGrowth = after.young - before.young
      return {
        ...report,
        rssPerConnection: (after.rss - before.rss - youngGrowth) / report.conns,
        rawRssPerConnection: (after.rss - before.rss) / report.conns,
        ...(settled === undefined ? {} : { settledRssPerConnection: (settled.rss - before.rss) / report.conns, settledClients: settled.clients }),
        youngGrowth,
        serverClients: after.clients,
        openRate: report.conns / report.setupSeconds,
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

/** Bar colours of the chart, one per server. */
const COLOURS = { tether: '#2a7', 'tether-noserver': '#7c5', uws: '#36c', bun: '#c93', 'c-floor': '#999' }

/**
 * The chart: for each workload, every server's figure against ws's, on a log scale, oriented
 * so that longer is better (for latency and memory, ws's figure over the server's).
 */
function chart(rows, impls) {
  const shownImpls = impls.filter((i) => i.name !== 'ws')
  const width = 820
  const barHeight = 9
  const left = 330
  const rowHeight = 14 + shownImpls.length * barHeight
  const better = (row, name) => {
    const own = row.byImpl[name]?.median
    if (own === undefined) return undefined
    return row.lower ? row.byImpl.ws.median / own : own / row.byImpl.ws.median
  }
  const maxRatio = Math.max(2, ...rows.flatMap((row) => shownImpls.map((i) => better(row, i.name) ?? 0))) * 1.3
  const x = (ratio) => left + (Math.log(Math.max(ratio, 0.1) / 0.1) / Math.log(maxRatio / 0.1)) * (width - left - 60)
  const height = 60 + rows.length * rowHeight
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">\n`
  svg += `<text x="10" y="18" font-size="13" font-weight="bold">Each server against ws 8, same run (log scale; longer is better: for latency and memory, ws's figure / the server's)</text>\n`
  shownImpls.forEach((impl, i) => {
    svg += `<rect x="${10 + i * 130}" y="28" width="10" height="10" fill="${COLOURS[impl.name] ?? '#555'}"/><text x="${24 + i * 130}" y="37">${impl.name}</text>\n`
  })
  for (const tick of [0.5, 1, 2, 4, 8]) {
    if (tick > maxRatio) continue
    svg += `<line x1="${x(tick)}" y1="44" x2="${x(tick)}" y2="${height - 8}" stroke="#bbb" stroke-dasharray="${tick === 1 ? '' : '2,3'}"/><text x="${x(tick) + 2}" y="${height - 2}" fill="#666">${tick}x</text>\n`
  }
  rows.forEach((row, r) => {
    const y = 48 + r * rowHeight
    svg += `<text x="10" y="${y + rowHeight / 2 + 3}">${row.title.replace(/&/g, '&amp;').slice(0, 58)}</text>\n`
    shownImpls.forEach((impl, i) => {
      const ratio = better(row, impl.name)
      if (ratio === undefined) return
      const by = y + 4 + i * barHeight
      svg += `<rect x="${x(0.1)}" y="${by}" width="${Math.max(1, x(ratio) - x(0.1))}" height="${barHeight - 2}" fill="${COLOURS[impl.name] ?? '#555'}"/>`
      svg += `<text x="${x(ratio) + 3}" y="${by + barHeight - 2}" font-size="9">${ratio.toFixed(2)}x</text>\n`
    })
  })
  return svg + '</svg>\n'
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  buildLoadgen()
  mkdirSync(results, { recursive: true })
  const peers = ensurePeers(args.peers)
  for (const [name, ok] of Object.entries(peers)) if (ok !== true) process.stderr.write(`bench: ${name} skipped: ${ok}\n`)
  const impls = [{ name: 'tether' }, { name: 'tether-noserver' }, { name: 'ws' }, ...args.peers.filter((name) => peers[name] === true).map((name) => ({ name })), ...args.servers]
  // The C floor joins the workloads it can serve (echo and latency), when a C compiler is there.
  const floor = buildEchoServer() ? [{ name: 'c-floor' }] : []
  const workloads = WORKLOADS.filter((w) => (!args.only && !w.extra) || args.only?.includes(w.name))
  const special = [SLOW_LORIS.name, HISTORY.name, RESUME.name, HTTP2.name]
  if (args.only && !args.only.every((name) => special.includes(name) || WORKLOADS.some((w) => w.name === name))) {
    console.error(`bench: unknown workload in --only ${args.only.join(',')}\n\n${USAGE}`)
    process.exit(2)
  }
  const samples = {}
  for (const workload of workloads) {
    for (let rep = 0; rep < args.reps; rep++) {
      for (const impl of workload.floor ? [...impls, ...floor] : impls) {
        process.stderr.write(`${workload.name} ${impl.name} #${rep + 1} ... `)
        const report = await runOnce(impl, workload, args)
        ;((samples[workload.name] ??= {})[impl.name] ??= []).push(report)
        process.stderr.write(`${(report[workload.metric] * (workload.scale ?? 1)).toFixed(1)} ${workload.unit} (server cpu ${report.serverCpu?.toFixed(2) ?? '-'}, loadgen cpu ${(report.cpu ?? 0).toFixed(2)})\n`)
      }
    }
  }
  // Each workload's row, then the rows read from the same runs another way (views).
  const shown = workloads.flatMap((workload) => [workload, ...(workload.views ?? []).map((view) => ({ ...view, samplesOf: workload.name }))])
  const rows = shown.map((workload) => {
    const byImpl = {}
    const sampled = samples[workload.samplesOf ?? workload.name]
    for (const impl of [...impls, ...floor]) {
      if (sampled[impl.name] === undefined) continue
      const values = sampled[impl.name].map((r) => r[workload.metric] * (workload.scale ?? 1))
      const cpus = sampled[impl.name].map((r) => r.cpu ?? 0)
      const serverCpus = sampled[impl.name].map((r) => r.serverCpu ?? NaN)
      byImpl[impl.name] = { median: median(values), min: Math.min(...values), max: Math.max(...values), loadgenCpu: median(cpus), serverCpu: median(serverCpus) }
    }
    const ratio = byImpl.tether.median / byImpl.ws.median
    const [op, targetValue] = workload.target ?? []
    const met = op === undefined ? undefined : op === '>=' ? ratio >= targetValue : ratio <= targetValue
    // Round 2 (issue 18): ratios between two servers of the run, each against its target.
    const round2 = (workload.round2 ?? []).map(([a, b, op2, value]) => {
      const r = byImpl[a] && byImpl[b] ? byImpl[a].median / byImpl[b].median : undefined
      return { a, b, ratio: r, target: `${op2} ${value}x`, met: r === undefined ? undefined : op2 === '>=' ? r >= value : r <= value }
    })
    return { name: workload.name, title: workload.title, unit: workload.unit, lower: workload.lower === true, byImpl, ratio, target: op === undefined ? undefined : `${op} ${targetValue}x`, targetValue, met, round2 }
  })
  const machine = `${availableParallelism()} CPUs, Node ${process.version}, ${pinned ? 'server on CPU 0, generator on CPU 1' : 'not pinned'}`
  console.log(`tether benchmark suite: ${machine}; ${args.reps} interleaved repetition(s), medians (min-max)`)
  const pad = (text, n) => String(text).padEnd(n)
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1))
  const all = [...impls, ...floor]
  console.log(`${pad('workload', 48)} ${all.map((i) => pad(i.name, 26)).join(' ')} tether/ws target           server cpu  loadgen cpu`)
  for (const row of rows) {
    const present = all.filter((i) => row.byImpl[i.name] !== undefined)
    const cells = all.map((i) => pad(row.byImpl[i.name] === undefined ? '-' : `${fmt(row.byImpl[i.name].median)} (${fmt(row.byImpl[i.name].min)}-${fmt(row.byImpl[i.name].max)}) ${row.unit}`, 26))
    const cpu = present.map((i) => row.byImpl[i.name].loadgenCpu.toFixed(2)).join('/')
    const serverCpu = present.map((i) => (Number.isNaN(row.byImpl[i.name].serverCpu) ? '-' : row.byImpl[i.name].serverCpu.toFixed(2))).join('/')
    const flag = present.some((i) => row.byImpl[i.name].loadgenCpu > 0.9) ? ' (generator near its limit)' : ''
    const target = row.target === undefined ? '' : row.target + (row.met ? ' met' : ' MISSED')
    console.log(`${pad(row.title, 48)} ${cells.join(' ')} ${pad(row.ratio.toFixed(2) + 'x', 9)} ${pad(target, 16)} ${pad(serverCpu, 11)} ${cpu}${flag}`)
  }
  console.log(`\nround 2 (issue 18): each server against ws (higher is better; for latency and memory, lower), and the targets`)
  const others = all.filter((i) => i.name !== 'ws')
  console.log(`${pad('workload', 48)} ${others.map((i) => pad(`${i.name}/ws`, 16)).join(' ')} targets`)
  for (const row of rows) {
    const cells = others.map((i) => pad(row.byImpl[i.name] === undefined ? '-' : `${(row.byImpl[i.name].median / row.byImpl.ws.median).toFixed(2)}x`, 16))
    const targets = row.round2.map((t) => `${t.a}/${t.b} ${t.ratio === undefined ? '-' : t.ratio.toFixed(2) + 'x'} (${t.target}${t.met === undefined ? '' : t.met ? ' met' : ' MISSED'})`)
    console.log(`${pad(row.title, 48)} ${cells.join(' ')} ${targets.join('; ')}`)
  }
  const slowLoris = !args.only || args.only.includes(SLOW_LORIS.name) ? await runSlowLoris(args) : undefined
  const history = !args.only || args.only.includes(HISTORY.name) ? await runHistory(args) : undefined
  const resume = !args.only || args.only.includes(RESUME.name) ? await runResume(args) : undefined
  const http2 = !args.only || args.only.includes(HTTP2.name) ? await runHttp2Bench({ quick: args.quick, reps: args.reps }) : undefined
  const versions = { node: process.version, ...Object.fromEntries(args.peers.filter((name) => peers[name] === true).map((name) => [name, PEERS[name].version])) }
  const json = { machine, versions, date: new Date().toISOString(), reps: args.reps, quick: args.quick, rows, samples, slowLoris, history, resume, http2 }
  // A partial run (--only) or a quick one does not replace the full run's report and chart.
  const partial = args.quick || args.only !== undefined
  const name = args.out ? `${args.out}.json` : args.quick ? 'quick.json' : args.only ? `only-${args.only.join('+')}.json` : 'latest.json'
  writeFileSync(join(results, name), JSON.stringify(json, null, 2) + '\n')
  if (!partial) writeFileSync(join(results, 'chart.svg'), chart(rows, all))
  else writeFileSync(join(results, name.replace(/\.json$/, '.svg')), chart(rows, all))
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
