/**
 * Connection: base framing (RFC 6455 §5.1-§5.3, §5.5, §10.4): masking by
 * role, reserved bits and opcodes, length encodings, control-frame limits,
 * resumable input and the maxPayload limit.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import type { Connection } from '../../src/core/connection.js'
import type { ProtocolErrorCode } from '../../src/core/errors.js'
import { Opcode } from '../../src/core/frame.js'
import { bytewise, clientFrame, concat, hex, serverFrame, split, utf8 } from '../helpers/bytes.js'
import { client, feed, sent, server } from '../helpers/pair.js'
import { assertFailed, decodeFrames, plain, sentFrames } from '../helpers/wire.js'

describe('connection: masking by role (§5.1, §5.3)', () => {
  it('server fails 1002 on an unmasked frame (§5.1)', () => {
    const s = server()
    const events = feed(s, [serverFrame({ fin: true, opcode: Opcode.Text, payload: utf8('hi') })])
    assertFailed(s, events, 'WS_ERR_EXPECTED_MASK', 1002)
  })

  it('server fails 1002 on an unmasked control frame too (§5.1)', () => {
    const s = server()
    assertFailed(s, feed(s, [hex`89 00`]), 'WS_ERR_EXPECTED_MASK', 1002)
  })

  it('server output for a 1002 failure is exactly 88 02 03 ea', () => {
    const s = server()
    s.receiveData(hex`81 00`)
    assert.deepEqual(sent(s), hex`88 02 03 ea`)
  })

  it('client fails 1002 on a masked frame (§5.1)', () => {
    const c = client()
    const events = feed(c, [clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('hi') })])
    assertFailed(c, events, 'WS_ERR_UNEXPECTED_MASK', 1002)
  })

  it('client masks every frame it sends with a fresh key; identical frames get different keys (§5.3)', () => {
    const c = client()
    c.sendText('same')
    c.sendText('same')
    c.sendBinary(new Uint8Array(5000).fill(9))
    c.sendPing(utf8('p'))
    const frames = sentFrames(c)
    assert.equal(frames.length, 4)
    for (const frame of frames) assert.equal(frame.masked, true)
    assert.notDeepEqual(frames[0]!.mask, frames[1]!.mask)
    assert.deepEqual(frames[0]!.payload, utf8('same'))
    assert.deepEqual(frames[1]!.payload, utf8('same'))
    assert.deepEqual(frames[2]!.payload, new Uint8Array(5000).fill(9))
  })

  it('client honours the generateMask option (the §5.7 masked "Hello")', () => {
    const c = client({ generateMask: (mask) => mask.set([0x37, 0xfa, 0x21, 0x3d]) })
    c.sendText('Hello')
    assert.deepEqual(sent(c), hex`81 85 37 fa 21 3d 7f 9f 4d 51 58`)
  })

  it('client does not modify the caller’s payload when masking it', () => {
    const c = client()
    for (const length of [5, 5000]) {
      const payload = new Uint8Array(length).fill(0x61)
      c.sendBinary(payload)
      assert.ok(payload.every((b) => b === 0x61))
    }
  })

  it('server never masks its frames (the §5.7 unmasked "Hello"), small or large', () => {
    const s = server()
    s.sendText('Hello')
    assert.deepEqual(sent(s), hex`81 05 48 65 6c 6c 6f`)
    s.sendBinary(new Uint8Array(70000))
    s.sendPing()
    for (const frame of sentFrames(s)) assert.equal(frame.masked, false)
  })

  it('server passes a large payload to the transport without copying it', () => {
    const s = server()
    const payload = new Uint8Array(10000).fill(3)
    s.sendBinary(payload)
    const chunks = s.dataToSend()
    assert.equal(chunks.at(-1), payload)
  })

  it('sends a fragmented message as a first frame and continuation frames (the §5.7 example)', () => {
    const s = server()
    s.sendText('Hel', false)
    s.sendText('lo')
    assert.deepEqual(sent(s), hex`01 03 48 65 6c 80 02 6c 6f`)
    s.sendBinary(Uint8Array.of(1), false)
    s.sendBinary(Uint8Array.of(2), false)
    s.sendBinary(Uint8Array.of(3), true)
    assert.deepEqual(sent(s), hex`02 01 01 00 01 02 80 01 03`)
  })
})

describe('connection: reserved bits and opcodes (§5.2)', () => {
  for (const [name, first, code] of [
    ['RSV1', 0xc1, 'WS_ERR_UNEXPECTED_RSV_1'],
    ['RSV2', 0xa1, 'WS_ERR_UNEXPECTED_RSV_2_3'],
    ['RSV3', 0x91, 'WS_ERR_UNEXPECTED_RSV_2_3'],
  ] as const) {
    it(`fails 1002 on ${name} set without a negotiated extension (§5.2)`, () => {
      const s = server()
      const frame = clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('x') })
      frame[0] = first
      assertFailed(s, feed(s, [frame]), code, 1002)
      const c = client()
      assertFailed(c, feed(c, [Uint8Array.of(first, 0x00)]), code, 1002)
    })
  }

  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    it(`fails 1002 on reserved opcode 0x${opcode.toString(16)} (§5.2)`, () => {
      const s = server()
      assertFailed(s, feed(s, [clientFrame({ fin: true, opcode, payload: utf8('x') })]), 'WS_ERR_INVALID_OPCODE', 1002)
      const c = client()
      assertFailed(c, feed(c, [serverFrame({ fin: true, opcode, payload: new Uint8Array(0) })]), 'WS_ERR_INVALID_OPCODE', 1002)
    })
  }
})

describe('connection: payload lengths and resumable input (§5.2)', () => {
  for (const length of [0, 1, 125, 126, 127, 128, 65535, 65536]) {
    it(`receives a ${length}-byte message whole, byte by byte, and at random cuts`, () => {
      const payload = Uint8Array.from({ length }, (_, i) => (i * 7 + 1) & 0xff)
      const toServer = clientFrame({ fin: true, opcode: Opcode.Binary, payload })
      const toClient = serverFrame({ fin: true, opcode: Opcode.Binary, payload })
      const expected = plain([{ type: 'message', data: payload, binary: true }])
      assert.deepEqual(plain(feed(server(), [toServer])), expected)
      assert.deepEqual(plain(feed(client(), [toClient])), expected)
      // Byte by byte is slow for 64 KiB; the small sizes cover every header byte.
      if (length <= 1000) {
        assert.deepEqual(plain(feed(server(), bytewise(toServer))), expected)
        assert.deepEqual(plain(feed(client(), bytewise(toClient))), expected)
      }
      const cuts = [1, 2, 3, 5, 8, 13, 100, 4000, 30000, 65540]
      assert.deepEqual(plain(feed(server(), split(toServer, cuts))), expected)
      assert.deepEqual(plain(feed(client(), split(toClient, cuts))), expected)
    })
  }

  it('property: any chunking of several frames gives the same events as one chunk', () => {
    const frames = [
      clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('h\u00e9llo \u{1f600}') }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('ping') }),
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(300).fill(5) }),
      clientFrame({ fin: true, opcode: Opcode.Pong, payload: new Uint8Array(0) }),
    ]
    const bytes = concat(frames)
    const expected = plain(feed(server(), [bytes]))
    assert.equal(expected.length, 4)
    fc.assert(
      fc.property(fc.array(fc.nat(bytes.length), { maxLength: 30 }), (cuts) => {
        assert.deepEqual(plain(feed(server(), split(bytes, cuts))), expected)
      }),
      { numRuns: 200 },
    )
  })

  it('fails 1002 on a 64-bit length with the most significant bit set, from the header alone (§5.2)', () => {
    const s = server()
    assertFailed(s, feed(s, [hex`82 ff 80 00 00 00 00 00 00 00 01 02 03 04`]), 'WS_ERR_INVALID_PAYLOAD_LENGTH', 1002)
    const c = client()
    assertFailed(c, feed(c, bytewise(hex`82 7f ff ff ff ff ff ff ff ff`)), 'WS_ERR_INVALID_PAYLOAD_LENGTH', 1002)
  })

  it('fails 1009 on a length above 2^53 - 1 with the top bit clear, even with maxPayload 0', () => {
    const s = server({ maxPayload: 0 })
    assertFailed(s, feed(s, [hex`82 ff 00 20 00 00 00 00 00 00 01 02 03 04`]), 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 1009)
    const c = client({ maxPayload: 0 })
    assertFailed(c, feed(c, [hex`82 7f 7f ff ff ff ff ff ff ff`]), 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 1009)
  })

  // Found by the fuzzer (fuzz/corpus/frames-*/seed-ping-huge-length.bin and saved inputs): the 64-bit
  // length was judged before the first two bytes, so a ping announcing 2^60 bytes failed with 1009.
  it('judges the first two bytes before a 64-bit length: a malformed frame is 1002 whatever it announces', () => {
    const huge = hex`10 00 00 00 00 00 00 00` // 2^60: above 2^53 - 1
    const msb = hex`80 00 00 00 00 00 00 00` // top bit set
    const cases: Array<[string, Uint8Array, ProtocolErrorCode]> = [
      ['a ping', hex`89 7f`, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'],
      ['a fragmented close', hex`08 7f`, 'WS_ERR_EXPECTED_FIN'],
      ['RSV2', hex`a2 7f`, 'WS_ERR_UNEXPECTED_RSV_2_3'],
      ['RSV1 without an extension', hex`c2 7f`, 'WS_ERR_UNEXPECTED_RSV_1'],
      ['a reserved opcode', hex`83 7f`, 'WS_ERR_INVALID_OPCODE'],
      ['a continuation without a message', hex`80 7f`, 'WS_ERR_INVALID_OPCODE'],
      ['an unmasked frame to a server', hex`82 7f`, 'WS_ERR_EXPECTED_MASK'],
    ]
    for (const [name, head, code] of cases) {
      for (const length of [huge, msb]) {
        const s = server({ maxPayload: 0 })
        assert.doesNotThrow(() => assertFailed(s, feed(s, [concat([head, length])]), code, 1002), name)
      }
    }
    // A masked frame to a client, byte by byte.
    const c = client()
    assertFailed(c, feed(c, bytewise(concat([hex`82 ff`, huge, hex`01 02 03 04`]))), 'WS_ERR_UNEXPECTED_MASK', 1002)
    // With nothing else wrong the length itself is reported, as before.
    const s = server({ maxPayload: 0 })
    assertFailed(s, feed(s, [concat([hex`82 ff`, huge, hex`01 02 03 04`])]), 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 1009)
  })
})

describe('connection: maxPayload (§10.4)', () => {
  it('fails 1009 from the header of an oversized frame, before any payload arrives', () => {
    const s = server({ maxPayload: 1000 })
    const header = clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(1001) }).subarray(0, 8)
    assertFailed(s, feed(s, [header]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('fails 1009 from the header with the default limit of 100 MiB (a 64-bit length, no payload sent)', () => {
    const s = server()
    // 100 MiB + 1, masked.
    assertFailed(s, feed(s, [hex`82 ff 00 00 00 00 06 40 00 01 00 00 00 00`]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
    const c = client()
    assertFailed(c, feed(c, [hex`82 7f 00 00 01 00 00 00 00 00`]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('accepts a message of exactly maxPayload bytes', () => {
    const s = server({ maxPayload: 1000 })
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(1000) })])
    assert.deepEqual(events.map((e) => e.type), ['message'])
  })

  it('fails 1009 when the fragments together exceed maxPayload, at the header of the fragment that exceeds it', () => {
    const s = server({ maxPayload: 100 })
    const events = feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Text, payload: utf8('a'.repeat(60)) }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: utf8('b'.repeat(40)) }),
    ])
    assert.deepEqual(events, [], 'exactly at the limit so far')
    const next = clientFrame({ fin: true, opcode: Opcode.Continuation, payload: utf8('c') }).subarray(0, 6)
    assertFailed(s, feed(s, [next]), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)
  })

  it('counts each message separately', () => {
    const s = server({ maxPayload: 100 })
    const frame = clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(100) })
    const events = feed(s, [frame, frame, frame])
    assert.deepEqual(events.map((e) => e.type), ['message', 'message', 'message'])
  })

  it('maxPayload 0 means unlimited: a header announcing 2^40 bytes does not fail', () => {
    const s = server({ maxPayload: 0 })
    const events = feed(s, [hex`82 ff 00 00 01 00 00 00 00 00 01 02 03 04`, new Uint8Array(1000)])
    assert.deepEqual(events, [])
    assert.equal(s.error, undefined)
    assert.equal(s.state, 'open')
    const c = client({ maxPayload: 0 })
    const payload = new Uint8Array(200_000).fill(1)
    const received = feed(c, [serverFrame({ fin: true, opcode: Opcode.Binary, payload })])
    assert.equal(received.length, 1)
    assert.equal((received[0] as { data: Uint8Array }).data.length, 200_000)
  })
})

describe('connection: control frames (§5.5)', () => {
  for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
    it(`fails 1002 on a ${opcode === Opcode.Ping ? 'ping' : opcode === Opcode.Pong ? 'pong' : 'close'} with a 126-byte payload, from the header alone (§5.5)`, () => {
      const s = server()
      const header = clientFrame({ fin: true, opcode, payload: new Uint8Array(126) }).subarray(0, 8)
      assertFailed(s, feed(s, [header]), 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 1002)
      const c = client()
      assertFailed(c, feed(c, [serverFrame({ fin: true, opcode, payload: new Uint8Array(200) })]), 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 1002)
    })

    it(`fails 1002 on a fragmented (FIN clear) ${opcode === Opcode.Ping ? 'ping' : opcode === Opcode.Pong ? 'pong' : 'close'} (§5.5)`, () => {
      const s = server()
      assertFailed(s, feed(s, [clientFrame({ fin: false, opcode, payload: new Uint8Array(0) })]), 'WS_ERR_EXPECTED_FIN', 1002)
    })
  }

  it('accepts control payloads of 125 bytes', () => {
    const s = server()
    const payload = new Uint8Array(125).fill(0x42)
    const events = feed(s, [
      clientFrame({ fin: true, opcode: Opcode.Ping, payload }),
      clientFrame({ fin: true, opcode: Opcode.Pong, payload }),
    ])
    assert.deepEqual(plain(events), plain([
      { type: 'ping', data: payload },
      { type: 'pong', data: payload },
    ]))
    const [pong] = decodeFrames(sent(s))
    assert.deepEqual(pong!.payload, payload)
  })

  it('refuses to send a control payload over 125 bytes', () => {
    const s = server()
    assert.throws(() => s.sendPing(new Uint8Array(126)), RangeError)
    assert.throws(() => s.sendPong(new Uint8Array(126)), RangeError)
    assert.equal(s.bytesToSend, 0)
    s.sendPing(new Uint8Array(125))
    assert.equal(s.bytesToSend, 127)
  })
})

describe('connection: bytes it copies on receipt (bytesCopiedOnReceipt, tcp.ts Rule 6)', () => {
  const frame = (opcode: number, size: number, fin = true, rsv1 = false) =>
    clientFrame({ fin, rsv1, opcode, payload: new Uint8Array(size).fill(0x61) })
  const copied = (connection: Connection, bytes: Uint8Array) => connection.bytesCopiedOnReceipt(bytes, 0, bytes.length)

  it('inside a data frame: the rest of it once its message has bytes, or when the frame is not the last', () => {
    const s = server()
    const binary = frame(Opcode.Binary, 1000)
    // Header (2 + 2 length + 4 mask) alone: a whole payload in the next piece would be delivered as that piece,
    // and the first bytes of a message's only frame are left to the transport to copy, whole or not.
    feed(s, [binary.subarray(0, 8)])
    assert.equal(copied(s, binary.subarray(8)), 0, 'the whole payload: delivered as the view')
    assert.equal(copied(s, binary.subarray(8, 300)), 0, "the first bytes of a message's only frame")
    feed(s, [binary.subarray(8, 300)])
    assert.equal(copied(s, binary.subarray(300)), 1000 - 292, 'the message has bytes')
    assert.equal(copied(s, binary.subarray(300, 400)), 100, 'no more than is there')
    assert.equal(feed(s, [binary.subarray(300)]).length, 1)

    // A fragmented text message: each data frame's payload goes into the message's buffer.
    const first = frame(Opcode.Text, 200, false)
    feed(s, [first.subarray(0, 8)])
    assert.equal(copied(s, first.subarray(8)), 200, 'a first frame that is not the last, from its first byte')
    feed(s, [first.subarray(8, 100)])
    assert.equal(copied(s, first.subarray(100)), 200 - (100 - 8))
    feed(s, [first.subarray(100)])
    const ping = clientFrame({ fin: true, opcode: Opcode.Ping, payload: new Uint8Array(100) })
    feed(s, [ping.subarray(0, 50)])
    assert.equal(copied(s, ping.subarray(50)), 0, 'inside a control frame')
    feed(s, [ping.subarray(50)])
    const last = frame(Opcode.Continuation, 300)
    feed(s, [last.subarray(0, 20)])
    assert.equal(copied(s, last.subarray(20)), 300 - 12, 'a continuation of a message that has bytes')
    feed(s, [last.subarray(20)])
  })

  it('between frames: a data frame whose header is whole, that is not the last or joins a message with bytes, up to its end', () => {
    const s = server()
    assert.equal(copied(s, new Uint8Array(0)), 0, 'nothing')
    const binary = frame(Opcode.Binary, 1000)
    assert.equal(copied(s, binary.subarray(0, 500)), 0, "a message's only frame, running past the end")
    assert.equal(copied(s, binary), 0, "a message's only frame, whole: delivered as the view")
    const fragment = frame(Opcode.Binary, 70000, false)
    assert.equal(copied(s, fragment.subarray(0, 1)), 0, 'one byte of a header')
    assert.equal(copied(s, fragment.subarray(0, 13)), 0, 'a header without its mask')
    assert.equal(copied(s, fragment.subarray(0, 14)), 14, 'the header alone (a 64-bit length) of a frame that is not the last')
    assert.equal(copied(s, fragment.subarray(0, 500)), 500, 'and part of its payload')
    const first = frame(Opcode.Text, 10, false)
    const both = concat([first, frame(Opcode.Continuation, 10)])
    assert.equal(copied(s, both), first.length, 'a first fragment, whole: up to its end')
    feed(s, [first])
    const next = frame(Opcode.Continuation, 10)
    assert.equal(copied(s, concat([next, next])), next.length, 'a continuation of a message that has bytes: up to its end')
    assert.equal(copied(s, frame(Opcode.Ping, 10)), 0, 'a control frame')
    assert.equal(copied(s, clientFrame({ fin: true, opcode: 0x3, payload: new Uint8Array(10) }).subarray(0, 8)), 0, 'a reserved opcode')
    const empty = server()
    const opening = frame(Opcode.Text, 0, false)
    feed(empty, [opening])
    assert.equal(copied(empty, frame(Opcode.Continuation, 10)), 0, 'the last frame of a message with no bytes yet: delivered as the view')
  })

  it('is 0 for compressed messages, and once the connection failed or closed', () => {
    const compressed = server({ deflate: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 } })
    const deflated = frame(Opcode.Binary, 1000, false, true)
    assert.equal(copied(compressed, deflated.subarray(0, 300)), 0, 'compressed: the inflater may keep what it is given')
    feed(compressed, [deflated.subarray(0, 300)])
    assert.equal(copied(compressed, deflated.subarray(300)), 0, 'inside a compressed frame')
    const s = server({ maxPayload: 500 })
    feed(s, [frame(Opcode.Binary, 1000).subarray(0, 300)])
    assert.equal(copied(s, frame(Opcode.Binary, 1000).subarray(0, 300)), 0, 'failed with 1009 at the header')
    const t = server()
    feed(t, [frame(Opcode.Binary, 1000).subarray(0, 300)])
    t.sendClose(1000)
    assert.equal(copied(t, new Uint8Array(700)), 0, 'closing')
  })

  /** Feeds `stream` in reads of the given sizes through one reused buffer, as tcp.ts Rule 6 does: views where the connection says it copies, else a copy; the viewed bytes are overwritten at once. */
  function feedThroughSharedBuffer(stream: Uint8Array, sizes: readonly number[]): unknown[] {
    const s = server()
    const events = []
    const buffer = new Uint8Array(stream.length + 1)
    let offset = 0
    for (let i = 0; offset < stream.length; i++) {
      const size = Math.min(sizes[i % sizes.length]!, stream.length - offset)
      buffer.set(stream.subarray(offset, offset + size))
      offset += size
      let at = 0
      while (at < size) {
        const viewed = Math.min(size - at, s.bytesCopiedOnReceipt(buffer, at, size))
        if (viewed === 0) {
          s.receiveData(buffer.slice(at, size))
          at = size
        } else {
          s.receiveData(buffer.subarray(at, at + viewed))
          buffer.fill(0xee, at, at + viewed)
          at += viewed
        }
        events.push(...s.eventsReceived())
      }
    }
    return plain(events)
  }

  // The contract itself: bytes the connection says it copies may be overwritten once receiveData returns
  // (the transport's next read lands there) without changing anything it reports, then or later.
  it('bytes it says it copies can be overwritten after receipt without changing any event: every split of a stream in two and three reads', () => {
    const payload = (size: number) => Uint8Array.from({ length: size }, (_, i) => 0x61 + (i % 26))
    const stream = concat([
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: payload(130) }),
      clientFrame({ fin: false, opcode: Opcode.Text, payload: payload(40) }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: payload(5) }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: payload(0) }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: payload(150) }),
      clientFrame({ fin: true, opcode: Opcode.Text, payload: payload(20) }),
      clientFrame({ fin: false, opcode: Opcode.Binary, payload: payload(0) }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: payload(200) }),
    ])
    const expected = plain(feed(server(), [stream]))
    for (let first = 1; first < stream.length; first++) {
      assert.deepEqual(feedThroughSharedBuffer(stream, [first, stream.length]), expected, `reads of ${first} and the rest`)
      for (const second of [1, 2, 6, 8, 14, 150]) {
        assert.deepEqual(feedThroughSharedBuffer(stream, [first, second, stream.length]), expected, `reads of ${first}, ${second} and the rest`)
      }
    }
  })

  it('bytes it says it copies can be overwritten after receipt without changing any event (property)', () => {
    const frameArbitrary = fc.oneof(
      fc.record({ opcode: fc.constantFrom(Opcode.Binary, Opcode.Text), size: fc.integer({ min: 0, max: 3000 }), fragments: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ opcode: fc.constant(Opcode.Ping), size: fc.integer({ min: 0, max: 125 }), fragments: fc.constant(1) }),
    )
    fc.assert(
      fc.property(fc.array(frameArbitrary, { minLength: 1, maxLength: 6 }), fc.array(fc.oneof(fc.integer({ min: 1, max: 4000 }), fc.constantFrom(6, 8, 14)), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
        const parts: Uint8Array[] = []
        for (const { opcode, size, fragments } of messages) {
          const payload = new Uint8Array(size).fill(0x61)
          const step = Math.ceil(size / fragments) || 1
          let at = 0
          for (let f = 0; f < fragments; f++) {
            const end = f === fragments - 1 ? size : Math.min(size, at + step)
            parts.push(clientFrame({ fin: f === fragments - 1, opcode: f === 0 ? opcode : Opcode.Continuation, payload: payload.subarray(at, end) }))
            at = end
          }
        }
        const stream = concat(parts)
        assert.deepEqual(feedThroughSharedBuffer(stream, cuts), plain(feed(server(), [stream])))
      }),
      { numRuns: 300 },
    )
  })
})
