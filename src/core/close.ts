/**
 * Close frame payloads (RFC 6455 §5.5.1, §7.4).
 *
 * A close payload is empty, or a 2-byte big-endian status code followed by a
 * UTF-8 reason; the whole stays within a control frame's 125 bytes, so a
 * reason has at most 123 bytes.
 *
 * Rule 1: codes a peer may put on the wire are 1000-1003, 1007-1014 (the
 * registered ones minus those §7.4.1 reserves for local use: 1004, 1005, 1006,
 * 1015) and 3000-4999 (libraries, frameworks, applications). Everything else
 * received is a protocol error (1002).
 * Rule 2: an empty payload means "no status code" and is reported as 1005.
 */
import { CloseCode } from './frame.js'
import { isValidUtf8 } from './utf8.js'

/** A close frame's content. `code` is 1005 when the frame had no payload. */
export interface Close {
  code: number
  reason: Uint8Array
}

/** Longest reason that fits in a control frame next to its code. */
export const MAX_CLOSE_REASON = 123

const EMPTY = new Uint8Array(0)

/** Whether a peer may send `code` in a close frame (§7.4.1, §7.4.2). */
export function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  )
}

/** Why a close payload was refused: the close code to fail with, and a short reason. */
export interface CloseParseFailure {
  closeCode: typeof CloseCode.ProtocolError | typeof CloseCode.InvalidFramePayloadData
  problem: 'length' | 'code' | 'utf8'
}

/** Parses a received close payload, or says why it is invalid. */
export function parseClose(payload: Uint8Array, skipUtf8Validation = false): Close | CloseParseFailure {
  if (payload.length === 0) return { code: CloseCode.NoStatusReceived, reason: EMPTY }
  // §5.5.1: "the first two bytes of the body MUST be a 2-byte unsigned integer".
  if (payload.length === 1) return { closeCode: CloseCode.ProtocolError, problem: 'length' }
  const code = (payload[0]! << 8) | payload[1]!
  if (!isValidCloseCode(code)) return { closeCode: CloseCode.ProtocolError, problem: 'code' }
  const reason = payload.subarray(2)
  // §5.5.1: "the data ... is not guaranteed to be human readable ... [but] MUST be UTF-8".
  if (!skipUtf8Validation && !isValidUtf8(reason)) {
    return { closeCode: CloseCode.InvalidFramePayloadData, problem: 'utf8' }
  }
  return { code, reason }
}

/** True when `parseClose` refused the payload. */
export function isCloseParseFailure(value: Close | CloseParseFailure): value is CloseParseFailure {
  return 'problem' in value
}

/**
 * Serializes a close payload. Code 1005 ("no status") becomes an empty
 * payload, as §7.4.1 forbids sending 1005 itself.
 */
export function serializeClose(code: number, reason: Uint8Array = EMPTY): Uint8Array {
  if (code === CloseCode.NoStatusReceived) return EMPTY
  const out = new Uint8Array(2 + reason.length)
  out[0] = code >>> 8
  out[1] = code & 0xff
  out.set(reason, 2)
  return out
}
