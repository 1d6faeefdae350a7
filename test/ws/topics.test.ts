/**
 * Topics on a real server with real clients on loopback: publish and
 * subscribe, frame-once, ordering with direct sends, slow consumers under
 * each policy (a client that stops reading), several nodes joined by the
 * in-process broker, and the errors bad input gets.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import type { WebSocket, WebSocketServer } from '../../src/index.js'
import { MemoryBroker } from '../../src/pubsub/index.js'
import { Inbox, closed, delay, kill, opened, stopWss, tetherServer, until } from '../helpers/net.js'

const servers: WebSocketServer[] = []
after(async () => {
  for (const wss of servers) await stopWss(wss).catch(() => {})
})

/** A server whose sockets subscribe to the topic named by the URL path (`/t/NAME`). */
async function topicServer(options: Parameters<typeof tetherServer>[0] = {}) {
  const server = await tetherServer(options)
  servers.push(server.wss)
  const sockets: WebSocket[] = []
  server.wss.on('connection', (ws, request) => {
    sockets.push(ws)
    const match = /^\/t\/(.+)$/.exec(request.url ?? '')
    if (match) ws.subscribe(decodeURIComponent(match[1]!))
  })
  return { ...server, sockets }
}

async function client(url: string, options: ConstructorParameters<typeof WsClient>[2] = {}) {
  const ws = await opened(new WsClient(url, options))
  return { ws, inbox: new Inbox(ws) }
}

describe('publish and subscribe on one server', () => {
  test('each subscriber gets each message once; others get nothing', async () => {
    const { wss, url, sockets } = await topicServer()
    const a = await client(`${url}/t/room`)
    const b = await client(`${url}/t/room`)
    const other = await client(`${url}/t/elsewhere`)
    await until(() => wss.subscriberCount('room') === 2)
    assert.deepEqual(wss.topics.sort(), ['elsewhere', 'room'])
    assert.deepEqual(sockets[0]!.topics, ['room'])
    assert.equal(sockets[0]!.isSubscribed('room'), true)
    const result = wss.publish('room', 'hello')
    assert.deepEqual(result, { subscribers: 2, delivered: 2, dropped: 0, conflated: 0, closed: 0, forwarded: false })
    wss.publish('room', Buffer.from([1, 2, 3]))
    for (const { inbox } of [a, b]) {
      const [text, binary] = await inbox.next(2)
      assert.deepEqual([String(text!.data), text!.isBinary], ['hello', false])
      assert.deepEqual([[...binary!.data], binary!.isBinary], [[1, 2, 3], true])
    }
    await delay(50)
    assert.equal(other.inbox.messages.length, 0)
    assert.equal(a.inbox.messages.length, 2, 'no duplicates')
    assert.equal(wss.topicStats.delivered, 4)
    kill(a.ws, b.ws, other.ws)
    await until(() => wss.subscriberCount('room') === 0)
    assert.deepEqual(wss.topics, [], 'closed sockets leave their topics')
  })

  test('a publish frames once, and compresses once for every subscriber with permessage-deflate', async () => {
    const { wss, url } = await topicServer({ perMessageDeflate: { threshold: 0 } })
    const compressing = await Promise.all([1, 2, 3].map(() => client(`${url}/t/news`)))
    const plain = await Promise.all([1, 2].map(() => client(`${url}/t/news`, { perMessageDeflate: false })))
    await until(() => wss.subscriberCount('news') === 5)
    const { preparedStats } = await import('../../src/node/prepared.js')
    const before = { ...preparedStats }
    const text = 'score update '.repeat(50)
    wss.publish('news', text)
    for (const { inbox } of [...compressing, ...plain]) assert.equal(String((await inbox.one()).data), text)
    assert.equal(preparedStats.framed - before.framed, 1, 'one plain frame for the two plain subscribers')
    assert.equal(preparedStats.compressed - before.compressed, 1, 'one compressed frame for the three others')
    kill(...[...compressing, ...plain].map((c) => c.ws))
  })

  test('published and direct messages keep their order on a socket', async () => {
    for (const perMessageDeflate of [false, { threshold: 0 }]) {
      const { wss, url, sockets } = await topicServer({ perMessageDeflate })
      const { ws, inbox } = await client(`${url}/t/feed`)
      await until(() => wss.subscriberCount('feed') === 1)
      const socket = sockets[0]!
      const expected: string[] = []
      for (let i = 0; i < 50; i++) {
        // Large direct messages compress asynchronously; a publish must wait behind them.
        const direct = `direct-${i}-` + 'x'.repeat(i % 5 === 0 ? 100_000 : 10)
        wss.publish('feed', `published-${i}`)
        socket.send(direct)
        expected.push(`published-${i}`, direct)
      }
      const received = await inbox.next(expected.length)
      assert.deepEqual(received.map((m) => String(m.data)), expected, `order with perMessageDeflate ${JSON.stringify(perMessageDeflate)}`)
      kill(ws)
    }
  })


  test('batches of small published messages arrive whole and in order, also where the kernel took only part of a batch', async () => {
    // A subscriber's batch of small frames leaves as one buffer shared by every socket (tcp.ts Rule 4). A
    // paused reader makes the kernel take part of a write and the rest wait: its bytes must not be reused for
    // the next socket's batch while the fast reader goes on.
    const { wss, url, sockets } = await topicServer()
    wss.setTopicPolicy('batch', { policy: 'drop', backpressureLimit: 256 * 1024 * 1024 })
    const fast = await client(`${url}/t/batch`)
    const slow = await client(`${url}/t/batch`)
    await until(() => wss.subscriberCount('batch') === 2)
    const slowSocket = sockets[1]!
    ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    const expected: string[] = []
    let mostQueued = 0
    for (let batch = 0; batch < 1_000; batch++) {
      for (let i = 0; i < 30; i++) {
        const n = expected.length
        const message = `${n}:${String.fromCharCode(97 + (n % 26)).repeat((n * 7) % 400)}`
        wss.publish('batch', message)
        expected.push(message)
      }
      mostQueued = Math.max(mostQueued, slowSocket.bufferedAmount)
      await delay(0)
    }
    assert.ok(mostQueued > 0, 'the paused reader had bytes waiting in the server (a write the kernel took only in part)')
    await until(() => fast.inbox.messages.length >= expected.length, 20_000, 'the fast reader got everything')
    ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    await until(() => slow.inbox.messages.length >= expected.length, 20_000, 'the slow reader got everything')
    for (const { inbox } of [fast, slow]) {
      const received = inbox.messages.map((m) => String(m.data))
      assert.equal(received.length, expected.length, 'no message lost or duplicated')
      const firstWrong = received.findIndex((text, i) => text !== expected[i])
      assert.equal(firstWrong, -1, `message ${firstWrong} intact and in order`)
    }
    assert.equal(wss.topicStats.dropped, 0)
    kill(fast.ws, slow.ws)
  })
  test('a publish during a fragmented send follows its last fragment', async () => {
    const { wss, url, sockets } = await topicServer()
    const { ws, inbox } = await client(`${url}/t/feed`)
    await until(() => wss.subscriberCount('feed') === 1)
    sockets[0]!.send('first half, ', { fin: false })
    wss.publish('feed', 'published')
    sockets[0]!.send('second half', { fin: true })
    const received = await inbox.next(2)
    assert.deepEqual(received.map((m) => String(m.data)), ['first half, second half', 'published'])
    kill(ws)
  })

  test('bad input gets errors that say what to do', async () => {
    const { wss, url, sockets } = await topicServer()
    const { ws } = await client(`${url}/t/x`)
    await until(() => sockets.length === 1)
    assert.throws(() => wss.publish('', 'x'), { name: 'TypeError', message: /topic must be a non-empty string, got an empty string/ })
    assert.throws(() => wss.publish(42 as never, 'x'), { name: 'TypeError', message: /got number/ })
    assert.throws(() => wss.publish('x', 42 as never), { name: 'TypeError', message: /data must be a string, Buffer, ArrayBuffer or typed array, got number/ })
    assert.throws(() => wss.publish('x', null as never), /got null/)
    assert.throws(() => wss.publish('x', 'y', { key: 5 as never }), /key must be a string/)
    assert.throws(() => sockets[0]!.subscribe(undefined as never), /subscribe\(\): the topic must be a non-empty string, got undefined/)
    assert.throws(() => wss.setTopicPolicy('x', { policy: 'nope' as never }), TypeError)
    const { WebSocket } = await import('../../src/index.js')
    const outgoing = await opened(new WebSocket(`${url}/t/y`))
    assert.throws(() => outgoing.subscribe('y'), /for sockets a WebSocketServer accepted/)
    outgoing.terminate()
    kill(ws)
    await closed(sockets[0]!)
    assert.equal(sockets[0]!.subscribe('late'), false, 'a closed socket cannot subscribe')
    await stopWss(wss)
    assert.throws(() => wss.publish('x', 'y'), /publish\(\) on a closed WebSocketServer/)
  })
})

describe('slow consumers (a client that stops reading)', () => {
  /** Publishes numbered 16 KiB messages until `stop()` or 2,000 of them; the client is paused. */
  async function flood(policy: 'drop' | 'close' | 'latest') {
    const { wss, url, sockets } = await topicServer()
    wss.setTopicPolicy('live', { policy, backpressureLimit: 256 * 1024 })
    const slowReports: unknown[] = []
    wss.on('slowConsumer', (_socket, info) => slowReports.push(info))
    const fast = await client(`${url}/t/live`)
    const slow = await client(`${url}/t/live`)
    await until(() => wss.subscriberCount('live') === 2)
    // The slow client stops reading: its kernel buffers fill, then the server's.
    ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    let published = 0
    const padding = 'p'.repeat(16 * 1024)
    while (published < 2_000 && slowReports.length < 20) {
      wss.publish('live', JSON.stringify({ n: published, key: `match-${published % 3}`, padding }), { key: `match-${published % 3}` })
      published++
      // Let the socket write, so that backpressure is real kernel backpressure.
      if (published % 10 === 0) await delay(1)
    }
    return { wss, fast, slow, sockets, published, slowReports }
  }

  test('drop: the slow subscriber skips messages (counted, reported), keeps order, the fast one gets all', async () => {
    const { wss, fast, slow, published, slowReports } = await flood('drop')
    assert.ok(slowReports.length > 0, 'slowConsumer was reported')
    assert.equal((slowReports[0] as { action: string }).action, 'drop')
    const stats = wss.topicStats
    assert.ok(stats.dropped > 0)
    assert.equal(stats.delivered + stats.dropped, published * 2)
    ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    await fast.inbox.next(published, 20_000)
    await until(() => slow.inbox.messages.length === published * 2 - stats.dropped - published, 20_000, 'the slow client to catch up')
    const numbers = slow.inbox.messages.map((m) => JSON.parse(String(m.data)).n as number)
    assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!), 'what the slow client got is in publish order')
    kill(fast.ws, slow.ws)
  })

  test('close: the slow subscriber is closed with 1013 and a reason; the fast one is untouched', async () => {
    const { wss, fast, slow, published, slowReports } = await flood('close')
    assert.equal((slowReports[0] as { action: string }).action, 'close')
    assert.equal(wss.topicStats.closed, 1)
    ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    const [code, reason] = await closed(slow.ws, 20_000)
    assert.equal(code, 1013)
    assert.match(reason, /too slow/)
    await fast.inbox.next(published, 20_000)
    assert.equal(fast.ws.readyState, WsClient.OPEN)
    kill(fast.ws)
  })

  test('latest: the slow subscriber gets the newest message per key, in order, not the backlog', async () => {
    const { wss, fast, slow, published } = await flood('latest')
    assert.ok(wss.topicStats.conflated > 0)
    ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    await fast.inbox.next(published, 20_000)
    const newest = new Map<string, number>()
    for (let n = 0; n < published; n++) newest.set(`match-${n % 3}`, n)
    await until(() => {
      const seen = slow.inbox.messages.map((m) => JSON.parse(String(m.data)) as { n: number; key: string })
      return [...newest].every(([key, n]) => seen.some((m) => m.key === key && m.n === n))
    }, 20_000, 'the newest message of every key')
    const numbers = slow.inbox.messages.map((m) => JSON.parse(String(m.data)).n as number)
    assert.ok(numbers.length < published, `fewer than the ${published} published (got ${numbers.length})`)
    assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!), 'in publish order')
    kill(fast.ws, slow.ws)
  })
})

describe('several servers joined by the in-process broker', () => {
  test('a message published on any node reaches every subscriber once, in order', async () => {
    const broker = new MemoryBroker()
    const nodes = await Promise.all([0, 1, 2].map(() => topicServer({ topics: { backplane: broker.backplane() } })))
    const clients = await Promise.all(nodes.flatMap((node) => [client(`${node.url}/t/chat`), client(`${node.url}/t/chat`)]))
    for (const node of nodes) await until(() => node.wss.subscriberCount('chat') === 2)
    const expected: string[] = []
    for (let i = 0; i < 30; i++) {
      const from = i % 3
      nodes[from]!.wss.publish('chat', `${from}:${i}`)
      expected.push(`${from}:${i}`)
    }
    for (const { inbox } of clients) {
      const received = (await inbox.next(30)).map((m) => String(m.data))
      // Order per publisher is what is promised across nodes.
      for (const from of [0, 1, 2]) {
        assert.deepEqual(received.filter((m) => m.startsWith(`${from}:`)), expected.filter((m) => m.startsWith(`${from}:`)))
      }
      assert.equal(new Set(received).size, 30, 'each exactly once')
    }
    await delay(50)
    assert.ok(clients.every(({ inbox }) => inbox.messages.length === 30), 'no duplicates arrive later')
    kill(...clients.map((c) => c.ws))
  })

  test('onPublish sees local and remote publishes; local publishes stay on their node', async () => {
    const broker = new MemoryBroker()
    const [a, b] = await Promise.all([0, 1].map(() => topicServer({ topics: { backplane: broker.backplane() } })))
    const seenOnB: string[] = []
    const stop = b!.wss.onPublish('room', (data, isBinary) => seenOnB.push(`${data}:${isBinary}`))
    const onB = await client(`${b!.url}/t/room`)
    await until(() => b!.wss.subscriberCount('room') === 1)
    assert.equal(b!.wss.subscriberCount('room'), 1, 'an onPublish listener is not a subscriber')
    a!.wss.publish('room', 'from a')
    b!.wss.publish('room', 'from b')
    a!.wss.publish('room', 'a only', { local: true })
    await until(() => seenOnB.length === 2)
    assert.deepEqual(String((await onB.inbox.next(2)).map((m) => String(m.data))), 'from b,from a')
    await delay(50)
    assert.deepEqual(seenOnB.sort(), ['from a:false', 'from b:false'])
    assert.equal(onB.inbox.messages.length, 2, 'the local publish on a did not reach b')
    stop()
    b!.wss.publish('room', 'after stop')
    assert.equal(seenOnB.length, 2)
    assert.throws(() => b!.wss.onPublish('room', 5 as never), /listener must be a function/)
    kill(onB.ws)
  })

  // Issue 14: an observer that threw was rethrown in a microtask, where nobody could catch it: the process died.
  test('an onPublish listener that throws: reported as an error event with a code, counted, never rethrown; delivery goes on', async () => {
    const { wss, url } = await topicServer()
    const errors: Array<Error & { code?: string; topic?: string }> = []
    wss.on('error', (error) => errors.push(error))
    let uncaught: unknown
    const onUncaught = (error: unknown): void => {
      uncaught = error
    }
    process.on('uncaughtException', onUncaught)
    try {
      wss.onPublish('room', (data) => {
        if (String(data) === 'bad') throw new SyntaxError('Unexpected token')
      })
      const subscriber = await client(`${url}/t/room`)
      await until(() => wss.subscriberCount('room') === 1)
      wss.publish('room', 'bad')
      wss.publish('room', 'good')
      assert.deepEqual((await subscriber.inbox.next(2)).map((m) => String(m.data)), ['bad', 'good'])
      await delay(20)
      assert.equal(uncaught, undefined, 'nothing was rethrown')
      assert.equal(errors.length, 1)
      assert.equal(errors[0]!.code, 'TETHER_ERR_OBSERVER')
      assert.equal(errors[0]!.topic, 'room')
      assert.ok(errors[0]!.cause instanceof SyntaxError)
      assert.equal(wss.topicStats.observerErrors, 1)
      kill(subscriber.ws)
    } finally {
      process.off('uncaughtException', onUncaught)
    }
  })

  test('backplane events reach the server as events, never as throws', async () => {
    const broker = new MemoryBroker()
    const { wss } = await topicServer({ topics: { backplane: broker.backplane() } })
    const events: string[] = []
    wss.on('backplane', (event) => events.push(event.type))
    broker.setOnline(false)
    assert.doesNotThrow(() => wss.publish('t', 'x'))
    await delay(0)
    broker.setOnline(true)
    assert.deepEqual(events, ['disconnected', 'error', 'unsent', 'reconnected'])
    assert.equal(wss.topicStats.unsent, 1)
  })
})
