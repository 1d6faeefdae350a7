/**
 * createWebSocketStream over real sockets: data both ways through the
 * Duplex, backpressure pausing the WebSocket, end() closing it, destroy()
 * terminating it, and the peer's close or error reaching the stream.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { createWebSocketStream, WebSocket } from '../../src/index.js'
import {
  closed,
  delay,
  Inbox,
  opened,
  rawWsServer,
  readFrame,
  sha256,
  stopWss,
  tetherServer,
  unmaskedFrame,
  until,
  waitFor,
} from '../helpers/net.js'

/** Reads a stream to its end, as one Buffer. */
async function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = []
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  await waitFor(stream, 'end')
  return Buffer.concat(chunks)
}

/** Reads exactly `length` bytes from a stream (bounded wait), leaving the stream open. */
async function readBytes(stream: Duplex, length: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  const onData = (chunk: Buffer) => {
    chunks.push(chunk)
    total += chunk.length
  }
  stream.on('data', onData)
  try {
    await until(() => total >= length, 10_000, `${length} bytes from the stream`)
  } finally {
    stream.off('data', onData)
    stream.pause()
  }
  return Buffer.concat(chunks)
}

describe('createWebSocketStream', () => {
  it('pipes data both ways (tether server stream <-> tether client stream), written while CONNECTING', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = new WebSocket(url)
      const clientStream = createWebSocketStream(client)
      // Written before the handshake finished: waits for 'open'.
      clientStream.write('hello ')
      const [serverWs] = await connection
      const serverStream = createWebSocketStream(serverWs)
      const payload = randomBytes(300_000)
      const serverGot = readBytes(serverStream, 6 + payload.length)
      clientStream.write(payload)
      const received = await serverGot
      assert.equal(String(received.subarray(0, 6)), 'hello ')
      assert.equal(sha256(received.subarray(6)), sha256(payload))
      // And back, through the server's stream to the client's.
      const reply = randomBytes(200_000)
      const clientGot = readBytes(clientStream, reply.length + 5)
      serverStream.write(reply)
      serverStream.write('done!')
      const back = await clientGot
      assert.equal(sha256(back.subarray(0, reply.length)), sha256(reply))
      assert.equal(String(back.subarray(reply.length)), 'done!')
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('an echo through pipeline(): the ws client gets back exactly what it sent', async () => {
    const { wss, url } = await tetherServer()
    wss.on('connection', (ws) => {
      const duplex = createWebSocketStream(ws)
      void pipeline(duplex, duplex).catch(() => {})
    })
    const client = await opened(new WsClient(url))
    try {
      const inbox = new Inbox(client)
      const messages = ['one', randomBytes(70_000), 'three']
      for (const message of messages) client.send(message)
      const got = await inbox.next(3)
      assert.equal(String(got[0]!.data), 'one')
      assert.equal(sha256(got[1]!.data), sha256(messages[1] as Buffer))
      assert.equal(String(got[2]!.data), 'three')
    } finally {
      client.terminate()
      await stopWss(wss)
    }
  })

  it('readableObjectMode: text messages come as strings, binary ones as Buffers, one chunk per message', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverWs] = await connection
      const stream = createWebSocketStream(client, { readableObjectMode: true })
      const chunks: unknown[] = []
      stream.on('data', (chunk: unknown) => chunks.push(chunk))
      serverWs.send('text ✓')
      serverWs.send(Buffer.from([1, 2]))
      serverWs.send('')
      await until(() => chunks.length === 3)
      assert.equal(chunks[0], 'text ✓')
      assert.ok(Buffer.isBuffer(chunks[1]))
      assert.deepEqual([...(chunks[1] as Buffer)], [1, 2])
      assert.equal(chunks[2], '')
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('backpressure: a full readable buffer pauses the WebSocket; reading resumes it', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverWs] = await connection
      const stream = createWebSocketStream(client, { readableHighWaterMark: 16 })
      for (let i = 0; i < 100; i++) serverWs.send(Buffer.alloc(1000, i))
      await until(() => client.isPaused, 5000, 'the WebSocket to be paused')
      assert.ok(stream.readableLength >= 16)
      await delay(50)
      const buffered = stream.readableLength
      assert.ok(buffered < 100 * 1000, 'paused: not everything was pushed')
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      await until(() => chunks.length === 100, 5000, 'all chunks')
      assert.equal(client.isPaused, false)
      chunks.forEach((chunk, i) => assert.deepEqual(chunk, Buffer.alloc(1000, i)))
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('end() closes the WebSocket with a closing handshake', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverWs] = await connection
      const serverInbox = new Inbox(serverWs)
      const serverClosed = closed(serverWs)
      const stream = createWebSocketStream(client)
      const streamClosed = waitFor(stream, 'close')
      const readAllPromise = readAll(stream)
      stream.end('last words')
      assert.equal(String((await serverInbox.one()).data), 'last words')
      assert.deepEqual(await serverClosed, [1005, ''])
      assert.equal((await readAllPromise).length, 0)
      await streamClosed
      assert.equal(client.readyState, WebSocket.CLOSED)
      assert.equal(stream.destroyed, true)
    } finally {
      await stopWss(wss)
    }
  })

  it('destroy() terminates the WebSocket; the peer sees 1006', async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverWs] = await connection
      const serverClosed = closed(serverWs)
      const stream = createWebSocketStream(client)
      const streamClosed = waitFor(stream, 'close')
      stream.destroy()
      await streamClosed
      assert.equal(client.readyState, WebSocket.CLOSED)
      assert.deepEqual(await serverClosed, [1006, ''])
    } finally {
      await stopWss(wss)
    }
  })

  it("the peer's close ends the readable side", async () => {
    const { wss, url } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const client = await opened(new WebSocket(url))
      const [serverWs] = await connection
      const stream = createWebSocketStream(client)
      const all = readAll(stream)
      serverWs.send('bye')
      serverWs.close(1000)
      assert.equal(String(await all), 'bye')
      assert.equal(stream.destroyed, false, 'the writable side is still open (as in ws)')
      // Ending the writable side too releases the stream.
      const streamClosed = waitFor(stream, 'close')
      stream.end()
      await streamClosed
      assert.equal(stream.destroyed, true)
    } finally {
      await stopWss(wss)
    }
  })

  it("a protocol error destroys the stream with the WebSocket's error", async () => {
    const server = await rawWsServer()
    const client = new WebSocket(server.url)
    try {
      const stream = createWebSocketStream(client)
      const failed = waitFor<[Error & { code: string }]>(stream, 'error')
      const clientClosed = closed(client)
      const open = waitFor(client, 'open')
      const peer = await server.next()
      await open
      peer.write(unmaskedFrame(1, Buffer.from([0xff])))
      // The failing client sends its close frame and waits for the server to close TCP (§7.1.1).
      assert.equal((await readFrame(peer)).opcode, 8)
      peer.socket.end()
      const [error] = await failed
      assert.equal(error.code, 'WS_ERR_INVALID_UTF8')
      assert.equal(stream.destroyed, true)
      assert.deepEqual(await clientClosed, [1006, ''])
    } finally {
      client.terminate()
      await server.stop()
    }
  })
})

// Issue 15: with binaryType 'arraybuffer' the stream cannot take the chunks (an ArrayBuffer is not a
// Buffer); ws destroys the stream, which terminates the socket, and still delivers every message received.
describe('a stream that cannot take a message', () => {
  it("binaryType 'arraybuffer', nobody reading: every message still reaches 'message', then close 1006", async () => {
    const { wss, url } = await tetherServer()
    wss.on('connection', (socket) => {
      for (let i = 0; i < 4; i++) socket.send(Buffer.from([i]))
    })
    try {
      const client = new WebSocket(url)
      client.binaryType = 'arraybuffer'
      const duplex = createWebSocketStream(client)
      const errors: string[] = []
      duplex.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message))
      let messages = 0
      client.on('message', () => messages++)
      const [code] = await closed(client)
      assert.deepEqual([messages, code, errors], [4, 1006, ['ERR_INVALID_ARG_TYPE']])
      assert.ok(duplex.destroyed)
    } finally {
      await stopWss(wss)
    }
  })
})
