#!/usr/bin/env node
// Fan-out across three tether nodes joined by a real broker: one publisher (on node 0),
// 64 B messages, subscribers spread round-robin over the nodes, driven by the C load
// generator (broadcast mode, --ports). Reports deliveries per second and where the CPU
// time went: each node, the broker, and the generator (from /proc, over the run).
//
//   npm run bench:fanout                     redis and nats, 1,000 and 10,000 subscribers
//   npm run bench:fanout -- --only redis --subscribers 1000
//
// Needs redis-server and nats-server (Debian packages) and the machine's cc.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { list, number, oneOf, parseOptions } from './args.mjs'
import { buildLoadgen, executable, freePort, loadgen, root, waitForPort } from './lib.mjs'
const results = join(root, 'bench', 'results')
const USAGE = `usage: npm run bench:fanout -- [--only redis,nats] [--subscribers 1000,10000] [--duration SECONDS]`
const { only, subscribers: sizes, duration } = parseOptions('bench/fanout-cluster.mjs', USAGE, {
  only: { type: 'string', default: ['redis', 'nats'], parse: list(oneOf(['redis', 'nats'])) },
  subscribers: { type: 'string', default: [1000, 10000], parse: list(number({ min: 1, integer: true })) },
  duration: { type: 'string', default: '5', parse: (text, flag) => String(number({ min: 0.1 })(text, flag)) },
})




/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
}

async function startBroker(kind) {
  const port = await freePort()
  const proc =
    kind === 'redis'
      ? spawn(executable('redis-server'), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
      : spawn(executable('nats-server'), ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
  await waitForPort(port)
  return { proc, url: `${kind}://127.0.0.1:${port}` }
}

async function startNode(kind, url) {
  const port = await freePort()
  const proc = spawn(process.execPath, [join(root, 'bench', 'servers', 'node-server.mjs'), 'tether', String(port), `--${kind}`, url], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  await new Promise((resolve, reject) => {
    proc.stdout.once('data', (chunk) => (String(chunk).startsWith('ready') ? resolve() : reject(new Error(String(chunk)))))
    proc.once('exit', (code) => reject(new Error(`node exited ${code}`)))
  })
  return { proc, port }
}

async function stop(proc) {
  if (proc.exitCode !== null) return
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  proc.kill('SIGKILL')
  await exited
}

async function run(kind, subscribers) {
  const broker = await startBroker(kind)
  const nodes = []
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startNode(kind, broker.url))
    const before = [broker.proc, ...nodes.map((n) => n.proc)].map((p) => cpuSeconds(p.pid))
    const started = Date.now()
    const out = spawnSync(
      loadgen,
      ['--ports', nodes.map((n) => n.port).join(','), '--path', '/broadcast', '--mode', 'broadcast', '--conns', String(subscribers), '--size', '64', '--window', '32', '--duration', duration, '--warmup', '1'],
      { encoding: 'utf8', timeout: 300_000 },
    )
    const wall = (Date.now() - started) / 1000
    if (out.status !== 0) throw new Error(`loadgen exited ${out.status}: ${out.stderr}`)
    const report = JSON.parse(out.stdout.trim().split('\n').pop())
    const after = [broker.proc, ...nodes.map((n) => n.proc)].map((p) => cpuSeconds(p.pid))
    const cpu = after.map((value, i) => (value - before[i]) / wall)
    return { backplane: kind, subscribers, rate: report.rate, loadgenCpu: report.cpu, brokerCpu: cpu[0], nodeCpu: cpu.slice(1), wallSeconds: wall }
  } finally {
    for (const node of nodes) await stop(node.proc)
    await stop(broker.proc)
  }
}

buildLoadgen()
const rows = []
for (const kind of only) {
  for (const subscribers of sizes) {
    process.stderr.write(`${kind} ${subscribers} subscribers ... `)
    const row = await run(kind, subscribers)
    rows.push(row)
    process.stderr.write(`${Math.round(row.rate)} deliveries/s\n`)
  }
}
console.log('fan-out across 3 tether nodes, 1 publisher, 64 B; CPU in cores (busy share of the run, from /proc)')
console.log('backplane  subscribers  deliveries/s  node0  node1  node2  broker  generator')
for (const r of rows) {
  const f = (v) => v.toFixed(2).padStart(5)
  console.log(`${r.backplane.padEnd(10)} ${String(r.subscribers).padStart(11)}  ${String(Math.round(r.rate)).padStart(12)}  ${r.nodeCpu.map(f).join('  ')}  ${f(r.brokerCpu)}   ${f(r.loadgenCpu)}`)
}
writeFileSync(join(results, 'fanout-cluster.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2) + '\n')
