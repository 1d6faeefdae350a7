/**
 * The part of ws's `Sender` that libraries built on ws use: `Sender.frame`
 * builds a frame once (socket.io-adapter frames each broadcast packet once
 * for all its sockets, through `WebSocket.Sender.frame`), and a socket's
 * `_sender.sendFrame(list, callback)` writes such a frame (engine.io does,
 * when `ws._sender.sendFrame` exists; ws#617 is where the idea comes from).
 *
 * Theory of operation: `frame` returns what ws returns, the header and the
 * payload as a list of Buffers, so a frame built by ws's own Sender (a
 * library that requires 'ws' itself) and one built here are interchangeable.
 * `FrameWriter.sendFrame` does not trust the frame blindly: a final, unmasked
 * data frame without RSV bits, on a server socket with nothing queued ahead of
 * it, is written as it is (the prepared-frame path of topics); any other
 * frame has its payload sent as a message of its opcode, so ordering,
 * masking, compression state and the send buffer all stay the WebSocket's.
 *
 * Rule 1: `frame` never changes `data` when `readOnly` is true (ws's meaning);
 * with `readOnly: false` and `mask: true` it masks `data` in place, as ws does.
 * Rule 2: `sendFrame` never throws for a frame it cannot write as it is; it
 * falls back to `send` (whose callback reports a closed socket).
 */
import { randomFillSync } from 'node:crypto'
import { frameHeaderSize, writeFrameHeader } from '../core/frame.js'
import { applyMask } from '../core/mask.js'

/** ws's `Sender.frame` options. */
export interface FrameOptions {
  fin?: boolean
  opcode: number
  mask?: boolean
  rsv1?: boolean
  /** Whether `data` may be changed (masked in place). Default: may not be. */
  readOnly?: boolean
  /** Fills the 4-byte masking key. */
  generateMask?: (mask: Buffer) => void
  /** Where to put the masking key (ws reuses one buffer). */
  maskBuffer?: Buffer
}

/** A ws-compatible frame builder: `Sender.frame(data, options)`. */
export class Sender {
  /**
   * Frames `data` as one WebSocket frame: `[header, payload]` (or `[frame]`
   * when a read-only payload had to be copied to be masked).
   *
   * @example
   * ```ts
   * const frame = WebSocket.Sender.frame(Buffer.from('hello'), { fin: true, opcode: 1, mask: false, readOnly: true })
   * ws._sender.sendFrame(frame)
   * ```
   */
  static frame(data: Buffer | string, options: FrameOptions): Buffer[] {
    const payload = typeof data === 'string' ? Buffer.from(data) : data
    const length = payload.length
    const first = (options.fin ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | (options.opcode & 0x0f)
    if (!options.mask) {
      const header = Buffer.allocUnsafe(frameHeaderSize(length, false))
      writeFrameHeader(header, 0, first, length, undefined)
      return [header, payload]
    }
    const mask = options.maskBuffer ?? Buffer.allocUnsafe(4)
    if (options.generateMask) options.generateMask(mask)
    else randomFillSync(mask, 0, 4)
    const headerSize = frameHeaderSize(length, true)
    // Rule 1: a read-only payload is copied (behind the header, as ws merges them); a string's bytes are ours.
    if (options.readOnly !== false && typeof data !== 'string') {
      const frame = Buffer.allocUnsafe(headerSize + length)
      writeFrameHeader(frame, 0, first, length, mask)
      payload.copy(frame, headerSize)
      applyMask(frame.subarray(headerSize), mask)
      return [frame]
    }
    const header = Buffer.allocUnsafe(headerSize)
    writeFrameHeader(header, 0, first, length, mask)
    applyMask(payload, mask)
    return [header, payload]
  }
}

/** What a WebSocket lends `FrameWriter`. */
export interface FrameWriterHost {
  /** Writes a final, unmasked data frame as it is if it can now; false if it cannot. */
  writeRawFrame(frame: Buffer, callback: ((error?: Error | null) => void) | undefined): boolean
  send(data: Buffer, options: { binary: boolean; compress: boolean; fin: boolean }, callback?: (error?: Error) => void): void
}

/** `ws._sender` as libraries use it: `sendFrame(list, callback)`. */
export class FrameWriter {
  readonly #host: FrameWriterHost

  constructor(host: FrameWriterHost) {
    this.#host = host
  }

  /** Writes a frame built by `Sender.frame` (here or in ws): see the module comment and Rule 2. */
  sendFrame(list: readonly Buffer[], callback?: (error?: Error | null) => void): void {
    const frame = list.length === 1 ? list[0]! : Buffer.concat(list as Buffer[])
    const parsed = parseFrame(frame)
    if (parsed === undefined) {
      if (callback) process.nextTick(callback, new TypeError('sendFrame() takes one whole WebSocket frame'))
      return
    }
    const { fin, rsv, opcode, masked, payload } = parsed
    if (fin && rsv === 0 && !masked && (opcode === 1 || opcode === 2) && this.#host.writeRawFrame(frame, callback)) return
    this.#host.send(payload, { binary: opcode !== 1, compress: false, fin }, callback as ((error?: Error) => void) | undefined)
  }
}

/** The parts of one whole frame; undefined if `frame` is not exactly one frame. */
function parseFrame(frame: Buffer): { fin: boolean; rsv: number; opcode: number; masked: boolean; payload: Buffer } | undefined {
  if (frame.length < 2) return undefined
  const fin = (frame[0]! & 0x80) !== 0
  const rsv = frame[0]! & 0x70
  const opcode = frame[0]! & 0x0f
  const masked = (frame[1]! & 0x80) !== 0
  let length = frame[1]! & 0x7f
  let offset = 2
  if (length === 126) {
    if (frame.length < 4) return undefined
    length = frame.readUInt16BE(2)
    offset = 4
  } else if (length === 127) {
    if (frame.length < 10) return undefined
    length = frame.readUInt32BE(2) * 0x100000000 + frame.readUInt32BE(6)
    offset = 10
  }
  if (masked) offset += 4
  if (frame.length !== offset + length) return undefined
  let payload = frame.subarray(offset)
  if (masked) {
    payload = Buffer.from(payload)
    applyMask(payload, frame.subarray(offset - 4, offset))
  }
  return { fin, rsv, opcode, masked, payload }
}
