/**
 * Protocol violations over real sockets: a raw peer completes a genuine
 * handshake and then sends bad bytes. tether must fail the connection the
 * way ws does (same error code, class and message, same close frame on the
 * wire, 1006 in 'close'), and must not crash when nobody listens for 'error'.
 */
import assert from 'node:assert/strict'
import type { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket } from '../../src/index.js'
import {
  closed,
  closePayload,
  maskedFrame,
  RawPeer,
  rawWebSocket,
  rawWsServer,
  readFrame,
  stopWss,
  tetherServer,
  unmaskedFrame,
  waitFor,
  wsServer,
} from '../helpers/net.js'

type Shaped = Error & { code?: string; closeCode?: number }

/** What an implementation did about bad input: the error, the close frame it sent, its 'close' code. */
interface Outcome {
  code: string | undefined
  message: string
  isRangeError: boolean
  closeFrame: string
  closeCode: number
  tcpClosed: boolean
}

async function observe(ws: EventEmitter, peer: RawPeer, send: Buffer, peerIsServer = false): Promise<Outcome & { error: Shaped }> {
  const error = waitFor<[Shaped]>(ws, 'error')
  const close = closed(ws)
  peer.write(send)
  const [e] = await error
  const frame = await readFrame(peer)
  // A raw server answers the client's close frame as a server does: it closes TCP (§7.1.1),
  // which a failing tether client waits for.
  if (peerIsServer) peer.socket.end()
  const [closeCode] = await close
  await peer.waitEnded()
  return {
    error: e,
    code: e.code,
    message: e.message,
    isRangeError: e instanceof RangeError,
    closeFrame: `${frame.opcode} ${frame.payload.toString('hex')}`,
    closeCode,
    tcpClosed: peer.ended || peer.closed,
  }
}

const strip = ({ error: _error, ...rest }: Outcome & { error: Shaped }) => rest

/** Bad input a client might send a server (all masked unless the point is the mask). */
const toServer: Array<[string, Buffer, string, number]> = [
  ['an unmasked frame', unmaskedFrame(1, 'hi'), 'WS_ERR_EXPECTED_MASK', 1002],
  ['a reserved opcode (3)', maskedFrame(3, 'x'), 'WS_ERR_INVALID_OPCODE', 1002],
  ['RSV1 without an extension', (() => { const f = maskedFrame(1, 'x'); f[0] |= 0x40; return f })(), 'WS_ERR_UNEXPECTED_RSV_1', 1002],
  ['a 126-byte ping', maskedFrame(9, Buffer.alloc(126)), 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 1002],
  ['a fragmented ping', maskedFrame(9, 'x', false), 'WS_ERR_EXPECTED_FIN', 1002],
  ['invalid UTF-8 in a text message', maskedFrame(1, Buffer.from([0x68, 0xff, 0xfe])), 'WS_ERR_INVALID_UTF8', 1007],
  ['a close frame with code 1005', maskedFrame(8, closePayload(1005)), 'WS_ERR_INVALID_CLOSE_CODE', 1002],
  ['a continuation with no message started', maskedFrame(0, 'x'), 'WS_ERR_INVALID_OPCODE', 1002],
  ['a new message inside a fragmented one', Buffer.concat([maskedFrame(1, 'a', false), maskedFrame(2, 'b')]), 'WS_ERR_INVALID_OPCODE', 1002],
]

describe('protocol errors from a client (raw socket after a real handshake)', () => {
  for (const [title, bytes, code, closeCode] of toServer) {
    it(`${title}: tether fails with ${code}/${closeCode}, exactly as ws does`, async () => {
      const tether = await tetherServer()
      const reference = await wsServer()
      try {
        const results = []
        for (const { wss, port } of [tether, reference]) {
          const connection = waitFor<[EventEmitter]>(wss, 'connection')
          const peer = await rawWebSocket(port)
          try {
            const [ws] = await connection
            results.push(await observe(ws, peer, bytes))
          } finally {
            peer.destroy()
          }
        }
        const [mine, theirs] = results
        assert.equal(mine!.code, code)
        assert.equal(mine!.error.closeCode, closeCode)
        assert.equal(mine!.closeFrame, `8 ${closeCode.toString(16).padStart(4, '0')}`)
        assert.equal(mine!.closeCode, 1006)
        assert.equal(mine!.tcpClosed, true)
        assert.deepEqual(strip(mine!), strip(theirs!))
      } finally {
        await stopWss(tether.wss)
        await stopWss(reference.wss)
      }
    })
  }

  it('an unmasked frame: the raw peer receives exactly 88 02 03 ea, then the server closes TCP', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [ws] = await connection
      const error = waitFor<[Shaped]>(ws, 'error')
      const close = closed(ws)
      peer.write(unmaskedFrame(1, 'hi'))
      const [e] = await error
      assert.equal(e.code, 'WS_ERR_EXPECTED_MASK')
      assert.equal(e.closeCode, 1002)
      assert.equal((await peer.read(4)).toString('hex'), '8802' + '03ea')
      await peer.waitEnded()
      assert.equal(peer.buffer.length, 0)
      assert.deepEqual(await close, [1006, ''])
      peer.destroy()
    } finally {
      await stopWss(wss)
    }
  })

  it('with no error listener on the server side, the process survives and close reports 1006', async () => {
    const { wss, port } = await tetherServer()
    try {
      const connection = waitFor<[WebSocket]>(wss, 'connection')
      const peer = await rawWebSocket(port)
      const [ws] = await connection
      assert.equal(ws.listenerCount('error'), 0)
      const close = closed(ws)
      peer.write(maskedFrame(1, Buffer.from([0xc0, 0x80])))
      assert.deepEqual(await close, [1006, ''])
      assert.equal((await readFrame(peer)).payload.readUInt16BE(0), 1007)
      peer.destroy()
      // The server still serves.
      const again = waitFor(wss, 'connection')
      ;(await rawWebSocket(port)).destroy()
      await again
    } finally {
      await stopWss(wss)
    }
  })
})

/** Bad input a server might send a client. */
const toClient: Array<[string, Buffer, string, number]> = [
  ['a masked frame', maskedFrame(1, 'hi'), 'WS_ERR_UNEXPECTED_MASK', 1002],
  ['a reserved opcode (0xB)', unmaskedFrame(0xb, ''), 'WS_ERR_INVALID_OPCODE', 1002],
  ['invalid UTF-8 in a close reason', unmaskedFrame(8, Buffer.concat([closePayload(1000), Buffer.from([0xff])])), 'WS_ERR_INVALID_UTF8', 1007],
  ['close code 999', unmaskedFrame(8, closePayload(999)), 'WS_ERR_INVALID_CLOSE_CODE', 1002],
]

describe('protocol errors from a server (raw server after a real handshake)', () => {
  for (const [title, bytes, code, closeCode] of toClient) {
    it(`${title}: the tether client fails with ${code}/${closeCode}, exactly as the ws client does`, async () => {
      const server = await rawWsServer()
      const clients: Array<WebSocket | WsClient> = []
      try {
        const results = []
        for (const make of [() => new WebSocket(server.url), () => new WsClient(server.url)]) {
          const ws = make()
          clients.push(ws)
          const open = waitFor(ws, 'open')
          const peer = await server.next()
          await open
          const outcome = await observe(ws, peer, bytes, true)
          // A client masks its close frame.
          results.push(outcome)
          peer.destroy()
        }
        const [mine, theirs] = results
        assert.equal(mine!.code, code)
        assert.equal(mine!.error.closeCode, closeCode)
        assert.equal(mine!.closeFrame, `8 ${closeCode.toString(16).padStart(4, '0')}`)
        assert.equal(mine!.closeCode, 1006)
        assert.deepEqual(strip(mine!), strip(theirs!))
      } finally {
        for (const ws of clients) ws.terminate()
        await server.stop()
      }
    })
  }

  it('the close frame a failing client sends is masked', async () => {
    const server = await rawWsServer()
    const ws = new WebSocket(server.url)
    try {
      ws.on('error', () => {})
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      await open
      peer.write(maskedFrame(2, 'x'))
      const frame = await readFrame(peer)
      assert.equal(frame.masked, true)
      assert.equal(frame.opcode, 8)
      assert.equal(frame.payload.readUInt16BE(0), 1002)
    } finally {
      ws.terminate()
      await server.stop()
    }
  })

  it('with no error listener on the client, the process survives and close reports 1006', async () => {
    const server = await rawWsServer()
    const ws = new WebSocket(server.url)
    try {
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      await open
      const close = closed(ws)
      peer.write(unmaskedFrame(1, Buffer.from([0xed, 0xa0, 0x80])))
      assert.equal((await readFrame(peer)).payload.readUInt16BE(0), 1007)
      peer.socket.end()
      assert.deepEqual(await close, [1006, ''])
      assert.equal(ws.readyState, WebSocket.CLOSED)
    } finally {
      ws.terminate()
      await server.stop()
    }
  })

  it('a failing client sends its close frame, then waits for the server to close TCP first (§7.1.1)', async () => {
    // RFC 6455 §7.1.7: failing means _Close the WebSocket Connection_, and §7.1.1: "when a client
    // is instructed to do the same, it SHOULD wait for a TCP Close from the server" (ws v8 ends
    // TCP at once; the server would then keep no TIME_WAIT).
    const server = await rawWsServer()
    const ws = new WebSocket(server.url)
    try {
      ws.on('error', () => {})
      const open = waitFor(ws, 'open')
      const peer = await server.next()
      await open
      const close = closed(ws)
      peer.write(unmaskedFrame(0xb, ''))
      assert.equal((await readFrame(peer)).payload.readUInt16BE(0), 1002)
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.equal(peer.ended, false, 'the client did not end TCP before the server')
      assert.equal(ws.readyState, WebSocket.CLOSING)
      peer.socket.end()
      assert.deepEqual(await close, [1006, ''])
      await peer.waitEnded()
    } finally {
      ws.terminate()
      await server.stop()
    }
  })
})
