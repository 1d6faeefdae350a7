#!/usr/bin/env node
// WebSockets over HTTP/2 streams (RFC 8441) against TCP connections, tether on both, measured in
// one run with one client (bench/h2-load.mjs, Node: the C generator speaks HTTP/1.1 only) so the
// figures differ by the server's cost of each transport, not by two clients:
//
//   idle-10k   resident memory per idle WebSocket: 10,000 WebSockets as 10,000 TCP connections,
//              against 10,000 streams of 10 HTTP/2 connections (young generation excluded, as
//              bench/run.mjs does)
//   open       WebSockets opened per second, 64 at a time: TCP connect + HTTP/1.1 upgrade, against
//              a new stream (extended CONNECT) on one existing HTTP/2 connection
//   echo-32B   32-byte echo, 100 WebSockets x 16 in flight: 100 TCP connections against 100 streams
//              of 10 HTTP/2 connections (target: HTTP/2 at least half of TCP)
//   echo-32B-1 the same with one stream per HTTP/2 connection (100 connections): HTTP/2's framing
//              without the gain of fewer sockets
//
// Besides each rate, the rate per second of server CPU (from /proc): on a machine shared with other
// work the server may not get its CPU, and this figure is what a run can still say; the targets are
// judged on it.
// HTTP/2 is clear text (h2c) here, so the comparison is about HTTP/2's framing, not TLS.
//
//   node bench/http2.mjs [--quick] [--reps N]        (npm run bench runs it too)
//   node bench/http2.mjs --smoke                    500 WebSockets, half-second runs: the harness works (tests)
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { cpuSeconds, freePort, lines, root } from './lib.mjs'

export const HTTP2_WORKLOADS = [
  { name: 'idle-10k', title: 'RSS per idle WebSocket, 10,000 (h2: 10 connections)', mode: 'idle', args: ['--conns', '10000', '--sessions', '10'], metric: 'rssPerWebSocket', unit: 'KiB', scale: 1 / 1024, lower: true },
  { name: 'open', title: 'WebSockets opened per second, 64 at a time', mode: 'open', args: ['--concurrency', '64'], metric: 'rate', unit: '/s' },
  { name: 'echo-32B', title: 'echo 32 B, 100 WebSockets x 16 (h2: 10 connections)', mode: 'echo', args: ['--conns', '100', '--sessions', '10', '--inflight', '16', '--size', '32'], metric: 'rate', unit: 'msg/s', target: 0.5 },
  { name: 'echo-32B-1', title: 'echo 32 B, 100 WebSockets x 16 (h2: 100 connections)', mode: 'echo', args: ['--conns', '100', '--sessions', '100', '--inflight', '16', '--size', '32'], metric: 'rate', unit: 'msg/s', target: 0.5 },
]

const pinned = availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
const pin = (cpu, command) => (pinned ? ['taskset', ['-c', String(cpu), ...command]] : [command[0], command.slice(1)])



async function startServer(transport, port) {
  const [file, args] = pin(0, [process.execPath, '--expose-gc', join(root, 'bench', 'servers', 'node-server.mjs'), 'tether', String(port), ...(transport === 'h2' ? ['--http2'] : [])])
  const proc = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const next = lines(proc.stdout, 60_000)
  const ready = await next()
  if (!ready.startsWith('ready')) throw new Error(`server: ${ready}`)
  return {
    proc,
    async rss() {
      proc.stdin.write('rss\n')
      const [, rss, clients, young] = (await next()).split(' ')
      return { rss: Number(rss), clients: Number(clients), young: Number(young) }
    },
    async stop() {
      proc.stdin.write('exit\n')
      await new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve()
        proc.once('exit', resolve)
        setTimeout(() => proc.kill('SIGKILL'), 5000).unref()
      })
    },
  }
}

async function runOnce(workload, transport, quick, smoke) {
  const port = await freePort()
  const server = await startServer(transport, port)
  try {
    const timing = smoke ? ['--duration', '0.5', '--warmup', '0.2'] : ['--duration', quick ? '2' : '5', '--warmup', quick ? '0.5' : '1']
    // The smoke run opens fewer WebSockets (the options given later win).
    const scale = smoke && workload.mode === 'idle' ? ['--conns', '500', '--sessions', '5'] : []
    const [file, args] = pin(1, [process.execPath, join(root, 'bench', 'h2-load.mjs'), '--transport', transport, '--port', String(port), '--mode', workload.mode, ...workload.args, ...scale, ...timing])
    if (workload.mode === 'idle') {
      const before = await server.rss()
      const client = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] })
      const report = JSON.parse(await lines(client.stdout)(180_000))
      const after = await server.rss()
      client.stdin.end('close\n')
      await new Promise((resolve) => client.once('exit', resolve))
      if (report.open !== report.conns || after.clients !== report.conns) {
        throw new Error(`${transport} idle: ${report.open} of ${report.conns} opened, the server counts ${after.clients}`)
      }
      const youngGrowth = after.young - before.young
      return { ...report, rssPerWebSocket: (after.rss - before.rss - youngGrowth) / report.conns, youngGrowth }
    }
    const cpuBefore = cpuSeconds(server.proc.pid)
    const started = performance.now()
    const client = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    const report = JSON.parse(await lines(client.stdout)(120_000))
    await new Promise((resolve) => (client.exitCode !== null ? resolve() : client.once('exit', resolve)))
    const serverCpu = (cpuSeconds(server.proc.pid) - cpuBefore) / ((performance.now() - started) / 1000)
    if (report.errors > 0) throw new Error(`${transport} ${workload.name}: ${report.errors} failed opens`)
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

/** Runs every workload over both transports, interleaved; prints a table and returns its rows. */
export async function runHttp2Bench({ quick = false, reps = 3, smoke = false } = {}) {
  const samples = {}
  for (const workload of HTTP2_WORKLOADS) {
    for (let rep = 0; rep < reps; rep++) {
      for (const transport of ['tcp', 'h2']) {
        process.stderr.write(`http2 ${workload.name} ${transport} #${rep + 1} ... `)
        const report = await runOnce(workload, transport, quick, smoke)
        ;((samples[workload.name] ??= {})[transport] ??= []).push(report)
        process.stderr.write(`${(report[workload.metric] * (workload.scale ?? 1)).toFixed(1)} ${workload.unit}${report.cpu !== undefined ? ` (server cpu ${report.serverCpu?.toFixed(2) ?? '-'}, client cpu ${report.cpu.toFixed(2)})` : ''}\n`)
      }
    }
  }
  const rows = HTTP2_WORKLOADS.map((workload) => {
    const by = {}
    for (const transport of ['tcp', 'h2']) {
      const list = samples[workload.name][transport]
      const values = list.map((r) => r[workload.metric] * (workload.scale ?? 1))
      // Per second of server CPU (rates only): what a run on a busy machine can still compare.
      const perCpu = workload.mode === 'idle' ? NaN : median(list.map((r) => r[workload.metric] / r.serverCpu))
      by[transport] = { median: median(values), min: Math.min(...values), max: Math.max(...values), perCpu, serverCpu: median(list.map((r) => r.serverCpu ?? NaN)), clientCpu: median(list.map((r) => r.cpu ?? NaN)) }
    }
    const ratio = by.h2.median / by.tcp.median
    const cpuRatio = by.h2.perCpu / by.tcp.perCpu
    const judged = Number.isNaN(cpuRatio) ? ratio : cpuRatio
    const met = workload.target === undefined ? undefined : judged >= workload.target
    return { name: workload.name, title: workload.title, unit: workload.unit, tcp: by.tcp, h2: by.h2, ratio, cpuRatio, target: workload.target === undefined ? undefined : `>= ${workload.target}x`, met }
  })
  const pad = (text, n) => String(text).padEnd(n)
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1))
  console.log(`\nWebSockets over HTTP/2 streams (h2c, RFC 8441) against TCP connections: tether on both, one Node client; medians of ${reps}`)
  console.log(`${pad('workload', 52)} ${pad('TCP', 30)} ${pad('HTTP/2', 30)} h2/TCP  per server CPU-s tcp / h2      h2/TCP  target          server cpu tcp/h2  client cpu tcp/h2`)
  for (const row of rows) {
    const cell = (t) => pad(`${fmt(row[t].median)} (${fmt(row[t].min)}-${fmt(row[t].max)}) ${row.unit}`, 30)
    const cpu = (key) => ['tcp', 'h2'].map((t) => (Number.isNaN(row[t][key]) ? '-' : row[t][key].toFixed(2))).join('/')
    const perCpu = Number.isNaN(row.cpuRatio) ? pad('-', 31) + ' ' + pad('', 7) : `${pad(`${fmt(row.tcp.perCpu)} / ${fmt(row.h2.perCpu)}`, 31)} ${pad(row.cpuRatio.toFixed(2) + 'x', 7)}`
    const target = row.target === undefined ? '' : `${row.target} ${row.met ? 'met' : 'MISSED'}`
    console.log(`${pad(row.title, 52)} ${cell('tcp')} ${cell('h2')} ${pad(row.ratio.toFixed(2) + 'x', 7)} ${perCpu} ${pad(target, 15)} ${pad(cpu('serverCpu'), 18)} ${cpu('clientCpu')}`)
  }
  return { machine: `${availableParallelism()} CPUs, Node ${process.version}, ${pinned ? 'server on CPU 0, client on CPU 1' : 'not pinned'}`, reps, quick, rows, samples }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2)
  const smoke = argv.includes('--smoke')
  const quick = argv.includes('--quick') || smoke
  const reps = argv.includes('--reps') ? Number(argv[argv.indexOf('--reps') + 1]) : quick ? 1 : 3
  const result = await runHttp2Bench({ quick, reps, smoke })
  mkdirSync(join(root, 'bench', 'results'), { recursive: true })
  const name = smoke ? 'http2-smoke.json' : quick ? 'http2-quick.json' : 'http2.json'
  writeFileSync(join(root, 'bench', 'results', name), JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2) + '\n')
}
