/**
 * Flow control over real sockets: pause()/resume()/isPaused hold back
 * 'message' events and the socket; bufferedAmount reflects what the peer has
 * not taken; Blob sends keep their place among Buffer sends.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket, type WebSocketServer } from '../../src/index.js'
import { delay, Inbox, opened, stopWss, tetherServer, until, waitFor } from '../helpers/net.js'

let wss: WebSocketServer
let url: string
before(async () => {
  ;({ wss, url } = await tetherServer())
})
after(() => stopWss(wss))

/** A tether client and the server's end of it, open. */
async function pair(): Promise<{ client: WebSocket; server: WebSocket }> {
  const connection = waitFor<[WebSocket]>(wss, 'connection')
  const client = await opened(new WebSocket(url))
  const [server] = await connection
  return { client, server }
}

describe('pause() and resume()', () => {
  it("while paused no 'message' is emitted; after resume() they all arrive, in order", async () => {
    const { client, server } = await pair()
    try {
      server.pause()
      assert.equal(server.isPaused, true)
      const inbox = new Inbox(server)
      const pings: string[] = []
      server.on('ping', (data: Buffer) => pings.push(String(data)))
      for (let i = 0; i < 50; i++) client.send(`message ${i}`)
      client.ping('p')
      client.send(Buffer.alloc(200_000, 1))
      await delay(100)
      assert.equal(inbox.messages.length, 0)
      assert.deepEqual(pings, [])
      server.resume()
      assert.equal(server.isPaused, false)
      const got = await inbox.next(51)
      got.slice(0, 50).forEach((message, i) => assert.equal(String(message.data), `message ${i}`))
      assert.equal(got[50]!.data.length, 200_000)
      assert.deepEqual(pings, ['p'])
    } finally {
      client.terminate()
    }
  })

  it('pausing inside a message handler stops the rest of the batch until resume()', async () => {
    const { client, server } = await pair()
    try {
      const seen: string[] = []
      server.on('message', (data: Buffer) => {
        seen.push(String(data))
        if (seen.length === 2) server.pause()
      })
      // Sent in one tick, so they arrive in one TCP segment and one parse.
      for (let i = 0; i < 5; i++) client.send(String(i))
      await until(() => seen.length >= 2)
      await delay(50)
      assert.deepEqual(seen, ['0', '1'])
      server.resume()
      await until(() => seen.length === 5)
      assert.deepEqual(seen, ['0', '1', '2', '3', '4'])
    } finally {
      client.terminate()
    }
  })

  it('messages held while paused are still delivered when the peer closes meanwhile', async () => {
    const { client, server } = await pair()
    const order: string[] = []
    server.on('message', (data: Buffer) => order.push(String(data)))
    const close = waitFor<[number]>(server, 'close').then(([code]) => order.push(`close ${code}`))
    server.pause()
    client.send('before close')
    client.close(1000)
    await delay(50)
    assert.deepEqual(order, [])
    server.resume()
    await close
    assert.deepEqual(order, ['before close', 'close 1000'])
  })

  it('pausing in a message handler holds the answer to a close behind it: replies to the held messages still reach the peer (as with ws)', async () => {
    // A ws client sends five messages and close() in one go; they arrive in one read. The server replies to each
    // and pauses 100 ms: the four messages behind the first wait, and so must the close frame's answer, or the
    // replies to them would be refused (the close already sent) and lost (the outsider of stop 23 saw 1 of 5).
    const connection = waitFor<[WebSocket]>(wss, 'connection')
    const client = new WsClient(url)
    await waitFor(client, 'open')
    const [server] = await connection
    const refused: string[] = []
    server.on('message', (data: Buffer) => {
      server.send(`reply ${data}`, (error) => error && refused.push(`${data}: ${error.message}`))
      server.pause()
      setTimeout(() => server.resume(), 100)
    })
    const replies: string[] = []
    client.on('message', (data: Buffer) => replies.push(String(data)))
    const clientClosed = waitFor<[number]>(client, 'close')
    for (let i = 1; i <= 5; i++) client.send(String(i))
    client.close(1000)
    const [code] = await clientClosed
    assert.equal(code, 1000)
    assert.deepEqual(replies, ['reply 1', 'reply 2', 'reply 3', 'reply 4', 'reply 5'])
    assert.deepEqual(refused, [])
  })

  it('pause() and resume() are no-ops while CONNECTING', async () => {
    const ws = new WebSocket(url)
    ws.pause()
    assert.equal(ws.isPaused, false)
    await opened(ws)
    ws.terminate()
  })
})

describe('bufferedAmount', () => {
  it('grows while the peer does not read and returns to 0 after it drains', async () => {
    const { client, server } = await pair()
    try {
      server.pause()
      const chunk = Buffer.alloc(1024 * 1024, 0xab)
      assert.equal(client.bufferedAmount, 0)
      for (let i = 0; i < 64; i++) client.send(chunk)
      assert.ok(client.bufferedAmount >= 64 * chunk.length, `bufferedAmount ${client.bufferedAmount} right after send`)
      await delay(100)
      const stuck = client.bufferedAmount
      assert.ok(stuck > 0, 'the kernel cannot hold 64 MiB: something must stay buffered')
      const inbox = new Inbox(server)
      const drained = waitFor(client, 'drain')
      server.resume()
      await inbox.next(64, 20_000)
      await until(() => client.bufferedAmount === 0, 5000, 'bufferedAmount to return to 0')
      await drained
    } finally {
      client.terminate()
    }
  })
})

describe('Blob sends', () => {
  it('keep their order relative to Buffer and string sends', async () => {
    const { client, server } = await pair()
    try {
      const inbox = new Inbox(server)
      const callbacks: string[] = []
      client.send(Buffer.from('a'), () => callbacks.push('a'))
      client.send(new Blob(['b', 'b']), () => callbacks.push('b'))
      client.send('c', () => callbacks.push('c'))
      client.send(new Blob([new Uint8Array(100_000).fill(100)]), () => callbacks.push('d'))
      client.send(Buffer.from('e'), () => callbacks.push('e'))
      assert.ok(client.bufferedAmount >= 100_004)
      const got = await inbox.next(5)
      assert.deepEqual(got.map((m) => [m.data.length > 10 ? `d*${m.data.length}` : String(m.data), m.isBinary]), [
        ['a', true],
        ['bb', true],
        ['c', false],
        ['d*100000', true],
        ['e', true],
      ])
      await until(() => callbacks.length === 5)
      assert.deepEqual(callbacks, ['a', 'b', 'c', 'd', 'e'])
    } finally {
      client.terminate()
    }
  })

  it('a Blob sent by the npm ws client arrives as the same bytes', async () => {
    const connection = waitFor<[WebSocket]>(wss, 'connection')
    const client = await opened(new WsClient(url))
    try {
      const [server] = await connection
      const inbox = new Inbox(server)
      client.send(new Blob(['from ws']))
      const message = await inbox.one()
      assert.deepEqual([String(message.data), message.isBinary], ['from ws', true])
    } finally {
      client.terminate()
    }
  })
})
