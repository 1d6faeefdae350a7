/**
 * The chat's rooms as topics with history (issue 17): a `say` the chat app
 * accepts is appended to `$chat:ROOM` with the nickname it stamped, pages
 * read it on `/v1`, and nobody else can write there. Two hubs sharing a real
 * Redis keep one history per room (same positions on both); a page takes its
 * nickname back after a reconnect on another node; presence of a node that
 * went silent is forgotten; the scores feed keeps one snapshot a second
 * whichever nodes write it.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import { WebSocket as WsClient } from 'ws'
import { type Subscription, TetherClient } from '../../src/client/index.js'
import { WebSocket } from '../../src/index.js'
import { type App, type Hub, type HubConfig, chatApp, createHub, deliveryApp } from '../../src/hub/index.js'
import { type Backplane, MemoryBroker } from '../../src/pubsub/index.js'
import { type Broker, startBroker } from '../helpers/brokers.js'
import { Inbox, delay, opened, until } from '../helpers/net.js'

const SECRET = 'a test secret that is long enough for HS256'
const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {})
})

async function start(config: Partial<HubConfig> = {}, apps?: App[]): Promise<Hub> {
  const hub = await createHub({ port: 0, log: () => {}, ...config }, apps)
  cleanups.push(() => hub.close())
  return hub
}
const wsUrl = (hub: Hub) => hub.url.replace(/^http/, 'ws')

interface Chatter {
  ws: WsClient
  events(): Array<Record<string, any>>
  send(message: object): void
  /** Sends a say and resolves with its answer (`said`, or an `error` with its id). */
  say(text: string, id: string): Promise<Record<string, any>>
}

async function chatter(hub: Hub, room: string, nick: string, session?: string): Promise<Chatter> {
  const ws = await opened(new WsClient(`${wsUrl(hub)}/chat/ws`))
  cleanups.push(() => ws.terminate())
  const inbox = new Inbox(ws)
  const events = () => inbox.messages.map((m) => JSON.parse(String(m.data)) as Record<string, any>)
  const send = (message: object) => ws.send(JSON.stringify(message))
  send({ type: 'join', room, nick, ...(session === undefined ? {} : { session }) })
  await until(() => events().some((event) => event.type === 'welcome' || event.type === 'error'))
  return {
    ws,
    events,
    send,
    async say(text, id) {
      send({ type: 'say', text, id })
      await until(() => events().some((event) => (event.type === 'said' || event.type === 'error') && event.id === id))
      return events().find((event) => (event.type === 'said' || event.type === 'error') && event.id === id)!
    },
  }
}

interface Read {
  client: TetherClient
  subscription: Subscription
  messages: Array<{ nick: string; text: string; offset: number; epoch: string }>
}

function read(hub: Hub, topic: string, options: { recent?: number; from?: { epoch: string; offset: number } } = { recent: 100 }, protocols: string[] = []): Read {
  const client = new TetherClient(`${wsUrl(hub)}/v1`, { WebSocket, protocols, backoff: { initial: 20, max: 200 } })
  cleanups.push(() => client.close())
  const messages: Read['messages'] = []
  const subscription = client.subscribe(topic, options)
  subscription.on('message', (data, { position }) => {
    const { nick, text } = JSON.parse(String(data)) as { nick: string; text: string }
    messages.push({ nick, text, offset: position.offset, epoch: position.epoch })
  })
  return { client, subscription, messages }
}

const subscribed = (subscription: Subscription) =>
  new Promise<string>((resolve) => {
    subscription.once('subscribed', () => resolve('subscribed'))
    subscription.once('error', (error) => resolve(error.code))
  })

/** A backplane that can go silent both ways at once, as a killed node does for the others. */
function severable(inner: Backplane): Backplane & { sever(): void } {
  let severed = false
  return {
    get instanceId() {
      return inner.instanceId
    },
    attach(sink) {
      inner.attach({ deliver: (message) => !severed && sink.deliver(message), event: (event) => sink.event(event) })
    },
    publish(message) {
      if (!severed) inner.publish(message)
    },
    close: () => inner.close(),
    sever() {
      severed = true
    },
  }
}

const session = (name: string) => `session-of-${name}-0123456789`

/** Whether a chatter's page would show `nick` online: in its welcome, or told since (a join, or a node's list). */
function knows(chatter: Chatter, nick: string): boolean {
  return chatter.events().some((event) => (event.type === 'welcome' && event.online.includes(nick)) || (event.type === 'join' && event.nick === nick) || (event.type === 'here' && event.nicks.includes(nick)))
}

describe('chat rooms are topics with history (issue 17)', () => {
  test('a say is kept in $chat:ROOM with the nickname the hub stamped; said carries its position; an id is kept once, and only its author\'s', async () => {
    const hub = await start()
    const ada = await chatter(hub, 'garden', 'ada', session('ada'))
    const bob = await chatter(hub, 'garden', 'bob')
    assert.equal(ada.events()[0]!.topic, '$chat:garden')
    const first = await ada.say('one', 'a1')
    assert.equal(first.type, 'said')
    assert.equal(first.position.offset, 1)
    // A say naming someone else: the field is not the say's, the hub stamps the joiner's name (Rule 2).
    ada.send({ type: 'say', text: 'I am bob', id: 'a2', nick: 'bob' })
    await until(() => ada.events().some((event) => event.type === 'said' && event.id === 'a2'))
    const second = await bob.say('two', 'b1')
    assert.equal(second.position.offset, 3)
    // The same id again (a page after a reconnect): kept once, the same position.
    assert.deepEqual((await ada.say('one', 'a1')).position, first.position)
    // Someone else's say with that id is a message of its own.
    assert.equal((await bob.say('mine', 'a1')).position.offset, 4)
    const reader = read(hub, '$chat:garden', { recent: 10 })
    await until(() => reader.messages.length === 4)
    assert.deepEqual(
      reader.messages.map(({ nick, text, offset }) => [offset, nick, text]),
      [
        [1, 'ada', 'one'],
        [2, 'ada', 'I am bob'],
        [3, 'bob', 'two'],
        [4, 'bob', 'mine'],
      ],
    )
    // Live after the recent ones.
    await ada.say('three', 'a3')
    await until(() => reader.messages.length === 5)
    assert.deepEqual(reader.messages.at(-1)!.text, 'three')
    // The welcome carries no history of its own any more: a room reads the same from every node.
    assert.equal('history' in ada.events()[0]!, false)
  })

  test('spoofing through /v1 is refused: nobody publishes on $chat: topics, a relay topic named like a room is another topic, and permissions are the room\'s', async () => {
    const hub = await start({ history: { backend: 'memory', topics: [{ pattern: '*', maxCount: 100, maxAge: 60_000 }] } })
    const ada = await chatter(hub, 'lobby', 'ada')
    await ada.say('the real one', 'r1')
    const client = read(hub, '$chat:lobby')
    await until(() => client.messages.length === 1)
    await assert.rejects(client.client.publish('$chat:lobby', JSON.stringify({ type: 'message', room: 'lobby', nick: 'ada', text: 'forged', at: 1, node: 'x' })), { code: 'not-allowed' })
    // The relay topic `chat:lobby` keeps history too (pattern *), and stays the relay's.
    const relayed = await client.client.publish('chat:lobby', 'on the relay topic')
    assert.equal(relayed.offset, 1)
    // Raw JSON (a person with tether connect): the same refusal, with the request's id.
    const raw = await opened(new WsClient(`${wsUrl(hub)}/v1`))
    cleanups.push(() => raw.terminate())
    const rawInbox = new Inbox(raw)
    raw.send(JSON.stringify({ type: 'publish', id: 9, topic: '$chat:lobby', data: 'forged' }))
    assert.deepEqual((({ type, id, code }) => ({ type, id, code }))(JSON.parse(String((await rawInbox.one()).data))), { type: 'error', id: 9, code: 'not-allowed' })
    await ada.say('still the only writer', 'r2')
    await until(() => client.messages.length === 2)
    await delay(100)
    assert.deepEqual(client.messages.map((message) => message.text), ['the real one', 'still the only writer'])
    // Topics that are no app's, or no room of it: no-history.
    for (const topic of ['$chat:bad room!', '$chat', '$nope:x', '$scores:other', '$']) {
      assert.equal(await subscribed(client.client.subscribe(topic)), 'no-history', topic)
    }
    assert.equal(await subscribed(client.client.subscribe('$scores:feed')), 'subscribed')

    // With tokens: subscribing needs the room's permission; publishing is refused even to a token that may publish anywhere.
    const secured = await start({ auth: { kind: 'jwt', secret: SECRET } })
    const token = await new SignJWT({ sub: 'eve', tether: { subscribe: ['chat:open'], publish: ['*'] } })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(SECRET))
    const eve = read(secured, '$chat:open', { recent: 1 }, [`tether.bearer.${token}`])
    assert.equal(await subscribed(eve.subscription), 'subscribed')
    assert.equal(await subscribed(eve.client.subscribe('$chat:closed')), 'not-allowed')
    await assert.rejects(eve.client.publish('$chat:open', 'forged'), { code: 'not-allowed' })
  })

  test('bad input on /chat/ws gets an error with its code (and the say\'s id), never a crash; the chat goes on', async () => {
    const hub = await start()
    const ws = await opened(new WsClient(`${wsUrl(hub)}/chat/ws`))
    cleanups.push(() => ws.terminate())
    const inbox = new Inbox(ws)
    const answer = async (data: string | Buffer) => {
      const before = inbox.messages.length
      ws.send(data)
      await until(() => inbox.messages.length > before)
      return JSON.parse(String(inbox.messages[before]!.data)) as { type: string; code: string; message: string; id?: string }
    }
    const cases: Array<[string | Buffer, string, RegExp, string?]> = [
      [Buffer.from([1, 2, 3]), 'bad-message', /Send JSON text/],
      ['not json', 'bad-message', /Send JSON text/],
      [JSON.stringify({ type: 'say', text: 'hi', id: 'a b' }), 'bad-message', /message id/],
      [JSON.stringify({ type: 'say', text: 'hi', id: 'x'.repeat(65) }), 'bad-message', /message id/],
      [JSON.stringify({ type: 'join', room: 'r', nick: 'ada', session: 'short' }), 'bad-message', /session/],
      [JSON.stringify({ type: 'join', room: 'r', nick: 'ada', session: 42 }), 'bad-message', /session/],
      [JSON.stringify({ type: 'say', text: 'early', id: 'e1' }), 'state', /Join a room first/, 'e1'],
      [JSON.stringify({ type: 'say', text: 'x'.repeat(2001), id: 'long' }), 'bad-message', /1-2000 characters/],
      [JSON.stringify({ type: 'leave' }), 'state', /Not in a room/],
    ]
    for (const [data, code, message, id] of cases) {
      const error = await answer(data)
      assert.deepEqual([error.type, error.code, error.id], ['error', code, id], String(data).slice(0, 60))
      assert.match(error.message, message)
    }
    assert.equal((await answer(JSON.stringify({ type: 'join', room: 'r', nick: 'ada', session: session('ada') }))).type, 'welcome')
    assert.equal((await answer(JSON.stringify({ type: 'join', room: 'r', nick: 'ada' }))).code, 'state', 'already in a room')
    const said = await answer(JSON.stringify({ type: 'say', text: 'fine after all that', id: 'ok' }))
    assert.deepEqual([said.type, said.id], ['said', 'ok'])
    const health = (await (await fetch(`${hub.url}/health`)).json()) as { status: string; hub: { appErrors: number } }
    assert.deepEqual([health.status, health.hub.appErrors], ['ok', 0])
  })
})

describe('chat across nodes over a real Redis (issue 17)', { timeout: 60_000 }, () => {
  let redis: Broker
  const pair = async (): Promise<[Hub, Hub]> => {
    redis ??= await startBroker('redis').then((broker) => {
      cleanups.push(() => broker.stop())
      return broker
    })
    // No history option: with a Redis backplane, history is kept on it.
    const config: Partial<HubConfig> = { backplane: { kind: 'redis', url: redis.url, connectTimeout: 5_000 } }
    return [await start(config), await start(config)]
  }

  test('the room\'s history is one: the same messages at the same positions on both nodes, and a reader resumes on the other node without loss or repeat', async () => {
    const [a, b] = await pair()
    const health = (await (await fetch(`${a.url}/health`)).json()) as { apps: { delivery: { backend: string } } }
    assert.equal(health.apps.delivery.backend, 'redis')
    const ada = await chatter(a, 'cluster', 'ada', session('ada'))
    const bob = await chatter(b, 'cluster', 'bob', session('bob'))
    const onA = read(a, '$chat:cluster')
    const onB = read(b, '$chat:cluster')
    await Promise.all([subscribed(onA.subscription), subscribed(onB.subscription)])
    const answers: Array<Promise<Record<string, any>>> = []
    for (let i = 0; i < 10; i++) answers.push(ada.say(`ada ${i}`, `a${i}`), bob.say(`bob ${i}`, `b${i}`))
    const saids = await Promise.all(answers)
    assert.ok(saids.every((said) => said.type === 'said'))
    assert.deepEqual(saids.map((said) => said.position.offset).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1), 'each say one position, 1..20')
    await until(() => onA.messages.length === 20 && onB.messages.length === 20)
    assert.deepEqual(onA.messages, onB.messages, 'the same history on both nodes')
    assert.deepEqual(onA.messages.map((message) => message.offset), Array.from({ length: 20 }, (_, i) => i + 1))
    assert.equal(new Set(onA.messages.map((message) => message.epoch)).size, 1)
    for (const author of ['ada', 'bob']) {
      const texts = onA.messages.filter((message) => message.nick === author).map((message) => message.text)
      assert.deepEqual(texts, Array.from({ length: 10 }, (_, i) => `${author} ${i}`), `${author}'s messages in the order said`)
    }
    // A page read up to here on node A; it comes back on node B from that position.
    const last = onA.subscription.position!
    onA.client.close()
    await ada.say('while away 1', 'w1')
    await bob.say('while away 2', 'w2')
    const resumed = read(b, '$chat:cluster', { from: last })
    await until(() => resumed.messages.length === 2)
    await delay(100)
    assert.deepEqual(resumed.messages.map((message) => [message.offset, message.text]), [[21, 'while away 1'], [22, 'while away 2']])
    assert.equal(resumed.subscription.stats.gaps, 0)
  })

  test('the scores feed keeps one snapshot a second whichever nodes write it; recent: 1 is the newest', async () => {
    const [a, b] = await pair()
    const feeds = [a, b].map((hub) => {
      const client = new TetherClient(`${wsUrl(hub)}/v1`, { WebSocket })
      cleanups.push(() => client.close())
      const seconds: number[] = []
      const subscription = client.subscribe('$scores:feed', { recent: 1 })
      subscription.on('message', (data) => seconds.push((JSON.parse(String(data)) as { at: number }).at))
      return seconds
    })
    await until(() => feeds.every((seconds) => seconds.length >= 4), 15_000, 'four snapshots on each node')
    for (const seconds of feeds) {
      // The first is the newest retained, then one per second: never the same second twice, never backwards.
      for (let i = 1; i < seconds.length; i++) assert.ok(seconds[i]! > seconds[i - 1]!, `seconds ${seconds.join(',')}`)
      assert.ok(Math.abs(seconds[0]! - Date.now() / 1000) < 5, 'the first snapshot is a recent one')
    }
    const common = feeds[0]!.filter((second) => feeds[1]!.includes(second))
    assert.ok(common.length >= 2, 'both nodes read the same entries')
  })

  test('the in-process store with a Redis backplane is refused at start: rooms would be split per node', async () => {
    await pair()
    await assert.rejects(
      createHub({ port: 0, log: () => {}, backplane: { kind: 'redis', url: redis.url, connectTimeout: 5_000 }, history: { backend: 'memory', topics: [] } }),
      /history of chat, scores would be split per node/,
    )
  })
})

describe('chat presence across nodes (issue 17)', () => {
  test('a page takes its nickname back on another node while the room still counts it there (its session); nobody else can, and the others see nothing happen', async () => {
    const broker = new MemoryBroker()
    const planes = [severable(broker.backplane()), severable(broker.backplane())]
    const [a, b] = [await start({ backplane: { kind: 'custom', backplane: planes[0]! } }), await start({ backplane: { kind: 'custom', backplane: planes[1]! } })]
    await chatter(a, 'den', 'ada', session('ada'))
    const bob = await chatter(b, 'den', 'bob')
    await until(() => knows(bob, 'ada'))
    // Node A dies without a word (for the others).
    planes[0]!.sever()
    const impostor = await chatter(b, 'den', 'ada', session('eve'))
    assert.match(impostor.events()[0]!.message, /ada is taken/)
    const sessionless = await chatter(b, 'den', 'ada')
    assert.match(sessionless.events()[0]!.message, /ada is taken/)
    const back = await chatter(b, 'den', 'ada', session('ada'))
    assert.equal(back.events()[0]!.type, 'welcome')
    assert.deepEqual(back.events()[0]!.online, ['ada', 'bob'])
    // Again on the same node (a second reconnect): the earlier connection there gives way, told why.
    const again = await chatter(b, 'den', 'ada', session('ada'))
    assert.equal(again.events()[0]!.type, 'welcome')
    await until(() => back.events().some((event) => event.type === 'left'))
    assert.match(back.events().find((event) => event.type === 'error')!.message, /another connection/)
    await delay(100)
    const notices = bob.events().filter((event) => (event.type === 'join' || event.type === 'leave') && event.nick === 'ada')
    assert.ok(notices.every((event) => event.type === 'join') && notices.length <= 1, `bob saw ada come and go: ${JSON.stringify(notices)}`)
    assert.equal(JSON.stringify(bob.events()).includes('claim'), false, 'claims never reach pages')
  })

  test('presence heals: a node not heard from is forgotten after the timeout and its users leave; nodes that speak are kept', async () => {
    const broker = new MemoryBroker()
    const planes = [severable(broker.backplane()), severable(broker.backplane())]
    const apps = () => [chatApp({ presenceInterval: 100, presenceTimeout: 500 }), deliveryApp()]
    const a = await start({ backplane: { kind: 'custom', backplane: planes[0]! } }, apps())
    const b = await start({ backplane: { kind: 'custom', backplane: planes[1]! } }, apps())
    await chatter(a, 'hall', 'ada')
    const bob = await chatter(b, 'hall', 'bob')
    await until(() => knows(bob, 'ada'))
    // Several intervals and timeouts: both nodes speak, nobody is forgotten.
    await delay(1_500)
    assert.equal(bob.events().some((event) => event.type === 'leave'), false)
    planes[0]!.sever()
    await until(() => bob.events().some((event) => event.type === 'leave' && event.nick === 'ada'), 10_000, 'ada forgotten')
    const health = (await (await fetch(`${b.url}/health`)).json()) as { apps: { chat: { nodesForgotten: number } } }
    assert.ok(health.apps.chat.nodesForgotten >= 1)
    // Her name is free again.
    const eve = await chatter(b, 'hall', 'ada', session('eve'))
    assert.equal(eve.events()[0]!.type, 'welcome')
  })

  test('two nodes that each let a bob join during a broker outage settle it when the broker is back, not at the next interval (outsider finding 12)', async () => {
    const broker = new MemoryBroker()
    // An interval no test run reaches: only the reconnect can settle it.
    const apps = () => [chatApp({ presenceInterval: 3_600_000, presenceTimeout: 7_200_000 }), deliveryApp()]
    const a = await start({ backplane: { kind: 'custom', backplane: broker.backplane() } }, apps())
    const b = await start({ backplane: { kind: 'custom', backplane: broker.backplane() } }, apps())
    broker.setOnline(false)
    const first = await chatter(a, 'yard', 'bob')
    await delay(5)
    const second = await chatter(b, 'yard', 'bob')
    assert.deepEqual([first.events()[0]!.type, second.events()[0]!.type], ['welcome', 'welcome'], 'neither node knew of the other bob')
    broker.setOnline(true)
    // The later join gives way (Rule 2), told why.
    await until(() => second.events().some((event) => event.type === 'left'), 10_000, 'the later bob leaves')
    assert.match(second.events().find((event) => event.type === 'error')!.message, /bob is taken/)
    assert.equal(first.events().some((event) => event.type === 'left'), false, 'the earlier bob stays')
  })
})

