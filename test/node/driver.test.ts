/**
 * The Node driver over real loopback sockets: how frames reach the socket
 * (one write per tick, large payloads not copied), and the driver's own
 * contract with a handler (handshake leftovers, exactly one 'closed',
 * callbacks after the socket is gone).
 */
import assert from 'node:assert/strict'
import net, { type Socket } from 'node:net'
import { describe, it } from 'node:test'
import { Connection } from '../../src/core/connection.js'
import { type DriverHandler, SocketDriver } from '../../src/node/driver.js'
import { WebSocket } from '../../src/index.js'
import {
  closePayload,
  delay,
  Inbox,
  listen,
  maskedFrame,
  opened,
  readFrame,
  RawPeer,
  stopWss,
  tetherServer,
  until,
  waitFor,
} from '../helpers/net.js'

/** Counts what reaches a socket's low-level write methods, and what `write` was given. */
function spyOnWrites(socket: Socket) {
  const spy = { write: [] as Uint8Array[], _write: 0, _writev: 0, chunksPerWritev: [] as number[] }
  const target = socket as Socket & { _write: Function; _writev: Function }
  const write = socket.write
  socket.write = function (this: Socket, chunk: Uint8Array, ...rest: unknown[]) {
    spy.write.push(chunk)
    return (write as Function).call(this, chunk, ...rest)
  } as Socket['write']
  const lowWrite = target._write
  target._write = function (this: Socket, ...args: unknown[]) {
    spy._write++
    return lowWrite.apply(this, args)
  }
  const lowWritev = target._writev
  target._writev = function (this: Socket, chunks: unknown[], ...args: unknown[]) {
    spy._writev++
    spy.chunksPerWritev.push(chunks.length)
    return lowWritev.call(this, chunks, ...args)
  }
  return spy
}

/** A tether server-side WebSocket with spies on its socket, and a tether client. */
async function spiedPair() {
  const server = await tetherServer()
  const connection = waitFor<[WebSocket]>(server.wss, 'connection')
  const client = await opened(new WebSocket(server.url))
  const [ws] = await connection
  return { ...server, client, ws, spy: spyOnWrites(ws._socket!) }
}

describe('driver writes', () => {
  it('N small sends in one tick leave in one socket write', async () => {
    const { wss, client, ws, spy } = await spiedPair()
    try {
      const inbox = new Inbox(client)
      for (let i = 0; i < 20; i++) ws.send(`small ${i}`)
      ws.ping('p')
      assert.equal(spy.write.length, 0, 'nothing is written synchronously')
      const got = await inbox.next(20)
      assert.equal(String(got[19]!.data), 'small 19')
      assert.equal(spy.write.length, 1)
      assert.equal(spy._write + spy._writev, 1)
      // One frame costs one write, header and payload together.
      ws.send('x')
      await inbox.one()
      assert.equal(spy.write.length, 2)
      assert.deepEqual([...spy.write[1]!], [0x81, 0x01, 0x78])
    } finally {
      client.terminate()
      await stopWss(wss)
    }
  })

  it('small and large frames sent in one tick leave in one corked batch (one writev)', async () => {
    const { wss, client, ws, spy } = await spiedPair()
    try {
      const inbox = new Inbox(client)
      ws.send('before')
      ws.send(Buffer.alloc(100_000, 1))
      ws.send('after')
      await inbox.next(3)
      assert.ok(spy.write.length > 1, 'several chunks were handed to the socket')
      assert.equal(spy._write, 0)
      assert.equal(spy._writev, 1)
      assert.equal(spy.chunksPerWritev[0], spy.write.length)
    } finally {
      client.terminate()
      await stopWss(wss)
    }
  })

  it('a large payload sent by the server is not copied (same ArrayBuffer reaches the socket)', async () => {
    const { wss, client, ws, spy } = await spiedPair()
    try {
      const inbox = new Inbox(client)
      const payload = Buffer.allocUnsafeSlow(1024 * 1024).fill(0x5a)
      const view = new Uint8Array(new ArrayBuffer(2 * 1024 * 1024), 4096, 1024 * 1024).fill(0x33)
      ws.send(payload)
      ws.send(view)
      await inbox.next(2)
      const same = spy.write.filter((chunk) => chunk.buffer === payload.buffer)
      assert.equal(same.length, 1, 'the Buffer itself reaches socket.write')
      assert.equal(same[0]!.byteOffset, payload.byteOffset)
      assert.equal(same[0]!.byteLength, payload.byteLength)
      const sameView = spy.write.filter((chunk) => chunk.buffer === view.buffer)
      assert.equal(sameView.length, 1, 'a typed-array view reaches socket.write as is')
      assert.equal(sameView[0]!.byteOffset, 4096)
    } finally {
      client.terminate()
      await stopWss(wss)
    }
  })

  it("a client masks a copy: the caller's buffer is left untouched", async () => {
    const { wss, client, ws } = await spiedPair()
    try {
      const inbox = new Inbox(ws)
      const payload = Buffer.alloc(1024 * 1024, 0x11)
      client.send(payload)
      client.send(payload.subarray(0, 100))
      const [big, small] = await inbox.next(2)
      assert.ok(payload.every((byte) => byte === 0x11))
      assert.ok(big!.data.equals(payload))
      assert.ok(small!.data.equals(payload.subarray(0, 100)))
    } finally {
      client.terminate()
      await stopWss(wss)
    }
  })
})

/** A connected pair of plain TCP sockets. */
async function socketPair(): Promise<{ near: Socket; far: RawPeer; close(): Promise<void> }> {
  let accepted: Socket | undefined
  const server = net.createServer((socket) => (accepted = socket))
  const port = await listen(server)
  const far = await RawPeer.connect(port)
  await until(() => accepted !== undefined)
  return {
    near: accepted!,
    far,
    async close() {
      accepted!.destroy()
      far.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** A handler that records what the driver reports. */
function recorder(): DriverHandler & { log: string[] } {
  const log: string[] = []
  return {
    log,
    onMessage: (data, binary) => log.push(`message ${binary ? 'binary' : 'text'} ${data}`),
    onPing: (data) => log.push(`ping ${data}`),
    onPong: (data) => log.push(`pong ${data}`),
    onCloseFrame: (code, reason) => log.push(`close frame ${code} ${reason}`),
    onError: (error) => log.push(`error ${error.code}`),
    onClosed: (code, reason, wasClean) => log.push(`closed ${code} ${reason} ${wasClean}`),
  }
}

describe('SocketDriver', () => {
  it('bytes that came with the handshake are dispatched after start() returns, before later data', async () => {
    const { near, far, close } = await socketPair()
    try {
      const handler = recorder()
      const driver = new SocketDriver(near, new Connection({ side: 'server' }), handler)
      driver.start(maskedFrame(1, 'from head'))
      assert.deepEqual(handler.log, [], 'nothing is dispatched from inside start()')
      far.write(maskedFrame(1, 'from socket'))
      await until(() => handler.log.length === 2)
      assert.deepEqual(handler.log, ['message text from head', 'message text from socket'])
    } finally {
      await close()
    }
  })

  it('handshake bytes respect a pause() made right after start()', async () => {
    const { near, close } = await socketPair()
    try {
      const handler = recorder()
      const driver = new SocketDriver(near, new Connection({ side: 'server' }), handler)
      driver.start(Buffer.concat([maskedFrame(1, 'a'), maskedFrame(1, 'b')]))
      // What a 'connection' handler calling ws.pause() does.
      driver.pause()
      await delay(50)
      assert.deepEqual(handler.log, [])
      driver.resume()
      await until(() => handler.log.length === 2)
      assert.deepEqual(handler.log, ['message text a', 'message text b'])
    } finally {
      await close()
    }
  })

  it("reports 'closed' exactly once, after the socket is gone, with the peer's code", async () => {
    const { near, far, close } = await socketPair()
    try {
      const handler = recorder()
      const driver = new SocketDriver(near, new Connection({ side: 'server' }), handler)
      driver.start()
      far.write(maskedFrame(8, closePayload(4000, 'done')))
      const echo = await readFrame(far)
      assert.equal(echo.payload.readUInt16BE(0), 4000)
      await far.waitEnded()
      await until(() => handler.log.some((line) => line.startsWith('closed')))
      driver.destroy()
      driver.destroy()
      await delay(20)
      assert.deepEqual(handler.log, ['close frame 4000 done', 'closed 4000 done true'])
    } finally {
      await close()
    }
  })

  it('while paused, parsed events wait; the socket is not read; resume() delivers them in order', async () => {
    const { near, far, close } = await socketPair()
    try {
      const handler = recorder()
      const driver = new SocketDriver(near, new Connection({ side: 'server' }), handler)
      driver.start()
      far.write(Buffer.concat([maskedFrame(1, 'one'), maskedFrame(9, 'p'), maskedFrame(2, 'two')]))
      await until(() => handler.log.length === 3)
      driver.pause()
      assert.equal(driver.isPaused, true)
      far.write(Buffer.concat([maskedFrame(1, 'three'), maskedFrame(1, 'four')]))
      await delay(50)
      assert.equal(handler.log.length, 3)
      driver.resume()
      await until(() => handler.log.length === 5)
      assert.deepEqual(handler.log, ['message text one', 'ping p', 'message binary two', 'message text three', 'message text four'])
      // The automatic pong went out.
      const pong = await readFrame(far)
      assert.deepEqual([pong.opcode, String(pong.payload)], [10, 'p'])
    } finally {
      await close()
    }
  })

  it('write callbacks of frames the socket can no longer take get an error', async () => {
    const { near, close } = await socketPair()
    try {
      const connection = new Connection({ side: 'server' })
      const driver = new SocketDriver(near, connection, recorder())
      driver.start()
      connection.sendText('never written')
      const outcome = new Promise<Error | null | undefined>((resolve) => driver.queued(resolve))
      near.destroy()
      const error = await outcome
      assert.equal(error?.message, 'WebSocket is not open: the socket is closed')
    } finally {
      await close()
    }
  })

  it('bufferedAmount counts queued frames until they are written', async () => {
    const { near, far, close } = await socketPair()
    try {
      const connection = new Connection({ side: 'server' })
      const driver = new SocketDriver(near, connection, recorder())
      driver.start()
      connection.sendText('hello')
      assert.equal(driver.bufferedAmount, 7)
      driver.queued()
      await far.read(7)
      assert.equal(driver.bufferedAmount, 0)
    } finally {
      await close()
    }
  })
})
