/**
 * Connection: receiving compressed messages (RFC 7692 §7.2.2). Compressed
 * payload pieces leave as `inflate` events with `end` and `limit`; parsing
 * waits for `receiveInflated`, keeping later input in order. Codecs: real
 * zlib answering at once or later (test/helpers/codec.ts), or answers
 * written by the test. Failures: connection-deflate-failures.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ConnectionEvent } from '../../src/core/connection.js'
import type { DeflateParameters } from '../../src/core/deflate/negotiate.js'
import { StateError } from '../../src/core/errors.js'
import { Opcode } from '../../src/core/frame.js'
import { bytewise, clientFrame, concat, hex, split, utf8 } from '../helpers/bytes.js'
import { InflateDriver, compress, deferred, messageFrames, zlibInflater } from '../helpers/codec.js'
import { client, feed, sent, server } from '../helpers/pair.js'
import { plain } from '../helpers/wire.js'

const deflate: DeflateParameters = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
}
const MAX = 100 * 1024 * 1024
/** "Hello" compressed, the RFC 7692 §7.2.3.1 example. */
const HELLO = hex`f2 48 cd c9 c9 07 00`

function types(events: readonly ConnectionEvent[]): string[] {
  return events.map((event) => event.type)
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

const text = utf8('permessage-deflate, \u00e9t\u00e9 \u2603 \u{1f600} '.repeat(60))

describe('inflate requests for a compressed message (RFC 7692 §7.2.2)', () => {
  it('a message in many frames, whole, at cuts and byte by byte: end only on the last piece, then the message', () => {
    const payload = compress(text)
    const frames = messageFrames('server', false, payload, { compressed: true, cuts: [5, 40, 41, 200, payload.length - 1] })
    assert.equal(frames.length, 6)
    const bytes = concat(frames)
    for (const pieces of [[bytes], split(bytes, [3, 9, 50, 51, 52, 180, 300]), bytewise(bytes)]) {
      const driver = new InflateDriver(server({ deflate }), zlibInflater()).feed(pieces)
      const requests = driver.requests
      assert.ok(requests.length >= frames.length)
      assert.deepEqual(requests.map((r) => r.end), [...requests.slice(1).map(() => false), true])
      // The pieces are the unmasked compressed payload, in order, each byte once.
      assert.deepEqual(hexOf(concat(requests.map((r) => r.data))), hexOf(payload))
      assert.deepEqual(plain(driver.delivered), plain([{ type: 'message', data: text, binary: false }]))
      assert.equal(types(driver.events).at(-1), 'message')
    }
  })

  it('the RFC 7692 §7.2.3 examples, to a server and to a client', () => {
    const examples: Array<[string, Uint8Array[], string[]]> = [
      ['§7.2.3.1 one frame', [hex`c1 07 f2 48 cd c9 c9 07 00`], ['Hello']],
      ['§7.2.3.1 two fragments', [hex`41 03 f2 48 cd`, hex`80 04 c9 c9 07 00`], ['Hello']],
      ['§7.2.3.3 a stored block', [hex`c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00`], ['Hello']],
      ['§7.2.3.4 BFINAL set', [hex`c1 08 f3 48 cd c9 c9 07 00 00`], ['Hello']],
      ['§7.2.3.5 two DEFLATE blocks', [hex`c1 0d f2 48 05 00 00 00 ff ff ca c9 c9 07 00`], ['Hello']],
    ]
    for (const [name, frames, messages] of examples) {
      const expected = plain(messages.map((m) => ({ type: 'message' as const, data: utf8(m), binary: false })))
      const toClient = new InflateDriver(client({ deflate }), zlibInflater()).feed(frames)
      assert.deepEqual(plain(toClient.delivered), expected, name)
      // The same frames, masked, to a server.
      const masked = frames.map((f) => clientFrame({ fin: (f[0]! & 0x80) !== 0, rsv1: (f[0]! & 0x40) !== 0, opcode: f[0]! & 0x0f, payload: f.subarray(2) }))
      const toServer = new InflateDriver(server({ deflate }), zlibInflater()).feed(masked)
      assert.deepEqual(plain(toServer.delivered), expected, name)
    }
  })

  it('§7.2.3.2: with context takeover the second "Hello" refers to the first', () => {
    const c = client({ deflate: { ...deflate, serverNoContextTakeover: false } })
    const driver = new InflateDriver(c, zlibInflater({ contextTakeover: true })).feed([hex`c1 07 f2 48 cd c9 c9 07 00 c1 05 f2 00 11 00 00`])
    assert.deepEqual(plain(driver.delivered), plain([
      { type: 'message', data: utf8('Hello'), binary: false },
      { type: 'message', data: utf8('Hello'), binary: false },
    ]))
  })

  it('a compressed message with an empty final frame still gets an end = true request', () => {
    const driver = new InflateDriver(server({ deflate }), zlibInflater()).feed([
      clientFrame({ fin: false, rsv1: true, opcode: Opcode.Text, payload: HELLO }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: new Uint8Array(0) }),
    ])
    assert.deepEqual(plain(driver.requests), [
      { type: 'inflate', data: 'f248cdc9c90700', end: false, limit: MAX },
      // "Hello" may already have come out of the first piece: the limit is what is left.
      { type: 'inflate', data: '', end: true, limit: MAX - 5 },
    ])
    assert.deepEqual(plain(driver.delivered), [{ type: 'message', binary: false, data: hexOf(utf8('Hello')) }])
  })

  it('empty frames carry no request of their own; an empty compressed message is one end request', () => {
    const driver = new InflateDriver(server({ deflate }), zlibInflater()).feed([
      clientFrame({ fin: false, rsv1: true, opcode: Opcode.Binary, payload: new Uint8Array(0) }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: new Uint8Array(0) }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: HELLO }),
      clientFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: new Uint8Array(0) }),
    ])
    assert.deepEqual(plain(driver.requests), [
      { type: 'inflate', data: 'f248cdc9c90700', end: true, limit: MAX },
      { type: 'inflate', data: '', end: true, limit: MAX },
    ])
    assert.deepEqual(plain(driver.delivered), [
      { type: 'message', binary: true, data: hexOf(utf8('Hello')) },
      { type: 'message', binary: false, data: '' },
    ])
  })

  it('`limit` is maxPayload minus what was already inflated; no limit (Infinity) with maxPayload 0', () => {
    const s = server({ deflate, maxPayload: 10 })
    const frames = [
      clientFrame({ fin: false, rsv1: true, opcode: Opcode.Binary, payload: hex`01 02` }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: hex`03` }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: hex`04 05` }),
    ]
    s.receiveData(concat(frames))
    const limits: number[] = []
    const answers = [new Uint8Array(4), new Uint8Array(0), new Uint8Array(6)]
    for (const answer of answers) {
      const events = s.eventsReceived()
      assert.equal(events.length, 1)
      const [request] = events as [Extract<ConnectionEvent, { type: 'inflate' }>]
      assert.equal(request.type, 'inflate')
      limits.push(request.limit)
      s.receiveInflated({ ok: true, data: [answer] })
    }
    assert.deepEqual(limits, [10, 6, 6])
    assert.deepEqual(plain(s.eventsReceived()), [{ type: 'message', binary: true, data: '00'.repeat(10) }])

    // A new message starts with the whole limit again.
    s.receiveData(clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: hex`01` }))
    assert.deepEqual(plain(s.eventsReceived()), [{ type: 'inflate', data: '01', end: true, limit: 10 }])

    const unlimited = server({ deflate, maxPayload: 0 })
    assert.deepEqual(plain(feed(unlimited, [clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: hex`01` })])), [
      { type: 'inflate', data: '01', end: true, limit: Number.POSITIVE_INFINITY },
    ])
  })

  it('control frames between compressed fragments are delivered, and answered, in order', () => {
    const s = server({ deflate })
    const driver = new InflateDriver(s, zlibInflater()).feed([
      concat([
        clientFrame({ fin: false, rsv1: true, opcode: Opcode.Text, payload: HELLO.subarray(0, 3) }),
        clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('1') }),
        clientFrame({ fin: true, opcode: Opcode.Pong, payload: utf8('2') }),
        clientFrame({ fin: true, opcode: Opcode.Continuation, payload: HELLO.subarray(3) }),
      ]),
    ])
    assert.deepEqual(types(driver.events), ['inflate', 'ping', 'pong', 'inflate', 'message'])
    assert.deepEqual(plain(driver.delivered), [
      { type: 'ping', data: '31' },
      { type: 'pong', data: '32' },
      { type: 'message', binary: false, data: hexOf(utf8('Hello')) },
    ])
    assert.deepEqual(sent(s), hex`8a 01 31`)
  })

  it('skipUTF8Validation delivers inflated text as it is', () => {
    const s = server({ deflate, skipUTF8Validation: true })
    s.receiveData(clientFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: hex`00` }))
    s.eventsReceived()
    s.receiveInflated({ ok: true, data: [hex`ff fe`] })
    assert.deepEqual(plain(s.eventsReceived()), [{ type: 'message', binary: false, data: 'fffe' }])
  })
})

describe('parsing waits for the inflate answer', () => {
  it('bytes fed while an inflate is pending are kept and processed in order afterwards', () => {
    const s = server({ deflate })
    const events = feed(s, [
      concat([
        clientFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: HELLO }),
        clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('p') }),
        clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('plain') }),
      ]),
    ])
    assert.deepEqual(types(events), ['inflate'])
    // More input while waiting: nothing is parsed, not even the ping.
    const later = [
      clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: hex`aa` }),
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: hex`bb` }),
    ]
    assert.deepEqual(feed(s, bytewise(concat(later))), [])
    assert.equal(s.bytesToSend, 0, 'the ping is not answered yet')

    s.receiveInflated({ ok: true, data: [utf8('Hel'), utf8('lo')] })
    assert.deepEqual(plain(s.eventsReceived()), [
      { type: 'message', binary: false, data: hexOf(utf8('Hello')) },
      { type: 'ping', data: '70' },
      { type: 'message', binary: false, data: hexOf(utf8('plain')) },
      { type: 'inflate', data: 'aa', end: true, limit: MAX },
    ])
    assert.deepEqual(sent(s), hex`8a 01 70`)
    s.receiveInflated({ ok: true, data: [hex`01 02`] })
    assert.deepEqual(plain(s.eventsReceived()), [
      { type: 'message', binary: true, data: '0102' },
      { type: 'message', binary: true, data: 'bb' },
    ])
  })

  it('an asynchronous codec: everything fed at once, whole or byte by byte, comes out in order', async () => {
    const second = utf8('second, compressed and fragmented '.repeat(20))
    const stream = concat([
      ...messageFrames('server', false, compress(text), { compressed: true }),
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: hex`01` }),
      ...messageFrames('server', false, compress(second), { compressed: true, cuts: [10, 20, 30] }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: hex`02` }),
      ...messageFrames('server', true, compress(hex`03 03 03`), { compressed: true }),
      clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('last') }),
    ])
    const expected = plain([
      { type: 'message', data: text, binary: false },
      { type: 'message', data: hex`01`, binary: true },
      { type: 'message', data: second, binary: false },
      { type: 'ping', data: hex`02` },
      { type: 'message', data: hex`03 03 03`, binary: true },
      { type: 'message', data: utf8('last'), binary: false },
    ])
    for (const pieces of [[stream], split(stream, [1, 2, 100, 101, 500]), bytewise(stream)]) {
      const driver = new InflateDriver(server({ deflate }), deferred(zlibInflater())).feed(pieces)
      assert.equal(driver.pending, true)
      assert.deepEqual(types(driver.events), ['inflate'], 'nothing is parsed past the first request')
      await driver.settle()
      assert.deepEqual(plain(driver.delivered), expected)
    }
  })

  it('an asynchronous codec with input arriving between answers', async () => {
    const stream = concat([
      ...messageFrames('server', false, compress(text), { compressed: true, cuts: [7, 70] }),
      clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('plain') }),
      ...messageFrames('server', true, compress(text), { compressed: true }),
    ])
    const driver = new InflateDriver(server({ deflate }), deferred(zlibInflater()))
    for (const piece of split(stream, Array.from({ length: 40 }, (_, i) => i * 17))) {
      driver.feed([piece])
      if (piece[0]! % 2 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await driver.settle()
    assert.deepEqual(plain(driver.delivered), plain([
      { type: 'message', data: text, binary: false },
      { type: 'message', data: utf8('plain'), binary: false },
      { type: 'message', data: text, binary: true },
    ]))
  })

  it('a close frame behind a pending inflate waits for it; the message comes first', () => {
    const s = server({ deflate })
    s.receiveData(concat([clientFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: HELLO }), clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8` })]))
    assert.deepEqual(types(s.eventsReceived()), ['inflate'])
    assert.equal(s.closeReceived, undefined)
    assert.equal(s.bytesToSend, 0)
    s.receiveInflated({ ok: true, data: [utf8('Hello')] })
    assert.deepEqual(types(s.eventsReceived()), ['message', 'close'])
    assert.deepEqual(sent(s), hex`88 02 03 e8`)
  })

  it('receiveInflated without a pending request throws StateError TETHER_ERR_NO_INFLATE', () => {
    const isNoInflate = (e: unknown) => e instanceof StateError && e.code === 'TETHER_ERR_NO_INFLATE'
    const s = server({ deflate })
    assert.throws(() => s.receiveInflated({ ok: true, data: [] }), isNoInflate)
    // Also after the one request was answered: each request takes one answer.
    s.receiveData(clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: hex`01` }))
    s.eventsReceived()
    s.receiveInflated({ ok: true, data: [hex`07`] })
    assert.throws(() => s.receiveInflated({ ok: true, data: [hex`08`] }), isNoInflate)
    assert.deepEqual(plain(s.eventsReceived()), [{ type: 'message', binary: true, data: '07' }])
    assert.equal(s.error, undefined)
    assert.equal(s.bytesToSend, 0)
  })
})
