/**
 * Framing a message once for many receivers (µWebSockets' prepared
 * messages): a server's frames are not masked (RFC 6455 §5.1), so the same
 * bytes can be written to every connection. With permessage-deflate, a
 * message compressed statelessly (without context takeover) is likewise one
 * byte string for every receiver whose window is at least the one it was
 * compressed with (RFC 7692 §7.1.2).
 */
import { Opcode, serializeFrame } from './frame.js'

/** The whole frame of a one-frame message, unmasked; `compressed` sets RSV1 (RFC 7692 §6). */
export function prepareFrame(binary: boolean, payload: Uint8Array, compressed = false): Uint8Array {
  return serializeFrame({ fin: true, rsv1: compressed, opcode: binary ? Opcode.Binary : Opcode.Text, payload })
}
