/**
 * tether/testing: WebSocket pairs over an in-memory link, and each fault it
 * injects, driving the behaviour applications rely on: messages survive
 * byte-by-byte delivery and latency; a cut gives 1006 on both sides; a
 * half-open link is found by heartbeats; a reader that stops makes the writer
 * see backpressure, and the send-buffer policy apply.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createLinkedPair } from '../../src/testing/index.js'
import { Inbox, closed, until } from '../helpers/net.js'

describe('tether/testing linked pairs', () => {
  test('messages both ways, in order, delivered byte by byte with latency', async () => {
    const { client, server, link } = createLinkedPair({ faults: { chunkSize: 1, latency: 1 } })
    const fromClient = new Inbox(server)
    const fromServer = new Inbox(client)
    const texts = ['hello', 'é'.repeat(50), 'x'.repeat(300)]
    for (const text of texts) client.send(text)
    server.send(Buffer.from([1, 2, 3]))
    assert.deepEqual((await fromClient.next(3)).map((m) => String(m.data)), texts)
    const [binary] = await fromServer.next(1)
    assert.deepEqual([...binary!.data], [1, 2, 3])
    client.close(1000, 'done')
    assert.deepEqual(await closed(server), [1000, 'done'])
    assert.equal(link.inFlight.toServer, 0)
  })

  test('a cut link closes both sides with 1006', async () => {
    const { client, server, link } = createLinkedPair()
    const closes = [closed(client), closed(server)]
    link.cut()
    assert.deepEqual((await Promise.all(closes)).map(([code]) => code), [1006, 1006])
  })

  test('a half-open link is found by heartbeats on either side: 1006 with a reason', async () => {
    const { client, server, link } = createLinkedPair({
      client: { heartbeat: { interval: 100, timeout: 150 } },
      server: { heartbeat: { interval: 100, timeout: 150 } },
    })
    client.send('before')
    await until(() => link.inFlight.toServer === 0)
    link.halfOpen()
    const [[clientCode, clientReason], [serverCode, serverReason]] = await Promise.all([closed(client, 5_000), closed(server, 5_000)])
    assert.equal(clientCode, 1006)
    assert.match(clientReason, /heartbeat timeout/)
    assert.equal(serverCode, 1006)
    assert.match(serverReason, /heartbeat timeout/)
  })

  test('heartbeats keep a healthy but silent pair open', async () => {
    const { client, server } = createLinkedPair({ client: { heartbeat: { interval: 50, timeout: 100 } } })
    let pings = 0
    server.on('ping', () => pings++)
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.ok(pings >= 2, `pings: ${pings}`)
    assert.equal(client.readyState, client.OPEN)
    client.terminate()
  })

  test('a reader that stops: the writer sees bufferedAmount grow and drain when it reads again', async () => {
    const { client, server, link } = createLinkedPair()
    const inbox = new Inbox(client)
    link.pauseReading('client')
    const chunk = Buffer.alloc(8 * 1024, 1)
    for (let i = 0; i < 32; i++) server.send(chunk)
    await until(() => link.inFlight.toClient > 0)
    assert.ok(server.bufferedAmount >= 200 * 1024, `bufferedAmount ${server.bufferedAmount}`)
    const drained = new Promise((resolve) => server.once('drain', resolve))
    link.pauseReading('client', false)
    await drained
    await inbox.next(32)
    assert.equal(server.bufferedAmount, 0)
  })

  test('a slow reader and the send-buffer policy: drop refuses sends past the limit, and says so', async () => {
    const { client, server, link } = createLinkedPair({ server: { sendBuffer: { limit: 64 * 1024, policy: 'drop' } }, faults: { readRate: 200_000 } })
    const inbox = new Inbox(client)
    const refused: Error[] = []
    const chunk = Buffer.alloc(16 * 1024, 2)
    for (let i = 0; i < 20; i++) server.send(chunk, (error) => error && refused.push(error))
    await until(() => refused.length > 0)
    assert.equal((refused[0] as Error & { code: string }).code, 'TETHER_ERR_SEND_BUFFER_FULL')
    await until(() => link.inFlight.toClient === 0, 10_000)
    assert.equal(inbox.messages.length + refused.length, 20, 'every send was delivered or reported')
    client.terminate()
  })
})

// Issue 13: control frames are part of the send buffer; pongs cannot pile up for a peer that does not read.
describe('control frames and the send buffer (issue 13)', () => {
  test('a peer that pings and never reads: the answering side holds one pong, and the latest is answered when it reads', async () => {
    for (const pinger of ['client', 'server'] as const) {
      const { client, server, link } = createLinkedPair()
      const [sender, answerer] = pinger === 'client' ? [client, server] : [server, client]
      link.pauseReading(pinger)
      let pingsSeen = 0
      answerer.on('ping', () => pingsSeen++)
      const payload = (i: number) => Buffer.from(`ping ${i}`.padEnd(100, '.'))
      const total = 5_000
      for (let i = 0; i < total; i++) sender.ping(payload(i))
      await until(() => pingsSeen === total)
      // What waits for the paused reader: at most the link's 16 KiB high-water mark plus one frame and the held pong.
      assert.ok(answerer.bufferedAmount < 20 * 1024, `${pinger} pinged: ${answerer.bufferedAmount} bytes of pongs waiting`)
      const pongs: string[] = []
      sender.on('pong', (data) => pongs.push(String(data)))
      link.pauseReading(pinger, false)
      await until(() => pongs.at(-1) === String(payload(total - 1)))
      assert.ok(pongs.length < total, `${pongs.length} pongs for ${total} pings`)
      assert.equal(answerer.bufferedAmount, 0)
      client.terminate()
    }
  })

  test('ping() and pong() count against the send buffer: close (1013) and drop policies apply to them', async () => {
    const closing = createLinkedPair({ server: { sendBuffer: { limit: 32 * 1024, policy: 'close' } } })
    closing.link.pauseReading('client')
    const full: unknown[] = []
    closing.server.on('sendBufferFull', (info) => full.push(info))
    const errors: Error[] = []
    for (let i = 0; i < 2_000; i++) closing.server.ping(Buffer.alloc(125), (error) => error && errors.push(error))
    assert.ok(full.length >= 1, 'sendBufferFull was emitted')
    await until(() => errors.length > 0)
    assert.ok(errors.some((error) => (error as Error & { code?: string }).code === 'TETHER_ERR_SEND_BUFFER_FULL'))
    closing.link.pauseReading('client', false)
    const [code] = await closed(closing.client)
    assert.equal(code, 1013)

    const dropping = createLinkedPair({ server: { sendBuffer: { limit: 32 * 1024, policy: 'drop' } } })
    dropping.link.pauseReading('client')
    const refused: Error[] = []
    for (let i = 0; i < 2_000; i++) dropping.server.pong(Buffer.alloc(125), (error) => error && refused.push(error))
    await until(() => refused.length > 0)
    assert.ok(dropping.server.bufferedAmount < 40 * 1024, `${dropping.server.bufferedAmount}`)
    assert.equal(dropping.server.readyState, dropping.server.OPEN, 'drop keeps the connection')
    dropping.client.terminate()
  })

  test('sends made while the reader is stopped wait in the connection and leave in order when it reads', async () => {
    const { client, server, link } = createLinkedPair()
    const inbox = new Inbox(client)
    link.pauseReading('client')
    const written: number[] = []
    for (let i = 0; i < 100; i++) server.send(Buffer.alloc(1024, i), () => written.push(i))
    await until(() => link.inFlight.toClient > 0)
    link.pauseReading('client', false)
    const messages = await inbox.next(100)
    assert.deepEqual(messages.map((m) => (m.data as Buffer)[0]), Array.from({ length: 100 }, (_, i) => i))
    await until(() => written.length === 100)
    assert.deepEqual(written, Array.from({ length: 100 }, (_, i) => i), 'callbacks in order')
    client.terminate()
  })
})
