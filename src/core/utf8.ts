/**
 * Incremental UTF-8 validation for text messages (RFC 6455 §8.1, RFC 3629).
 *
 * Theory of operation: a text message may arrive in many pieces (fragments,
 * and pieces of one frame spread over several reads), and a code point may be
 * cut anywhere. The validator keeps only the state of one unfinished code
 * point: how many continuation bytes are still owed and the range the next one
 * must fall in (Unicode Table 3-7 narrows the second byte after E0, ED, F0 and
 * F4). Each piece is checked in three steps: finish the owed code point byte
 * by byte, check the run of complete code points with the platform's
 * vectorised validator, and walk the unfinished tail byte by byte so that an
 * impossible prefix (say F4 90) fails at once rather than when the rest comes.
 *
 * Rule 1: `write` returns false at the first piece containing an invalid byte
 * ("fail fast"); once false, the validator stays failed.
 * Rule 2: `end` is true only if no code point is left unfinished.
 */
import { isWellFormedUtf8 } from './platform.js'

/** Whether `bytes` is a complete, well-formed UTF-8 sequence. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  return isWellFormedUtf8(bytes)
}

/** Number of bytes in the sequence a lead byte starts, or 0 if it cannot start one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1
  if (lead < 0xc2) return 0
  if (lead < 0xe0) return 2
  if (lead < 0xf0) return 3
  if (lead < 0xf5) return 4
  return 0
}

export class Utf8Validator {
  /** Continuation bytes still owed by the unfinished code point. */
  private owed = 0
  /** Inclusive range of the next continuation byte. */
  private lower = 0x80
  private upper = 0xbf
  private failed = false

  /** Feeds the next piece; false as soon as the text so far cannot be UTF-8. */
  write(bytes: Uint8Array): boolean {
    if (this.failed) return false
    const length = bytes.length
    let i = 0
    while (this.owed > 0 && i < length) {
      if (!this.acceptContinuation(bytes[i++]!)) return this.fail()
    }
    if (i === length) return true

    const tail = this.tailStart(bytes, i)
    if (tail > i && !isWellFormedUtf8(i === 0 && tail === length ? bytes : bytes.subarray(i, tail))) {
      return this.fail()
    }
    for (let j = tail; j < length; j++) {
      const byte = bytes[j]!
      if (this.owed > 0) {
        if (!this.acceptContinuation(byte)) return this.fail()
      } else if (!this.acceptLead(byte)) {
        return this.fail()
      }
    }
    return true
  }

  /** True if the text ended on a code point boundary (and nothing failed). */
  end(): boolean {
    return !this.failed && this.owed === 0
  }

  /** Forgets everything, ready for the next message. */
  reset(): void {
    this.owed = 0
    this.lower = 0x80
    this.upper = 0xbf
    this.failed = false
  }

  /**
   * Where the last, possibly unfinished, code point of `bytes[from..]` starts;
   * `bytes.length` if the piece ends on a boundary.
   */
  private tailStart(bytes: Uint8Array, from: number): number {
    const length = bytes.length
    let k = length - 1
    const stop = Math.max(from, length - 4)
    while (k > stop && (bytes[k]! & 0xc0) === 0x80) k--
    const needed = sequenceLength(bytes[k]!)
    // A lead byte whose sequence runs past the end is the unfinished tail;
    // anything else (complete, or invalid) is left to the bulk check.
    return needed > 1 && k + needed > length ? k : length
  }

  private acceptLead(byte: number): boolean {
    if (byte < 0x80) return true
    const needed = sequenceLength(byte)
    if (needed === 0) return false
    this.owed = needed - 1
    this.lower = byte === 0xe0 ? 0xa0 : byte === 0xf0 ? 0x90 : 0x80
    this.upper = byte === 0xed ? 0x9f : byte === 0xf4 ? 0x8f : 0xbf
    return true
  }

  private acceptContinuation(byte: number): boolean {
    if (byte < this.lower || byte > this.upper) return false
    this.owed--
    this.lower = 0x80
    this.upper = 0xbf
    return true
  }

  private fail(): false {
    this.failed = true
    return false
  }
}
