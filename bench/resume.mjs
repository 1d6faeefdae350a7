#!/usr/bin/env node
// How long 10,000 tether.v1 clients take to resume after their node is killed.
//
//   node bench/resume.mjs [--clients 10000] [--topics 100] [--jitter 0.5] [--json FILE]
//
// Two `tether serve` nodes share history in a real redis-server (all on loopback); the
// clients (tether/client over tether's WebSocket, in this process, from 250 loopback
// addresses) connect to node A and
// subscribe, one topic each; 10 messages per topic are delivered. Then node A is killed
// with SIGKILL and 5 more messages per topic are published on node B at once. Each client
// reconnects (its backoff: 250 ms doubling, jitter) to node B, resumes from its position and
// must receive exactly the 5 it missed. Reported: the time from the kill until every client
// resumed and caught up (and the median and 99th percentile per client), node B's CPU and
// this process's CPU over that time, and what node B's /health counted.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { executable, freePort, root, waitForPort } from './lib.mjs'

const args = process.argv.slice(2)
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback)
const CLIENTS = Number(option('--clients', 10_000))
const TOPICS = Number(option('--topics', 100))
/** The clients' backoff jitter (default: the client's, 0.5). */
const JITTER = option('--jitter', undefined) === undefined ? undefined : Number(option('--jitter'))
const BEFORE = 10
const MISSED = 5

const pinned = availableParallelism() >= 2
const pin = (cpu, command) => (pinned ? ['taskset', ['-c', String(cpu), ...command]] : [command[0], command.slice(1)])

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

async function startRedis() {
  const port = await freePort()
  const proc = spawn(executable('redis-server'), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  await waitForPort(port)
  return { url: `redis://127.0.0.1:${port}`, stop: () => proc.kill('SIGKILL') }
}

async function startNode(redis) {
  const port = await freePort()
  const [file, argv] = pin(0, [
    process.execPath,
    join(root, 'dist', 'cli', 'main.js'),
    'serve',
    '--port', String(port),
    '--redis', redis,
    '--history', 'r*',
    '--history-size', '100',
    '--max-connections', String(CLIENTS * 2),
    '--publish-rate', '100000',
  ])
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (chunk) => (stderr += chunk))
  await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', resolve)
    proc.once('exit', (code) => reject(new Error(`tether serve exited ${code}: ${stderr}`)))
  })
  return { proc, port, url: `ws://127.0.0.1:${port}/v1`, http: `http://127.0.0.1:${port}` }
}

async function until(predicate, ms, label) {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export async function run({ clients = CLIENTS, topics = TOPICS, jitter = JITTER, log = (line) => process.stderr.write(line) } = {}) {
  const { TetherClient } = await import('tether-ws/client')
  const { WebSocket: TetherWebSocket } = await import('tether-ws')
  // Real clients come from many addresses: spread over 127.0.0.1-250, so that the server's
  // per-address share of pending handshakes (a defence against one attacker) does not apply.
  let next = 0
  const WebSocket = class extends TetherWebSocket {
    constructor(url, protocols) {
      super(url, protocols, { localAddress: `127.0.0.${1 + (next++ % 250)}` })
    }
  }
  const redis = await startRedis()
  const a = await startNode(redis.url)
  const b = await startNode(redis.url)
  const all = []
  try {
    log(`resume: ${clients} clients on node A ... `)
    let killed = false
    const readers = []
    for (let i = 0; i < clients; i++) {
      const topic = `r${i % topics}`
      const client = new TetherClient(() => (killed ? b.url : a.url), { WebSocket, ...(jitter !== undefined ? { backoff: { jitter } } : {}) })
      all.push(client)
      const reader = { client, last: 0, resumedAt: 0, openedAt: 0, closedAt: 0 }
      client.on('state', (change) => {
        if (!killed) return
        if (change.state === 'open' && reader.openedAt === 0) reader.openedAt = performance.now()
        if (change.state === 'reconnecting' && reader.closedAt === 0) reader.closedAt = performance.now()
      })
      const subscription = client.subscribe(topic)
      subscription.on('message', (_data, { position }) => {
        reader.last = position.offset
        if (killed && reader.last === BEFORE + MISSED && reader.resumedAt === 0) reader.resumedAt = performance.now()
      })
      readers.push(reader)
      // Connections open in steps, as a node's clients would over a while (and within the listen backlog).
      if (i % 500 === 499) await until(() => readers.every((r) => r.client.state === 'open'), 60_000, 'connections')
    }
    await until(() => readers.every((r) => r.client.subscription(`r${readers.indexOf(r) % topics}`)?.state === 'subscribed'), 120_000, 'subscriptions')
    const publisher = new TetherClient(b.url, { WebSocket })
    all.push(publisher)
    const publishAll = (count) => Promise.all(Array.from({ length: topics }, async (_, t) => {
      for (let n = 0; n < count; n++) await publisher.publish(`r${t}`, `m${n}`)
    }))
    await publishAll(BEFORE)
    await until(() => readers.every((r) => r.last === BEFORE), 60_000, 'the first messages')
    log('kill -9 node A ... ')
    const cpuB = cpuSeconds(b.proc.pid)
    const cpuSelf = process.cpuUsage()
    const start = performance.now()
    killed = true
    a.proc.kill('SIGKILL')
    await publishAll(MISSED)
    await until(() => readers.every((r) => r.resumedAt > 0), 300_000, 'every client resumed')
    const elapsed = (performance.now() - start) / 1000
    const self = process.cpuUsage(cpuSelf)
    const times = readers.map((r) => r.resumedAt - start).sort((x, y) => x - y)
    const phase = (key) => {
      const sorted = readers.map((r) => r[key] - start).sort((x, y) => x - y)
      return { p50: Math.round(sorted[Math.floor(sorted.length / 2)]), max: Math.round(sorted[sorted.length - 1]) }
    }
    const health = await (await fetch(`${b.http}/health`)).json()
    const result = {
      clients,
      topics,
      seconds: elapsed,
      p50ms: times[Math.floor(times.length / 2)],
      p99ms: times[Math.floor(times.length * 0.99)],
      maxMs: times[times.length - 1],
      resumesPerSecond: clients / elapsed,
      nodeBCpu: (cpuSeconds(b.proc.pid) - cpuB) / elapsed,
      clientsCpu: (self.user + self.system) / 1e6 / elapsed,
      nodeB: {
        sessions: health.apps.delivery.sessions,
        historyReads: health.apps.delivery.reads,
        refusedPending: health.limits.tooManyPending,
        displaced: health.limits.handshakesDisplaced + health.limits.addressShareDisplaced,
      },
      phases: { closed: phase('closedAt'), reopened: phase('openedAt'), caughtUp: phase('resumedAt') },
      wrong: readers.filter((r) => r.last !== BEFORE + MISSED).length,
    }
    log(`done in ${elapsed.toFixed(2)} s\n`)
    return result
  } finally {
    for (const client of all) client.close()
    a.proc.kill('SIGKILL')
    b.proc.kill('SIGKILL')
    redis.stop()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run()
  console.log(JSON.stringify(result, null, 2))
  const file = option('--json', undefined)
  if (file) writeFileSync(file, JSON.stringify({ machine: `${availableParallelism()} CPUs, Node ${process.version}`, date: new Date().toISOString(), ...result }, null, 2) + '\n')
  process.exit(0)
}
