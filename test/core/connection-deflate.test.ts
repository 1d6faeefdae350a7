/**
 * Connection with permessage-deflate negotiated (RFC 7692 §6): RSV1 is the
 * "Per-Message Compressed" bit, legal on the first frame of a data message
 * only; compressed messages go out with RSV1 on their first frame; prepared
 * frames (prepare.ts) are byte-exact and sent by servers only.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { DeflateParameters } from '../../src/core/deflate/negotiate.js'
import { StateError } from '../../src/core/errors.js'
import { Opcode } from '../../src/core/frame.js'
import { prepareFrame } from '../../src/core/prepare.js'
import { clientFrame, hex, serverFrame, utf8 } from '../helpers/bytes.js'
import { client, feed, sent, server } from '../helpers/pair.js'
import { assertFailed, decodeFrames, plain, sentFrames } from '../helpers/wire.js'

const deflate: DeflateParameters = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
}

/** "Hello" compressed, the RFC 7692 §7.2.3.1 example. */
const HELLO = hex`f2 48 cd c9 c9 07 00`

describe('receiving RSV1 with permessage-deflate (RFC 7692 §6)', () => {
  for (const [name, opcode] of [
    ['text', Opcode.Text],
    ['binary', Opcode.Binary],
  ] as const) {
    it(`RSV1 on a ${name} frame asks for inflation instead of delivering a message`, () => {
      const s = server({ deflate })
      const events = feed(s, [clientFrame({ fin: true, rsv1: true, opcode, payload: HELLO })])
      assert.deepEqual(plain(events), [{ type: 'inflate', data: 'f248cdc9c90700', end: true, limit: 100 * 1024 * 1024 }])
      assert.equal(s.error, undefined)
      const c = client({ deflate })
      assert.deepEqual(
        plain(feed(c, [serverFrame({ fin: true, rsv1: true, opcode, payload: HELLO })])).map((e) => (e as { type: string }).type),
        ['inflate'],
      )
    })

    it(`without RSV1 a ${name} frame is a plain message, even with deflate negotiated`, () => {
      const s = server({ deflate })
      assert.deepEqual(plain(feed(s, [clientFrame({ fin: true, opcode, payload: utf8('Hello') })])), [
        { type: 'message', binary: opcode === Opcode.Binary, data: '48656c6c6f' },
      ])
    })
  }

  it('RSV1 on the first fragment: the message is compressed, its continuations carry no RSV1', () => {
    const s = server({ deflate })
    const events = feed(s, [clientFrame({ fin: false, rsv1: true, opcode: Opcode.Text, payload: HELLO.subarray(0, 3) })])
    assert.deepEqual(plain(events), [{ type: 'inflate', data: 'f248cd', end: false, limit: 100 * 1024 * 1024 }])
  })

  it('RSV1 on a continuation frame fails 1002 ("MUST NOT set the Per-Message Compressed bit of ... non-first fragments")', () => {
    // After a plain first fragment.
    const s = server({ deflate })
    assert.deepEqual(plain(feed(s, [clientFrame({ fin: false, opcode: Opcode.Text, payload: utf8('a') })])), [])
    assertFailed(s, feed(s, [clientFrame({ fin: true, rsv1: true, opcode: Opcode.Continuation, payload: utf8('b') })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)

    // After a compressed first fragment (answered, so the parser runs).
    const s2 = server({ deflate })
    assert.deepEqual(plain(feed(s2, [clientFrame({ fin: false, rsv1: true, opcode: Opcode.Text, payload: HELLO.subarray(0, 3) })])).length, 1)
    s2.receiveInflated({ ok: true, data: [] })
    assert.deepEqual(s2.eventsReceived(), [])
    assertFailed(
      s2,
      feed(s2, [clientFrame({ fin: true, rsv1: true, opcode: Opcode.Continuation, payload: HELLO.subarray(3) })]),
      'WS_ERR_UNEXPECTED_RSV_1',
      1002,
    )

    // A client is held to the same rule.
    const c = client({ deflate })
    feed(c, [serverFrame({ fin: false, opcode: Opcode.Binary, payload: utf8('a') })])
    assertFailed(c, feed(c, [serverFrame({ fin: true, rsv1: true, opcode: Opcode.Continuation, payload: utf8('b') })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)
  })

  for (const [name, opcode, payload] of [
    ['ping', Opcode.Ping, utf8('p')],
    ['pong', Opcode.Pong, utf8('p')],
    ['close', Opcode.Close, hex`03 e8`],
  ] as const) {
    it(`RSV1 on a ${name} frame fails 1002 ("MUST NOT set the Per-Message Compressed bit of control frames")`, () => {
      const s = server({ deflate })
      assertFailed(s, feed(s, [clientFrame({ fin: true, rsv1: true, opcode, payload })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)
      const c = client({ deflate })
      assertFailed(c, feed(c, [serverFrame({ fin: true, rsv1: true, opcode, payload })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)
    })

    it(`RSV1 on a ${name} frame between compressed fragments fails 1002 too`, () => {
      const s = server({ deflate })
      feed(s, [clientFrame({ fin: false, rsv1: true, opcode: Opcode.Text, payload: HELLO.subarray(0, 3) })])
      s.receiveInflated({ ok: true, data: [] })
      assertFailed(s, feed(s, [clientFrame({ fin: true, rsv1: true, opcode, payload })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)
    })
  }

  it('RSV1 without permessage-deflate negotiated fails 1002 (RFC 6455 §5.2)', () => {
    const s = server()
    assertFailed(s, feed(s, [clientFrame({ fin: true, rsv1: true, opcode: Opcode.Text, payload: HELLO })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)
    const c = client()
    assertFailed(c, feed(c, [serverFrame({ fin: true, rsv1: true, opcode: Opcode.Binary, payload: HELLO })]), 'WS_ERR_UNEXPECTED_RSV_1', 1002)
  })

  for (const [name, bits] of [
    ['RSV2', { rsv2: true }],
    ['RSV3', { rsv3: true }],
    ['RSV1 and RSV2', { rsv1: true, rsv2: true }],
  ] as const) {
    it(`${name} still fails 1002 with permessage-deflate, which defines RSV1 only`, () => {
      const s = server({ deflate })
      assertFailed(s, feed(s, [clientFrame({ fin: true, opcode: Opcode.Text, payload: HELLO, ...bits })]), 'WS_ERR_UNEXPECTED_RSV_2_3', 1002)
      const c = client({ deflate })
      assertFailed(c, feed(c, [serverFrame({ fin: true, opcode: Opcode.Binary, payload: HELLO, ...bits })]), 'WS_ERR_UNEXPECTED_RSV_2_3', 1002)
    })
  }

  it('RSV1 on a reserved opcode fails 1002', () => {
    const s = server({ deflate })
    const events = feed(s, [clientFrame({ fin: true, rsv1: true, opcode: 3, payload: HELLO })])
    assert.equal(s.error?.closeCode, 1002)
    assert.equal(events.at(-1)?.type, 'error')
  })
})

describe('sending compressed messages (RFC 7692 §6, §7.2.1)', () => {
  it('sendText(x, true, true) sets RSV1: C1 (the §7.2.3.1 "Hello" frame)', () => {
    const s = server({ deflate })
    s.sendText(HELLO, true, true)
    assert.deepEqual(sent(s), hex`c1 07 f2 48 cd c9 c9 07 00`)
    s.sendBinary(HELLO, true, true)
    assert.deepEqual(sent(s), hex`c2 07 f2 48 cd c9 c9 07 00`)
  })

  it('compressed defaults to false: no RSV1 with deflate negotiated', () => {
    const s = server({ deflate })
    s.sendText('Hello')
    s.sendBinary(HELLO, true, false)
    assert.deepEqual(sent(s), hex`81 05 48 65 6c 6c 6f 82 07 f2 48 cd c9 c9 07 00`)
  })

  it('a fragmented compressed send sets RSV1 on the first frame only: 41, 00, 80 (the §7.2.3.2 example)', () => {
    const s = server({ deflate })
    s.sendText(HELLO.subarray(0, 3), false, true)
    s.sendText(HELLO.subarray(3, 5), false, true)
    s.sendText(HELLO.subarray(5), true, true)
    assert.deepEqual(sent(s), hex`41 03 f2 48 cd 00 02 c9 c9 80 02 07 00`)
  })

  it('a control frame between compressed fragments carries no RSV1, and the next message starts afresh', () => {
    const s = server({ deflate })
    s.sendBinary(HELLO.subarray(0, 3), false, true)
    s.sendPing(utf8('p'))
    s.sendBinary(HELLO.subarray(3), true, true)
    s.sendBinary(HELLO, true, true)
    assert.deepEqual(sent(s), hex`42 03 f2 48 cd 89 01 70 80 04 c9 c9 07 00 c2 07 f2 48 cd c9 c9 07 00`)
  })

  it('a client masks compressed frames and sets RSV1 on the first', () => {
    const c = client({ deflate, generateMask: (mask) => mask.fill(0) })
    c.sendText(HELLO.subarray(0, 3), false, true)
    c.sendText(HELLO.subarray(3), true, true)
    const frames = sentFrames(c)
    assert.deepEqual(
      frames.map((f) => [f.fin, f.rsv, f.opcode, f.masked]),
      [
        [false, 4, Opcode.Text, true],
        [true, 0, Opcode.Continuation, true],
      ],
    )
    assert.deepEqual(frames[0]!.payload, HELLO.subarray(0, 3))
  })

  it('compressed = true without permessage-deflate throws TETHER_ERR_NO_DEFLATE and sends nothing', () => {
    for (const make of [server, client]) {
      const connection = make()
      for (const send of [() => connection.sendText(HELLO, true, true), () => connection.sendBinary(HELLO, false, true)]) {
        assert.throws(send, (error: unknown) => error instanceof StateError && error.code === 'TETHER_ERR_NO_DEFLATE')
      }
      assert.equal(connection.bytesToSend, 0)
      // Nothing was started: a plain message still goes out as a first frame.
      connection.sendText('a')
      assert.deepEqual(decodeFrames(sent(connection)).map((f) => [f.fin, f.rsv, f.opcode]), [[true, 0, Opcode.Text]])
    }
  })
})

describe('sendPrepared', () => {
  it('a server writes the prepared bytes as they are', () => {
    const s = server({ deflate })
    const plainFrame = prepareFrame(false, utf8('Hello'))
    const compressed = prepareFrame(true, HELLO, true)
    s.sendPrepared(plainFrame)
    s.sendPrepared(compressed)
    assert.deepEqual(sent(s), hex`81 05 48 65 6c 6c 6f c2 07 f2 48 cd c9 c9 07 00`)
  })

  it('a server without deflate may send prepared frames without RSV1', () => {
    const s = server()
    s.sendPrepared(prepareFrame(true, Uint8Array.of(1, 2)))
    assert.deepEqual(sent(s), hex`82 02 01 02`)
  })

  it('a prepared frame reaches the client as the message', () => {
    const s = server()
    s.sendPrepared(prepareFrame(false, utf8('h\u00e9')))
    assert.deepEqual(plain(feed(client(), [sent(s)])), [{ type: 'message', binary: false, data: '68c3a9' }])
  })

  it('a client cannot send prepared frames (it masks every frame with its own key): TETHER_ERR_PREPARED_CLIENT', () => {
    const c = client({ deflate })
    assert.throws(() => c.sendPrepared(prepareFrame(false, utf8('x'))), (e: unknown) => e instanceof StateError && e.code === 'TETHER_ERR_PREPARED_CLIENT')
    assert.equal(c.bytesToSend, 0)
  })

  it('refused while a fragmented message is being sent: TETHER_ERR_FRAGMENTED_SEND; allowed again once it is finished', () => {
    const s = server({ deflate })
    s.sendText('a', false)
    const frame = prepareFrame(false, utf8('x'))
    assert.throws(() => s.sendPrepared(frame), (e: unknown) => e instanceof StateError && e.code === 'TETHER_ERR_FRAGMENTED_SEND')
    // Control frames may still interleave, and the prepared frame did not slip in.
    s.sendPing()
    s.sendText('b', true)
    s.sendPrepared(frame)
    assert.deepEqual(sent(s), hex`01 01 61 89 00 80 01 62 81 01 78`)
  })

  it('refused for a compressed frame without permessage-deflate: TETHER_ERR_NO_DEFLATE', () => {
    const s = server()
    assert.throws(() => s.sendPrepared(prepareFrame(false, HELLO, true)), (e: unknown) => e instanceof StateError && e.code === 'TETHER_ERR_NO_DEFLATE')
    assert.equal(s.bytesToSend, 0)
  })

  it('refused after a close frame was sent: TETHER_ERR_NOT_OPEN', () => {
    const s = server({ deflate })
    s.sendClose(1000)
    sent(s)
    assert.throws(() => s.sendPrepared(prepareFrame(false, utf8('x'))), (e: unknown) => e instanceof StateError && e.code === 'TETHER_ERR_NOT_OPEN')
    assert.equal(s.bytesToSend, 0)
  })
})

describe('prepareFrame: one unmasked frame, byte-exact (RFC 6455 §5.2, RFC 7692 §6)', () => {
  it('text and binary, the §5.7 "Hello"', () => {
    assert.deepEqual(prepareFrame(false, utf8('Hello')), hex`81 05 48 65 6c 6c 6f`)
    assert.deepEqual(prepareFrame(true, utf8('Hello')), hex`82 05 48 65 6c 6c 6f`)
  })

  it('compressed sets RSV1: C1 / C2', () => {
    assert.deepEqual(prepareFrame(false, HELLO, true), hex`c1 07 f2 48 cd c9 c9 07 00`)
    assert.deepEqual(prepareFrame(true, HELLO, true), hex`c2 07 f2 48 cd c9 c9 07 00`)
    assert.deepEqual(prepareFrame(true, HELLO, false), hex`82 07 f2 48 cd c9 c9 07 00`)
  })

  const lengths: Array<[number, Uint8Array]> = [
    [0, hex`00`],
    [125, hex`7d`],
    [126, hex`7e 00 7e`],
    [65535, hex`7e ff ff`],
    [65536, hex`7f 00 00 00 00 00 01 00 00`],
  ]
  for (const [length, encoded] of lengths) {
    it(`a ${length}-byte payload: minimal length encoding, payload copied after the header`, () => {
      const payload = Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff)
      for (const [binary, compressed, first] of [
        [false, false, 0x81],
        [true, false, 0x82],
        [false, true, 0xc1],
        [true, true, 0xc2],
      ] as const) {
        const frame = prepareFrame(binary, payload, compressed)
        assert.equal(frame.length, 1 + encoded.length + length)
        assert.equal(frame[0], first)
        assert.deepEqual(frame.subarray(1, 1 + encoded.length), encoded)
        assert.deepEqual(frame.subarray(1 + encoded.length), payload)
      }
    })
  }

  it('the frame does not share memory with the payload', () => {
    const payload = utf8('abc')
    const frame = prepareFrame(false, payload)
    payload[0] = 0x7a
    assert.deepEqual(frame, hex`81 03 61 62 63`)
  })
})
