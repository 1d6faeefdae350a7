/**
 * Frames to messages: the payload of one data message, assembled from the
 * pieces of its frames, with its UTF-8 checked as it arrives.
 *
 * Theory of operation: most messages arrive as one piece (one frame inside
 * one read). That piece is kept as a view and delivered without a copy. Any
 * other message is copied, piece by piece as it arrives, into one buffer of
 * its own that becomes the delivered message: a message costs its size once,
 * plus the read being copied, never twice (no list of pieces joined at the
 * end) and never a retained read buffer per fragment (the "many tiny
 * fragments" memory exhaustion that hit ws in 2026: a million one-byte
 * fragments cost a megabyte, not a million read buffers).
 *
 * Rule 1: a text piece is validated as soon as it is appended, unless it is
 * the whole message, in which case one native check at `finish` suffices.
 * Rule 2: the size limit is the caller's business: it checks declared frame
 * lengths before any payload is buffered.
 * Rule 3: a length a peer announces is trusted for sizing only up to
 * RESERVE_FROM (1 MiB): when the current frame is the message's last and the
 * whole message would fit, its buffer is allocated at its exact final size
 * (so a 1 MiB message is written once, where it is delivered). Beyond that,
 * the buffer grows by doubling with the bytes that actually arrived, until
 * the message passes RESERVE_FROM; then one buffer is reserved at the final
 * size if it is known, else at the message size limit, and the message is
 * moved there once. A reservation is address space: the allocator given as
 * `reserve` (Node: `Buffer.allocUnsafeSlow`, which the C allocator maps
 * lazily) commits memory only as bytes are written, so memory follows data,
 * not claims. A peer announcing 100 MiB and sending 32 bytes holds 64 bytes.
 * Rule 4: `held` is what the receive budget counts: a buffer up to
 * RESERVE_FROM counts whole (it may sit in memory the allocator already
 * committed), a reservation counts the bytes written into it.
 */
import { Utf8Validator, isValidUtf8 } from './utf8.js'

const EMPTY = new Uint8Array(0)
/** Rule 3: the largest buffer sized from a claim, and where growth turns into one reservation. */
export const RESERVE_FROM = 1024 * 1024
/** The smallest buffer a multi-piece message starts with. */
const MIN_BUFFER = 64

export type Allocate = (size: number) => Uint8Array

export class MessageAssembler {
  /** Bytes appended so far. */
  length = 0
  /** Data frames of this message so far (the connection checks `maxFragments`). */
  fragments = 0
  /** The first piece, while it is the only one and completes the message (delivered without a copy). */
  private single: Uint8Array | undefined
  /** The buffer the message is copied into; its first `length` bytes are the message so far. */
  private buffer: Uint8Array | undefined
  private validator: Utf8Validator | undefined
  private validating = false
  private readonly allocate: Allocate
  private readonly reserve: Allocate
  /** The message size limit (0: none), the size of a reservation when the final size is unknown. */
  private readonly limit: number

  /**
   * `allocate` makes buffers that need not be zeroed (Node: Buffer.allocUnsafe);
   * `reserve` makes large ones whose memory is committed as it is written
   * (Rule 3); `limit` is the largest message the connection accepts (0: none).
   */
  constructor(allocate: Allocate = (size) => new Uint8Array(size), limit = 0, reserve: Allocate = allocate) {
    this.allocate = allocate
    this.reserve = reserve
    this.limit = limit
  }

  /** Begins a message; `validateUtf8` for text messages that must be checked. */
  start(validateUtf8: boolean): void {
    this.fragments = 0
    this.length = 0
    this.single = undefined
    this.buffer = undefined
    this.validating = validateUtf8
    this.validator?.reset()
  }

  /** Bytes held for the message in progress, as the receive budget counts them (Rule 4). */
  get held(): number {
    const buffer = this.buffer
    if (buffer === undefined) return 0
    return buffer.length <= RESERVE_FROM ? buffer.length : this.length
  }

  /**
   * Appends the next piece. `last` says this piece completes the message.
   * `frameRemaining` is what the current frame still announces and
   * `finalFrame` whether that frame is the message's last (then the final
   * size is known: Rule 3). Returns false at the first invalid UTF-8.
   */
  append(piece: Uint8Array, last: boolean, frameRemaining = 0, finalFrame = false): boolean {
    const size = piece.length
    if (size === 0) return true
    if (this.length === 0 && last) {
      this.single = piece
      this.length = size
      return true
    }
    const needed = this.length + size
    const buffer = this.buffer
    if (buffer === undefined || buffer.length < needed) {
      this.grow(needed, finalFrame ? needed + frameRemaining : undefined)
    }
    this.buffer!.set(piece, this.length)
    this.length = needed
    return this.validating ? this.validate(piece) : true
  }

  /** The whole message, or undefined if its text is not valid UTF-8. Resets for the next message. */
  finish(): Uint8Array | undefined {
    let data: Uint8Array
    const single = this.single
    if (single !== undefined) data = single
    else if (this.buffer !== undefined) data = this.length === this.buffer.length ? this.buffer : this.buffer.subarray(0, this.length)
    else data = EMPTY
    let valid = true
    if (this.validating) {
      // A lone piece has not gone through the validator (Rule 1): check it whole.
      valid = single !== undefined ? isValidUtf8(data) : (this.validator?.end() ?? true)
    }
    this.release()
    return valid ? data : undefined
  }

  /** Drops the message in progress and everything it holds (the connection failed). */
  release(): void {
    this.single = undefined
    this.buffer = undefined
    this.length = 0
  }

  private validate(piece: Uint8Array): boolean {
    return (this.validator ??= new Utf8Validator()).write(piece)
  }

  /** Replaces the buffer with one that holds at least `needed` bytes (Rule 3), keeping what it has. */
  private grow(needed: number, finalSize: number | undefined): void {
    let capacity: number
    if (finalSize !== undefined && finalSize <= RESERVE_FROM) capacity = finalSize
    else if (needed <= RESERVE_FROM) capacity = Math.min(RESERVE_FROM, Math.max(MIN_BUFFER, 2 * needed))
    else if (finalSize !== undefined) capacity = finalSize
    else if (this.limit > 0 && this.limit >= needed) capacity = this.limit
    else capacity = 2 * needed
    let next: Uint8Array
    if (capacity > RESERVE_FROM) {
      try {
        next = this.reserve(capacity)
      } catch {
        // No address space for the reservation (a huge limit): grow with the data instead.
        next = this.allocate(2 * needed)
      }
    } else {
      next = this.allocate(capacity)
    }
    const old = this.buffer
    if (old !== undefined && this.length > 0) next.set(old.subarray(0, this.length), 0)
    this.buffer = next
  }
}
