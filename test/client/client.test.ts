/**
 * tether/client against a scripted server (npm ws speaking tether.v1 by
 * hand): what the client does when the server repeats itself, skips, or
 * changes epoch, how it resends publishes, and how it backs off. A correct
 * tether server never sends a duplicate, so only a scripted one can show
 * that the client drops them.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { WebSocketServer as WsServer, type WebSocket as WsSocket } from 'ws'
import { type GapInfo, TetherClient } from '../../src/client/index.js'
import { type ClientMessage, type ServerMessage, parseClientMessage, serializeServerMessage } from '../../src/client/protocol.js'
import { WebSocket } from '../../src/index.js'
import { HOST, until, waitFor } from '../helpers/net.js'

const cleanups: Array<() => void> = []
after(() => {
  for (const cleanup of cleanups.reverse()) cleanup()
})

/** A server that records what clients send and lets the test answer. */
async function scripted(): Promise<{ url: string; sockets: WsSocket[]; received: ClientMessage[]; send(ws: WsSocket, message: ServerMessage): void; wss: WsServer }> {
  const wss = new WsServer({ host: HOST, port: 0, handleProtocols: (protocols) => (protocols.has('tether.v1') ? 'tether.v1' : false) })
  await waitFor(wss, 'listening')
  const sockets: WsSocket[] = []
  const received: ClientMessage[] = []
  wss.on('connection', (ws) => {
    sockets.push(ws)
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const message = parseClientMessage(new Uint8Array(data), isBinary)
      if (message.type !== 'invalid') received.push(message)
    })
  })
  cleanups.push(() => {
    for (const ws of wss.clients) ws.terminate()
    wss.close()
  })
  return {
    url: `ws://${HOST}:${(wss.address() as { port: number }).port}`,
    sockets,
    received,
    send: (ws, message) => ws.send(serializeServerMessage(message)),
    wss,
  }
}

function client(url: string, options: ConstructorParameters<typeof TetherClient>[1] = {}): TetherClient {
  const created = new TetherClient(url, { WebSocket, backoff: { initial: 10, max: 50 }, ...options })
  cleanups.push(() => created.close())
  return created
}

const bytes = (text: string) => new TextEncoder().encode(text)
const deliver = (offset: number, text: string, epoch = 'e1'): ServerMessage => ({ type: 'deliver', topic: 't', position: { epoch, offset }, data: bytes(text), binary: false })

describe('tether/client against a scripted server', () => {
  test('a repeated or older position is dropped as a duplicate; the application sees 1, 2, 3 once', async () => {
    const server = await scripted()
    const reader = client(server.url)
    const seen: string[] = []
    const subscription = reader.subscribe('t')
    subscription.on('message', (data) => seen.push(String(data)))
    await until(() => server.received.length === 1)
    const ws = server.sockets[0]!
    server.send(ws, { type: 'subscribed', id: (server.received[0] as { id: number }).id, topic: 't', position: { epoch: 'e1', offset: 0 }, recovered: 0 })
    for (const message of [deliver(1, 'a'), deliver(2, 'b'), deliver(1, 'a'), deliver(2, 'b'), deliver(3, 'c')]) server.send(ws, message)
    await until(() => seen.length === 3)
    await until(() => subscription.stats.duplicates === 2)
    assert.deepEqual(seen, ['a', 'b', 'c'])
    assert.deepEqual(subscription.position, { epoch: 'e1', offset: 3 })
  })

  test('after a reconnect it subscribes from the last position it delivered, and resends unacknowledged publishes with the same key', async () => {
    const server = await scripted()
    const reader = client(server.url)
    const subscription = reader.subscribe('t')
    const publishing = reader.publish('t', 'hello')
    await until(() => server.received.length === 2)
    const first = server.sockets[0]!
    const subscribe = server.received.find((message) => message.type === 'subscribe')!
    const publish = server.received.find((message) => message.type === 'publish') as Extract<ClientMessage, { type: 'publish' }>
    server.send(first, { type: 'subscribed', id: subscribe.id, topic: 't', position: { epoch: 'e1', offset: 4 }, recovered: 0 })
    server.send(first, deliver(5, 'x'))
    await until(() => subscription.position?.offset === 5)
    // The connection drops before the publish is acknowledged.
    first.terminate()
    await until(() => server.sockets.length === 2 && server.received.length === 4)
    const again = server.received.slice(2)
    const resubscribe = again.find((message) => message.type === 'subscribe') as Extract<ClientMessage, { type: 'subscribe' }>
    const republish = again.find((message) => message.type === 'publish') as Extract<ClientMessage, { type: 'publish' }>
    assert.deepEqual(resubscribe.from, { epoch: 'e1', offset: 5 })
    assert.equal(republish.key, publish.key, 'the same idempotency key')
    assert.ok(publish.key!.startsWith(`${reader.id}.`))
    server.send(server.sockets[1]!, { type: 'published', id: republish.id, topic: 't', position: { epoch: 'e1', offset: 6 } })
    assert.deepEqual(await publishing, { epoch: 'e1', offset: 6 })
  })

  test('a gap moves the position to where delivery continues; a new epoch without a gap is reported as a reset', async () => {
    const server = await scripted()
    const reader = client(server.url)
    const gaps: GapInfo[] = []
    const seen: number[] = []
    const subscription = reader.subscribe('t')
    subscription.on('gap', (gap) => gaps.push(gap))
    subscription.on('message', (_data, { position }) => seen.push(position.offset))
    await until(() => server.received.length === 1)
    const ws = server.sockets[0]!
    server.send(ws, { type: 'subscribed', id: server.received[0]!.id, topic: 't', position: { epoch: 'e1', offset: 2 }, recovered: 0 })
    server.send(ws, { type: 'gap', topic: 't', reason: 'expired', count: 7, from: { epoch: 'e1', offset: 2 }, to: { epoch: 'e1', offset: 9 } })
    server.send(ws, deliver(10, 'j'))
    server.send(ws, deliver(1, 'new', 'e2'))
    await until(() => seen.length === 2)
    assert.deepEqual(gaps.map((gap) => [gap.reason, gap.count]), [['expired', 7], ['reset', undefined]])
    assert.deepEqual(seen, [10, 1])
    assert.deepEqual(subscription.stats, { delivered: 2, duplicates: 0, gaps: 2, lost: 7 })
  })

  test('a server that does not select tether.v1 is an error event, and the client keeps trying with backoff', async () => {
    // An echo server of another kind: it selects no subprotocol.
    const wss = new WsServer({ host: HOST, port: 0, handleProtocols: () => false })
    await waitFor(wss, 'listening')
    let connections = 0
    wss.on('connection', () => connections++)
    cleanups.push(() => wss.close())
    const reader = client(`ws://${HOST}:${(wss.address() as { port: number }).port}`)
    const errors: string[] = []
    reader.on('error', (error) => errors.push(error.code))
    const delays: number[] = []
    reader.on('state', (change) => change.state === 'reconnecting' && delays.push(change.delay!))
    // The third delay is chosen when the third connection fails, after the server saw it open.
    await until(() => connections >= 3 && delays.length >= 3)
    assert.equal(errors[0], 'protocol')
    // 10 ms doubling to 50 ms, each with up to half taken off by jitter.
    assert.ok(delays[0]! >= 5 && delays[0]! <= 10, `first delay ${delays[0]}`)
    assert.ok(delays[2]! >= 20 && delays[2]! <= 40, `third delay ${delays[2]}`)
  })
})
