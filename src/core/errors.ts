/**
 * Errors, and the one table that maps each receive-side problem to its close
 * code (RFC 6455 §7.4.1) and each handshake problem to its HTTP status.
 *
 * Receive-side codes use the names the `ws` package documents
 * (`WS_ERR_INVALID_UTF8`, ...) so that the ws-compatible front end only
 * reshapes errors and never translates their vocabulary.
 */
import type { Close } from './close.js'
import { CloseCode } from './frame.js'

/** Problems a peer can cause after the handshake, with the close code each one fails with. */
export const protocolErrorCloseCodes = {
  WS_ERR_UNEXPECTED_RSV_1: CloseCode.ProtocolError,
  WS_ERR_UNEXPECTED_RSV_2_3: CloseCode.ProtocolError,
  WS_ERR_INVALID_OPCODE: CloseCode.ProtocolError,
  WS_ERR_EXPECTED_FIN: CloseCode.ProtocolError,
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: CloseCode.ProtocolError,
  WS_ERR_EXPECTED_MASK: CloseCode.ProtocolError,
  WS_ERR_UNEXPECTED_MASK: CloseCode.ProtocolError,
  WS_ERR_INVALID_CLOSE_CODE: CloseCode.ProtocolError,
  WS_ERR_INVALID_PAYLOAD_LENGTH: CloseCode.ProtocolError,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: CloseCode.MessageTooBig,
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: CloseCode.MessageTooBig,
  /** More data frames in one message than `maxFragments` (ws's code and close code). */
  WS_ERR_TOO_MANY_BUFFERED_PARTS: CloseCode.PolicyViolation,
  WS_ERR_INVALID_UTF8: CloseCode.InvalidFramePayloadData,
  WS_ERR_INVALID_COMPRESSED_DATA: CloseCode.InvalidFramePayloadData,
  WS_ERR_EXTENSION_FAILURE: CloseCode.InternalError,
  /**
   * The process-wide budget of bytes held for messages being received is
   * spent, and this connection held the most (tether's; the message itself
   * may be within `maxPayload`, so "try again later", not "too big").
   */
  TETHER_ERR_RECEIVE_MEMORY: CloseCode.TryAgainLater,
} as const satisfies Record<string, number>

export type ProtocolErrorCode = keyof typeof protocolErrorCloseCodes

/** Problems in the opening handshake, with the HTTP status a server answers. */
export const handshakeErrorStatuses = {
  TETHER_ERR_HANDSHAKE_METHOD: 405,
  TETHER_ERR_HANDSHAKE_HTTP_VERSION: 505,
  TETHER_ERR_HANDSHAKE_HOST: 400,
  // RFC 7231 §6.5.15: 426 "MUST send an Upgrade header field to indicate the required protocol(s)".
  TETHER_ERR_HANDSHAKE_UPGRADE: 426,
  TETHER_ERR_HANDSHAKE_CONNECTION: 400,
  TETHER_ERR_HANDSHAKE_KEY: 400,
  TETHER_ERR_HANDSHAKE_VERSION: 400,
  TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION: 426,
  TETHER_ERR_HANDSHAKE_PROTOCOL: 400,
  TETHER_ERR_HANDSHAKE_EXTENSIONS: 400,
  TETHER_ERR_HANDSHAKE_REJECTED: 403,
  // RFC 8441 §4 over HTTP/2: an extended CONNECT without :protocol websocket, or without :scheme and :path.
  TETHER_ERR_HANDSHAKE_H2_PROTOCOL: 400,
  TETHER_ERR_HANDSHAKE_H2_PSEUDO: 400,
  // Client-side verification of the server's answer; the status is informative.
  TETHER_ERR_HANDSHAKE_STATUS: 0,
  TETHER_ERR_HANDSHAKE_ACCEPT: 0,
  TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL: 0,
  TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS: 0,
  TETHER_ERR_HANDSHAKE_TIMEOUT: 0,
  // A client asked for HTTP/2 from a server that did not send SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
  TETHER_ERR_HANDSHAKE_H2_UNSUPPORTED: 0,
} as const satisfies Record<string, number>

export type HandshakeErrorCode = keyof typeof handshakeErrorStatuses

/** Every tether error carries a stable string `code`, documented in the README. */
export class TetherError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
  override get name(): string {
    return this.constructor.name
  }
}

/** The peer broke RFC 6455 or RFC 7692; the connection fails with `closeCode`. */
export class ProtocolError extends TetherError {
  declare readonly code: ProtocolErrorCode
  readonly closeCode: number
  constructor(code: ProtocolErrorCode, message: string, closeCode: number = protocolErrorCloseCodes[code]) {
    super(code, message)
    this.closeCode = closeCode
  }
}

/** The opening handshake failed; a server answers with `status` and `headers`. */
export class HandshakeError extends TetherError {
  declare readonly code: HandshakeErrorCode
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  constructor(code: HandshakeErrorCode, message: string, headers: Record<string, string> = {}, status?: number) {
    super(code, message)
    this.status = status ?? handshakeErrorStatuses[code]
    this.headers = headers
  }
}

/** Local misuse, such as sending after the closing handshake began. */
export class StateError extends TetherError {}

/** The connection is closed; says what each side sent and received. */
export class ConnectionClosed extends TetherError {
  readonly sent: Close | undefined
  readonly received: Close | undefined
  readonly receivedThenSent: boolean | undefined
  constructor(sent: Close | undefined, received: Close | undefined, receivedThenSent: boolean | undefined) {
    const code = received?.code ?? CloseCode.AbnormalClosure
    super('TETHER_ERR_CONNECTION_CLOSED', `WebSocket connection closed (${code})`)
    this.sent = sent
    this.received = received
    this.receivedThenSent = receivedThenSent
  }
}
