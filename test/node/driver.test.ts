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
import { NetTransport, type WriteCallback } from '../../src/node/transport.js'
import { TcpTransport } from '../../src/node/tcp.js'
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
  TCP_HANDLES,
} from '../helpers/net.js'

/** What a spy saw: each batch is the chunks handed to the operating system in one call. */
interface WriteSpy {
  batches: Uint8Array[][]
  restore(): void
}

/** Over net.Socket: one _write is a batch of one chunk, one _writev a batch of several. */
function spyOnSocket(socket: Socket): WriteSpy {
  const spy: WriteSpy = { batches: [], restore() {} }
  const target = socket as Socket & { _write: Function; _writev: Function }
  const lowWrite = target._write
  target._write = function (this: Socket, chunk: Uint8Array, ...args: unknown[]) {
    spy.batches.push([chunk])
    return lowWrite.call(this, chunk, ...args)
  }
  const lowWritev = target._writev
  target._writev = function (this: Socket, chunks: Array<{ chunk: Uint8Array }>, ...args: unknown[]) {
    spy.batches.push(chunks.map((entry) => entry.chunk))
    return lowWritev.call(this, chunks, ...args)
  }
  return spy
}

/** Over a bare TCP handle: one TcpTransport.write is one writeBuffer/writev call. */
function spyOnTcp(socket: Socket): WriteSpy {
  const spy: WriteSpy = { batches: [], restore: () => (TcpTransport.prototype.write = write) }
  const write = TcpTransport.prototype.write
  TcpTransport.prototype.write = function (this: TcpTransport, chunks: Uint8Array[], callback?: WriteCallback) {
    if (this.socket === socket) spy.batches.push([...chunks])
    return write.call(this, chunks, callback)
  }
  return spy
}

/** A tether server-side WebSocket (over `transport`) with a spy on its writes, and a tether client. */
async function spiedPair(transport: 'net' | 'tcp') {
  const server = await tetherServer(transport === 'net' ? { useNodeHttp: true } : {})
  const connection = waitFor<[WebSocket]>(server.wss, 'connection')
  const client = await opened(new WebSocket(server.url))
  const [ws] = await connection
  const spy = transport === 'net' ? spyOnSocket(ws._socket!) : spyOnTcp(ws._socket!)
  return { ...server, client, ws, spy }
}

for (const transport of ['tcp', 'net'] as const) {
  const skip = transport === 'tcp' && !TCP_HANDLES ? 'port mode runs on net in this run (TETHER_TCP_HANDLES=0)' : false
  describe(`driver writes over ${transport === 'tcp' ? 'a bare TCP handle (port mode)' : 'net.Socket (useNodeHttp)'}`, { skip }, () => {
    it('N small sends in one tick leave in one system call', async () => {
      const { wss, client, ws, spy } = await spiedPair(transport)
      try {
        const inbox = new Inbox(client)
        for (let i = 0; i < 20; i++) ws.send(`small ${i}`)
        ws.ping('p')
        assert.equal(spy.batches.length, 0, 'nothing is written synchronously')
        const got = await inbox.next(20)
        assert.equal(String(got[19]!.data), 'small 19')
        assert.equal(spy.batches.length, 1)
        assert.equal(spy.batches[0]!.length, 1, 'small frames share one buffer')
        // One frame costs one write, header and payload together.
        ws.send('x')
        await inbox.one()
        assert.equal(spy.batches.length, 2)
        assert.deepEqual(spy.batches[1]!.map((chunk) => [...chunk]), [[0x81, 0x01, 0x78]])
      } finally {
        spy.restore()
        client.terminate()
        await stopWss(wss)
      }
    })

    it('small and large frames sent in one tick leave in one writev', async () => {
      const { wss, client, ws, spy } = await spiedPair(transport)
      try {
        const inbox = new Inbox(client)
        ws.send('before')
        ws.send(Buffer.alloc(100_000, 1))
        ws.send('after')
        await inbox.next(3)
        assert.equal(spy.batches.length, 1)
        assert.ok(spy.batches[0]!.length > 1, 'several chunks in the one call')
      } finally {
        spy.restore()
        client.terminate()
        await stopWss(wss)
      }
    })

    it('a large payload sent by the server is not copied (the same ArrayBuffer reaches the system call)', async () => {
      const { wss, client, ws, spy } = await spiedPair(transport)
      try {
        const inbox = new Inbox(client)
        const payload = Buffer.allocUnsafeSlow(1024 * 1024).fill(0x5a)
        const view = new Uint8Array(new ArrayBuffer(2 * 1024 * 1024), 4096, 1024 * 1024).fill(0x33)
        ws.send(payload)
        ws.send(view)
        await inbox.next(2)
        const chunks = spy.batches.flat()
        const same = chunks.filter((chunk) => chunk.buffer === payload.buffer)
        assert.equal(same.length, 1, 'the Buffer itself is written')
        assert.equal(same[0]!.byteOffset, payload.byteOffset)
        assert.equal(same[0]!.byteLength, payload.byteLength)
        const sameView = chunks.filter((chunk) => chunk.buffer === view.buffer)
        assert.equal(sameView.length, 1, 'a typed-array view is written as is')
        assert.equal(sameView[0]!.byteOffset, 4096)
      } finally {
        spy.restore()
        client.terminate()
        await stopWss(wss)
      }
    })
  })
}

describe('driver writes: clients', () => {
  it("a client masks a copy: the caller's buffer is left untouched", async () => {
    const { wss, client, ws, spy } = await spiedPair('tcp')
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
      spy.restore()
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
    driverMessage: (data, binary) => log.push(`message ${binary ? 'binary' : 'text'} ${data}`),
    driverPing: (data) => log.push(`ping ${data}`),
    driverPong: (data) => log.push(`pong ${data}`),
    driverCloseFrame: (code, reason) => log.push(`close frame ${code} ${reason}`),
    driverError: (error) => log.push(`error ${error.code}`),
    driverClosed: (code, reason, wasClean) => log.push(`closed ${code} ${reason} ${wasClean}`),
  }
}

describe('SocketDriver', () => {
  it('bytes that came with the handshake are dispatched after start() returns, before later data', async () => {
    const { near, far, close } = await socketPair()
    try {
      const handler = recorder()
      const driver = new SocketDriver(new NetTransport(near), new Connection({ side: 'server' }), handler)
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
      const driver = new SocketDriver(new NetTransport(near), new Connection({ side: 'server' }), handler)
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
      const driver = new SocketDriver(new NetTransport(near), new Connection({ side: 'server' }), handler)
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
      const driver = new SocketDriver(new NetTransport(near), new Connection({ side: 'server' }), handler)
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
      const driver = new SocketDriver(new NetTransport(near), connection, recorder())
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
      const driver = new SocketDriver(new NetTransport(near), connection, recorder())
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
