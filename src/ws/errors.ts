/**
 * Errors shaped as `ws` v8 shapes them: a RangeError (an Error for invalid
 * UTF-8) whose message and `code` are ws's, plus tether's `closeCode`. The
 * vocabulary is the core's own (DESIGN §7), so this only changes the class.
 */
import type { ProtocolError } from '../core/errors.js'

/** An error as ws emits it for a protocol violation. */
export interface WsProtocolError extends Error {
  code: string
  /** The close code the connection failed with (1002, 1007, 1009, ...). */
  closeCode: number
}

export function toWsError(error: ProtocolError): WsProtocolError {
  const Shape = error.code === 'WS_ERR_INVALID_UTF8' || error.code === 'WS_ERR_INVALID_COMPRESSED_DATA' ? Error : RangeError
  const shaped = new Shape(error.message, { cause: error }) as WsProtocolError
  shaped.code = error.code
  shaped.closeCode = error.closeCode
  return shaped
}
