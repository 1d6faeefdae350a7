/**
 * Frames to messages: the payload of one data message, assembled from the
 * pieces of its frames, with its UTF-8 checked as it arrives.
 *
 * Theory of operation: most messages arrive as one piece (one frame inside
 * one read). That piece is kept as a view and delivered without a copy. A
 * message in several pieces keeps its large pieces as views (a piece that is
 * most of a read buffer costs nothing to keep) and copies its small pieces
 * into coalescing buffers; at the end the pieces are copied once into the
 * message. Memory per message is therefore bounded by about twice its size,
 * however it is fragmented: a million one-byte fragments cost a megabyte, not
 * a million retained read buffers and views (the "many tiny fragments" memory
 * exhaustion that hit ws in 2026). The number of fragments is counted here and
 * limited by the connection (`maxFragments`, 16,384 by default, as in ws).
 *
 * Rule 1: a text piece is validated as soon as it is appended, unless it is
 * the whole message, in which case one native check at `finish` suffices.
 * Rule 2: the size limit is the caller's business: it checks declared frame
 * lengths before any payload is buffered.
 * Rule 3: a frame's announced length is never used to allocate; memory
 * follows data, not claims (a peer announcing a 100 MiB frame and sending 32
 * bytes must not pin 100 MiB, and an announced 2^53 - 1 must not throw).
 * Rule 4: a piece is kept as a view only if it is at least VIEW_MIN bytes and
 * at least half of the buffer it views, so views never hold more than twice
 * the bytes they carry.
 */
import { Utf8Validator, isValidUtf8 } from './utf8.js'

const EMPTY = new Uint8Array(0)
/** Rule 4. */
const VIEW_MIN = 4096
/** Coalescing buffers start small and grow up to this, then a new one starts. */
const TAIL_MAX = 64 * 1024

export class MessageAssembler {
  /** Bytes appended so far. */
  length = 0
  /** Data frames of this message so far (the connection checks `maxFragments`). */
  fragments = 0
  /** The first piece, while it is the only one (delivered without a copy). */
  private single: Uint8Array | undefined
  /** Pieces kept in order: views of large pieces, and filled coalescing buffers. */
  private pieces: Uint8Array[] | undefined
  /** The coalescing buffer being filled, and how much of it is used. */
  private tail: Uint8Array | undefined
  private tailLength = 0
  private validator: Utf8Validator | undefined
  private validating = false
  private readonly allocate: (size: number) => Uint8Array

  /** `allocate` makes buffers that need not be zeroed (Node: Buffer.allocUnsafe). */
  constructor(allocate: (size: number) => Uint8Array = (size) => new Uint8Array(size)) {
    this.allocate = allocate
  }

  /** Begins a message; `validateUtf8` for text messages that must be checked. */
  start(validateUtf8: boolean): void {
    this.fragments = 0
    this.length = 0
    this.single = undefined
    this.pieces = undefined
    this.tail = undefined
    this.tailLength = 0
    this.validating = validateUtf8
    this.validator?.reset()
  }

  /**
   * Appends the next piece. `last` says this piece completes the message.
   * Returns false at the first invalid UTF-8. (`_expectedMore`, what the frame
   * still announces, is not trusted for sizing: Rule 3.)
   */
  append(piece: Uint8Array, last: boolean, _expectedMore = 0): boolean {
    if (piece.length === 0) return true
    if (this.length === 0) {
      this.single = piece
      this.length = piece.length
      if (this.validating && !last) return this.validate(piece)
      return true
    }
    if (this.single !== undefined) {
      this.keep(this.single, this.length)
      this.single = undefined
    }
    this.length += piece.length
    this.keep(piece, this.length)
    return this.validating ? this.validate(piece) : true
  }

  /** The whole message, or undefined if its text is not valid UTF-8. Resets for the next message. */
  finish(): Uint8Array | undefined {
    let data: Uint8Array
    if (this.single !== undefined) {
      data = this.single
    } else if (this.length === 0) {
      data = EMPTY
    } else {
      this.sealTail()
      const pieces = this.pieces!
      if (pieces.length === 1) {
        data = pieces[0]!
      } else {
        data = this.allocate(this.length)
        let offset = 0
        for (const piece of pieces) {
          data.set(piece, offset)
          offset += piece.length
        }
      }
    }
    let valid = true
    if (this.validating) {
      // A lone piece may not have gone through the validator (Rule 1): check it whole.
      valid = this.single !== undefined ? isValidUtf8(data) : (this.validator?.end() ?? true)
    }
    this.single = undefined
    this.pieces = undefined
    this.tail = undefined
    this.tailLength = 0
    this.length = 0
    return valid ? data : undefined
  }

  private validate(piece: Uint8Array): boolean {
    return (this.validator ??= new Utf8Validator()).write(piece)
  }

  /**
   * Keeps a piece: a view if it is large (Rule 4), else a copy in the
   * coalescing buffer. `received` is the message's bytes including this piece.
   */
  private keep(piece: Uint8Array, received: number): void {
    if (piece.length >= VIEW_MIN && piece.length * 2 >= piece.buffer.byteLength) {
      this.sealTail()
      ;(this.pieces ??= []).push(piece)
      return
    }
    let offset = 0
    while (offset < piece.length) {
      let tail = this.tail
      if (tail === undefined || this.tailLength === tail.length) {
        this.sealTail()
        // Twice what was received so far (so buffers stay within twice the data,
        // and grow geometrically under many small pieces), at most TAIL_MAX.
        const size = Math.max(piece.length - offset, Math.min(TAIL_MAX, 2 * received))
        tail = this.tail = this.allocate(size)
        this.tailLength = 0
      }
      const take = Math.min(piece.length - offset, tail.length - this.tailLength)
      tail.set(piece.subarray(offset, offset + take), this.tailLength)
      this.tailLength += take
      offset += take
    }
  }

  /** Moves the used part of the coalescing buffer to the pieces. */
  private sealTail(): void {
    if (this.tail !== undefined && this.tailLength > 0) {
      ;(this.pieces ??= []).push(this.tail.subarray(0, this.tailLength))
    }
    this.tail = undefined
    this.tailLength = 0
  }
}
