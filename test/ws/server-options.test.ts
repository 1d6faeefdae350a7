/**
 * Less common server options and states over real sockets: autoPong,
 * skipUTF8Validation, a custom WebSocket class, upgrades after close(),
 * listen errors, and many clients at once.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import {
  closeServer,
  delay,
  HOST,
  Inbox,
  listen,
  maskedFrame,
  opened,
  rawWebSocket,
  readFrame,
  stopWss,
  tetherServer,
  until,
  waitFor,
} from '../helpers/net.js'

describe('server options', () => {
  it("autoPong: false leaves pings unanswered but still emits 'ping'", async () => {
    const { wss, url } = await tetherServer({ autoPong: false })
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = await opened(new WsClient(url))
      const [serverSide] = await connection
      const pings: string[] = []
      let pongs = 0
      serverSide.on('ping', (data: Buffer) => pings.push(String(data)))
      client.on('pong', () => pongs++)
      client.ping('anyone?')
      await waitFor(serverSide, 'ping')
      await delay(50)
      assert.deepEqual(pings, ['anyone?'])
      assert.equal(pongs, 0)
      // The application can answer itself.
      const pong = waitFor<[Buffer]>(client, 'pong')
      serverSide.pong('manual')
      assert.equal(String((await pong)[0]), 'manual')
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('skipUTF8Validation: invalid UTF-8 is delivered instead of failing the connection', async () => {
    const { wss, port } = await tetherServer({ skipUTF8Validation: true })
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [serverSide] = await connection
      const inbox = new Inbox(serverSide)
      peer.write(maskedFrame(1, Buffer.from([0xff, 0xfe])))
      const message = await inbox.one()
      assert.deepEqual([[...message.data], message.isBinary], [[0xff, 0xfe], false])
      assert.equal(serverSide.readyState, WebSocket.OPEN)
      peer.destroy()
    } finally {
      await stopWss(wss)
    }
  })

  it('the WebSocket option: connections are instances of the given subclass', async () => {
    class Tagged extends WebSocket {
      tag = 'tagged'
    }
    const { wss, url } = await tetherServer({ WebSocket: Tagged })
    try {
      const connection = waitFor<[Tagged]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverSide] = await connection
      assert.ok(serverSide instanceof Tagged)
      assert.equal(serverSide.tag, 'tagged')
      assert.ok(wss.clients.has(serverSide))
      assert.equal(serverSide.url, undefined)
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it("the WebSocket option: a subclass's class field binaryType = 'fragments' holds, as with ws (read when the socket is attached)", async () => {
    class Fragments extends WebSocket {
      // @ts-expect-error: a field where the base class has an accessor, as JavaScript subclasses of ws write it
      binaryType = 'fragments' as const
    }
    const { wss, url } = await tetherServer({ WebSocket: Fragments })
    try {
      const connection = waitFor<[Fragments]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverSide] = await connection
      const received = waitFor<[unknown, boolean]>(serverSide, 'message')
      client.send(Buffer.from([1, 2, 3]))
      const [data, isBinary] = await received
      assert.equal(isBinary, true)
      assert.ok(Array.isArray(data), 'fragments: an array of buffers')
      assert.deepEqual([...Buffer.concat(data as Buffer[])], [1, 2, 3])
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('handleUpgrade after close() answers 503', async () => {
    const wss = new WebSocketServer({ noServer: true })
    const server = http.createServer()
    server.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, () => assert.fail('upgraded')))
    try {
      const port = await listen(server)
      await new Promise((resolve) => wss.close(resolve))
      const ws = new WebSocket(`ws://${HOST}:${port}`)
      const [error] = await waitFor<[Error]>(ws, 'error')
      assert.equal(error.message, 'Unexpected server response: 503')
    } finally {
      await closeServer(server)
    }
  })

  it("a port already in use: the server emits 'error' (EADDRINUSE)", async () => {
    const first = await tetherServer()
    const second = new WebSocketServer({ host: HOST, port: first.port })
    try {
      const [error] = await waitFor<[Error & { code: string }]>(second, 'error')
      assert.equal(error.code, 'EADDRINUSE')
    } finally {
      second.close()
      await stopWss(first.wss)
    }
  })

  it('100 clients at once: all connect, a broadcast reaches all, all close cleanly', async () => {
    const { wss, url } = await tetherServer()
    const clients: WebSocket[] = []
    try {
      const opening = []
      for (let i = 0; i < 100; i++) {
        const ws = new WebSocket(url)
        clients.push(ws)
        opening.push(opened(ws))
      }
      await Promise.all(opening)
      assert.equal(wss.clients.size, 100)
      const inboxes = clients.map((ws) => new Inbox(ws))
      for (const client of wss.clients) client.send('to everyone')
      for (const inbox of inboxes) assert.equal(String((await inbox.one()).data), 'to everyone')
      const closing = clients.map((ws) => waitFor<[number]>(ws, 'close'))
      for (const client of wss.clients) client.close(1001)
      for (const [code] of await Promise.all(closing)) assert.equal(code, 1001)
      await until(() => wss.clients.size === 0, 5000, 'the server to drop all clients')
    } finally {
      for (const ws of clients) ws.terminate()
      await stopWss(wss)
    }
  })

  it("one peer's protocol error does not disturb the other connections", async () => {
    const { wss, port, url } = await tetherServer()
    try {
      const bad = await rawWebSocket(port)
      const good = await opened(new WebSocket(url))
      bad.write(Buffer.from([0x81, 0x01, 0x41]))
      const frame = await readFrame(bad)
      assert.equal(frame.payload.readUInt16BE(0), 1002)
      const inbox = new Inbox(good)
      for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send('fine')
      assert.equal(String((await inbox.one()).data), 'fine')
      bad.destroy()
      good.terminate()
    } finally {
      await stopWss(wss)
    }
  })
})
