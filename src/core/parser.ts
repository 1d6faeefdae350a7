/**
 * A resumable frame parser (RFC 6455 §5.2).
 *
 * Theory of operation: bytes arrive in pieces of any size. The parser is in
 * one of two states: reading a header (2 to 14 bytes) or streaming a payload.
 * A header that is split across pieces is gathered in a 14-byte spill buffer;
 * a header that lies whole in the current piece is read in place. Payload
 * bytes are never gathered here: each piece of payload is unmasked in place
 * and handed to the sink at once, so the sink can validate and bound memory
 * as data arrives (a text frame that turns invalid fails at that byte, not
 * when the frame ends).
 *
 * Rule 1: the parser owns the bytes it is fed; it unmasks them in place and
 * hands out views, never copies.
 * Rule 2: the sink may call `stop()` from any callback; the parser then keeps
 * the unread rest and continues from exactly there on `resume()`.
 * Rule 3: the parser checks only what the header alone can tell (the 64-bit
 * length's top bit); every rule that depends on role, extensions or message
 * state belongs to the sink. A length it refuses is reported with the rest
 * of the header, so the sink can put the header's other problems first: a
 * control frame announcing 2^60 bytes is malformed before it is too big.
 */
import { MAX_SAFE_PAYLOAD } from './frame.js'
import { applyMaskKey } from './mask.js'
import type { ProtocolErrorCode } from './errors.js'

/** The header of the frame being parsed. The parser reuses one instance. */
export interface FrameHeader {
  fin: boolean
  rsv1: boolean
  rsv2: boolean
  rsv3: boolean
  opcode: number
  masked: boolean
  /** Payload length in bytes. */
  length: number
}

/** Receives what the parser reads, in order. */
export interface FrameSink {
  /** A whole header was read; `header` is valid only during this call. */
  frameStarted(header: FrameHeader): void
  /** The next piece of the current payload, already unmasked. */
  payloadReceived(piece: Uint8Array): void
  /** The current frame's payload is complete. */
  frameEnded(): void
  /**
   * The header's length is unacceptable (Rule 3). `header` holds everything
   * else it says (FIN, RSV, opcode, mask bit) and the announced length,
   * inexact above 2^53; valid only during this call.
   */
  headerInvalid(code: ProtocolErrorCode, message: string, header: FrameHeader): void
}

type ParserState = 'header' | 'payload'

/** Size of the whole header given its second byte. */
function headerSize(secondByte: number): number {
  const length7 = secondByte & 0x7f
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (secondByte & 0x80 ? 4 : 0)
}

/**
 * The payload length a header announces, given the offset of its second
 * byte: the 7-bit length, or the 16- or 64-bit one after it (§5.2). A 64-bit
 * length past 2^53 - 1 is not exact; callers refuse those before using it.
 */
function payloadLengthAt(bytes: Uint8Array, at: number): number {
  const length7 = bytes[at]! & 0x7f
  if (length7 === 126) return (bytes[at + 1]! << 8) | bytes[at + 2]!
  if (length7 !== 127) return length7
  const high = ((bytes[at + 1]! << 24) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 8) | bytes[at + 4]!) >>> 0
  const low = ((bytes[at + 5]! << 24) | (bytes[at + 6]! << 16) | (bytes[at + 7]! << 8) | bytes[at + 8]!) >>> 0
  return high * 0x100000000 + low
}

/**
 * The parser is its own FrameHeader: the current frame's header lives on it,
 * as its first two bytes and its length, so a connection holds one object
 * less and no field per header bit.
 */
export class FrameParser implements FrameHeader {
  /** The current frame's first header byte (FIN, RSV1-3, opcode) and second (mask bit). */
  private first = 0
  private second = 0
  length = 0
  get fin(): boolean {
    return (this.first & 0x80) !== 0
  }
  get rsv1(): boolean {
    return (this.first & 0x40) !== 0
  }
  get rsv2(): boolean {
    return (this.first & 0x20) !== 0
  }
  get rsv3(): boolean {
    return (this.first & 0x10) !== 0
  }
  get opcode(): number {
    return this.first & 0x0f
  }
  get masked(): boolean {
    return (this.second & 0x80) !== 0
  }
  /** Payload bytes of the current frame still to come. */
  get payloadRemaining(): number {
    return this.remaining
  }
  private state: ParserState = 'header'
  /** The current frame's masking key, packed (mask.ts). */
  private maskKey = 0
  /** Payload bytes of the current frame still to come. */
  private remaining = 0
  /** Offset of the next payload byte within the payload, for the mask phase. */
  private payloadOffset = 0
  private spill: Uint8Array | undefined
  private spillLength = 0
  private stopped = false
  /** Input that arrived, or was left unread, while stopped. */
  private pending: Uint8Array[] | undefined
  private pendingLength = 0

  private readonly sink: FrameSink

  constructor(sink: FrameSink) {
    this.sink = sink
  }

  /** Feeds the next bytes. The parser may unmask them in place. */
  feed(chunk: Uint8Array): void {
    if (this.stopped) {
      if (chunk.length > 0) {
        ;(this.pending ??= []).push(chunk)
        this.pendingLength += chunk.length
      }
      return
    }
    this.consume(chunk)
  }

  /** Stops at the current position; later input is kept until `resume`. */
  stop(): void {
    this.stopped = true
  }

  /** Continues with the input kept while stopped. */
  resume(): void {
    this.stopped = false
    if (this.state === 'payload' && this.remaining === 0) {
      // Stopped between a zero-length frame's start and its end.
      this.state = 'header'
      this.sink.frameEnded()
    }
    const pending = this.pending
    while (pending !== undefined && pending.length > 0 && !this.stopped) {
      const chunk = pending.shift()!
      this.pendingLength -= chunk.length
      this.consume(chunk)
    }
  }

  /** Whether the parser is between frames (no partial header or payload). */
  get atFrameBoundary(): boolean {
    return this.state === 'header' && this.spillLength === 0
  }

  /**
   * While the parser is between frames and not stopped: the size (header and
   * payload) of the frame whose header starts at `bytes[start]`, if that
   * header ends before `end`; else 0. Reads, keeps nothing.
   */
  frameSizeAt(bytes: Uint8Array, start: number, end: number): number {
    if (this.state !== 'header' || this.spillLength !== 0 || this.stopped || end - start < 2) return 0
    const size = headerSize(bytes[start + 1]!)
    if (end - start < size) return 0
    const length = payloadLengthAt(bytes, start + 1)
    // Lengths readHeader refuses are left to it.
    return length > MAX_SAFE_PAYLOAD ? 0 : size + length
  }

  /** Payload bytes of the current frame still to come, while the parser reads a payload and is not stopped; else 0. */
  get payloadAhead(): number {
    return this.state === 'payload' && !this.stopped ? this.remaining : 0
  }

  /** Bytes fed but not yet parsed because the parser is stopped. */
  get pendingBytes(): number {
    return this.pendingLength
  }

  /** Forgets input kept while stopped (no more will be parsed). */
  discardPending(): void {
    this.pending = undefined
    this.pendingLength = 0
  }

  private consume(chunk: Uint8Array): void {
    const length = chunk.length
    let position = 0
    while (position < length) {
      if (this.state === 'header') {
        position = this.consumeHeader(chunk, position)
        // consumeHeader moves the state to 'payload' once the header is whole.
        if ((this.state as ParserState) === 'payload' && !this.stopped) {
          this.sink.frameStarted(this)
          if (this.remaining === 0 && !this.stopped) {
            this.state = 'header'
            this.sink.frameEnded()
          }
        }
      } else {
        const take = Math.min(this.remaining, length - position)
        const piece = chunk.subarray(position, position + take)
        if (this.masked) applyMaskKey(piece, this.maskKey, this.payloadOffset)
        position += take
        this.payloadOffset += take
        this.remaining -= take
        this.sink.payloadReceived(piece)
        if (this.remaining === 0 && !this.stopped) {
          this.state = 'header'
          this.sink.frameEnded()
        }
      }
      if (this.stopped) {
        if (position < length) {
          ;(this.pending ??= []).unshift(chunk.subarray(position))
          this.pendingLength += length - position
        }
        return
      }
    }
  }

  /** Reads header bytes from `chunk` at `position`; returns the new position. */
  private consumeHeader(chunk: Uint8Array, position: number): number {
    const available = chunk.length - position
    if (this.spillLength === 0 && available >= 2) {
      const size = headerSize(chunk[position + 1]!)
      if (available >= size) {
        this.readHeader(chunk, position)
        return position + size
      }
    }
    // Slow path: the header is split across pieces; gather it.
    const spill = (this.spill ??= new Uint8Array(14))
    if (this.spillLength < 2) {
      const take = Math.min(2 - this.spillLength, available)
      spill.set(chunk.subarray(position, position + take), this.spillLength)
      this.spillLength += take
      position += take
      if (this.spillLength < 2) return position
    }
    const size = headerSize(spill[1]!)
    const take = Math.min(size - this.spillLength, chunk.length - position)
    spill.set(chunk.subarray(position, position + take), this.spillLength)
    this.spillLength += take
    position += take
    if (this.spillLength === size) {
      this.spillLength = 0
      this.readHeader(spill, 0)
    }
    return position
  }

  private readHeader(bytes: Uint8Array, at: number): void {
    const first = bytes[at]!
    const second = bytes[at + 1]!
    this.first = first
    this.second = second
    const length = payloadLengthAt(bytes, at + 1)
    const length7 = second & 0x7f
    const offset = at + 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0)
    // §5.2: "the most significant bit MUST be 0" (the 64-bit length's first byte).
    if (length7 === 127 && bytes[at + 2]! >= 0x80) {
      this.length = length
      this.stop()
      this.sink.headerInvalid(
        'WS_ERR_INVALID_PAYLOAD_LENGTH',
        'Invalid WebSocket frame: the most significant bit of a 64-bit payload length must be 0',
        this,
      )
      return
    }
    if (length > MAX_SAFE_PAYLOAD) {
      this.length = length
      this.stop()
      this.sink.headerInvalid('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'Unsupported WebSocket frame: payload length > 2^53 - 1', this)
      return
    }
    if (this.masked) {
      this.maskKey = (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) | 0
    }
    this.length = length
    this.remaining = length
    this.payloadOffset = 0
    this.state = 'payload'
  }
}
