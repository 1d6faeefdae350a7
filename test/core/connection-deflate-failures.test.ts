/**
 * Connection: compressed messages that fail (RFC 7692 §7.2.2, RFC 6455
 * §7.1.7, §8.1, §10.4): codec failures, inflated text that is not UTF-8,
 * inflated and compressed sizes above maxPayload, and answers that arrive
 * after the connection failed or closed. Every failure leaves whatever was
 * queued behind the message unparsed.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ConnectionEvent } from '../../src/core/connection.js'
import type { DeflateParameters } from '../../src/core/deflate/negotiate.js'
import { ProtocolError } from '../../src/core/errors.js'
import { Opcode } from '../../src/core/frame.js'
import { clientFrame, concat, hex, serverFrame, utf8 } from '../helpers/bytes.js'
import { InflateDriver, compress, messageFrames, zlibInflater } from '../helpers/codec.js'
import { client, feed, sent, server } from '../helpers/pair.js'
import { assertFailed, plain, sentFrames } from '../helpers/wire.js'

const deflate: DeflateParameters = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
}
/** "Hello" compressed, the RFC 7692 §7.2.3.1 example. */
const HELLO = hex`f2 48 cd c9 c9 07 00`

function types(events: readonly ConnectionEvent[]): string[] {
  return events.map((event) => event.type)
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

describe('late answers after the connection failed or closed', () => {
  const setups: Array<[string, (s: ReturnType<typeof server>) => void, string[]]> = [
    ['failConnection (an extension failure)', (s) => s.failConnection(new ProtocolError('WS_ERR_EXTENSION_FAILURE', 'zlib failed')), ['error']],
    ['abort', (s) => s.abort(), ['closed']],
    ['receiveEof', (s) => s.receiveEof(), ['closed']],
  ]
  for (const [name, end, expected] of setups) {
    it(`after ${name}, the late answer is ignored: no event, no bytes, no throw`, () => {
      const s = server({ deflate })
      s.receiveData(concat([clientFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: HELLO }), clientFrame({ fin: true, opcode: Opcode.Ping, payload: hex`01` })]))
      assert.deepEqual(types(s.eventsReceived()), ['inflate'])
      end(s)
      assert.deepEqual(types(s.eventsReceived()), expected)
      const queued = s.bytesToSend
      s.receiveInflated({ ok: true, data: [utf8('Hello')] })
      assert.deepEqual(s.eventsReceived(), [])
      assert.equal(s.bytesToSend, queued)
      s.receiveData(clientFrame({ fin: true, opcode: Opcode.Ping, payload: hex`02` }))
      assert.deepEqual(s.eventsReceived(), [])
    })
  }
})

describe('inflate failures', () => {
  /**
   * A server with the first frame of a compressed message waiting for its
   * answer, and a ping behind it (plus, when that frame is the whole
   * message, a text message): what a failure must leave unparsed.
   */
  function waiting(options: { maxPayload?: number; fin?: boolean; opcode?: number } = {}) {
    const fin = options.fin ?? true
    const s = server({ deflate, maxPayload: options.maxPayload })
    s.receiveData(concat([
      clientFrame({ fin, rsv1: true, opcode: options.opcode ?? Opcode.Text, payload: HELLO }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: hex`01` }),
      ...(fin ? [clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('after') })] : []),
    ]))
    assert.deepEqual(types(s.eventsReceived()), ['inflate'])
    return s
  }

  it("{ ok: false, reason: 'too-big' } fails 1009 WS_ERR_UNSUPPORTED_MESSAGE_LENGTH; nothing behind it is parsed", () => {
    const s = waiting()
    s.receiveInflated({ ok: false, reason: 'too-big', message: 'too big' })
    assertFailed(s, s.eventsReceived(), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it("{ ok: false, reason: 'corrupt' } fails 1007 WS_ERR_INVALID_COMPRESSED_DATA", () => {
    const s = waiting()
    s.receiveInflated({ ok: false, reason: 'corrupt', message: 'invalid block type' })
    assertFailed(s, s.eventsReceived(), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007)
  })

  it('real zlib on corrupt data: 1007 WS_ERR_INVALID_COMPRESSED_DATA', () => {
    const s = server({ deflate })
    const driver = new InflateDriver(s, zlibInflater()).feed([clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: hex`ff ff ff` })])
    assertFailed(s, driver.events.slice(1), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007)
  })

  it('real zlib on a compression bomb: maxPayload bounds the inflated size (1009), exactly maxPayload passes', () => {
    const bomb = compress(new Uint8Array(100000))
    assert.ok(bomb.length < 200)
    const frame = clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: bomb })
    const ok = new InflateDriver(server({ deflate, maxPayload: 100000 }), zlibInflater()).feed([frame])
    assert.deepEqual(types(ok.delivered), ['message'])
    const s = server({ deflate, maxPayload: 99999 })
    const driver = new InflateDriver(s, zlibInflater()).feed([frame])
    assertFailed(s, driver.events.slice(1), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('inflated text that is invalid UTF-8 fails 1007 WS_ERR_INVALID_UTF8 at the end of the message; nothing behind it is parsed', () => {
    const s = waiting()
    s.receiveInflated({ ok: true, data: [hex`48 ff`] })
    assertFailed(s, s.eventsReceived(), 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('inflated text ending inside a character fails 1007 at the end of the message', () => {
    const s = waiting({ fin: false })
    s.receiveInflated({ ok: true, data: [utf8('ok')] })
    assert.deepEqual(types(s.eventsReceived()), ['ping'])
    sent(s)
    s.receiveData(concat([
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: hex`00` }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: hex`09` }),
    ]))
    assert.deepEqual(types(s.eventsReceived()), ['inflate'])
    s.receiveInflated({ ok: true, data: [hex`e2 82`] })
    assertFailed(s, s.eventsReceived(), 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails fast: the first inflated chunk is already invalid, before the end of the message', () => {
    const s = waiting({ fin: false })
    s.receiveInflated({ ok: true, data: [hex`c3 28`] })
    assertFailed(s, s.eventsReceived(), 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails fast inside one answer, at the invalid chunk', () => {
    const s = waiting({ fin: false })
    s.receiveInflated({ ok: true, data: [utf8('fine'), hex`80`, utf8('more')] })
    assertFailed(s, s.eventsReceived(), 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('a character split across answers is not an error; the same bytes as binary are never checked', () => {
    const s = server({ deflate })
    const driver = new InflateDriver(s, { inflate: (data, end, _limit, done) => done({ ok: true, data: [end ? hex`ac` : hex`e2 82`] }) })
    driver.feed([messageFrames('server', false, hex`00 00`, { compressed: true, cuts: [1] })].flat())
    assert.deepEqual(plain(driver.delivered), [{ type: 'message', binary: false, data: hexOf(utf8('\u20ac')) }])
    const b = server({ deflate })
    b.receiveData(clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: HELLO }))
    b.eventsReceived()
    b.receiveInflated({ ok: true, data: [hex`ff c3 28`] })
    assert.deepEqual(plain(b.eventsReceived()), [{ type: 'message', binary: true, data: 'ffc328' }])
  })

  it('a codec returning more than the limit is still stopped at maxPayload (1009)', () => {
    const exact = waiting({ maxPayload: 10 })
    exact.receiveInflated({ ok: true, data: [new Uint8Array(4), new Uint8Array(6)] })
    assert.deepEqual(types(exact.eventsReceived()), ['message', 'ping', 'message'])

    const over = waiting({ maxPayload: 10, opcode: Opcode.Binary })
    over.receiveInflated({ ok: true, data: [new Uint8Array(11)] })
    assertFailed(over, over.eventsReceived(), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)

    const chunks = waiting({ maxPayload: 10, opcode: Opcode.Binary })
    chunks.receiveInflated({ ok: true, data: [new Uint8Array(6), new Uint8Array(5)] })
    assertFailed(chunks, chunks.eventsReceived(), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)

    // Across answers.
    const across = waiting({ maxPayload: 10, fin: false, opcode: Opcode.Binary })
    across.receiveInflated({ ok: true, data: [new Uint8Array(6)] })
    assert.deepEqual(types(across.eventsReceived()), ['ping'])
    sent(across)
    across.receiveData(clientFrame({ fin: true, opcode: Opcode.Continuation, payload: hex`00` }))
    assert.deepEqual(plain(across.eventsReceived()).at(-1), { type: 'inflate', data: '00', end: true, limit: 4 })
    sent(across)
    across.receiveInflated({ ok: true, data: [new Uint8Array(5)] })
    assertFailed(across, across.eventsReceived(), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('the compressed size on the wire is held to maxPayload from the header, before any payload (1009)', () => {
    const s = server({ deflate, maxPayload: 10 })
    const header = clientFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: new Uint8Array(11) }).subarray(0, 6)
    assertFailed(s, feed(s, [header]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)

    const c = client({ deflate, maxPayload: 10 })
    assertFailed(c, feed(c, [hex`c2 0b`]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('the wire size counts every fragment, even when nothing has been inflated yet', () => {
    const s = server({ deflate, maxPayload: 10 })
    const events = feed(s, [clientFrame({ fin: false, rsv1: true, opcode: Opcode.Binary, payload: new Uint8Array(6) })])
    assert.deepEqual(types(events), ['inflate'])
    s.receiveInflated({ ok: true, data: [] })
    // 4 more bytes make 10: allowed.
    assert.deepEqual(types(feed(s, [clientFrame({ fin: false, opcode: Opcode.Continuation, payload: new Uint8Array(4) })])), ['inflate'])
    s.receiveInflated({ ok: true, data: [] })
    assert.equal(s.error, undefined)
    // One more byte on the wire is too much, from its header alone.
    const header = clientFrame({ fin: true, opcode: Opcode.Continuation, payload: new Uint8Array(1) }).subarray(0, 6)
    assertFailed(s, feed(s, [header]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('the wire size is counted per message: compressed messages of maxPayload bytes each all pass', () => {
    const s = server({ deflate, maxPayload: 10 })
    const driver = new InflateDriver(s, { inflate: (_data, end, _limit, done) => done({ ok: true, data: end ? [utf8('x')] : [] }) })
    const message = () => messageFrames('server', false, new Uint8Array(10), { compressed: true, cuts: [4] })
    driver.feed([...message(), clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('0123456789') }), ...message(), ...message()])
    assert.equal(s.error, undefined)
    assert.deepEqual(types(driver.delivered), ['message', 'message', 'message', 'message'])
  })

  it('a client fails the same ways (unmasked input, masked close frame)', () => {
    const c = client({ deflate })
    feed(c, [serverFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: HELLO })])
    c.receiveInflated({ ok: false, reason: 'corrupt', message: 'bad' })
    assertFailed(c, c.eventsReceived(), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007)
    assert.deepEqual(sentFrames(c), [])
  })
})
