/**
 * Frames to messages: the payload of one data message, assembled from the
 * pieces of its frames, with its UTF-8 checked as it arrives.
 *
 * Theory of operation: most messages arrive as one piece (one frame inside
 * one read). That piece is kept as a view and delivered without a copy. As
 * soon as a second piece arrives, every piece is copied into one growing
 * buffer. Memory per message is therefore bounded by its size (at most twice
 * it while growing), however it is fragmented: a million one-byte fragments
 * cost a megabyte, not a million retained read buffers and views (the
 * "many tiny fragments" memory exhaustion that hit ws in 2026). The number
 * of fragments is not limited, so a legitimate 4 MiB message sent as 65,536
 * fragments of 64 bytes is accepted.
 *
 * Rule 1: a text piece is validated as soon as it is appended, unless it is
 * the whole message, in which case one native check at `finish` suffices.
 * Rule 2: the size limit is the caller's business: it checks declared frame
 * lengths before any payload is buffered.
 * Rule 3: a frame's announced length is only a sizing hint, trusted no
 * further than the bytes already received; memory follows data, not claims
 * (a peer announcing a 100 MiB frame and sending 32 bytes must not pin
 * 100 MiB, and an announced 2^53 - 1 must not make the allocation throw).
 */
import { Utf8Validator, isValidUtf8 } from './utf8.js'

const EMPTY = new Uint8Array(0)

export class MessageAssembler {
  /** Bytes appended so far. */
  length = 0
  private single: Uint8Array | undefined
  private buffer: Uint8Array | undefined
  private validator: Utf8Validator | undefined
  private validating = false

  /** Begins a message; `validateUtf8` for text messages that must be checked. */
  start(validateUtf8: boolean): void {
    this.length = 0
    this.single = undefined
    this.buffer = undefined
    this.validating = validateUtf8
    this.validator?.reset()
  }

  /**
   * Appends the next piece. `last` says this piece completes the message;
   * `expectedMore` is how many more bytes the current frame announced, a
   * hint for sizing the buffer. Returns false at the first invalid UTF-8.
   */
  append(piece: Uint8Array, last: boolean, expectedMore: number): boolean {
    if (piece.length === 0) return true
    // Rule 3: reserve at most as much again as has arrived.
    const hint = Math.min(expectedMore, this.length + piece.length)
    if (this.length === 0) {
      this.single = piece
      this.length = piece.length
      if (this.validating && !last) return this.validate(piece)
      return true
    }
    if (this.single !== undefined) {
      const first = this.single
      this.single = undefined
      this.reserve(first.length + piece.length, hint, 0)
      this.buffer!.set(first, 0)
    } else {
      this.reserve(this.length + piece.length, hint, this.length)
    }
    this.buffer!.set(piece, this.length)
    this.length += piece.length
    return this.validating ? this.validate(piece) : true
  }

  /** The whole message, or undefined if its text is not valid UTF-8. Resets for the next message. */
  finish(): Uint8Array | undefined {
    const data = this.single ?? (this.buffer ? this.buffer.subarray(0, this.length) : EMPTY)
    let valid = true
    if (this.validating) {
      // A lone piece may not have gone through the validator (Rule 1): check it whole.
      valid = this.single !== undefined ? isValidUtf8(data) : (this.validator?.end() ?? true)
    }
    this.single = undefined
    this.buffer = undefined
    this.length = 0
    return valid ? data : undefined
  }

  private validate(piece: Uint8Array): boolean {
    return (this.validator ??= new Utf8Validator()).write(piece)
  }

  /**
   * Makes room for `needed` bytes, keeping the first `keep`; grows only when
   * they do not fit, geometrically, with `extra` bytes of headroom. As
   * `extra` <= `needed`, the buffer stays within twice the bytes received.
   */
  private reserve(needed: number, extra: number, keep: number): void {
    const current = this.buffer
    if (current !== undefined && current.length >= needed) return
    const doubled = current === undefined ? 0 : current.length * 2
    const capacity = Math.max(needed + extra, doubled)
    const next = new Uint8Array(capacity)
    if (current !== undefined && keep > 0) next.set(current.subarray(0, keep), 0)
    this.buffer = next
  }
}
