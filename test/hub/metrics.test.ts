/**
 * Operating `tether serve` (issue 16): `/metrics` scraped from a real
 * `tether serve` process under traffic, every number checked against what
 * the test did; the metrics token and port; `/health/live` and
 * `/health/ready` (a backplane outage, and the drain at SIGTERM).
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { startBroker } from '../helpers/brokers.js'
import { type ServeProcess, startServe } from '../helpers/cli.js'
import { createMetrics } from '../../src/hub/index.js'
import { WebSocketServer } from '../../src/index.js'
import { HOST, Inbox, RawPeer, closed, delay, opened, until, upgradeRequest, waitFor } from '../helpers/net.js'

/** The samples of a Prometheus text exposition: `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const response = await fetch(`${url}/metrics`, { headers })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/)
  return parseMetrics(await response.text())
}

async function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WsClient(url, { headers })
  ws.on('error', () => {})
  const [, response] = await waitFor<[unknown, import('node:http').IncomingMessage]>(ws, 'unexpected-response')
  ws.terminate()
  return response.statusCode!
}

describe('GET /metrics on a real tether serve', () => {
  test('connections, handshakes, messages, bytes and deliveries match the traffic the test made', async () => {
    // Fresh numbers at every scrape: this test scrapes after each thing it does.
    const hub = await startServe(['--metrics-cache', '0'])
    try {
      const before = await scrape(hub.url)
      assert.equal(before.get('tether_up'), 1)
      assert.equal(before.get('tether_connections_total{endpoint="echo"}'), 0)
      // Three echo clients, four messages each; two relay clients on one topic, one publishing five.
      const echoes = await Promise.all([1, 2, 3].map(() => opened(new WsClient(`${hub.wsUrl}/echo`, { perMessageDeflate: false }))))
      const echoInboxes = echoes.map((ws) => new Inbox(ws))
      for (const ws of echoes) for (let i = 0; i < 4; i++) ws.send(`echo ${i}`)
      for (const inbox of echoInboxes) await inbox.next(4)
      const [publisher, listener] = await Promise.all([1, 2].map(() => opened(new WsClient(`${hub.wsUrl}/topics/news`, { perMessageDeflate: false }))))
      const inboxes = [new Inbox(publisher!), new Inbox(listener!)]
      for (let i = 0; i < 5; i++) publisher!.send(`news ${i}`)
      for (const inbox of inboxes) await inbox.next(5)
      // Three refusals: no such endpoint (the hub's authenticate hook: 404), a foreign origin (403), a foreign Host (403).
      assert.equal(await refusedStatus(`${hub.wsUrl}/nowhere`), 404)
      assert.equal(await refusedStatus(`${hub.wsUrl}/echo`, { Origin: 'https://elsewhere.example' }), 403)
      assert.equal(await refusedStatus(`${hub.wsUrl}/echo`, { Host: 'rebound.example' }), 403)

      const during = await scrape(hub.url)
      assert.equal(during.get('tether_connections_total{endpoint="echo"}'), 3)
      assert.equal(during.get('tether_connections_total{endpoint="relay"}'), 2)
      assert.equal(during.get('tether_connections_open{endpoint="echo"}'), 3)
      assert.equal(during.get('tether_connections_open{endpoint="relay"}'), 2)
      assert.equal(during.get('tether_connections_open{endpoint="chat"}'), 0)
      assert.equal(during.get('tether_handshakes_accepted_total'), 5)
      // Each under its own reason: a 404 and a foreign Host are not failed authentications (outsider finding 6).
      assert.equal(during.get('tether_handshakes_refused_total{reason="path"}'), 1)
      assert.equal(during.get('tether_handshakes_refused_total{reason="host"}'), 1)
      assert.equal(during.get('tether_handshakes_refused_total{reason="authenticate"}'), 0)
      assert.equal(during.get('tether_handshakes_refused_total{reason="origin"}'), 1)
      assert.equal(during.get('tether_limit_trips_total{limit="originRefused"}'), 1)
      assert.equal(during.get('tether_limit_trips_total{limit="authRefused"}'), 0)
      assert.equal(during.get('tether_messages_received_total'), 12 + 5)
      // Twelve echoes, and each of the five publishes delivered to both relay clients.
      assert.equal(during.get('tether_messages_sent_total'), 12 + 10)
      assert.equal(during.get('tether_deliveries_total'), 10)
      assert.ok(during.get('tether_publishes_total')! >= 5, 'the relay publishes (and the scores app its own)')
      assert.equal(during.get('tether_topics_active'), 1)
      // "echo N" and "news N" are 6 bytes: 12 bytes a frame from a client (masked), 8 from the server.
      assert.ok(during.get('tether_received_bytes_total')! >= 17 * 12, `${during.get('tether_received_bytes_total')} bytes received`)
      assert.ok(during.get('tether_sent_bytes_total')! >= 22 * 8, `${during.get('tether_sent_bytes_total')} bytes sent`)
      // No broker: kind "none" here as in /health and wss.metrics() (outsider finding 15: "memory" here, "none" there).
      assert.equal(during.get('tether_backplane_connected{kind="none"}'), 1)
      const health = (await (await fetch(`${hub.url}/health`)).json()) as { backplane: object }
      assert.deepEqual(health.backplane, { kind: 'none', state: 'none' })
      assert.equal(during.get('tether_slow_consumer_actions_total{policy="drop"}'), 0)
      assert.equal(during.get('tether_send_buffer_overflows_total{action="close"}'), 0)
      assert.ok(during.has('tether_memory_limit_bytes{budget="receive"}'))
      assert.ok(during.has('nodejs_eventloop_lag_seconds'), 'event-loop lag, from prom-client')

      for (const ws of [...echoes, publisher!, listener!]) {
        ws.close(1000)
        await closed(ws)
      }
      let after = await scrape(hub.url)
      for (let poll = 0; after.get('tether_connections_closed_total') !== 5 && poll < 50; poll++) after = await delay(20).then(() => scrape(hub.url))
      assert.equal(after.get('tether_connections_closed_total'), 5)
      assert.equal(after.get('tether_connections_open{endpoint="echo"}'), 0)
      assert.equal(after.get('tether_connections_total{endpoint="echo"}'), 3, 'totals stay')
      assert.ok(after.get('tether_received_bytes_total')! > during.get('tether_received_bytes_total')!, 'the close frames, and closed connections stay counted')
    } finally {
      await hub.stop()
    }
  })

  test('deflate memory with no connection open is the reuse pool, and says so (outsider finding 15)', async () => {
    // Fresh numbers at every scrape: this test scrapes after each thing it does.
    const hub = await startServe(['--metrics-cache', '0'])
    try {
      const ws = await opened(new WsClient(`${hub.wsUrl}/echo`, { perMessageDeflate: true }))
      const inbox = new Inbox(ws)
      ws.send('x'.repeat(4096))
      await inbox.one()
      ws.close(1000)
      await closed(ws)
      let metrics = await scrape(hub.url)
      for (let poll = 0; metrics.get('tether_connections_open{endpoint="echo"}') !== 0 && poll < 50; poll++) metrics = await delay(20).then(() => scrape(hub.url))
      const used = metrics.get('tether_memory_used_bytes{budget="deflate"}')!
      assert.ok(used > 0, 'its contexts are kept for the next connection')
      assert.equal(metrics.get('tether_deflate_pooled_bytes'), used, 'all of it is the pool')
    } finally {
      await hub.stop()
    }
  })

  test('a scrape is rendered at most once per --metrics-cache: scrapes within it get the same text (outsider finding 3)', async () => {
    // A window no test run outlasts, so "within" needs no timing.
    const hub = await startServe(['--metrics-cache', '3600'])
    try {
      const first = await (await fetch(`${hub.url}/metrics`)).text()
      const ws = await opened(new WsClient(`${hub.wsUrl}/echo`))
      ws.close()
      await closed(ws)
      const scrapes = await Promise.all(Array.from({ length: 20 }, async () => (await fetch(`${hub.url}/metrics`)).text()))
      for (const text of scrapes) assert.equal(text, first)
      assert.equal(parseMetrics(first).get('tether_connections_total{endpoint="echo"}'), 0)
    } finally {
      await hub.stop()
    }
  })

  test('the cache, by its clock: the same text within cacheMs, a fresh one after, and a failed rendering is not kept', async () => {
    let clock = 0
    let accepted = 0
    let failing = false
    const wss = new WebSocketServer({ noServer: true })
    const metrics = createMetrics(
      {
        server: () => {
          if (failing) throw new Error('no snapshot')
          const snapshot = wss.metrics()
          return { ...snapshot, handshakes: { ...snapshot.handshakes, accepted } }
        },
        openByEndpoint: () => ({}),
        acceptedByEndpoint: () => ({}),
        hub: () => ({ appErrors: 0, observerErrors: 0, publishNotAllowed: 0, publishDropped: 0, publishClosed: 0, tokensExpired: 0, tokensRefreshed: 0 }),
        backplaneKind: 'none',
        ready: () => true,
      },
      { cacheMs: 1000, now: () => clock },
    )
    const accepts = async (): Promise<number | undefined> => parseMetrics(await metrics.render()).get('tether_handshakes_accepted_total')
    assert.equal(await accepts(), 0)
    accepted = 5
    clock = 999
    assert.equal(await accepts(), 0, 'within the window: the same text')
    clock = 1000
    assert.equal(await accepts(), 5, 'after it: fresh')
    failing = true
    clock = 2000
    await assert.rejects(metrics.render())
    failing = false
    accepted = 7
    assert.equal(await accepts(), 7, 'a failure is not served again')
    wss.close()
  })

  test('--metrics-token: 401 without the bearer token; TETHER_METRICS_TOKEN works the same', async () => {
    const secret = 'a-metrics-token-of-some-length'
    for (const [args, env] of [[['--metrics-token', secret], {}], [[], { TETHER_METRICS_TOKEN: secret }]] as const) {
      const hub = await startServe([...args], 0, { env })
      try {
        const refused = await fetch(`${hub.url}/metrics`)
        assert.equal(refused.status, 401)
        assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="metrics"')
        assert.equal((await fetch(`${hub.url}/metrics`, { headers: { Authorization: 'Bearer wrong-token-of-some-length' } })).status, 401)
        const metrics = await scrape(hub.url, { Authorization: `Bearer ${secret}` })
        assert.equal(metrics.get('tether_up'), 1)
        // The scheme's name is case-insensitive (RFC 9110 §11.1).
        assert.equal((await scrape(hub.url, { Authorization: `bearer ${secret}` })).get('tether_up'), 1)
        assert.equal((await scrape(hub.url, { Authorization: `BEARER  ${secret}` })).get('tether_up'), 1)
        assert.equal((await fetch(`${hub.url}/health/live`)).status, 200, 'health needs no token')
      } finally {
        await hub.stop()
      }
    }
  })

  test('--metrics-port: /metrics and /health/* on their own port; the public one answers /metrics with 404; --no-metrics', async () => {
    const hub = await startServe(['--metrics-port', '0'])
    try {
      assert.ok(hub.metricsUrl, 'the start line names the metrics URL')
      assert.equal((await fetch(`${hub.url}/metrics`)).status, 404)
      assert.equal((await scrape(hub.metricsUrl!)).get('tether_up'), 1)
      assert.equal((await fetch(`${hub.metricsUrl}/health/ready`)).status, 200)
      assert.equal((await fetch(`${hub.metricsUrl}/chat`)).status, 404, 'no pages there')
      const post = await fetch(`${hub.metricsUrl}/metrics`, { method: 'POST' })
      assert.equal(post.status, 405)
      assert.equal(post.headers.get('allow'), 'GET, HEAD')
    } finally {
      await hub.stop()
    }
    const off = await startServe(['--no-metrics'])
    try {
      assert.equal((await fetch(`${off.url}/metrics`)).status, 404)
    } finally {
      await off.stop()
    }
  })
})

describe('/health/live and /health/ready', () => {
  test('ready with the backplane connected, 503 while it is down (live stays 200)', async () => {
    const broker = await startBroker('redis')
    let hub: ServeProcess | undefined
    try {
      hub = await startServe(['--metrics-cache', '0'], 0, { env: { TETHER_REDIS_URL: broker.url } })
      assert.equal((await fetch(`${hub.url}/health/ready`)).status, 200)
      assert.deepEqual(await (await fetch(`${hub.url}/health/live`)).json(), { status: 'live' })
      assert.equal((await scrape(hub.url)).get('tether_backplane_connected{kind="redis"}'), 1)
      await broker.stop()
      const ready = async (): Promise<number> => (await fetch(`${hub!.url}/health/ready`)).status
      let status = await ready()
      for (let poll = 0; status !== 503 && poll < 100; poll++) status = await delay(50).then(ready)
      assert.equal(status, 503)
      assert.deepEqual(await (await fetch(`${hub.url}/health/ready`)).json(), { status: 'not ready' })
      assert.equal((await fetch(`${hub.url}/health/live`)).status, 200)
      const metrics = await scrape(hub.url)
      assert.equal(metrics.get('tether_backplane_connected{kind="redis"}'), 0)
      assert.equal(metrics.get('tether_up'), 0)
      const health = (await (await fetch(`${hub.url}/health`)).json()) as { ready: boolean }
      assert.equal(health.ready, false)
    } finally {
      await hub?.stop()
      await broker.stop()
    }
  })

  test('SIGTERM: not ready while draining, clients get 1001, exit 0', async () => {
    const hub = await startServe(['--metrics-port', '0'])
    // A client that never answers the closing handshake keeps the drain going (up to 5 s).
    const silent = await RawPeer.connect(hub.port)
    silent.write(upgradeRequest({ path: '/echo', headers: { Host: `${HOST}:${hub.port}` } }))
    assert.match(await silent.readHead(), /^HTTP\/1.1 101/)
    const polite = await opened(new WsClient(`${hub.wsUrl}/echo`))
    const goodbye = closed(polite)
    const exited = hub.stop('SIGTERM')
    assert.deepEqual(await goodbye, [1001, 'server shutting down'])
    const ready = await fetch(`${hub.metricsUrl}/health/ready`)
    assert.equal(ready.status, 503, 'draining: take it out of the load balancer')
    assert.equal((await fetch(`${hub.metricsUrl}/health/live`)).status, 200)
    assert.equal(await exited, 0)
    silent.destroy()
    await until(() => hub.logs().some((line) => line.includes('"event":"hub.stopped"')))
  })

  test('SIGTERM without --metrics-port: the public port stops listening at once; a second SIGTERM exits 143 without waiting (outsider findings 4, 10)', async () => {
    const hub = await startServe()
    assert.equal((await fetch(`${hub.url}/health/live`)).status, 200)
    // A client that never answers the closing handshake keeps the drain going (up to 5 s).
    const silent = await RawPeer.connect(hub.port)
    silent.write(upgradeRequest({ path: '/echo', headers: { Host: `${HOST}:${hub.port}` } }))
    assert.match(await silent.readHead(), /^HTTP\/1.1 101/)
    hub.proc.kill('SIGTERM')
    await until(() => hub.logs().some((line) => line.includes('"event":"hub.stopping"')))
    // README: new connections are refused, so load balancers and reconnecting clients go elsewhere at once.
    const refused = await new Promise<boolean>((resolve) => {
      const probe = net.connect(hub.port, HOST)
      probe.once('connect', () => (probe.destroy(), resolve(false)))
      probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'))
    })
    assert.ok(refused, 'the public port no longer listens while draining')
    assert.equal(await hub.stop('SIGTERM'), 143, '128 + SIGTERM, as a shell reports a process a signal ended')
    assert.ok(!hub.logs().some((line) => line.includes('"event":"hub.stopped"')), 'it did not wait for the drain')
    assert.ok(hub.logs().some((line) => line.includes('SIGTERM again: exiting now')))
    silent.destroy()
  })

  test('--metrics-port: /health/live and /health/ready stay on the public port too, for load balancers that check the traffic port (README)', async () => {
    const hub = await startServe(['--metrics-port', '0'])
    try {
      for (const url of [hub.url, hub.metricsUrl!]) {
        assert.equal((await fetch(`${url}/health/ready`)).status, 200, url)
        assert.equal((await fetch(`${url}/health/live`)).status, 200, url)
      }
      assert.equal((await fetch(`${hub.url}/metrics`)).status, 404)
    } finally {
      await hub.stop()
    }
  })
})
