#!/usr/bin/env node
// Memory per connection with permessage-deflate on: tether against ws, in one run.
//
// Each server runs in its own process (node --expose-gc) with compression on and
// context takeover allowed both ways (the defaults of both libraries). A load
// process, using the npm `ws` client so both servers meet the same peer, opens N
// connections; each sends one compressible 1 KiB message and waits for its echo,
// so every connection has compressed and decompressed at least once. The server
// reports its resident set size (RSS) after a GC: before, with N connections open,
// after closing them all, and after a second round of open-and-close.
//
//   node bench/deflate-memory.mjs [--counts 1000,10000] [--rounds 3] [--json out.json]
//
// Figures: KiB of RSS per connection (open minus baseline, over N), and the growth
// left after a close-all. Ratios are tether / ws from the same run; servers are
// interleaved (tether, ws, tether, ws, ...) and medians are reported.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { list, number, parseOptions } from './args.mjs'

const self = fileURLToPath(import.meta.url)
const MESSAGE = JSON.stringify({
  type: 'update',
  items: Array.from({ length: 12 }, (_, i) => ({ id: i, name: `item-${i}`, price: 100 + i, tags: ['live', 'score', 'match'] })),
}).slice(0, 1024)

// ------------------------------------------------------------------ roles

async function serverRole(impl) {
  const { WebSocketServer } = impl === 'tether' ? await import('tether-ws') : await import('ws')
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: { threshold: 0 }, backlog: 4096 })
  await once(wss, 'listening')
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
  const measure = async () => {
    for (let i = 0; i < 3; i++) {
      globalThis.gc()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return process.memoryUsage().rss
  }
  const lines = createInterface({ input: process.stdin })
  process.stdout.write(JSON.stringify({ port: wss.address().port }) + '\n')
  for await (const line of lines) {
    if (line === 'measure') process.stdout.write(JSON.stringify({ rss: await measure(), clients: wss.clients.size }) + '\n')
    if (line === 'exit') process.exit(0)
  }
}

async function loadRole(port, count) {
  const { WebSocket } = await import('ws')
  const sockets = []
  const connectOne = () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: { threshold: 0 } })
      ws.once('error', reject)
      ws.once('open', () => ws.send(MESSAGE))
      ws.once('message', () => resolve(ws))
    })
  for (let i = 0; i < count; i += 200) {
    const batch = []
    for (let j = i; j < Math.min(count, i + 200); j++) batch.push(connectOne())
    sockets.push(...(await Promise.all(batch)))
  }
  process.stdout.write('open\n')
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (line === 'close') {
      await Promise.all(sockets.map((ws) => new Promise((resolve) => { ws.once('close', resolve); ws.close() })))
      process.stdout.write('closed\n')
      process.exit(0)
    }
  }
}

// ------------------------------------------------------------ orchestrator

function child(args, execArgv = []) {
  const proc = spawn(process.execPath, [...execArgv, self, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: proc.stdout })
  const queue = []
  const waiters = []
  lines.on('line', (line) => (waiters.length ? waiters.shift()(line) : queue.push(line)))
  return {
    proc,
    next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve))),
    send: (line) => proc.stdin.write(line + '\n'),
  }
}

async function measureOnce(impl, count) {
  const server = child(['--server', impl], ['--expose-gc'])
  const { port } = JSON.parse(await server.next())
  const rss = async () => {
    server.send('measure')
    return JSON.parse(await server.next())
  }
  const baseline = (await rss()).rss
  const rounds = []
  for (let round = 0; round < 2; round++) {
    const load = child(['--load', String(port), String(count)])
    if ((await load.next()) !== 'open') throw new Error('load failed')
    const open = await rss()
    if (open.clients !== count) throw new Error(`${impl}: ${open.clients} of ${count} connections open`)
    load.send('close')
    await load.next()
    await once(load.proc, 'exit')
    for (let i = 0; i < 100 && (await rss()).clients > 0; i++) await new Promise((r) => setTimeout(r, 50))
    const closed = (await rss()).rss
    rounds.push({ open: open.rss, closed })
  }
  server.send('exit')
  await once(server.proc, 'exit')
  return {
    perConnectionKiB: (rounds[0].open - baseline) / count / 1024,
    afterCloseMiB: (rounds[0].closed - baseline) / 1048576,
    secondRoundGrowthMiB: (rounds[1].closed - rounds[0].closed) / 1048576,
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function main() {
  const { counts, rounds, json: jsonPath } = parseOptions('bench/deflate-memory.mjs', USAGE, {
    counts: { type: 'string', default: [1000, 10000], parse: list(number({ min: 1, integer: true })) },
    rounds: { type: 'string', default: 3, parse: number({ min: 1, integer: true }) },
    json: { type: 'string' },
  })
  const results = []
  for (const count of counts) {
    const samples = { tether: [], ws: [] }
    for (let r = 0; r < rounds; r++) {
      for (const impl of ['tether', 'ws']) samples[impl].push(await measureOnce(impl, count))
    }
    const summary = (impl, key) => median(samples[impl].map((s) => s[key]))
    const row = { connections: count }
    for (const impl of ['tether', 'ws']) {
      row[impl] = {
        perConnectionKiB: summary(impl, 'perConnectionKiB'),
        perConnectionRangeKiB: [Math.min(...samples[impl].map((s) => s.perConnectionKiB)), Math.max(...samples[impl].map((s) => s.perConnectionKiB))],
        afterCloseMiB: summary(impl, 'afterCloseMiB'),
        secondRoundGrowthMiB: summary(impl, 'secondRoundGrowthMiB'),
      }
    }
    row.ratio = row.tether.perConnectionKiB / row.ws.perConnectionKiB
    results.push(row)
  }
  const fmt = (n, d = 1) => n.toFixed(d)
  console.log(`permessage-deflate memory, Node ${process.version}, ${rounds} interleaved runs, medians`)
  console.log('connections | tether KiB/conn (range) | ws KiB/conn (range) | ratio | after close-all, MiB: tether / ws | 2nd round growth, MiB: tether / ws')
  for (const r of results) {
    console.log(
      `${String(r.connections).padStart(11)} | ${fmt(r.tether.perConnectionKiB)} (${r.tether.perConnectionRangeKiB.map((v) => fmt(v)).join('-')}) | ` +
        `${fmt(r.ws.perConnectionKiB)} (${r.ws.perConnectionRangeKiB.map((v) => fmt(v)).join('-')}) | ${fmt(r.ratio, 2)}x | ` +
        `${fmt(r.tether.afterCloseMiB)} / ${fmt(r.ws.afterCloseMiB)} | ${fmt(r.tether.secondRoundGrowthMiB)} / ${fmt(r.ws.secondRoundGrowthMiB)}`,
    )
  }
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ node: process.version, rounds, results }, null, 2) + '\n')
}

const USAGE = 'usage: npm run bench:deflate-memory -- [--counts 1000,10000] [--rounds 3] [--json FILE]'
// The script runs its own children with a role (--server IMPL, --load PORT COUNT): not options for a user.
const [role, ...rest] = process.argv.slice(2)
if (role === '--server') await serverRole(rest[0])
else if (role === '--load') await loadRole(Number(rest[0]), Number(rest[1]))
else await main()
