/**
 * Frames of RFC 6455 §5.2: opcodes, close codes and the wire header.
 *
 * Theory of operation: a frame is a header (FIN, RSV1-3, opcode, mask bit,
 * payload length, optional masking key) followed by the payload. This module
 * writes headers; reading them is the parser's job, because reading must be
 * resumable and writing need not be.
 *
 * Rule 1: a header is always written with the minimal length encoding
 * ("the minimal number of bytes MUST be used to encode the length", §5.2).
 * Rule 2: payloads are never copied to prepend a header when the caller can
 * write the two pieces separately (see `serializeFrameHeader`).
 */

import { copyMasked } from './mask.js'

/** Frame opcodes (§5.2, §11.8). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const
export type Opcode = (typeof Opcode)[keyof typeof Opcode]

/** Close codes, named as in the IANA "WebSocket Close Code Number Registry" (§11.7). */
export const CloseCode = {
  NormalClosure: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  NoStatusReceived: 1005,
  AbnormalClosure: 1006,
  InvalidFramePayloadData: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
  TlsHandshake: 1015,
} as const
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/** Control frames have opcodes whose most significant bit is 1 (§5.5). */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0
}

/** Opcodes defined by RFC 6455; everything else is reserved (§5.2). */
export function isKnownOpcode(opcode: number): boolean {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa)
}

/** A whole frame, as tests and the property checks build them. */
export interface Frame {
  fin: boolean
  rsv1?: boolean
  rsv2?: boolean
  rsv3?: boolean
  opcode: number
  payload: Uint8Array
  /** Four bytes; present when the frame is masked. */
  mask?: Uint8Array
}

/** Largest control-frame payload (§5.5: "125 bytes or less"). */
export const MAX_CONTROL_PAYLOAD = 125

/** Largest payload length JavaScript numbers represent exactly. */
export const MAX_SAFE_PAYLOAD = Number.MAX_SAFE_INTEGER

/** Bytes a header needs for a payload of `length` bytes, with or without a mask. */
export function frameHeaderSize(length: number, masked: boolean): number {
  const lengthBytes = length < 126 ? 0 : length <= 0xffff ? 2 : 8
  return 2 + lengthBytes + (masked ? 4 : 0)
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset after
 * it. The first byte is `firstByte` (FIN, RSV bits and opcode already combined).
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  firstByte: number,
  length: number,
  mask: Uint8Array | undefined,
): number {
  target[offset++] = firstByte
  const maskBit = mask ? 0x80 : 0
  if (length < 126) {
    target[offset++] = maskBit | length
  } else if (length <= 0xffff) {
    target[offset++] = maskBit | 126
    target[offset++] = length >>> 8
    target[offset++] = length & 0xff
  } else {
    target[offset++] = maskBit | 127
    // §5.2: "the most significant bit MUST be 0"; lengths stay below 2^53.
    const high = Math.floor(length / 0x100000000)
    const low = length >>> 0
    target[offset++] = high >>> 24
    target[offset++] = (high >>> 16) & 0xff
    target[offset++] = (high >>> 8) & 0xff
    target[offset++] = high & 0xff
    target[offset++] = low >>> 24
    target[offset++] = (low >>> 16) & 0xff
    target[offset++] = (low >>> 8) & 0xff
    target[offset++] = low & 0xff
  }
  if (mask) {
    target[offset++] = mask[0]!
    target[offset++] = mask[1]!
    target[offset++] = mask[2]!
    target[offset++] = mask[3]!
  }
  return offset
}

/** The first header byte for a frame. */
export function firstHeaderByte(fin: boolean, opcode: number, rsv1 = false, rsv2 = false, rsv3 = false): number {
  return (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (rsv2 ? 0x20 : 0) | (rsv3 ? 0x10 : 0) | opcode
}

/**
 * Serializes a whole frame into one new buffer, masking the payload if the
 * frame carries a mask. Used by tests and for small frames; the send path
 * writes header and payload separately when the payload is large.
 */
export function serializeFrame(frame: Frame): Uint8Array {
  const { payload, mask } = frame
  const headerSize = frameHeaderSize(payload.length, mask !== undefined)
  const out = new Uint8Array(headerSize + payload.length)
  const first = firstHeaderByte(frame.fin, frame.opcode, frame.rsv1, frame.rsv2, frame.rsv3)
  writeFrameHeader(out, 0, first, payload.length, mask)
  if (mask) copyMasked(payload, out, headerSize, mask)
  else out.set(payload, headerSize)
  return out
}
