import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { Utf8Validator, isValidUtf8 } from '../../src/core/utf8.js'
import { concat, hex, split, utf8 } from '../helpers/bytes.js'

/** Runs the validator over `pieces`; returns the index of the first piece `write` refused, or -1, and `end()`. */
function run(pieces: readonly Uint8Array[]): { failedAt: number; end: boolean } {
  const validator = new Utf8Validator()
  let failedAt = -1
  pieces.forEach((piece, index) => {
    if (!validator.write(piece) && failedAt === -1) failedAt = index
  })
  return { failedAt, end: validator.end() }
}

/**
 * Reference for "fail fast": `bytes` can still become UTF-8 if some 0-3 more
 * continuation bytes complete it. 80, 90 and A0 between them satisfy every
 * narrowed second-byte range of Unicode Table 3-7 (E0: A0-BF, ED: 80-9F,
 * F0: 90-BF, F4: 80-8F).
 */
function isValidPrefix(bytes: Uint8Array): boolean {
  if (isUtf8(bytes)) return true
  const candidates = [0x80, 0x90, 0xa0]
  let suffixes: number[][] = [[]]
  for (let extra = 1; extra <= 3; extra++) {
    suffixes = suffixes.flatMap((suffix) => candidates.map((c) => [...suffix, c]))
    for (const suffix of suffixes) if (isUtf8(concat([bytes, Uint8Array.from(suffix)]))) return true
  }
  return false
}

/** Byte arrays likely to contain interesting UTF-8: random bytes, encoded text, and encoded text with a corrupted byte. */
const utf8ish = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }).map((s) => utf8(s)),
  fc
    .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), fc.nat(), fc.integer({ min: 0x80, max: 0xff }))
    .map(([s, at, byte]) => {
      const bytes = utf8(s)
      bytes[at % bytes.length] = byte
      return bytes
    }),
)

const INVALID: Array<[string, Uint8Array]> = [
  ['overlong 2-byte NUL C0 80', hex`c0 80`],
  ['overlong 2-byte C1 BF', hex`c1 bf`],
  ['overlong 3-byte E0 80 80', hex`e0 80 80`],
  ['overlong 3-byte E0 9F BF', hex`e0 9f bf`],
  ['overlong 4-byte F0 8F BF BF', hex`f0 8f bf bf`],
  ['surrogate U+D800 ED A0 80', hex`ed a0 80`],
  ['surrogate U+DFFF ED BF BF', hex`ed bf bf`],
  ['above U+10FFFF F4 90 80 80', hex`f4 90 80 80`],
  ['lead byte F5', hex`f5 80 80 80`],
  ['lead byte FF', hex`ff`],
  ['stray continuation 80', hex`80`],
  ['stray continuation after a character', hex`41 c3 a9 bf`],
  ['lead byte interrupted by ASCII', hex`e2 82 41`],
]

describe('UTF-8 validation (RFC 6455 §8.1, RFC 3629)', () => {
  it('isValidUtf8 accepts text of every sequence length and the empty string', () => {
    assert.equal(isValidUtf8(new Uint8Array(0)), true)
    assert.equal(isValidUtf8(utf8('a\u00e9\u20ac\u{1f600}\u{10ffff}')), true)
    assert.equal(isValidUtf8(hex`ed 9f bf`), true) // U+D7FF, just below the surrogates
    assert.equal(isValidUtf8(hex`ee 80 80`), true) // U+E000, just above
  })

  for (const [name, bytes] of INVALID) {
    it(`refuses ${name}, both whole and in the piece that makes it impossible`, () => {
      assert.equal(isValidUtf8(bytes), false)
      assert.equal(run([bytes]).failedAt, 0)
      // Fed byte by byte, the validator refuses the first byte after which no completion exists.
      const firstImpossible = Array.from({ length: bytes.length }, (_, i) => i).find((i) => !isValidPrefix(bytes.subarray(0, i + 1)))
      assert.notEqual(firstImpossible, undefined)
      assert.equal(run(Array.from(bytes, (b) => Uint8Array.of(b))).failedAt, firstImpossible)
    })
  }

  it('fails at once on impossible prefixes, before the rest of the sequence arrives', () => {
    for (const prefix of [hex`f4 90`, hex`e0 80`, hex`ed a0`, hex`f0 80`, hex`c0`, hex`f5`]) {
      const validator = new Utf8Validator()
      assert.equal(validator.write(prefix), false, Buffer.from(prefix).toString('hex'))
    }
    const validator = new Utf8Validator()
    assert.equal(validator.write(hex`41 42 f4`), true)
    assert.equal(validator.write(hex`90`), false)
  })

  it('refuses text truncated at the end only at end()', () => {
    for (const truncated of [hex`c3`, hex`e2 82`, hex`f0 9f 98`, hex`41 f4 8f bf`]) {
      const validator = new Utf8Validator()
      assert.equal(validator.write(truncated), true)
      assert.equal(validator.end(), false)
    }
  })

  it('accepts every character of every length split at every cut', () => {
    const text = 'a\u00e9\u0800\u20ac\ud7ff\ue000\uffff\u{10000}\u{1f600}\u{10ffff}'
    const bytes = utf8(text)
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b++) {
        const pieces = [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)]
        assert.deepEqual(run(pieces), { failedAt: -1, end: true }, `cuts at ${a}, ${b}`)
      }
    }
  })

  it('stays failed once it failed, and reset() forgets the failure and any unfinished character', () => {
    const validator = new Utf8Validator()
    assert.equal(validator.write(hex`ff`), false)
    assert.equal(validator.write(utf8('fine')), false)
    assert.equal(validator.end(), false)
    validator.reset()
    assert.equal(validator.write(utf8('fine')), true)
    assert.equal(validator.write(hex`e2 82`), true)
    validator.reset()
    assert.equal(validator.write(utf8('a')), true, 'no continuation byte is owed after reset')
    assert.equal(validator.end(), true)
  })

  it('property: write over random pieces + end() equals isUtf8 of the whole', () => {
    fc.assert(
      fc.property(utf8ish, fc.array(fc.nat(40), { maxLength: 6 }), (bytes, cuts) => {
        const { failedAt, end } = run(split(bytes, cuts))
        assert.equal(failedAt === -1 && end, isUtf8(bytes))
      }),
      { numRuns: 1000 },
    )
  })

  it('property: write refuses exactly the first piece after which the text can no longer be UTF-8 (fail fast)', () => {
    fc.assert(
      fc.property(utf8ish, fc.array(fc.nat(40), { maxLength: 6 }), (bytes, cuts) => {
        const pieces = split(bytes, cuts)
        let expected = -1
        let end = 0
        for (let i = 0; i < pieces.length && expected === -1; i++) {
          end += pieces[i]!.length
          if (!isValidPrefix(bytes.subarray(0, end))) expected = i
        }
        assert.equal(run(pieces).failedAt, expected)
      }),
      { numRuns: 500 },
    )
  })
})
