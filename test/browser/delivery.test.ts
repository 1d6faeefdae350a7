/**
 * tether/client in a real browser (Debian's chromium via playwright-core):
 * a page of `tether serve` loads the client from /js/client/index.js, with
 * the browser's own WebSocket, through nginx in front of two nodes over
 * Redis Streams. The node the page is connected to is killed (SIGKILL)
 * while messages are published: the page reconnects through nginx to the
 * other node and ends with every message once, in order.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { TetherClient } from '../../src/client/index.js'
import { WebSocket } from '../../src/index.js'
import { launchChromium } from '../helpers/browser.js'
import { startBroker, startNginx } from '../helpers/brokers.js'
import { type ServeProcess, startServe } from '../helpers/cli.js'
import { HOST, delay } from '../helpers/net.js'

let browser: Browser
const stops: Array<() => Promise<unknown> | unknown> = []
before(async () => {
  browser = await launchChromium()
})
after(async () => {
  for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => {})
  await browser?.close()
})

async function sessionsOf(node: ServeProcess): Promise<number> {
  const health = (await (await fetch(`${node.url}/health`)).json()) as { apps: { delivery: { sessions: number } } }
  return health.apps.delivery.sessions
}

describe('tether/client in chromium', { timeout: 120_000 }, () => {
  test('a page survives the kill of its node behind nginx without losing or repeating a message', async () => {
    const broker = await startBroker('redis', { persist: true })
    stops.push(() => broker.stop())
    const nodes: ServeProcess[] = []
    for (let i = 0; i < 2; i++) {
      // Behind nginx the Host header has no port, so the page's origin is allowed by name.
      const node = await startServe(['--redis', broker.url, '--history', 'room*', '--history-size', '1000', '--allow-origin', '*'])
      stops.push(() => node.stop('SIGKILL'))
      nodes.push(node)
    }
    const nginx = await startNginx({ upstreamPorts: nodes.map((node) => node.port) })
    stops.push(() => nginx.stop())
    const site = `http://${HOST}:${nginx.port}`

    const context = await browser.newContext()
    stops.push(() => context.close())
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (error) => errors.push(error.message))
    await page.goto(`${site}/`)
    // A minimal use of the client, as a page would write it.
    await page.evaluate(async () => {
      const { TetherClient: Client } = await import('/js/client/index.js' as string)
      const client = new Client(`ws://${(globalThis as unknown as { location: { host: string } }).location.host}/v1`, { backoff: { initial: 100, max: 1000 } })
      const state = { received: [] as string[], offsets: [] as number[], gaps: 0, states: [] as string[], client }
      client.on('state', (change: { state: string }) => state.states.push(change.state))
      const subscription = client.subscribe('room1')
      subscription.on('message', (data: string, info: { position: { offset: number } }) => {
        state.received.push(data)
        state.offsets.push(info.position.offset)
      })
      subscription.on('gap', () => state.gaps++)
      ;(globalThis as unknown as { tether: typeof state }).tether = state
      await new Promise<void>((resolve) => subscription.once('subscribed', () => resolve()))
    })
    // The node the page landed on.
    const counts = await Promise.all(nodes.map(sessionsOf))
    const victim = counts.indexOf(1)
    assert.ok(victim !== -1 && counts.reduce((a, b) => a + b) === 1, `sessions per node: ${counts}`)

    const publisher = new TetherClient(`ws://${HOST}:${nginx.port}/v1`, { WebSocket, backoff: { initial: 50, max: 500 } })
    stops.push(() => publisher.close())
    const sent: string[] = []
    let publishing = true
    const acked: Array<Promise<unknown>> = []
    const loop = (async () => {
      for (let n = 1; publishing; n++) {
        sent.push(`m${n}`)
        acked.push(publisher.publish('room1', `m${n}`))
        await delay(25)
      }
    })()
    const receivedCount = () => page.evaluate(() => (globalThis as unknown as { tether: { received: string[] } }).tether.received.length)
    for (let i = 0; i < 200 && (await receivedCount()) <= 20; i++) await delay(50)
    assert.ok((await receivedCount()) > 20, 'the page receives before the kill')
    nodes[victim]!.proc.kill('SIGKILL')
    await delay(2_000)
    publishing = false
    await loop
    await Promise.all(acked)
    const final = await (async () => {
      for (let i = 0; i < 200; i++) {
        const state = (await page.evaluate(() => {
          const { received, offsets, gaps, states, client } = (globalThis as unknown as { tether: { received: string[]; offsets: number[]; gaps: number; states: string[]; client: { stats: { reconnects: number } } } }).tether
          return { received, offsets, gaps, states, reconnects: client.stats.reconnects }
        })) as { received: string[]; offsets: number[]; gaps: number; states: string[]; reconnects: number }
        if (state.received.length >= sent.length) return state
        await delay(100)
      }
      assert.fail('the page did not catch up')
    })()
    const missing = sent.filter((message) => !final.received.includes(message))
    const repeated = final.received.filter((message, i) => final.received.indexOf(message) !== i)
    const disorder = final.received.map((message, i) => `${message}@${final.offsets[i]}`).filter((_, i) => final.received[i] !== sent[i])
    assert.deepEqual(
      final.received,
      sent,
      `every message once, in order (missing ${missing.join(',') || 'none'}; repeated ${repeated.join(',') || 'none'}; out of place, with offsets: ${disorder.slice(0, 10).join(' ') || 'none'}; page errors ${errors.join('; ') || 'none'})`,
    )
    assert.deepEqual(final.offsets, sent.map((_, i) => i + 1))
    assert.equal(final.gaps, 0)
    assert.ok(final.reconnects >= 1, 'the page reconnected')
    assert.ok(final.states.includes('reconnecting'))
    assert.deepEqual(errors, [])
    console.log(`# chromium: ${sent.length} messages, ${final.reconnects} reconnect(s), states ${final.states.join(' > ')}`)
  })
})
