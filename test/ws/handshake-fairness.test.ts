/**
 * Handshake fairness (issue 13, part 2): slow or stalled request heads from
 * some addresses cannot keep other clients out. The per-address share,
 * displacement when the pool is full, the shortened head timeout under
 * pressure, trusted proxies, the counters, the Node-HTTP path of port mode,
 * and what applies (and does not) with `{ server }`.
 *
 * Other client addresses are other loopback addresses (127.0.0.2, ...), as
 * Linux routes all of 127/8 to lo. Waits are on outcomes; the one fixed delay
 * lets slow heads pass their grace (a tenth of `handshakeTimeout` here).
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocketServer } from '../../src/index.js'
import { HOST, RawPeer, closeServer, delay, kill, opened, selfSignedCertificate, serverPool, stopWss, until, waitFor } from '../helpers/net.js'

const server = serverPool()

/** handshakeTimeout in these tests: long enough never to fire unless a test wants it; its tenth (the grace) is short. */
const TIMEOUT = 5_000
/** More than the grace (TIMEOUT / 10). */
const PAST_GRACE = 800

/** A client that starts its request head and never finishes it (slow loris). */
async function slowPeer(port: number, from: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(port, from)
  peer.write('GET / HTTP/1.1\r\nHost: x\r\n')
  return peer
}

async function slowPeers(port: number, count: number, from: (i: number) => string): Promise<RawPeer[]> {
  const peers: RawPeer[] = []
  for (let i = 0; i < count; i++) peers.push(await slowPeer(port, from(i)))
  return peers
}

function destroyAll(peers: RawPeer[]): void {
  for (const peer of peers) peer.destroy()
}

async function refusedStatus(url: string, localAddress?: string): Promise<number> {
  const ws = new WsClient(url, { localAddress })
  ws.on('error', () => {})
  const [, response] = await waitFor<[unknown, http.IncomingMessage]>(ws, 'unexpected-response')
  ws.terminate()
  return response.statusCode!
}

describe('per-address share of the pending-handshake pool (port mode)', () => {
  test('issue 13, scaled down: slow heads from one address filling the pool do not keep real clients out', async () => {
    // Reported: 3,000 slow sockets from one address against the defaults; 15 of 24 real clients got 503.
    const { wss, url, port } = await server({ maxPendingHandshakes: 100, maxPendingPerAddress: 8, handshakeTimeout: TIMEOUT })
    const slow = await Promise.all(Array.from({ length: 300 }, () => slowPeer(port, '127.0.0.2')))
    const real = await Promise.all(Array.from({ length: 10 }, (_, i) => opened(new WsClient(url, { localAddress: `127.0.0.${3 + (i % 3)}` }))))
    assert.equal(real.length, 10)
    assert.ok(wss.load.pendingHandshakes <= 100)
    const stats = wss.limitStats
    assert.ok(stats.handshakesDisplaced + stats.addressShareDisplaced > 0, 'slow heads made room')
    kill(...real)
    destroyAll(slow)
  })

  test('an address over maxPendingPerAddress displaces its own oldest slow head (408); a fast client behind it and others get in', async () => {
    const { wss, port, url } = await server({ maxPendingPerAddress: 3, handshakeTimeout: TIMEOUT })
    const slow = await slowPeers(port, 3, () => '127.0.0.2')
    await until(() => wss.load.pendingHandshakes === 3)
    await delay(PAST_GRACE)
    // A fourth slow head from the same address takes the place of that address's oldest.
    slow.push(await slowPeer(port, '127.0.0.2'))
    assert.match(await slow[0]!.readToEnd(), /^HTTP\/1\.1 408 Request Timeout/)
    assert.equal(wss.limitStats.addressShareDisplaced, 1)
    // A fast client behind the same address (a shared NAT) gets in, displacing the next oldest slow one.
    const nat = await opened(new WsClient(url, { localAddress: '127.0.0.2' }))
    assert.match(await slow[1]!.readToEnd(), /^HTTP\/1\.1 408/)
    // A client from elsewhere is not affected at all.
    const other = await opened(new WsClient(url, { localAddress: '127.0.0.3' }))
    const stats = wss.limitStats
    assert.deepEqual(
      [stats.addressShareDisplaced, stats.handshakesDisplaced, stats.tooManyPending, stats.handshakeTimeouts],
      [2, 0, 0, 0],
    )
    assert.ok(!slow[2]!.ended && !slow[3]!.ended, 'the newer slow heads are still waiting')
    assert.equal(wss.load.pendingHandshakes, 2)
    kill(nat, other)
    destroyAll(slow)
  })

  test('a burst of fast, complete requests from one address (an untrusted proxy) is neither refused nor displaced', async () => {
    const { wss, url } = await server({ maxPendingPerAddress: 2 })
    const clients = await Promise.all(Array.from({ length: 60 }, () => opened(new WsClient(url))))
    const stats = wss.limitStats
    assert.deepEqual([stats.addressShareDisplaced, stats.handshakesDisplaced, stats.tooManyPending], [0, 0, 0])
    kill(...clients)
  })

  test('trustedProxies (addresses or CIDR ranges) are exempt from the share; other addresses are not', async () => {
    const { wss, port } = await server({ maxPendingPerAddress: 2, trustedProxies: ['::1', '127.0.0.0/31'], handshakeTimeout: TIMEOUT })
    const proxied = await slowPeers(port, 3, () => '127.0.0.1')
    const direct = await slowPeers(port, 2, () => '127.0.0.2')
    await until(() => wss.load.pendingHandshakes === 5)
    await delay(PAST_GRACE)
    proxied.push(await slowPeer(port, '127.0.0.1'))
    direct.push(await slowPeer(port, '127.0.0.2'))
    assert.match(await direct[0]!.readToEnd(), /^HTTP\/1\.1 408/)
    assert.equal(wss.limitStats.addressShareDisplaced, 1)
    assert.ok(proxied.every((peer) => !peer.ended), 'nothing from the trusted proxy was displaced')
    assert.equal(wss.load.pendingHandshakes, 6)
    destroyAll([...proxied, ...direct])
  })

  test('trustedProxies must be addresses or CIDR ranges', () => {
    for (const bad of [['localhost'], ['10.0.0.0/33'], ['10.0.0.0/'], '127.0.0.1']) {
      assert.throws(() => new WebSocketServer({ noServer: true, trustedProxies: bad as string[] }), TypeError)
    }
    assert.throws(() => new WebSocketServer({ noServer: true, maxPendingPerAddress: -1 }), /maxPendingPerAddress/)
  })
})

describe('a full pending-handshake pool (port mode)', () => {
  test('a newcomer displaces the oldest connection still sending its head (408) instead of being refused', async () => {
    // A full pool is under pressure (head timeout 20 s / 4): long enough for the test; the grace is 1 s.
    const { wss, port, url } = await server({ maxPendingHandshakes: 4, maxPendingPerAddress: 0, handshakeTimeout: 20_000 })
    const slow = await slowPeers(port, 4, (i) => `127.0.0.${i + 2}`)
    await until(() => wss.load.pendingHandshakes === 4)
    await delay(1_300)
    const first = await opened(new WsClient(url, { localAddress: '127.0.0.9' }))
    assert.match(await slow[0]!.readToEnd(), /^HTTP\/1\.1 408/)
    // The pool has room again once the first is open: the next one displaces nobody.
    const second = await opened(new WsClient(url, { localAddress: '127.0.0.9' }))
    assert.ok(slow.slice(1).every((peer) => !peer.ended), 'the newer slow heads are still waiting')
    const stats = wss.limitStats
    assert.deepEqual([stats.handshakesDisplaced, stats.addressShareDisplaced, stats.tooManyPending], [1, 0, 0])
    kill(first, second)
    destroyAll(slow)
  })

  test('connections whose upgrade is being decided are never displaced: a newcomer then gets 503', async () => {
    const decisions: Array<(ok: boolean) => void> = []
    const { wss, url } = await server({
      maxPendingHandshakes: 2,
      handshakeTimeout: TIMEOUT,
      verifyClient: (_info: unknown, done: (ok: boolean) => void) => void decisions.push(done),
    })
    const held = [new WsClient(url), new WsClient(url)]
    await until(() => decisions.length === 2)
    await delay(PAST_GRACE)
    assert.equal(await refusedStatus(url), 503)
    const stats = wss.limitStats
    assert.deepEqual([stats.tooManyPending, stats.handshakesDisplaced], [1, 0])
    for (const done of decisions) done(true)
    await Promise.all(held.map((ws) => opened(ws)))
    assert.equal(wss.load.pendingHandshakes, 0)
    kill(...held)
  })

  test('under pressure (half the pool or more pending) the head timeout is a quarter of handshakeTimeout', async () => {
    // 5 of 8 pending: pressure. The two oldest time out at 2 s; then 3 of 8 remain, no pressure, and
    // the rest would wait the full 8 s.
    const { wss, port } = await server({ maxPendingHandshakes: 8, maxPendingPerAddress: 0, handshakeTimeout: 8_000 })
    const slow = await slowPeers(port, 5, () => '127.0.0.2')
    assert.match(await slow[0]!.readToEnd(), /^HTTP\/1\.1 408 Request Timeout/)
    assert.match(await slow[1]!.readToEnd(), /^HTTP\/1\.1 408 Request Timeout/)
    await delay(200)
    assert.ok(slow.slice(2).every((peer) => !peer.ended), 'below half the pool, the full timeout applies')
    const stats = wss.limitStats
    assert.deepEqual([stats.handshakeTimeouts, stats.pressureTimeouts, stats.handshakesDisplaced], [2, 2, 0])
    assert.equal(wss.load.pendingHandshakes, 3)
    destroyAll(slow)
  })
})

describe('port mode over Node\'s HTTP server (useNodeHttp, tls)', () => {
  test('the share and displacement apply to its connections; a plain request and an upgrade give their place back', async () => {
    const { wss, port, url } = await server({ useNodeHttp: true, maxPendingPerAddress: 2, handshakeTimeout: TIMEOUT })
    const slow = await slowPeers(port, 2, () => '127.0.0.2')
    await until(() => wss.load.pendingHandshakes === 2)
    await delay(PAST_GRACE)
    slow.push(await slowPeer(port, '127.0.0.2'))
    assert.match(await slow[0]!.readToEnd(), /^HTTP\/1\.1 408/)
    assert.equal(wss.limitStats.addressShareDisplaced, 1)
    const ws = await opened(new WsClient(url, { localAddress: '127.0.0.3' }))
    const plain = await RawPeer.connect(port, '127.0.0.3')
    plain.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.match(await plain.readToEnd(), /^HTTP\/1\.1 426/)
    await until(() => wss.load.pendingHandshakes === 2, undefined, 'only the two slow heads pending')
    destroyAll(slow)
    await until(() => wss.load.pendingHandshakes === 0, undefined, 'closed sockets give their place back')
    kill(ws)
  })

  test('over TLS, an upgraded connection gives its place back (the TLSSocket is traced to its TCP socket)', async () => {
    const { key, cert } = selfSignedCertificate()
    const { wss, port } = await server({ tls: { key, cert }, maxPendingPerAddress: 1 })
    const clients = await Promise.all(
      Array.from({ length: 3 }, () => opened(new WsClient(`wss://${HOST}:${port}`, { rejectUnauthorized: false }))),
    )
    await until(() => wss.load.pendingHandshakes === 0)
    assert.equal(wss.load.connections, 3)
    kill(...clients)
  })
})

describe('{ server } and noServer: the application\'s HTTP server reads the request', () => {
  test('slow heads are its server\'s to bound; tether counts complete upgrades only, and never displaces them', async () => {
    // What bounds slow heads here: Node's own headersTimeout (checked every connectionsCheckingInterval).
    const httpServer = http.createServer({ headersTimeout: 500, requestTimeout: 500, connectionsCheckingInterval: 100 })
    const decisions: Array<(ok: boolean) => void> = []
    const wss = new WebSocketServer({
      server: httpServer,
      maxPendingHandshakes: 2,
      maxPendingPerAddress: 1,
      handshakeTimeout: 100,
      verifyClient: (_info: unknown, done: (ok: boolean) => void) => void decisions.push(done),
    })
    after(async () => {
      await stopWss(wss).catch(() => {})
      await closeServer(httpServer)
    })
    httpServer.listen(0, HOST)
    await waitFor(httpServer, 'listening')
    const port = (httpServer.address() as AddressInfo).port
    const url = `ws://${HOST}:${port}`
    const slow = await slowPeers(port, 3, () => '127.0.0.2')
    await delay(50)
    assert.equal(wss.load.pendingHandshakes, 0, 'tether does not see heads being read')
    // Two complete upgrades from one address: the share does not apply to them; the pool still does.
    const held = [new WsClient(url), new WsClient(url)]
    await until(() => decisions.length === 2)
    assert.equal(wss.load.pendingHandshakes, 2)
    assert.equal(await refusedStatus(url), 503)
    // The slow heads end by Node's headersTimeout (its own 408), not by tether's options.
    for (const peer of slow) assert.match(await peer.readToEnd(), /^HTTP\/1\.1 408/)
    const stats = wss.limitStats
    assert.deepEqual(
      [stats.tooManyPending, stats.handshakesDisplaced, stats.addressShareDisplaced, stats.handshakeTimeouts],
      [1, 0, 0, 0],
    )
    for (const done of decisions) done(true)
    await Promise.all(held.map((ws) => opened(ws)))
    kill(...held)
  })
})
