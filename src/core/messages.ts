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
 * (so a message up to 1 MiB is written once, where it is delivered). Beyond
 * that, the buffer grows by doubling with the bytes that actually arrived.
 * Rule 4: past RESERVE_FROM, the message moves (once) into a resizable
 * ArrayBuffer reserved up to its final size or the size limit: address space
 * only; memory is committed in steps of at most GROW_STEP as bytes arrive, so
 * a large message never holds a second copy of itself while it grows. At the
 * end it is copied into a plain buffer of its exact size back to front, and
 * the reservation shrinks behind each chunk copied, so the two together never
 * hold more than the message and one chunk. A message abandoned midway (the
 * connection failed) gives its memory back at once, without waiting for a
 * garbage collection: a resized ArrayBuffer decommits its pages. (The message
 * is not delivered over the reservation itself: some Web APIs, fetch's
 * `Response` among them, refuse resizable buffers.)
 * Rule 5: `held` is what the receive budget counts: a buffer up to
 * RESERVE_FROM counts whole (it may sit in memory the allocator already
 * committed), a reservation the bytes written into it (pages committed ahead
 * of the data are not touched, so not resident).
 */
import { Utf8Validator, isValidUtf8 } from './utf8.js'

const EMPTY = new Uint8Array(0)
/** Rule 3: the largest buffer sized from a claim, and where growth turns into one reservation. */
export const RESERVE_FROM = 1024 * 1024
/** The smallest buffer a multi-piece message starts with. */
const MIN_BUFFER = 64
/** Rule 4: a reservation commits at most this much ahead of the bytes received, and the final copy moves this much at a time. */
const GROW_STEP = 1024 * 1024
/** The largest reservation made; larger limits grow by doubling instead. */
const MAX_RESERVATION = 2 ** 32
/**
 * Address space all reservations of the process may take at once. Reserved
 * space costs no memory, but a process whose address space is limited
 * (`ulimit -v`) dies when V8 cannot map its own heap: found by an outsider,
 * 80 connections claiming 100 MiB frames reserved 8 GiB. Past this, messages
 * grow by doubling instead (the receive budget still bounds them).
 */
export const MAX_RESERVED_TOTAL = 2 ** 30
let reservedTotal = 0
/** A reservation dropped without `release` (an assembler collected mid-message) still gives its space back. */
const reservations = new FinalizationRegistry<number>((size) => {
  reservedTotal -= size
})

/** Address space the process's reservations take now (tests). */
export function reservedAddressSpace(): number {
  return reservedTotal
}

/** An ArrayBuffer that can grow and shrink in place (ES2024; Node 20 has it). */
interface ResizableArrayBuffer extends ArrayBuffer {
  resize(length: number): void
  readonly maxByteLength: number
}
const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ResizableArrayBuffer
const resizableSupported = typeof (ArrayBuffer.prototype as Partial<ResizableArrayBuffer>).resize === 'function'

export type Allocate = (size: number) => Uint8Array

export class MessageAssembler {
  /** Bytes appended so far. */
  length = 0
  /** Data frames of this message so far (the connection checks `maxFragments`). */
  fragments = 0
  /** The first piece, while it is the only one and completes the message (delivered without a copy). */
  private single: Uint8Array | undefined
  /** The buffer the message is copied into (up to RESERVE_FROM, or past it without a reservation). */
  private buffer: Uint8Array | undefined
  /** Rule 4: the reservation a large message is copied into, and a view that tracks its length. */
  private reserved: ResizableArrayBuffer | undefined
  private reservedView: Uint8Array | undefined
  private validator: Utf8Validator | undefined
  private validating = false
  private readonly allocate: Allocate
  /** The message size limit (0: none): how far a reservation may grow when the final size is unknown. */
  private readonly limit: number

  /**
   * `allocate` makes buffers that need not be zeroed (Node: Buffer.allocUnsafe);
   * `limit` is the largest message the connection accepts (0: none).
   */
  constructor(allocate: Allocate = (size) => new Uint8Array(size), limit = 0) {
    this.allocate = allocate
    this.limit = limit
  }

  /** Begins a message; `validateUtf8` for text messages that must be checked. */
  start(validateUtf8: boolean): void {
    this.release()
    this.fragments = 0
    this.validating = validateUtf8
    this.validator?.reset()
  }

  /** Bytes held for the message in progress, as the receive budget counts them (Rule 5). */
  get held(): number {
    if (this.reserved !== undefined) return this.length
    const buffer = this.buffer
    if (buffer === undefined) return 0
    return buffer.length <= RESERVE_FROM ? buffer.length : this.length
  }

  /** Bytes allocated or committed for the message in progress (tests and fuzz oracles). */
  get capacity(): number {
    return this.reserved?.byteLength ?? this.buffer?.length ?? 0
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
    const finalSize = finalFrame ? needed + frameRemaining : undefined
    let target: Uint8Array
    if (this.reserved !== undefined) {
      if (this.reserved.byteLength < needed) this.commit(needed)
      target = this.reservedView!
    } else {
      const buffer = this.buffer
      if (buffer === undefined || buffer.length < needed) this.grow(needed, finalSize)
      target = this.reservedView ?? this.buffer!
    }
    target.set(piece, this.length)
    this.length = needed
    return this.validating ? this.validate(piece) : true
  }

  /** The whole message, or undefined if its text is not valid UTF-8. Resets for the next message. */
  finish(): Uint8Array | undefined {
    let data: Uint8Array
    const single = this.single
    if (single !== undefined) data = single
    else if (this.reserved !== undefined) data = this.unreserve()
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

  /** Drops the message in progress and everything it holds (the connection failed); a reservation's memory goes at once. */
  release(): void {
    this.single = undefined
    this.buffer = undefined
    if (this.reserved !== undefined) {
      if (this.reserved.byteLength > 0) this.reserved.resize(0)
      reservedTotal -= this.reserved.maxByteLength
      reservations.unregister(this.reserved)
      this.reserved = undefined
      this.reservedView = undefined
    }
    this.length = 0
  }

  private validate(piece: Uint8Array): boolean {
    return (this.validator ??= new Utf8Validator()).write(piece)
  }

  /** Replaces the buffer with one that holds at least `needed` bytes (Rules 3 and 4), keeping what it has. */
  private grow(needed: number, finalSize: number | undefined): void {
    let capacity: number
    if (finalSize !== undefined && finalSize <= RESERVE_FROM) capacity = finalSize
    else if (needed <= RESERVE_FROM) capacity = Math.min(RESERVE_FROM, Math.max(MIN_BUFFER, 2 * needed))
    else {
      const ceiling = finalSize ?? this.limit
      if (resizableSupported && ceiling > 0 && ceiling <= MAX_RESERVATION && ceiling >= needed && this.reserve(ceiling, needed)) return
      capacity = 2 * needed
    }
    const next = this.allocate(capacity)
    const old = this.buffer
    if (old !== undefined && this.length > 0) next.set(old.subarray(0, this.length), 0)
    this.buffer = next
  }

  /** Rule 4: moves the message into a reservation of up to `ceiling` bytes; false if none could be made. */
  private reserve(ceiling: number, needed: number): boolean {
    if (reservedTotal + ceiling > MAX_RESERVED_TOTAL) return false
    let reserved: ResizableArrayBuffer
    try {
      reserved = new Resizable(0, { maxByteLength: ceiling })
      reserved.resize(Math.min(ceiling, needed + GROW_STEP))
    } catch {
      // No address space for it: grow with the data instead.
      return false
    }
    const view = new Uint8Array(reserved)
    if (this.buffer !== undefined && this.length > 0) view.set(this.buffer.subarray(0, this.length), 0)
    this.buffer = undefined
    this.reserved = reserved
    this.reservedView = view
    reservedTotal += ceiling
    reservations.register(reserved, ceiling, reserved)
    return true
  }

  /** Commits more of the reservation: at least `needed`, at most GROW_STEP ahead (Rule 4). */
  private commit(needed: number): void {
    const reserved = this.reserved!
    reserved.resize(Math.min(reserved.maxByteLength, Math.max(needed, reserved.byteLength + GROW_STEP)))
  }

  /** Rule 4: the message out of its reservation into a plain buffer, back to front, shrinking the reservation behind. */
  private unreserve(): Uint8Array {
    const reserved = this.reserved!
    const view = this.reservedView!
    const length = this.length
    if (reserved.byteLength > length) reserved.resize(length)
    const data = this.allocate(length)
    for (let end = length; end > 0; ) {
      const start = Math.max(0, end - GROW_STEP)
      data.set(view.subarray(start, end), start)
      reserved.resize(start)
      end = start
    }
    reservedTotal -= reserved.maxByteLength
    reservations.unregister(reserved)
    this.reserved = undefined
    this.reservedView = undefined
    return data
  }
}
