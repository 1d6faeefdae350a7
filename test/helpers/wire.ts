/**
 * Wire-level assertions for core connection tests: an independent frame
 * decoder (deliberately not the parser under test) and `assertFailed`, which
 * checks every observable effect of _Fail the WebSocket Connection_ (§7.1.7)
 * at once: the error event (code and close code), the close frame queued for
 * the peer, the EOF request and the state.
 */
import assert from 'node:assert/strict'
import type { Connection, ConnectionEvent } from '../../src/core/connection.js'
import { ProtocolError, type ProtocolErrorCode, protocolErrorCloseCodes } from '../../src/core/errors.js'
import { concat } from './bytes.js'

export interface WireFrame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  mask: Uint8Array | undefined
  /** Unmasked payload. */
  payload: Uint8Array
}

/** Decodes a byte string made of whole frames; throws on a trailing partial frame. */
export function decodeFrames(bytes: Uint8Array): WireFrame[] {
  const frames: WireFrame[] = []
  let at = 0
  while (at < bytes.length) {
    if (bytes.length - at < 2) throw new Error('truncated frame header')
    const first = bytes[at]!
    const second = bytes[at + 1]!
    at += 2
    let length = second & 0x7f
    if (length === 126) {
      length = bytes[at]! * 256 + bytes[at + 1]!
      at += 2
    } else if (length === 127) {
      length = 0
      for (let i = 0; i < 8; i++) length = length * 256 + bytes[at + i]!
      at += 8
    }
    const masked = (second & 0x80) !== 0
    let mask: Uint8Array | undefined
    if (masked) {
      mask = bytes.slice(at, at + 4)
      at += 4
    }
    if (bytes.length - at < length) throw new Error('truncated frame payload')
    const payload = bytes.slice(at, at + length)
    if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!
    at += length
    frames.push({ fin: (first & 0x80) !== 0, rsv: (first >> 4) & 7, opcode: first & 0x0f, masked, mask, payload })
  }
  return frames
}

/** The close code in a close payload, or 1005 for an empty one. */
export function closeCodeOf(payload: Uint8Array): number {
  return payload.length === 0 ? 1005 : (payload[0]! << 8) | payload[1]!
}

/** Decodes everything `connection` queued for sending (and takes it). */
export function sentFrames(connection: Connection): WireFrame[] {
  return decodeFrames(concat(connection.dataToSend()))
}

/**
 * Asserts that `connection` failed with `code` / `closeCode` and nothing else
 * happened after the failure:
 * - exactly one 'error' event, the last event, whose error is a ProtocolError
 *   with that `code` and `closeCode` (and the table agrees);
 * - the only bytes queued are one close frame carrying `closeCode`, masked
 *   iff the connection is a client; for a server the exact bytes
 *   88 02 <code>, e.g. 88 02 03 ea for 1002;
 * - `eofToSend()` is true, once, for a server; a client waits for the server's EOF (§7.1.1);
 * - the state is 'closing' and `closeSent` holds the code.
 * Callers drain `dataToSend()` before the input that fails.
 */
export function assertFailed(
  connection: Connection,
  events: readonly ConnectionEvent[],
  code: ProtocolErrorCode,
  closeCode: number,
): void {
  const errors = events.filter((event) => event.type === 'error')
  assert.equal(errors.length, 1, `expected one error event, got ${JSON.stringify(events.map((e) => e.type))}`)
  assert.equal(events.at(-1)!.type, 'error', 'no event may follow the failure')
  const { error } = errors[0] as Extract<ConnectionEvent, { type: 'error' }>
  assert.ok(error instanceof ProtocolError)
  assert.equal(error.code, code)
  assert.equal(error.closeCode, closeCode)
  assert.equal(protocolErrorCloseCodes[code], closeCode)
  assert.equal(connection.error, error)

  const bytes = concat(connection.dataToSend())
  if (connection.side === 'server') {
    assert.deepEqual(bytes, Uint8Array.of(0x88, 0x02, closeCode >>> 8, closeCode & 0xff))
  } else {
    assert.equal(bytes.length, 8, 'a client close frame with a code is 8 bytes')
    assert.equal(bytes[0], 0x88)
    assert.equal(bytes[1], 0x82, 'a client close frame is masked')
    const [frame] = decodeFrames(bytes)
    assert.equal(closeCodeOf(frame!.payload), closeCode)
  }
  if (connection.side === 'server') {
    assert.equal(connection.eofToSend(), true, 'the server transport is asked to close')
    assert.equal(connection.eofToSend(), false, 'eofToSend is true once')
  } else {
    // §7.1.1: a client "SHOULD wait for a TCP Close from the server", failing or not.
    assert.equal(connection.eofToSend(), false, 'a failing client does not end TCP first')
  }
  assert.equal(connection.state, 'closing')
  assert.equal(connection.closeSent?.code, closeCode)
  assert.equal(connection.closeExpected(), true)
}

/** The events of `events` without payload views, for deep comparison. */
export function plain(events: readonly ConnectionEvent[]): unknown[] {
  return events.map((event) => {
    switch (event.type) {
      case 'message':
        return { type: 'message', binary: event.binary, data: Buffer.from(event.data).toString('hex') }
      case 'ping':
      case 'pong':
        return { type: event.type, data: Buffer.from(event.data).toString('hex') }
      case 'close':
        return { type: 'close', code: event.code, reason: Buffer.from(event.reason).toString('hex') }
      case 'closed':
        return { type: 'closed', code: event.code, reason: Buffer.from(event.reason).toString('hex'), wasClean: event.wasClean }
      case 'error':
        return { type: 'error', code: event.error.code, closeCode: event.error.closeCode }
      case 'inflate':
        return { type: 'inflate', data: Buffer.from(event.data).toString('hex'), end: event.end, limit: event.limit }
    }
  })
}
