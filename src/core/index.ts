/**
 * tether/core: the sans-I/O WebSocket protocol (RFC 6455). Bytes in, events
 * and bytes out; no sockets, timers or promises. Host it on any transport.
 *
 * @example
 * ```ts
 * import { Connection } from 'tether-ws/core'
 * const conn = new Connection({ side: 'server' })
 * conn.receiveData(bytesFromTheSocket)
 * for (const event of conn.eventsReceived()) console.log(event.type)
 * for (const chunk of conn.dataToSend()) socket.write(chunk)
 * ```
 */
export { Connection, DEFAULT_MAX_PAYLOAD } from './connection.js'
export type { ConnectionEvent, ConnectionOptions, Side } from './connection.js'
export { CloseCode, Opcode, isControlOpcode, serializeFrame, frameHeaderSize, writeFrameHeader, firstHeaderByte } from './frame.js'
export type { Frame } from './frame.js'
export { FrameParser } from './parser.js'
export type { FrameHeader, FrameSink } from './parser.js'
export { parseClose, serializeClose, isValidCloseCode, isCloseParseFailure, MAX_CLOSE_REASON } from './close.js'
export type { Close, CloseParseFailure } from './close.js'
export { applyMask } from './mask.js'
export { Utf8Validator, isValidUtf8 } from './utf8.js'
export { canTransition, transition, transitions } from './lifecycle.js'
export type { State } from './lifecycle.js'
export {
  TetherError,
  ProtocolError,
  HandshakeError,
  StateError,
  ConnectionClosed,
  protocolErrorCloseCodes,
  handshakeErrorStatuses,
} from './errors.js'
export type { ProtocolErrorCode, HandshakeErrorCode } from './errors.js'
export * from './handshake/headers.js'
export * from './handshake/http1.js'
export * from './handshake/http2.js'
