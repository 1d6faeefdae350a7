/**
 * Who closes TCP, and when (RFC 6455 §7.1.1, §5.5.1): the server closes the
 * connection right after the closing handshake; a client waits for the
 * server's FIN, within `closeTimeout`. Raw peers make the order observable.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { WebSocket } from '../../src/index.js'
import {
  closed,
  closePayload,
  delay,
  emitsWithin,
  maskedFrame,
  rawWebSocket,
  rawWsServer,
  readFrame,
  stopWss,
  tetherServer,
  unmaskedFrame,
  waitFor,
} from '../helpers/net.js'

describe('tether server and the TCP close', () => {
  it('answers a client close frame, then closes TCP first without waiting for the client', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      peer.socket.allowHalfOpen = true
      const [ws] = await connection
      const close = closed(ws)
      peer.write(maskedFrame(8, closePayload(4100, 'raw bye')))
      const echo = await readFrame(peer)
      assert.deepEqual([echo.opcode, echo.masked, echo.payload.readUInt16BE(0), String(echo.payload.subarray(2))], [8, false, 4100, 'raw bye'])
      // The raw client has not ended its side; the server's FIN arrives anyway.
      await peer.waitEnded()
      assert.equal(peer.socket.writableEnded, false)
      peer.socket.end()
      assert.deepEqual(await close, [4100, 'raw bye'])
      assert.equal(ws.wasClean, true)
    } finally {
      await stopWss(wss)
    }
  })

  it('after its own close frame, waits for the client to answer before closing TCP', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [ws] = await connection
      const close = closed(ws)
      ws.close(1001, 'going away')
      const frame = await readFrame(peer)
      assert.deepEqual([frame.opcode, frame.payload.readUInt16BE(0), String(frame.payload.subarray(2))], [8, 1001, 'going away'])
      await delay(100)
      assert.equal(peer.ended, false, 'the server must not close TCP before the client answered')
      assert.equal(ws.readyState, WebSocket.CLOSING)
      peer.write(maskedFrame(8, closePayload(1001)))
      await peer.waitEnded()
      assert.deepEqual(await close, [1001, ''])
      peer.destroy()
    } finally {
      await stopWss(wss)
    }
  })

  it('does not stay half-open: a client that never closes TCP is dropped after closeTimeout', async () => {
    const { wss, port } = await tetherServer({ closeTimeout: 150 })
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      peer.socket.allowHalfOpen = true
      const [ws] = await connection
      const close = closed(ws)
      peer.write(maskedFrame(8, closePayload(4100)))
      await peer.waitEnded()
      // The raw client keeps its side open; the server's 'close' comes from the timer.
      assert.deepEqual(await close, [4100, ''])
      assert.equal(ws._socket!.destroyed, true)
      peer.destroy()
    } finally {
      await stopWss(wss)
    }
  })

  it('destroys the socket after closeTimeout when the client never answers the close frame', async () => {
    const { wss, port } = await tetherServer({ closeTimeout: 150 })
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [ws] = await connection
      const close = closed(ws)
      const started = Date.now()
      ws.close(1000)
      assert.deepEqual(await close, [1006, ''])
      assert.ok(Date.now() - started >= 100, 'closed before the close timeout')
      assert.equal(ws.wasClean, false)
      peer.destroy()
    } finally {
      await stopWss(wss)
    }
  })
})

describe('tether client and the TCP close', () => {
  it('after the closing handshake, waits for the server to close TCP', async () => {
    const server = await rawWsServer()
    const ws = new WebSocket(server.url)
    try {
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      peer.socket.allowHalfOpen = true
      await open
      const close = closed(ws)
      ws.close(4001, 'client done')
      const frame = await readFrame(peer)
      assert.deepEqual([frame.opcode, frame.masked, frame.payload.readUInt16BE(0)], [8, true, 4001])
      peer.write(unmaskedFrame(8, frame.payload))
      // The client must not send FIN or report 'close' while the server keeps TCP open.
      assert.equal(await emitsWithin(ws, 'close', 150), false)
      assert.equal(peer.ended, false, 'the client closed TCP first')
      assert.equal(ws.readyState, WebSocket.CLOSING)
      peer.socket.end()
      assert.deepEqual(await close, [4001, 'client done'])
      assert.equal(ws.wasClean, true)
      await peer.waitEnded()
    } finally {
      ws.terminate()
      await server.stop()
    }
  })

  it('gives up after closeTimeout when the server never closes TCP', async () => {
    const server = await rawWsServer()
    const ws = new WebSocket(server.url, { closeTimeout: 150 })
    try {
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      await open
      const close = closed(ws)
      const started = Date.now()
      ws.close(1000)
      await readFrame(peer)
      peer.write(unmaskedFrame(8, closePayload(1000)))
      // The close frame arrived, so the code is the server's even though TCP was torn down.
      assert.deepEqual(await close, [1000, ''])
      assert.ok(Date.now() - started >= 100, 'closed before the close timeout')
    } finally {
      ws.terminate()
      await server.stop()
    }
  })

  it('answers a server-initiated close and reports it once the server closes TCP', async () => {
    const server = await rawWsServer()
    const ws = new WebSocket(server.url)
    try {
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      await open
      const close = closed(ws)
      peer.write(unmaskedFrame(8, closePayload(1012, 'restart')))
      const echo = await readFrame(peer)
      assert.deepEqual([echo.masked, echo.payload.readUInt16BE(0), String(echo.payload.subarray(2))], [true, 1012, 'restart'])
      peer.socket.end()
      assert.deepEqual(await close, [1012, 'restart'])
    } finally {
      ws.terminate()
      await server.stop()
    }
  })
})

describe("a message and a close frame in one read: the 'message' listener's echo goes out first", () => {
  // The conformance suite (case 7.1.1, and 3.2, 4.1.3, 5.15 with a bad frame instead of the
  // close) found ws.send() throwing StateError inside the 'message' listener: the core had
  // already answered the close frame parsed from the same read. It is now held until the
  // listeners have run (core Rule 5).
  it('tether server: echo, then the close answer, then TCP closed; nothing throws', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [ws] = await connection
      const thrown: unknown[] = []
      ws.on('message', (data, isBinary) => {
        try {
          ws.send(data as Buffer, { binary: isBinary })
        } catch (error) {
          thrown.push(error)
        }
      })
      const close = closed(ws)
      peer.write(Buffer.concat([maskedFrame(1, 'echo me'), maskedFrame(8, closePayload(1000))]))
      const echo = await readFrame(peer)
      assert.deepEqual([echo.opcode, String(echo.payload)], [1, 'echo me'])
      const answer = await readFrame(peer)
      assert.deepEqual([answer.opcode, answer.payload.readUInt16BE(0)], [8, 1000])
      await peer.waitEnded()
      peer.destroy()
      assert.deepEqual(await close, [1000, ''])
      assert.deepEqual(thrown, [])
    } finally {
      await stopWss(wss)
    }
  })

  it('tether server: echo, then the 1002 close of a bad frame that followed in the same read', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [ws] = await connection
      ws.on('error', () => {})
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
      peer.write(Buffer.concat([maskedFrame(2, 'bin'), maskedFrame(3, ''), maskedFrame(9, 'no pong')]))
      const echo = await readFrame(peer)
      assert.deepEqual([echo.opcode, String(echo.payload)], [2, 'bin'])
      const failure = await readFrame(peer)
      assert.deepEqual([failure.opcode, failure.payload.readUInt16BE(0)], [8, 1002])
      await peer.waitEnded()
      assert.equal(peer.buffer.length, 0, 'no pong after the failure')
      peer.destroy()
    } finally {
      await stopWss(wss)
    }
  })

  it('tether client: echo, then the close answer; a send after the close event is refused, not thrown', async () => {
    const server = await rawWsServer()
    const ws = new WebSocket(server.url)
    try {
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      await open
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
      const refused = new Promise<Error | null | undefined>((resolve) => {
        ws.on('close', () => {})
        ws.once('ping', () => {})
        ws.on('message', () => setImmediate(() => ws.send('too late', (error) => resolve(error))))
      })
      peer.write(Buffer.concat([unmaskedFrame(1, 'from server'), unmaskedFrame(8, closePayload(1001))]))
      const echo = await readFrame(peer)
      assert.deepEqual([echo.opcode, echo.masked, String(echo.payload)], [1, true, 'from server'])
      const answer = await readFrame(peer)
      assert.deepEqual([answer.opcode, answer.payload.readUInt16BE(0)], [8, 1001])
      assert.match(String((await refused)?.message), /not open/)
      const close = closed(ws)
      peer.socket.end()
      assert.deepEqual(await close, [1001, ''])
    } finally {
      ws.terminate()
      await server.stop()
    }
  })
})
