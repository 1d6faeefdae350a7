/**
 * What an outsider found in `tether serve` after issue 14's first round, each
 * as a regression test over `createHub` on loopback: rooms that were never
 * freed (the process ran out of memory), one address taking every connection,
 * forged events from another node reaching chat clients, chat spoofing with
 * tokens, a long refresh token relayed to everyone, publish limits per
 * connection instead of per client, pipelined requests holding the event
 * loop, and a Host header that a rebinding page controls.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import { WebSocket as WsClient } from 'ws'
import { type App, type Hub, type HubConfig, createHub } from '../../src/hub/index.js'
import { WebSocketServer } from '../../src/index.js'
import { MemoryBroker } from '../../src/pubsub/index.js'
import { HOST, Inbox, closed, delay, opened, until } from '../helpers/net.js'

const SECRET = 'a test secret that is long enough for HS256'
const hubs: Hub[] = []
const others: WebSocketServer[] = []
after(async () => {
  for (const hub of hubs) await hub.close()
  for (const wss of others) await new Promise((resolve) => wss.close(resolve))
})

async function start(config: Partial<HubConfig> = {}, apps?: App[]): Promise<Hub> {
  const hub = await createHub({ port: 0, log: () => {}, ...config }, apps)
  hubs.push(hub)
  return hub
}
const ws = (url: string) => url.replace(/^http/, 'ws')
const token = (claims: Record<string, unknown>, expiresIn = '1h') => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })
  if (expiresIn !== 'never') jwt.setExpirationTime(expiresIn)
  return jwt.sign(new TextEncoder().encode(SECRET))
}
function connect(url: string, protocols: string[] = [], options: ConstructorParameters<typeof WsClient>[2] = {}): Promise<WsClient | number> {
  const socket = new WsClient(url, protocols, options)
  socket.on('error', () => {})
  return new Promise((resolve) => {
    socket.once('open', () => resolve(socket))
    socket.once('unexpected-response', (_request, response) => {
      socket.terminate()
      resolve(response.statusCode ?? 0)
    })
  })
}
const json = (inbox: Inbox) => inbox.messages.map((m) => JSON.parse(String(m.data)))
type Health = { apps: { chat: { rooms: number; users: number; invalidFromNodes: number } }; stats: { remoteRefused: number }; limits: { tooManyFromAddress: number } }
const health = async (hub: Hub): Promise<Health> => (await (await fetch(`${hub.url}/health`)).json()) as Health

describe('tether serve, second round (outsider findings)', () => {
  test('a room lives while it has users here: joining and leaving 300 rooms leaves none behind; /health names none', async () => {
    const hub = await start({ publish: { limit: { messagesPerSecond: 10_000, burstMessages: 10_000 } as never, topics: [] } })
    const socket = await opened(new WsClient(`${ws(hub.url)}/chat/ws`))
    const inbox = new Inbox(socket)
    for (let i = 0; i < 300; i++) {
      socket.send(JSON.stringify({ type: 'join', room: `r${i}`, nick: 'ada' }))
      socket.send(JSON.stringify({ type: 'say', text: 'x'.repeat(1000) }))
      socket.send(JSON.stringify({ type: 'leave' }))
    }
    await until(() => json(inbox).filter((m) => m.type === 'left').length === 300)
    const { chat } = (await health(hub)).apps
    assert.deepEqual([chat.rooms, chat.users], [0, 0])
    const body = await (await fetch(`${hub.url}/health`)).text()
    assert.doesNotMatch(body, /"r1\d*"/, 'no room names in /health')
    socket.terminate()
  })

  test('one address holds at most maxConnectionsPerAddress WebSockets (503, counted); trusted proxies are exempt', async () => {
    const hub = await start({ maxConnectionsPerAddress: 3 })
    const sockets = [] as WsClient[]
    for (let i = 0; i < 3; i++) sockets.push((await connect(`${ws(hub.url)}/echo`)) as WsClient)
    assert.equal(await connect(`${ws(hub.url)}/echo`), 503)
    assert.ok(((await connect(`${ws(hub.url)}/echo`, [], { localAddress: '127.0.0.2' })) as WsClient).terminate() === undefined, 'another address gets in')
    assert.ok((await health(hub)).limits.tooManyFromAddress >= 1)
    sockets.pop()!.terminate()
    await until(() => hub.wss.clients.size === 2)
    const again = await connect(`${ws(hub.url)}/echo`)
    assert.ok(again instanceof WsClient, 'a slot freed is a slot again')
    for (const socket of [...sockets, again]) socket.terminate()
    const proxied = await start({ maxConnectionsPerAddress: 1, trustedProxies: ['127.0.0.1'] })
    const a = await connect(`${ws(proxied.url)}/echo`)
    const b = await connect(`${ws(proxied.url)}/echo`)
    assert.ok(a instanceof WsClient && b instanceof WsClient)
    a.terminate()
    b.terminate()
  })

  test('another node (or a forged broker message) cannot put anything unvalidated before chat clients', async () => {
    const broker = new MemoryBroker()
    const hub = await start({ backplane: { kind: 'custom', backplane: broker.backplane() } })
    // The forger: another "node" on the same broker, publishing raw bytes on the hub's topics.
    const forger = new WebSocketServer({ noServer: true, topics: { backplane: broker.backplane() } })
    others.push(forger)
    const ada = await opened(new WsClient(`${ws(hub.url)}/chat/ws`))
    const inbox = new Inbox(ada)
    ada.send(JSON.stringify({ type: 'join', room: 'lobby', nick: 'ada' }))
    await until(() => json(inbox).some((m) => m.type === 'join'))
    const forged = { type: 'message', room: 'lobby', nick: 'admin'.repeat(40), text: 'x'.repeat(5000), at: 1, node: 'forged' }
    forger.publish('app:chat:lobby', 'this is not json')
    forger.publish('app:chat:lobby', JSON.stringify({ type: 'here', nicks: 12345 }))
    forger.publish('app:chat:lobby', JSON.stringify(forged))
    forger.publish('app:chat:lobby', JSON.stringify({ ...forged, nick: 'eve', text: 'hi', room: 'other' }))
    forger.publish('local:chat:lobby', JSON.stringify({ ...forged, nick: 'eve', text: 'straight to clients?' }))
    forger.publish('relay:big', Buffer.alloc(2 * 1024 * 1024))
    // Issue 17: a room's messages are its history topic, which only the chat app writes: a message event from
    // another node, however well formed, is refused; presence from another node is what crosses.
    forger.publish('app:chat:lobby', JSON.stringify({ type: 'message', room: 'lobby', nick: 'bob', text: 'a real message from another node', at: 2, node: 'node-b' }))
    const valid = { type: 'join', room: 'lobby', nick: 'bob', at: 2, node: 'node-b' }
    forger.publish('app:chat:lobby', JSON.stringify(valid))
    await until(() => json(inbox).some((m) => m.nick === 'bob'))
    await delay(100)
    assert.deepEqual(json(inbox).map((m) => m.type), ['welcome', 'join', 'join'], 'only the valid event reached the client')
    assert.deepEqual(json(inbox)[2], valid)
    const reader = await opened(new WsClient(`${ws(hub.url)}/v1`))
    const readerInbox = new Inbox(reader)
    reader.send(JSON.stringify({ type: 'subscribe', id: 1, topic: '$chat:lobby', recent: 100 }))
    await until(() => readerInbox.messages.length > 0)
    assert.deepEqual(json(readerInbox).map((m) => [m.type, m.recovered]), [['subscribed', 0]], 'nothing in the room\'s history')
    reader.terminate()
    const stats = await health(hub)
    assert.equal(stats.apps.chat.invalidFromNodes, 5)
    assert.equal(stats.stats.remoteRefused, 2, 'the local: topic and the oversized relay message were refused at the backplane')
    ada.terminate()
  })

  test('nicknames: unique in a room; with a token, the subject, which must be a valid nickname', async () => {
    const open = await start()
    const first = await opened(new WsClient(`${ws(open.url)}/chat/ws`))
    const second = await opened(new WsClient(`${ws(open.url)}/chat/ws`))
    const [firstInbox, secondInbox] = [new Inbox(first), new Inbox(second)]
    first.send(JSON.stringify({ type: 'join', room: 'r', nick: 'alice' }))
    await until(() => json(firstInbox).some((m) => m.type === 'welcome'))
    second.send(JSON.stringify({ type: 'join', room: 'r', nick: 'alice' }))
    second.send(JSON.stringify({ type: 'join', room: 'r', nick: 'al\u202Eice' }))
    await until(() => json(secondInbox).length === 2)
    assert.match(json(secondInbox)[0].message, /alice is taken/)
    assert.match(json(secondInbox)[1].message, /invisible/)
    first.terminate()
    second.terminate()

    const hub = await start({ auth: { kind: 'jwt', secret: SECRET } })
    const grant = { tether: { subscribe: ['chat:*'], publish: ['chat:*'] } }
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [grant, /no subject/],
      [{ ...grant, sub: 'administrator@example.com' }, /not a valid nickname/],
      [{ ...grant, sub: 'ad\u0000min' }, /not a valid nickname/],
      [{ ...grant, sub: '  ' }, /not a valid nickname/],
    ]
    for (const [claims, expected] of cases) {
      const socket = (await connect(`${ws(hub.url)}/chat/ws`, ['tether', `tether.bearer.${await token(claims)}`])) as WsClient
      const inbox = new Inbox(socket)
      socket.send(JSON.stringify({ type: 'join', room: 'r', nick: 'ada' }))
      await until(() => inbox.messages.length === 1)
      assert.match(json(inbox)[0].message, expected)
      socket.terminate()
    }
    assert.equal(await connect(`${ws(hub.url)}/chat/ws`, ['tether', `tether.bearer.${await token({ ...grant, sub: 'ada' }, 'never')}`]), 401, 'a token without exp is refused')
  })

  test('a tether.auth message is never relayed, however long its token; refreshes count against the limits', async () => {
    const hub = await start({ auth: { kind: 'jwt', secret: SECRET }, publish: { limit: { messagesPerSecond: 5, burstMessages: 5 } as never, topics: [] } })
    const claims = { sub: 'a', tether: { subscribe: ['t'], publish: ['t'] } }
    const reader = (await connect(`${ws(hub.url)}/topics/t`, ['tether', `tether.bearer.${await token({ ...claims, sub: 'r' })}`])) as WsClient
    const inbox = new Inbox(reader)
    const writer = (await connect(`${ws(hub.url)}/topics/t`, ['tether', `tether.bearer.${await token(claims)}`])) as WsClient
    const gone = closed(writer)
    writer.send(JSON.stringify({ type: 'tether.auth', token: 'x'.repeat(20_000) }))
    assert.deepEqual(await gone, [1008, 'invalid token'])
    await delay(100)
    assert.equal(inbox.messages.length, 0, 'the reader saw nothing')
    const flooding = (await connect(`${ws(hub.url)}/topics/t`, ['tether', `tether.bearer.${await token({ ...claims, sub: 'f' })}`])) as WsClient
    const floodGone = closed(flooding)
    const fresh = await token({ ...claims, sub: 'f' })
    for (let i = 0; i < 20; i++) flooding.send(JSON.stringify({ type: 'tether.auth', token: fresh }))
    assert.deepEqual(await floodGone, [1008, 'publish rate limit exceeded'])
    reader.terminate()
  })

  test('publish limits are per client too: three connections from one address share one more set of buckets (past it: dropped)', async () => {
    const hub = await start({ publish: { limit: { messagesPerSecond: 10, burstMessages: 10 } as never, topics: [] } })
    const subscriber = await opened(new WsClient(`${ws(hub.url)}/topics/shared`))
    const inbox = new Inbox(subscriber)
    const publishers = await Promise.all([0, 1, 2].map(() => opened(new WsClient(`${ws(hub.url)}/topics/shared`))))
    for (let i = 0; i < 6; i++) for (const publisher of publishers) publisher.send(`m${i}`)
    await until(() => hub.stats.publishDropped >= 6)
    await delay(200)
    assert.ok(inbox.messages.length <= 10 + 1, `${inbox.messages.length} messages passed: the burst of one client, not of three`)
    assert.equal(inbox.messages.length + hub.stats.publishDropped, 18, 'each was published or counted as dropped')
    for (const socket of [subscriber, ...publishers]) assert.equal(socket.readyState, WsClient.OPEN, 'under its own limit, no connection is closed')
    for (const socket of [subscriber, ...publishers]) socket.terminate()
  })

  test('pipelined requests: a connection is closed after 100 of them', async () => {
    const hub = await start()
    const socket = net.connect(hub.port, HOST)
    await new Promise((resolve) => socket.once('connect', resolve))
    let answers = 0
    let buffered = ''
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1')
      const heads = buffered.split('HTTP/1.1 200').length - 1
      answers = heads
    })
    socket.write('GET /style.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(300))
    await new Promise((resolve) => socket.once('close', resolve))
    assert.equal(answers, 100)
  })

  test('listening on 127.0.0.1, the hub answers only to loopback names (DNS rebinding): 403 for another Host', async () => {
    const hub = await start()
    const status = (host: string, target = '/health') =>
      new Promise<number>((resolve) => {
        const socket = net.connect(hub.port, HOST)
        socket.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
        let answer = ''
        socket.on('data', (chunk) => (answer += chunk))
        socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1])))
      })
    assert.equal(await status(`127.0.0.1:${hub.port}`), 200)
    assert.equal(await status(`localhost:${hub.port}`), 200)
    assert.equal(await status(`evil.example:${hub.port}`), 403)
    // A request line in absolute form names its host, which wins over Host (second outsider round: it was not checked).
    assert.equal(await status(`127.0.0.1:${hub.port}`, `http://evil.example:${hub.port}/health`), 403)
    assert.equal(await status(`127.0.0.1:${hub.port}`, `http://127.0.0.1:${hub.port}/health`), 200)
    const rebinding = await connect(`${ws(hub.url)}/echo`, [], { headers: { Host: `evil.example:${hub.port}`, Origin: `http://evil.example:${hub.port}` } })
    assert.equal(rebinding, 403)
    const named = await start({ allowedHosts: ['hub.example'] })
    const allowed = await connect(`${ws(named.url)}/echo`, [], { headers: { Host: `hub.example:${named.port}` } })
    assert.ok(allowed instanceof WsClient)
    allowed.terminate()
  })
})
