// Broker outage: two tether nodes on a NATS backplane publish on one topic at a steady
// rate while nats-server is killed (SIGKILL) and started again on the same port a few
// seconds later. Each node has a subscriber of its own; per node: what it published
// (and how much of that during the outage), what the other node's subscriber got from
// it, and what the library said about it: the publisher's unsent count and backplane
// events, the receiver's lost count (gaps), as far as the library exposes them.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { join } from 'node:path'

import { delay, executable, freePort, HOST, root, spawnNode, track } from '../lib.mjs'

export const name = 'nats-outage'
export const title = 'nats-server killed while two nodes publish'

const SETTINGS = {
  long: { rate: 200, publishMs: 15_000, killAtMs: 5_000, outageMs: 5_000, drainMs: 5_000 },
  quick: { rate: 200, publishMs: 6_000, killAtMs: 1_500, outageMs: 3_000, drainMs: 2_000 },
}
const NODE = join(root, 'attack', 'servers', 'pubsub-node.mjs')

export async function run({ quick, targets }) {
  if (!targets.includes('tether')) return []
  const settings = quick ? SETTINGS.quick : SETTINGS.long
  const variant = `${settings.rate} msg/s per node for ${settings.publishMs / 1000} s, nats-server down ${settings.outageMs / 1000} s`
  const broker = await startNats()
  const nodes = []
  try {
    for (const nodeName of ['A', 'B']) {
      const node = spawnNode(NODE, [nodeName, 'nats', broker.url], { expose: false })
      const ready = await node.control.event((e) => e.ready !== undefined || e.fatal !== undefined, 15_000)
      if (!ready || ready.fatal) throw new Error(`node ${nodeName}: ${ready?.fatal ?? node.stderr()}`)
      nodes.push({ name: nodeName, ...node })
    }
    const started = performance.now()
    const publishing = nodes.map((node) => node.control.command('publish', { rate: settings.rate, durationMs: settings.publishMs }, settings.publishMs + 30_000))
    await delay(settings.killAtMs)
    const atKill = await Promise.all(nodes.map((node) => node.control.command('stats')))
    await broker.stop()
    const killedAt = performance.now() - started
    await delay(settings.outageMs)
    const beforeRestart = await Promise.all(nodes.map((node) => node.control.command('stats')))
    await broker.start()
    const restartedAt = performance.now() - started
    const published = await Promise.all(publishing)
    await delay(settings.drainMs)
    const final = await Promise.all(nodes.map((node) => node.control.command('stats')))
    return nodes.map((node, i) => {
      const peer = 1 - i
      const stats = final[i]
      const peerStats = final[peer]
      const total = published[i]?.published ?? stats?.published
      const duringOutage = (beforeRestart[i]?.published ?? NaN) - (atKill[i]?.published ?? NaN)
      const gotByPeer = peerStats?.received?.[node.name]?.distinct ?? 0
      const missing = total - gotByPeer
      const unsent = stats?.topicStats?.unsent ?? stats?.backplaneCounts?.unsent
      const peerLost = peerStats?.topicStats?.lost ?? peerStats?.backplaneCounts?.lost
      const events = stats?.events ?? {}
      const eventText = Object.keys(events).length ? Object.entries(events).map(([type, n]) => `${type} ${n}`).join(', ') : 'no backplane event'
      return {
        attack: name,
        variant,
        server: `tether node ${node.name}`,
        attackerBytes: undefined,
        outcome: `published ${total} (${duringOutage} while nats was down); node ${nodes[peer].name}'s subscriber got ${gotByPeer}, ${missing} missing; this node reported unsent ${unsent ?? 'n/a'}, ${eventText}; node ${nodes[peer].name} reported lost ${peerLost ?? 'n/a'}`,
        alive: node.child.exitCode === null,
        measures: {
          published: total,
          publishedDuringOutage: duringOutage,
          receivedByPeer: gotByPeer,
          missingAtPeer: missing,
          unsent,
          peerLost,
          events,
          eventSamples: stats?.eventSamples,
          topicStats: stats?.topicStats,
          backplaneCounts: stats?.backplaneCounts,
          receivedFrom: stats?.received,
          threw: published[i]?.threw,
          threwMessage: published[i]?.threwMessage,
          killedAtMs: Math.round(killedAt),
          restartedAtMs: Math.round(restartedAt),
        },
      }
    })
  } finally {
    for (const node of nodes) node.child.kill('SIGKILL')
    await broker.stop()
  }
}

/** nats-server on a free loopback port; stop() kills it, start() brings it back on the same port. */
async function startNats() {
  const port = await freePort()
  const command = executable('nats-server')
  let child
  const broker = {
    url: `nats://${HOST}:${port}`,
    async start() {
      child = track(spawn(command, ['-a', HOST, '-p', String(port)], { stdio: 'ignore' }))
      for (let i = 0; i < 200; i++) {
        if (await accepts(port)) return
        await delay(50)
      }
      throw new Error(`nats-server did not listen on ${port}`)
    },
    async stop() {
      const running = child
      child = undefined
      if (!running || running.exitCode !== null || running.signalCode !== null) return
      const exited = new Promise((resolve) => running.once('exit', resolve))
      running.kill('SIGKILL')
      await exited
    },
  }
  await broker.start()
  return broker
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST)
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
  })
}
