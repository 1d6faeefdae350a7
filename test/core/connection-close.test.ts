/**
 * Connection: close frames and the closing handshake (RFC 6455 §5.5.1, §7).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StateError } from '../../src/core/errors.js'
import { Opcode } from '../../src/core/frame.js'
import { clientFrame, concat, hex, serverFrame, utf8 } from '../helpers/bytes.js'
import { client, feed, pair, sent, server } from '../helpers/pair.js'
import { assertFailed, closeCodeOf, decodeFrames, plain } from '../helpers/wire.js'

function closeFrame(code: number, reason: Uint8Array = new Uint8Array(0)): Uint8Array {
  return clientFrame({ fin: true, opcode: Opcode.Close, payload: Uint8Array.of(code >>> 8, code & 0xff, ...reason) })
}

const INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1500, 2000, 2999, 5000, 5001, 65535]
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3500, 4000, 4999]

describe('connection: received close frames (§5.5.1, §7.4)', () => {
  it('reports an empty close payload as code 1005 and echoes an empty close frame', () => {
    const s = server()
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Close, payload: new Uint8Array(0) })])
    assert.deepEqual(plain(events), plain([{ type: 'close', code: 1005, reason: new Uint8Array(0) }]))
    assert.deepEqual(sent(s), hex`88 00`)
    assert.deepEqual(s.closeReceived, { code: 1005, reason: new Uint8Array(0) })
  })

  it('fails 1002 on a 1-byte close payload (§5.5.1)', () => {
    const s = server()
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03` })])
    assertFailed(s, events, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 1002)
    assert.equal(s.closeReceived, undefined)
  })

  for (const code of INVALID_CODES) {
    it(`fails 1002 on close code ${code} (§7.4.1)`, () => {
      const s = server()
      assertFailed(s, feed(s, [closeFrame(code)]), 'WS_ERR_INVALID_CLOSE_CODE', 1002)
      assert.equal(s.closeReceived, undefined)
      const c = client()
      const frame = serverFrame({ fin: true, opcode: Opcode.Close, payload: Uint8Array.of(code >>> 8, code & 0xff, 0x78) })
      assertFailed(c, feed(c, [frame]), 'WS_ERR_INVALID_CLOSE_CODE', 1002)
    })
  }

  for (const code of VALID_CODES) {
    it(`accepts close code ${code} and echoes it with the reason (§5.5.1)`, () => {
      const s = server()
      const events = feed(s, [closeFrame(code, utf8('why'))])
      assert.deepEqual(plain(events), plain([{ type: 'close', code, reason: utf8('why') }]))
      assert.deepEqual(sent(s), concat([hex`88 05`, Uint8Array.of(code >>> 8, code & 0xff), utf8('why')]))
    })
  }

  it('accepts a reason of 123 bytes and echoes it whole', () => {
    const reason = utf8('\u00e9'.repeat(61) + 'x')
    assert.equal(reason.length, 123)
    const s = server()
    const events = feed(s, [closeFrame(4000, reason)])
    assert.deepEqual(plain(events), plain([{ type: 'close', code: 4000, reason }]))
    const [echo] = decodeFrames(sent(s))
    assert.equal(closeCodeOf(echo!.payload), 4000)
    assert.deepEqual(echo!.payload.subarray(2), reason)
  })

  it('client echoes a server close masked, with the same code and reason', () => {
    const c = client()
    const events = feed(c, [serverFrame({ fin: true, opcode: Opcode.Close, payload: concat([hex`0f a0`, utf8('bye')]) })])
    assert.deepEqual(plain(events), plain([{ type: 'close', code: 4000, reason: utf8('bye') }]))
    const [echo] = decodeFrames(sent(c))
    assert.equal(echo!.masked, true)
    assert.equal(echo!.opcode, Opcode.Close)
    assert.deepEqual(echo!.payload, concat([hex`0f a0`, utf8('bye')]))
  })

  it('copies the close reason out of the read buffer', () => {
    const s = server()
    const chunk = closeFrame(1000, utf8('abc'))
    s.receiveData(chunk)
    chunk.fill(0)
    assert.deepEqual(s.closeReceived!.reason, utf8('abc'))
    assert.deepEqual(plain(s.eventsReceived()), plain([{ type: 'close', code: 1000, reason: utf8('abc') }]))
  })

  it('ignores frames after a close frame, in the same read and in later reads (§5.5.1)', () => {
    const s = server()
    const events = feed(s, [
      concat([
        closeFrame(1000),
        clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('late') }),
        clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('p') }),
      ]),
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: utf8('later') }),
      hex`ff ff ff`, // garbage is ignored too: no protocol error after the close
    ])
    assert.deepEqual(plain(events), plain([{ type: 'close', code: 1000, reason: new Uint8Array(0) }]))
    assert.deepEqual(sent(s), hex`88 02 03 e8`, 'only the echo, no pong')
    assert.equal(s.error, undefined)
  })
})

describe('connection: the closing handshake (§7.1)', () => {
  it('client starts: server echoes and ends TCP; client waits for the server EOF, then closes cleanly', () => {
    const { client: c, server: s, pump } = pair()
    c.sendClose(1000, 'bye')
    assert.equal(c.state, 'closing')
    assert.equal(c.closeExpected(), true)
    assert.equal(c.eofToSend(), false)
    const seen = pump()
    assert.deepEqual(plain(seen.server), plain([{ type: 'close', code: 1000, reason: utf8('bye') }]))
    assert.deepEqual(plain(seen.client), plain([{ type: 'close', code: 1000, reason: utf8('bye') }]))
    // Server: both close frames passed, it closes TCP (§7.1.1).
    assert.equal(s.eofToSend(), true)
    assert.equal(s.eofToSend(), false, 'once')
    assert.deepEqual(s.closeReceived, { code: 1000, reason: utf8('bye') })
    assert.deepEqual(s.closeSent, { code: 1000, reason: utf8('bye') })
    assert.equal(s.receivedThenSent, true)
    // Client: does not end TCP, but expects the server to (timer driven from outside).
    assert.equal(c.eofToSend(), false)
    assert.equal(c.closeExpected(), true)
    assert.equal(c.state, 'closing')
    assert.deepEqual(c.closeSent, { code: 1000, reason: utf8('bye') })
    assert.deepEqual(c.closeReceived, { code: 1000, reason: utf8('bye') })
    assert.equal(c.receivedThenSent, false)
    c.receiveEof()
    assert.deepEqual(plain(c.eventsReceived()), plain([{ type: 'closed', code: 1000, reason: utf8('bye'), wasClean: true }]))
    assert.equal(c.state, 'closed')
    assert.equal(c.closeExpected(), false)
    s.receiveEof()
    assert.deepEqual(plain(s.eventsReceived()), plain([{ type: 'closed', code: 1000, reason: utf8('bye'), wasClean: true }]))
  })

  it('server starts: server ends TCP only after the client echo arrives', () => {
    const { client: c, server: s } = pair()
    s.sendClose(1001, 'going')
    assert.equal(s.eofToSend(), false, 'not before the echo')
    assert.equal(s.closeExpected(), true)
    const clientEvents = feed(c, [sent(s)])
    assert.deepEqual(plain(clientEvents), plain([{ type: 'close', code: 1001, reason: utf8('going') }]))
    assert.equal(c.receivedThenSent, true)
    assert.equal(c.eofToSend(), false, 'the client never ends first')
    assert.equal(c.closeExpected(), true)
    const serverEvents = feed(s, [sent(c)])
    assert.deepEqual(plain(serverEvents), plain([{ type: 'close', code: 1001, reason: utf8('going') }]))
    assert.equal(s.receivedThenSent, false)
    assert.equal(s.eofToSend(), true)
    c.receiveEof()
    assert.deepEqual(plain(c.eventsReceived()), plain([{ type: 'closed', code: 1001, reason: utf8('going'), wasClean: true }]))
  })

  it('both start at once: each receives the other’s close after sending its own; the server then ends TCP', () => {
    const { client: c, server: s } = pair()
    c.sendClose(1000)
    s.sendClose(1001)
    const toServer = sent(c)
    const toClient = sent(s)
    assert.deepEqual(plain(feed(s, [toServer])), plain([{ type: 'close', code: 1000, reason: new Uint8Array(0) }]))
    assert.deepEqual(plain(feed(c, [toClient])), plain([{ type: 'close', code: 1001, reason: new Uint8Array(0) }]))
    assert.equal(s.receivedThenSent, false)
    assert.equal(c.receivedThenSent, false)
    assert.deepEqual(sent(s), new Uint8Array(0), 'no second close frame')
    assert.deepEqual(sent(c), new Uint8Array(0))
    assert.equal(s.eofToSend(), true)
    assert.equal(c.eofToSend(), false)
    c.receiveEof()
    assert.deepEqual(plain(c.eventsReceived()), plain([{ type: 'closed', code: 1001, reason: new Uint8Array(0), wasClean: true }]))
  })

  it('keeps receiving data after sending close until the peer’s close arrives (§5.5.1)', () => {
    const s = server()
    s.sendClose(1000)
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('in flight') }), closeFrame(1000)])
    assert.deepEqual(
      plain(events),
      plain([
        { type: 'message', data: utf8('in flight'), binary: false },
        { type: 'close', code: 1000, reason: new Uint8Array(0) },
      ]),
    )
  })

  it('receiveEof without a close frame: closed with 1006, not clean (§7.1.5)', () => {
    for (const connection of [server(), client()]) {
      connection.receiveEof()
      assert.deepEqual(plain(connection.eventsReceived()), plain([{ type: 'closed', code: 1006, reason: new Uint8Array(0), wasClean: false }]))
      assert.equal(connection.state, 'closed')
    }
    // Also after sending close but before the echo.
    const s = server()
    s.sendClose(1000)
    s.receiveEof()
    assert.deepEqual(plain(s.eventsReceived()), plain([{ type: 'closed', code: 1006, reason: new Uint8Array(0), wasClean: false }]))
  })

  it('client: a server close received and echoed, then EOF, is a clean close with the received code (§7.1.4)', () => {
    const c = client()
    feed(c, [serverFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8` })])
    c.receiveEof()
    assert.deepEqual(plain(c.eventsReceived()), plain([{ type: 'closed', code: 1000, reason: new Uint8Array(0), wasClean: true }]))
  })

  it('reports closed once; later receiveEof, abort and input do nothing', () => {
    const s = server()
    s.receiveEof()
    s.eventsReceived()
    s.receiveEof()
    s.abort()
    s.receiveData(closeFrame(1000))
    assert.deepEqual(s.eventsReceived(), [])
    assert.equal(s.bytesToSend, 0)
  })

  it('abort closes with 1006, not clean', () => {
    const s = server()
    s.sendClose(1000)
    s.abort()
    assert.deepEqual(plain(s.eventsReceived()), plain([{ type: 'closed', code: 1006, reason: new Uint8Array(0), wasClean: false }]))
  })
})

describe('connection: sending close (§5.5.1, §7.4)', () => {
  it('sends the code and reason; 1005 (the default) sends an empty close frame', () => {
    let s = server()
    s.sendClose(1000, 'done')
    assert.deepEqual(sent(s), concat([hex`88 06 03 e8`, utf8('done')]))
    s = server()
    s.sendClose()
    assert.deepEqual(sent(s), hex`88 00`)
    assert.deepEqual(s.closeSent, { code: 1005, reason: new Uint8Array(0) })
    s = server()
    s.sendClose(4999, utf8('x'.repeat(123)))
    assert.equal(sent(s).length, 2 + 125)
  })

  for (const [name, code, reason] of [
    ['1005 with a reason', 1005, 'why'],
    ['1004', 1004, ''],
    ['1006', 1006, ''],
    ['1015', 1015, ''],
    ['999', 999, ''],
    ['2999', 2999, ''],
    ['5000', 5000, ''],
    ['a 124-byte reason', 1000, 'x'.repeat(124)],
    ['a 124-byte multi-byte reason', 1000, '\u20ac'.repeat(41) + 'x'],
  ] as const) {
    it(`sendClose throws RangeError for ${name}, and sends nothing`, () => {
      const s = server()
      assert.throws(() => s.sendClose(code, reason), RangeError)
      assert.equal(s.bytesToSend, 0)
      assert.equal(s.closeSent, undefined)
      assert.equal(s.state, 'open')
    })
  }

  it('a second sendClose is ignored', () => {
    const s = server()
    s.sendClose(1000)
    s.sendClose(1001)
    assert.deepEqual(sent(s), hex`88 02 03 e8`)
    assert.equal(s.closeSent!.code, 1000)
  })

  for (const [name, send] of [
    ['sendText', (c: ReturnType<typeof server>) => c.sendText('x')],
    ['sendBinary', (c: ReturnType<typeof server>) => c.sendBinary(new Uint8Array(1))],
    ['sendPing', (c: ReturnType<typeof server>) => c.sendPing()],
    ['sendPong', (c: ReturnType<typeof server>) => c.sendPong()],
  ] as const) {
    it(`${name} after sendClose throws StateError TETHER_ERR_NOT_OPEN (§5.5.1)`, () => {
      for (const connection of [server(), client()]) {
        connection.sendClose(1000)
        connection.dataToSend()
        assert.throws(() => send(connection), (error: unknown) => error instanceof StateError && error.code === 'TETHER_ERR_NOT_OPEN')
        assert.equal(connection.bytesToSend, 0)
      }
    })

    it(`${name} after the peer’s close (echo sent) and after closed throws StateError`, () => {
      const s = server()
      feed(s, [closeFrame(1000)])
      assert.throws(() => send(s), (error: unknown) => error instanceof StateError && error.code === 'TETHER_ERR_NOT_OPEN')
      const c = client()
      c.receiveEof()
      assert.throws(() => send(c), (error: unknown) => error instanceof StateError && error.code === 'TETHER_ERR_NOT_OPEN')
    })
  }
})

describe('connection: answers to earlier events go out before the connection’s own close frame (Rule 5)', () => {
  // A message and the close frame behind it often arrive in one read. The application sees
  // the message only when eventsReceived() hands it out, after the close was parsed; its
  // answer (an echo) must still go out, and before our close frame (§5.5.1: nothing after it).
  // Found by the conformance suite (cases 7.1.1, 3.2, 4.1.3, 5.15): the echo threw StateError.
  const echo = (connection: ReturnType<typeof server>, events: ReturnType<typeof feed>): void => {
    for (const event of events) if (event.type === 'message') connection.sendText(event.data)
  }

  it('server: message + close in one read; the echo precedes the close answer, then the server ends TCP', () => {
    const s = server()
    const events = feed(s, [concat([clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('hi') }), closeFrame(1000)])])
    assert.deepEqual(events.map((event) => event.type), ['message', 'close'])
    assert.equal(s.canSend, true, 'the close answer is held, data may still go out')
    assert.equal(s.eofToSend(), false, 'no EOF before the held close frame')
    echo(s, events)
    assert.deepEqual(sent(s), hex`81 02 68 69 88 02 03 e8`)
    assert.equal(s.canSend, false)
    assert.throws(() => s.sendText('late'), (error: unknown) => error instanceof StateError && error.code === 'TETHER_ERR_NOT_OPEN')
    assert.equal(s.eofToSend(), true)
    assert.deepEqual(s.closeSent, { code: 1000, reason: new Uint8Array(0) })
  })

  it('client: message + close in one read; the masked echo precedes the close answer', () => {
    const c = client()
    const events = feed(c, [concat([
      serverFrame({ fin: true, opcode: Opcode.Binary, payload: utf8('data') }),
      serverFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e9` }),
    ])])
    for (const event of events) if (event.type === 'message') c.sendBinary(event.data)
    const frames = decodeFrames(sent(c))
    assert.deepEqual(frames.map((frame) => [frame.opcode, frame.masked]), [[Opcode.Binary, true], [Opcode.Close, true]])
    assert.deepEqual(frames[0]!.payload, utf8('data'))
    assert.equal(closeCodeOf(frames[1]!.payload), 1001)
    assert.equal(c.eofToSend(), false, 'the client still waits for the server to end TCP')
  })

  it('message + invalid frame in one read: the echo precedes the failing close frame', () => {
    const s = server()
    const events = feed(s, [concat([
      clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('ok') }),
      clientFrame({ fin: true, opcode: 3, payload: new Uint8Array(0) }),
    ])])
    assert.deepEqual(events.map((event) => event.type), ['message', 'error'])
    echo(s, events)
    assert.deepEqual(sent(s), hex`81 02 6f 6b 88 02 03 ea`)
    assert.equal(s.eofToSend(), true)
  })

  it('a close alone is answered at once, as before', () => {
    const s = server()
    feed(s, [closeFrame(1000)])
    assert.equal(s.canSend, false)
    assert.equal(s.bytesToSend, 4)
  })

  it('dataToSend(false): the close answer stays held while the front end has not handled every event (a paused application)', () => {
    const s = server()
    const events = feed(s, [concat([1, 2].map((n) => clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8(String(n)) })).concat(closeFrame(1000)))])
    assert.deepEqual(events.map((event) => event.type), ['message', 'message', 'close'])
    // The application handled the first message, then paused: the second and the close wait.
    s.sendText('r1')
    assert.deepEqual(concat(s.dataToSend(false)), hex`81 02 72 31`, 'the reply, and no close frame yet')
    assert.equal(s.canSend, true)
    assert.equal(s.eofToSend(), false)
    // Resumed: the second message is handled and answered; then the close answer goes out after it.
    s.sendText('r2')
    assert.deepEqual(sent(s), hex`81 02 72 32 88 02 03 e8`)
    assert.equal(s.eofToSend(), true)
  })

  it('the held close is written even if the application sends nothing', () => {
    const s = server()
    feed(s, [concat([clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('p') }), closeFrame(1001)])])
    assert.deepEqual(sent(s), hex`8a 01 70 88 02 03 e9`, 'the pong (written while parsing), then the close')
    assert.equal(s.eofToSend(), true)
  })

  it('sendClose while the answer is held sends nothing more', () => {
    const s = server()
    feed(s, [concat([clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('x') }), closeFrame(1000)])])
    s.sendClose(1001)
    assert.deepEqual(sent(s), hex`88 02 03 e8`)
  })
})

describe('connection: a failing client waits for the server to close TCP (§7.1.1)', () => {
  it('sends its close frame, asks for no EOF, expects the server to close; EOF from the server ends it', () => {
    // §7.1.7: failing means _Close the WebSocket Connection_; §7.1.1: "when a client is instructed
    // to do the same, it SHOULD wait for a TCP Close from the server". Found by the conformance
    // suite (client role, every failure case was NON-STRICT: the client ended TCP first).
    const c = client()
    feed(c, [serverFrame({ fin: true, opcode: 3, payload: new Uint8Array(0) })])
    const [frame] = decodeFrames(sent(c))
    assert.equal(closeCodeOf(frame!.payload), 1002)
    assert.equal(c.eofToSend(), false)
    assert.equal(c.closeExpected(), true, 'the transport arms its close timer')
    c.receiveEof()
    assert.deepEqual(plain(c.eventsReceived()), plain([{ type: 'closed', code: 1006, reason: new Uint8Array(0), wasClean: false }]))
  })

  it('a failing server still ends TCP at once', () => {
    const s = server()
    feed(s, [clientFrame({ fin: true, opcode: 3, payload: new Uint8Array(0) })])
    sent(s)
    assert.equal(s.eofToSend(), true)
  })
})
