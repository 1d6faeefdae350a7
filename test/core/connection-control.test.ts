/**
 * Connection: ping and pong (RFC 6455 §5.5.2, §5.5.3) and failing the
 * connection (§7.1.7).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ProtocolError } from '../../src/core/errors.js'
import { Opcode } from '../../src/core/frame.js'
import { bytewise, clientFrame, concat, hex, serverFrame, split, utf8 } from '../helpers/bytes.js'
import { client, feed, sent, server } from '../helpers/pair.js'
import { assertFailed, decodeFrames, plain } from '../helpers/wire.js'

describe('connection: ping and pong (§5.5.2, §5.5.3)', () => {
  it('server answers a ping with a pong carrying the same payload, and reports the ping', () => {
    const s = server()
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('Hello') })])
    assert.deepEqual(plain(events), plain([{ type: 'ping', data: utf8('Hello') }]))
    assert.deepEqual(sent(s), hex`8a 05 48 65 6c 6c 6f`)
  })

  it('client answers a ping with a masked pong carrying the same payload', () => {
    const c = client()
    const payload = Uint8Array.from({ length: 125 }, (_, i) => i)
    const events = feed(c, [serverFrame({ fin: true, opcode: Opcode.Ping, payload })])
    assert.deepEqual(plain(events), plain([{ type: 'ping', data: payload }]))
    const [pong] = decodeFrames(sent(c))
    assert.equal(pong!.opcode, Opcode.Pong)
    assert.equal(pong!.masked, true)
    assert.deepEqual(pong!.payload, payload)
  })

  it('answers an empty ping with an empty pong', () => {
    const s = server()
    feed(s, [clientFrame({ fin: true, opcode: Opcode.Ping, payload: new Uint8Array(0) })])
    assert.deepEqual(sent(s), hex`8a 00`)
  })

  it('answers each ping of a burst, in order, with its own payload', () => {
    const s = server()
    const pings = ['a', 'bb', 'ccc'].map((text) => clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8(text) }))
    feed(s, [concat(pings)])
    assert.deepEqual(sent(s), hex`8a 01 61 8a 02 62 62 8a 03 63 63 63`)
  })

  it('reassembles a ping payload split across reads; earlier ping events keep their payload', () => {
    const s = server()
    const first = clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('first ping payload') })
    const second = clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('SECOND!') })
    // Collect events only at the end, so a reused control buffer would show.
    for (const piece of [...split(first, [3, 9, 15]), ...bytewise(second)]) s.receiveData(piece.slice())
    assert.deepEqual(
      plain(s.eventsReceived()),
      plain([
        { type: 'ping', data: utf8('first ping payload') },
        { type: 'ping', data: utf8('SECOND!') },
      ]),
    )
    const pongs = decodeFrames(sent(s))
    assert.deepEqual(pongs.map((f) => Buffer.from(f.payload).toString()), ['first ping payload', 'SECOND!'])
  })

  it('autoPong: false reports the ping but does not answer it', () => {
    const s = server({ autoPong: false })
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('x') })])
    assert.deepEqual(plain(events), plain([{ type: 'ping', data: utf8('x') }]))
    assert.equal(s.bytesToSend, 0)
    s.sendPong(utf8('x'))
    assert.deepEqual(sent(s), hex`8a 01 78`, 'the application may answer itself')
  })

  it('does not answer a ping after its close frame was sent (§5.5.1)', () => {
    const s = server()
    s.sendClose(1000)
    s.dataToSend()
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('x') })])
    assert.deepEqual(plain(events), plain([{ type: 'ping', data: utf8('x') }]))
    assert.equal(s.bytesToSend, 0)
  })

  it('reports a received pong (unsolicited ones too, §5.5.3) and does not answer it', () => {
    const c = client()
    const events = feed(c, [serverFrame({ fin: true, opcode: Opcode.Pong, payload: utf8('beat') })])
    assert.deepEqual(plain(events), plain([{ type: 'pong', data: utf8('beat') }]))
    assert.equal(c.bytesToSend, 0)
  })

  it('sends pings and pongs with their payload', () => {
    const s = server()
    s.sendPing(utf8('hi'))
    s.sendPong()
    assert.deepEqual(sent(s), hex`89 02 68 69 8a 00`)
  })
})

describe('connection: output and event queues', () => {
  it('dataToSend() and eventsReceived() hand over their arrays, even empty ones: changing them queues nothing', () => {
    const s = server()
    const chunks = s.dataToSend()
    const events = s.eventsReceived()
    assert.equal(chunks.length, 0)
    assert.equal(events.length, 0)
    chunks.push(hex`ff ff`)
    events.push({ type: 'pong', data: new Uint8Array(0) })
    assert.equal(s.hasEvents, false)
    assert.deepEqual(s.eventsReceived(), [], 'no event injected by the caller’s push')
    s.sendText('a')
    assert.deepEqual(sent(s), hex`81 01 61`, 'no bytes injected by the caller’s push')
  })

  it('bytesToSend counts queued bytes until dataToSend takes them', () => {
    const c = client()
    assert.equal(c.bytesToSend, 0)
    c.sendText('abc')
    c.sendPing()
    assert.equal(c.bytesToSend, 9 + 6)
    assert.equal(concat(c.dataToSend()).length, 15)
    assert.equal(c.bytesToSend, 0)
    assert.deepEqual(c.dataToSend(), [], 'each byte is handed out once')
  })
})

describe('connection: failing the connection (§7.1.7)', () => {
  it('failConnection sends a close frame with the error’s code, asks for EOF and reports the error', () => {
    const s = server()
    const error = new ProtocolError('WS_ERR_EXTENSION_FAILURE', 'inflate failed')
    s.failConnection(error)
    const events = s.eventsReceived()
    assertFailed(s, events, 'WS_ERR_EXTENSION_FAILURE', 1011)
    assert.equal((events[0] as { error: ProtocolError }).error, error)
  })

  it('failConnection honours an explicit close code (a limit the transport enforces, 1008)', () => {
    const c = client()
    c.failConnection(new ProtocolError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'too big', 1008))
    assert.deepEqual(plain(c.eventsReceived()), [{ type: 'error', code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', closeCode: 1008 }])
    const [frame, ...more] = decodeFrames(sent(c))
    assert.equal(more.length, 0)
    assert.equal(frame!.masked, true)
    assert.deepEqual(frame!.payload, hex`03 f0`)
    // §7.1.1: a client waits for the server to close TCP, even when it fails the connection.
    assert.equal(c.eofToSend(), false)
    assert.equal(c.closeExpected(), true)
  })

  it('after a protocol error, the rest of the same read is discarded', () => {
    const s = server()
    const events = feed(s, [
      concat([
        clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('before') }),
        clientFrame({ fin: true, opcode: 3, payload: new Uint8Array(0) }),
        clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('after') }),
        clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('p') }),
      ]),
    ])
    assert.equal(events[0]!.type, 'message')
    assertFailed(s, events.slice(1), 'WS_ERR_INVALID_OPCODE', 1002)
  })

  it('after failConnection, later input is discarded and no second close frame is sent, even for a peer close', () => {
    const s = server()
    feed(s, [hex`81 00`]) // unmasked: 1002
    assert.deepEqual(sent(s), hex`88 02 03 ea`)
    assert.equal(s.eofToSend(), true)
    const events = feed(s, [
      clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('later') }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('p') }),
      clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8` }),
      hex`ff ff ff ff`,
    ])
    assert.deepEqual(events, [])
    assert.equal(s.bytesToSend, 0, 'no pong, no echo, no second close')
    assert.equal(s.eofToSend(), false, 'EOF requested once')
    assert.equal(s.closeReceived, undefined)
  })

  it('a second failure is ignored: one error event, one close frame', () => {
    const s = server()
    feed(s, [hex`81 00`])
    s.failConnection(new ProtocolError('WS_ERR_INVALID_UTF8', 'again'))
    const events = s.eventsReceived()
    assert.deepEqual(plain(events), [])
    assert.equal(s.error!.code, 'WS_ERR_EXPECTED_MASK')
    assert.deepEqual(sent(s), hex`88 02 03 ea`)
  })

  it('failing after our close frame was sent sends no second close frame but still asks for EOF', () => {
    const s = server()
    s.sendClose(1000)
    assert.deepEqual(sent(s), hex`88 02 03 e8`)
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Text, payload: hex`ff` })])
    assert.deepEqual(plain(events), [{ type: 'error', code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }])
    assert.equal(s.bytesToSend, 0)
    assert.equal(s.eofToSend(), true)
    assert.equal(s.closeSent!.code, 1000)
  })

  it('after a failure, EOF gives closed 1006, not clean', () => {
    const c = client()
    assertFailed(c, feed(c, [hex`82 80 00 00 00 00`]), 'WS_ERR_UNEXPECTED_MASK', 1002) // masked from a server
    c.receiveEof()
    const events = c.eventsReceived()
    assert.deepEqual(plain(events), plain([{ type: 'closed', code: 1006, reason: new Uint8Array(0), wasClean: false }]))
  })
})

// Issue 13: a peer that sends pings and never reads must not make pongs pile up.
describe('connection: automatic pongs while output is blocked (§5.5.3, Rule 7)', () => {
  const ping = (text: string) => clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8(text) })

  it('answers only the most recent ping while blocked, once output is free again', () => {
    const s = server()
    s.setOutputBlocked(true)
    const events = feed(s, [concat([ping('one'), ping('two'), ping('three')])])
    assert.deepEqual(events.map((event) => event.type), ['ping', 'ping', 'ping'], 'every ping is still reported')
    assert.deepEqual(sent(s), new Uint8Array(0), 'nothing is queued while blocked')
    assert.equal(s.bytesToSend, 2 + 5, 'the one waiting pong counts as bytes to send')
    feed(s, [ping('four')])
    s.setOutputBlocked(false)
    assert.deepEqual(decodeFrames(sent(s)).map((f) => [f.opcode, Buffer.from(f.payload).toString()]), [[Opcode.Pong, 'four']])
  })

  it('holds one pong however many pings arrive while blocked (100,000 pings)', () => {
    const s = server()
    s.setOutputBlocked(true)
    const burst = concat(Array.from({ length: 1_000 }, (_, i) => ping(`ping ${i}`)))
    for (let i = 0; i < 100; i++) {
      s.receiveData(burst.slice())
      s.eventsReceived()
    }
    assert.ok(s.bytesToSend <= 2 + 125, `${s.bytesToSend} bytes waiting`)
    s.setOutputBlocked(false)
    const frames = decodeFrames(sent(s))
    assert.equal(frames.length, 1)
    assert.equal(Buffer.from(frames[0]!.payload).toString(), 'ping 999')
  })

  it('sends the waiting pong before a close frame, never after it', () => {
    const s = server()
    s.setOutputBlocked(true)
    feed(s, [ping('last words')])
    s.sendClose(1000)
    s.setOutputBlocked(false)
    const frames = decodeFrames(sent(s))
    assert.deepEqual(frames.map((f) => f.opcode), [Opcode.Pong, Opcode.Close])
  })

  it('answers every ping, in order, when output is not blocked', () => {
    const s = server()
    s.setOutputBlocked(true)
    s.setOutputBlocked(false)
    feed(s, [concat([ping('a'), ping('b')])])
    assert.deepEqual(decodeFrames(sent(s)).map((f) => Buffer.from(f.payload).toString()), ['a', 'b'])
  })
})

describe('connection: bytes held for the message in progress (Rule 8)', () => {
  it('counts an unfinished message, and releases it when the connection fails', () => {
    const s = server()
    feed(s, [clientFrame({ fin: false, opcode: Opcode.Binary, payload: new Uint8Array(1000) })])
    assert.ok(s.bytesHeld >= 1000, `${s.bytesHeld}`)
    s.failConnection(new ProtocolError('TETHER_ERR_RECEIVE_MEMORY', 'budget', 1013))
    assert.equal(s.bytesHeld, 0)
    const [error] = s.eventsReceived()
    assert.equal(error!.type, 'error')
    const [close] = decodeFrames(sent(s))
    assert.deepEqual([...close!.payload.subarray(0, 2)], [0x03, 0xf5], 'close 1013')
  })

  it('holds nothing between messages, and releases an unfinished message when a close frame arrives', () => {
    const s = server()
    feed(s, [clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(5000) })])
    assert.equal(s.bytesHeld, 0)
    feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Binary, payload: new Uint8Array(5000) }),
      clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8` }),
    ])
    assert.equal(s.bytesHeld, 0)
  })
})
