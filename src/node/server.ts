/**
 * The server side of the opening handshake on Node sockets (RFC 6455 §4.2):
 * turning an `upgrade` request into either a 101 answer and a running
 * connection, or an HTTP error answer and a closed socket.
 *
 * Theory of operation: Node's HTTP parser hands over the request, the raw
 * socket and the bytes read past the request head. `checkUpgradeRequest`
 * applies the core's rules; the front end adds its own policy (path, origin,
 * verifyClient); `acceptUpgrade` writes the 101 answer; `rejectUpgrade`
 * writes an error answer and closes.
 *
 * Rule 1: nothing here throws because of what a client sent; a socket error
 * during the handshake destroys that socket and nothing else.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { HandshakeError } from '../core/errors.js'
import type { ExtensionOffer } from '../core/handshake/headers.js'
import {
  type AcceptedRequest,
  acceptResponseLines,
  rejectResponse,
  serializeResponseHead,
  validateUpgradeRequest,
} from '../core/handshake/http1.js'

/** Applies RFC 6455 §4.2.1 to a Node request. */
export function checkUpgradeRequest(request: IncomingMessage): AcceptedRequest | HandshakeError {
  return validateUpgradeRequest({ method: request.method ?? '', httpVersion: request.httpVersion, headers: request.headers })
}

/** Destroys a socket that errors while its handshake is pending (Rule 1). */
export function onHandshakeSocketError(this: Duplex): void {
  this.destroy()
}

/** Answers with an HTTP error and closes the socket once the answer is written. */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  message?: string,
  headers?: Readonly<Record<string, string | number>>,
): void {
  if (socket.destroyed) return
  if (!socket.writable) {
    socket.destroy()
    return
  }
  socket.once('finish', socket.destroy)
  socket.end(rejectResponse(status, message, headers))
}

/** The lines of the 101 answer, for the `headers` event to amend before they are written. */
export function upgradeResponseLines(key: string, protocol: string | undefined, extensions: readonly ExtensionOffer[]): string[] {
  return acceptResponseLines({ key, protocol, extensions })
}

/** Writes the 101 answer. */
export function writeUpgradeResponse(socket: Duplex, lines: readonly string[]): void {
  socket.write(serializeResponseHead(lines))
}
