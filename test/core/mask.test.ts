import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { applyMask, copyMasked } from '../../src/core/mask.js'
import { hex, MASK, utf8 } from '../helpers/bytes.js'

/** The definition of §5.3: octet i is XORed with octet (i MOD 4) of the key. */
function maskByteWise(data: Uint8Array, mask: Uint8Array, maskOffset: number): Uint8Array {
  return Uint8Array.from(data, (byte, i) => byte ^ mask[(maskOffset + i) % 4]!)
}

/**
 * Builds `length` bytes at `byteOffset` inside a larger buffer with guard
 * bytes on both sides, so a word loop that strays outside the view shows.
 */
function viewAt(content: Uint8Array, byteOffset: number): { whole: Uint8Array; view: Uint8Array } {
  const whole = new Uint8Array(byteOffset + content.length + 8).fill(0xa5)
  whole.set(content, byteOffset)
  return { whole, view: whole.subarray(byteOffset, byteOffset + content.length) }
}

describe('masking (RFC 6455 §5.3)', () => {
  it('masks the §5.7 example "Hello" with key 37 fa 21 3d', () => {
    const data = utf8('Hello')
    applyMask(data, MASK)
    assert.deepEqual(data, hex`7f 9f 4d 51 58`)
  })

  it('is its own inverse', () => {
    const original = Uint8Array.from({ length: 100 }, (_, i) => (i * 7) & 0xff)
    const data = original.slice()
    applyMask(data, MASK)
    assert.notDeepEqual(data, original)
    applyMask(data, MASK)
    assert.deepEqual(data, original)
  })

  it('equals the byte-wise definition for every length 0..100, byte offset 0..7 and mask offset 0..3', () => {
    const mask = hex`01 23 45 fe`
    for (let length = 0; length <= 100; length++) {
      const content = Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff)
      for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
        for (let maskOffset = 0; maskOffset < 4; maskOffset++) {
          const { whole, view } = viewAt(content, byteOffset)
          applyMask(view, mask, maskOffset)
          const where = `length ${length}, byteOffset ${byteOffset}, maskOffset ${maskOffset}`
          assert.deepEqual(view, maskByteWise(content, mask, maskOffset), where)
          // Guard bytes around the view are untouched.
          assert.ok(whole.subarray(0, byteOffset).every((b) => b === 0xa5), `bytes before the view, ${where}`)
          assert.ok(whole.subarray(byteOffset + length).every((b) => b === 0xa5), `bytes after the view, ${where}`)
        }
      }
    }
  })

  it('property: the word-wide loop equals the byte-wise definition for random data, keys and alignments', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 3 }),
        (content, mask, byteOffset, maskOffset) => {
          const { whole, view } = viewAt(content, byteOffset)
          applyMask(view, mask, maskOffset)
          assert.deepEqual(view, maskByteWise(content, mask, maskOffset))
          assert.ok(whole.subarray(0, byteOffset).every((b) => b === 0xa5))
          assert.ok(whole.subarray(byteOffset + content.length).every((b) => b === 0xa5))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('unmasking a payload in pieces (maskOffset = position in the payload) equals unmasking it whole', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(200)), (content, cuts) => {
        const whole = content.slice()
        applyMask(whole, MASK)
        const pieces = content.slice()
        const points = [...new Set([0, ...cuts.filter((c) => c < content.length), content.length])].sort((a, b) => a - b)
        for (let k = 0; k + 1 < points.length; k++) {
          applyMask(pieces.subarray(points[k]!, points[k + 1]!), MASK, points[k]!)
        }
        assert.deepEqual(pieces, whole)
      }),
      { numRuns: 200 },
    )
  })

  it('copyMasked writes a masked copy at the offset and leaves the source untouched', () => {
    for (const length of [0, 5, 31, 32, 33, 100]) {
      const source = Uint8Array.from({ length }, (_, i) => i)
      const target = new Uint8Array(length + 3)
      copyMasked(source, target, 3, MASK)
      assert.deepEqual(source, Uint8Array.from({ length }, (_, i) => i), 'source unchanged')
      assert.deepEqual(target.subarray(0, 3), new Uint8Array(3))
      assert.deepEqual(target.subarray(3), maskByteWise(source, MASK, 0))
    }
  })
})
