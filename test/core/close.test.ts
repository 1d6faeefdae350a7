import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { MAX_CLOSE_REASON, isCloseParseFailure, isValidCloseCode, parseClose, serializeClose } from '../../src/core/close.js'
import { hex, utf8 } from '../helpers/bytes.js'

/** §7.4.1/§7.4.2 written out independently: the codes a peer may put on the wire. */
function allowedOnTheWire(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

function payload(code: number, reason: Uint8Array = new Uint8Array(0)): Uint8Array {
  return Uint8Array.of(code >>> 8, code & 0xff, ...reason)
}

describe('close payloads (RFC 6455 §5.5.1, §7.4)', () => {
  it('isValidCloseCode agrees with the rule for every code 0..5100 (valid: 1000-1003, 1007-1014, 3000-4999)', () => {
    for (let code = 0; code <= 5100; code++) {
      assert.equal(isValidCloseCode(code), allowedOnTheWire(code), `code ${code}`)
    }
    assert.equal(isValidCloseCode(65535), false)
  })

  it('reports an empty payload as 1005 with an empty reason (§7.1.5)', () => {
    const close = parseClose(new Uint8Array(0))
    assert.ok(!isCloseParseFailure(close))
    assert.equal(close.code, 1005)
    assert.equal(close.reason.length, 0)
  })

  it('refuses a 1-byte payload with 1002 (§5.5.1: the body starts with a 2-byte code)', () => {
    assert.deepEqual(parseClose(hex`03`), { closeCode: 1002, problem: 'length' })
  })

  it('refuses codes a peer must not send with 1002, at every range boundary', () => {
    for (const code of [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 5001, 65535]) {
      assert.deepEqual(parseClose(payload(code)), { closeCode: 1002, problem: 'code' }, `code ${code}`)
    }
  })

  it('accepts the codes a peer may send, at every range boundary', () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1010, 1014, 3000, 3999, 4000, 4999]) {
      const close = parseClose(payload(code))
      assert.ok(!isCloseParseFailure(close), `code ${code}`)
      assert.equal(close.code, code)
    }
  })

  it('reads the code big-endian and the rest as the reason', () => {
    const close = parseClose(hex`0f a0 62 79 65`)
    assert.ok(!isCloseParseFailure(close))
    assert.equal(close.code, 4000)
    assert.deepEqual(close.reason, utf8('bye'))
  })

  it('refuses a reason that is not UTF-8 with 1007, unless validation is skipped', () => {
    for (const reason of [hex`ff`, hex`c0 80`, hex`ed a0 80`, hex`e2 82`]) {
      assert.deepEqual(parseClose(payload(1000, reason)), { closeCode: 1007, problem: 'utf8' })
      const skipped = parseClose(payload(1000, reason), true)
      assert.ok(!isCloseParseFailure(skipped))
      assert.deepEqual(skipped.reason, reason)
    }
  })

  it('accepts a reason of 123 bytes, multi-byte characters included', () => {
    assert.equal(MAX_CLOSE_REASON, 123)
    const reason = utf8('\u20ac'.repeat(41))
    assert.equal(reason.length, 123)
    const close = parseClose(payload(1000, reason))
    assert.ok(!isCloseParseFailure(close))
    assert.deepEqual(close.reason, reason)
  })

  it('serializes 1005 as an empty payload (§7.4.1 forbids sending 1005 itself)', () => {
    assert.deepEqual(serializeClose(1005), new Uint8Array(0))
  })

  it('serializes the code big-endian followed by the reason', () => {
    assert.deepEqual(serializeClose(1000), hex`03 e8`)
    assert.deepEqual(serializeClose(4999, utf8('ok')), hex`13 87 6f 6b`)
  })

  it('property: parseClose(serializeClose(code, reason)) gives back any valid code and UTF-8 reason', () => {
    const validCode = fc.oneof(fc.integer({ min: 1000, max: 1003 }), fc.integer({ min: 1007, max: 1014 }), fc.integer({ min: 3000, max: 4999 }))
    const reason = fc.string({ unit: 'binary', maxLength: 30 }).map(utf8).filter((bytes) => bytes.length <= 123)
    fc.assert(
      fc.property(validCode, reason, (code, reasonBytes) => {
        const close = parseClose(serializeClose(code, reasonBytes))
        assert.ok(!isCloseParseFailure(close))
        assert.equal(close.code, code)
        assert.deepEqual(close.reason, reasonBytes)
      }),
      { numRuns: 200 },
    )
  })
})
