/**
 * Connection: UTF-8 of text messages and close reasons (RFC 6455 §8.1,
 * §5.6, §5.5.1): incremental validation that fails fast with 1007.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Opcode } from '../../src/core/frame.js'
import { clientFrame, concat, hex, serverFrame, utf8 } from '../helpers/bytes.js'
import { client, feed, server } from '../helpers/pair.js'
import { assertFailed, plain } from '../helpers/wire.js'

const INVALID: Array<[string, Uint8Array]> = [
  ['an overlong C0 80', hex`c0 80`],
  ['an overlong E0 80 80', hex`e0 80 80`],
  ['an overlong F0 80 80 80', hex`f0 80 80 80`],
  ['a surrogate ED A0 80', hex`ed a0 80`],
  ['a code point above U+10FFFF, F4 90 80 80', hex`f4 90 80 80`],
  ['a stray continuation byte', hex`61 80 62`],
  ['the byte FF', hex`ff`],
  ['a character truncated at the message end', hex`61 e2 82`],
]

describe('connection: UTF-8 of text messages (§8.1)', () => {
  for (const [name, bytes] of INVALID) {
    it(`fails 1007 on ${name} in a text message (§8.1)`, () => {
      const s = server()
      assertFailed(s, feed(s, [clientFrame({ fin: true, opcode: Opcode.Text, payload: bytes })]), 'WS_ERR_INVALID_UTF8', 1007)
      const c = client()
      assertFailed(c, feed(c, [serverFrame({ fin: true, opcode: Opcode.Text, payload: bytes })]), 'WS_ERR_INVALID_UTF8', 1007)
    })
  }

  it('fails 1007 on a character truncated at the end of a fragmented message', () => {
    const s = server()
    const events = feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Text, payload: utf8('ok') }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: hex`f0 9f 98` }),
    ])
    assertFailed(s, events, 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails 1007 at the first fragment containing an invalid byte, before the message ends (fail fast)', () => {
    const s = server()
    const events = feed(s, [clientFrame({ fin: false, opcode: Opcode.Text, payload: hex`61 62 ff` })])
    assertFailed(s, events, 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails 1007 at once when a fragment boundary splits an impossible sequence (F4 | 90)', () => {
    const s = server()
    const first = feed(s, [clientFrame({ fin: false, opcode: Opcode.Text, payload: hex`61 f4` })])
    assert.deepEqual(first, [], 'F4 may still start a valid character')
    const events = feed(s, [clientFrame({ fin: false, opcode: Opcode.Continuation, payload: hex`90 80 80` })])
    assertFailed(s, events, 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails 1007 across a fragment boundary when the next fragment does not continue a started character', () => {
    const s = server()
    assert.deepEqual(feed(s, [clientFrame({ fin: false, opcode: Opcode.Text, payload: hex`e2 82` })]), [])
    const events = feed(s, [clientFrame({ fin: false, opcode: Opcode.Continuation, payload: hex`41` })])
    assertFailed(s, events, 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails 1007 within one frame fed in pieces, as soon as the piece with the invalid byte arrives', () => {
    const payload = concat([utf8('hello '), hex`ff`, utf8(' and a lot more text that never arrives')])
    const frame = clientFrame({ fin: true, opcode: Opcode.Text, payload })
    const upToInvalid = 6 + 6 + 1 // header, "hello ", FF
    // The invalid byte in the first piece of payload...
    let s = server()
    assertFailed(s, feed(s, [frame.subarray(0, upToInvalid)]), 'WS_ERR_INVALID_UTF8', 1007)
    // ...and in a later piece.
    s = server()
    assert.deepEqual(feed(s, [frame.subarray(0, 9)]), [])
    assertFailed(s, feed(s, [frame.subarray(9, upToInvalid)]), 'WS_ERR_INVALID_UTF8', 1007)
    // An impossible prefix fails before the rest of its sequence.
    const f4 = clientFrame({ fin: true, opcode: Opcode.Text, payload: hex`61 f4 90 80 80 61` })
    s = server()
    assertFailed(s, feed(s, [f4.subarray(0, 6 + 3)]), 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('fails 1007 within one fragment fed in pieces, in the middle of a fragmented message', () => {
    const s = server()
    assert.deepEqual(feed(s, [clientFrame({ fin: false, opcode: Opcode.Text, payload: utf8('abc') })]), [])
    const second = clientFrame({ fin: true, opcode: Opcode.Continuation, payload: hex`64 ed a0 80 65 66 67` })
    assertFailed(s, feed(s, [second.subarray(0, 6 + 3)]), 'WS_ERR_INVALID_UTF8', 1007)
  })

  it('accepts valid multi-byte characters split across two fragments at every cut', () => {
    const text = 'a\u00e9\u20ac\u{1f600}z\u{10ffff}'
    const bytes = utf8(text)
    for (let cut = 0; cut <= bytes.length; cut++) {
      const s = server()
      const events = feed(s, [
        clientFrame({ fin: false, opcode: Opcode.Text, payload: bytes.subarray(0, cut) }),
        clientFrame({ fin: true, opcode: Opcode.Continuation, payload: bytes.subarray(cut) }),
      ])
      assert.deepEqual(plain(events), plain([{ type: 'message', data: bytes, binary: false }]), `cut ${cut}`)
    }
  })

  it('accepts a 4-byte character split over four one-byte fragments, and over every pair of cuts', () => {
    const bytes = utf8('\u{1f600}\u20ac')
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b++) {
        const c = client()
        const events = feed(c, [
          serverFrame({ fin: false, opcode: Opcode.Text, payload: bytes.subarray(0, a) }),
          serverFrame({ fin: false, opcode: Opcode.Continuation, payload: bytes.subarray(a, b) }),
          serverFrame({ fin: true, opcode: Opcode.Continuation, payload: bytes.subarray(b) }),
        ])
        assert.deepEqual(plain(events), plain([{ type: 'message', data: bytes, binary: false }]), `cuts ${a}, ${b}`)
      }
    }
  })

  it('accepts valid text in one frame fed byte by byte', () => {
    const bytes = utf8('\u00e9\u20ac\u{1f600}')
    const frame = clientFrame({ fin: true, opcode: Opcode.Text, payload: bytes })
    const s = server()
    const events = feed(s, Array.from(frame, (b) => Uint8Array.of(b)))
    assert.deepEqual(plain(events), plain([{ type: 'message', data: bytes, binary: false }]))
  })

  it('does not validate binary messages', () => {
    const s = server()
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Binary, payload: hex`ff c0 80` })])
    assert.deepEqual(plain(events), plain([{ type: 'message', data: hex`ff c0 80`, binary: true }]))
  })

  it('skipUTF8Validation: true delivers invalid text without failing, whole and fragmented', () => {
    const s = server({ skipUTF8Validation: true })
    const events = feed(s, [
      clientFrame({ fin: true, opcode: Opcode.Text, payload: hex`ff ed a0 80` }),
      clientFrame({ fin: false, opcode: Opcode.Text, payload: hex`61 f4` }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: hex`90 c0` }),
    ])
    assert.deepEqual(
      plain(events),
      plain([
        { type: 'message', data: hex`ff ed a0 80`, binary: false },
        { type: 'message', data: hex`61 f4 90 c0`, binary: false },
      ]),
    )
    assert.equal(s.error, undefined)
  })
})

describe('connection: UTF-8 of close reasons (§5.5.1)', () => {
  it('fails 1007 on a close reason that is not UTF-8', () => {
    const s = server()
    assertFailed(s, feed(s, [clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8 ff` })]), 'WS_ERR_INVALID_UTF8', 1007)
    const c = client()
    assertFailed(c, feed(c, [serverFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8 ed a0 80` })]), 'WS_ERR_INVALID_UTF8', 1007)
    assert.equal(c.closeReceived, undefined, 'the invalid close is not recorded as received')
  })

  it('skipUTF8Validation: true accepts a close reason that is not UTF-8', () => {
    const s = server({ skipUTF8Validation: true })
    const events = feed(s, [clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8 ff` })])
    assert.deepEqual(plain(events), plain([{ type: 'close', code: 1000, reason: hex`ff` }]))
  })
})
