/**
 * The opening handshake over HTTP/1.1 (RFC 6455 §4), as pure functions on
 * plain request and response records. Nothing here reads a socket: the
 * transport parses HTTP (Node's own parser does it) and hands over records.
 *
 * Server: `validateUpgradeRequest` checks a request (§4.2.1) and says which
 * status to answer if it is unacceptable; `acceptResponseLines` builds the
 * 101 answer (§4.2.2); `rejectResponse` builds an error answer.
 * Client: `createClientKey` and `clientRequestHeaders` build the request
 * (§4.1); `verifyUpgradeResponse` checks the server's answer (§4.1, the
 * numbered list "the client MUST validate the server's response").
 *
 * Rule 1: validation returns a `HandshakeError` instead of throwing, so a
 * hostile request costs no stack unwinding.
 * Rule 2: header names in records are lower case, as Node gives them.
 */
import { HandshakeError } from '../errors.js'
import { fillRandom, sha1Base64 } from '../platform.js'
import {
  type ExtensionOffer,
  type HeaderValue,
  countRawField,
  hasToken,
  joinHeader,
  parseExtensions,
  parseSubprotocols,
  serializeExtensions,
} from './headers.js'

/** §1.3: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** The only protocol version RFC 6455 defines. */
export const WEBSOCKET_VERSION = '13'
/**
 * Versions a server accepts: 13 (RFC 6455) and 8, the last draft (hybi-08,
 * the same framing), which ws accepts too; §4.4 lets a server speak several
 * and name them all in its refusal.
 */
export const SERVER_VERSIONS = '13, 8'

export type HeadersRecord = Readonly<Record<string, HeaderValue>>

/** An HTTP request as far as the handshake cares. */
export interface UpgradeRequest {
  method: string
  /** "1.1" for HTTP/1.1. */
  httpVersion: string
  headers: HeadersRecord
  /** Names and values as received, alternating (Node's `rawHeaders`): where a repeated Host shows when `headers` keeps one. */
  rawHeaders?: readonly string[]
}

/** What a valid upgrade request asks for. */
export interface AcceptedRequest {
  key: string
  /** Offered subprotocols, in the client's order of preference. */
  protocols: string[]
  /** Offered extensions, in order (§9.1). */
  extensions: ExtensionOffer[]
  origin: string | undefined
}

/** base64 of 16 bytes: 22 significant characters and "==" (§4.1 point 7). */
function isValidKey(key: string): boolean {
  if (key.length !== 24 || key.charCodeAt(22) !== 0x3d || key.charCodeAt(23) !== 0x3d) return false
  for (let i = 0; i < 22; i++) {
    const c = key.charCodeAt(i)
    const ok =
      (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f
    if (!ok) return false
  }
  return true
}

/**
 * The subprotocols and extensions a client offers (RFC 6455 §4.1, §9.1), or the 400 for a malformed list: the same
 * for an HTTP/1.1 upgrade and an HTTP/2 extended CONNECT (http2.ts).
 */
export function parseOffers(headers: HeadersRecord): { protocols: string[]; extensions: ExtensionOffer[] } | HandshakeError {
  const protocols = parseSubprotocols(headers['sec-websocket-protocol'])
  if (protocols === undefined) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_PROTOCOL', 'Invalid Sec-WebSocket-Protocol header')
  }
  const extensions = parseExtensions(headers['sec-websocket-extensions'])
  if (extensions === undefined) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_EXTENSIONS', 'Invalid or unacceptable Sec-WebSocket-Extensions header')
  }
  return { protocols, extensions }
}

/** Checks an upgrade request (§4.2.1). Returns what it asks for, or the error to answer with. */
export function validateUpgradeRequest(request: UpgradeRequest): AcceptedRequest | HandshakeError {
  const { headers } = request
  // §4.2.1 point 1: "An HTTP/1.1 or higher GET request".
  if (request.method !== 'GET') {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_METHOD', 'Invalid HTTP method', { Allow: 'GET' })
  }
  // An HTTP/1.0 request that carries every upgrade header is accepted all the same, as ws accepts it
  // (issue 15): the headers show a WebSocket client, and refusing gains nothing. HTTP/0.9 has no headers.
  const [major] = request.httpVersion.split('.').map(Number)
  if (!(major! >= 1)) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_HTTP_VERSION', 'WebSocket requires HTTP/1.0 or higher')
  }
  // §4.2.1 point 2: "A |Host| header field containing the server's authority." RFC 7230 §5.4: "A server
  // MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request message that lacks a Host
  // header field and to any request message that contains more than one Host header field".
  // A missing or empty Host is accepted all the same, as ws accepts it: requests built by hand (fastify's
  // injectWS, test clients) have none, and tether does not route by Host (issue 15). Two Host fields,
  // stay a 400: which one would an application believe? (Node's parser keeps the first in `headers`; the
  // raw fields still show both.)
  const host = headers.host
  if ((Array.isArray(host) && host.length > 1) || (request.rawHeaders !== undefined && countRawField(request.rawHeaders, 'host', 2) > 1)) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_HOST', 'Repeated Host header')
  }
  // Points 3 and 4: Upgrade and Connection, "treated as an ASCII case-insensitive value".
  if (!hasToken(headers.upgrade, 'websocket')) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_UPGRADE', 'Invalid Upgrade header', { Upgrade: 'websocket' })
  }
  if (!hasToken(headers.connection, 'upgrade')) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_CONNECTION', 'Invalid Connection header')
  }
  // Point 5: "when decoded, is 16 bytes in length".
  const key = joinHeader(headers['sec-websocket-key'])
  if (key === undefined || !isValidKey(key.trim())) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_KEY', 'Missing or invalid Sec-WebSocket-Key header')
  }
  // Point 6 and §4.2.2: an unknown version is answered with 426 and the versions we speak.
  const version = joinHeader(headers['sec-websocket-version'])
  if (version === undefined || version.trim() === '') {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_VERSION', 'Missing or invalid Sec-WebSocket-Version header', {
      'Sec-WebSocket-Version': SERVER_VERSIONS,
    })
  }
  const trimmed = version.trim()
  if (trimmed !== WEBSOCKET_VERSION && trimmed !== '8') {
    // RFC 7231 §6.5.15: a 426 answer names the protocol to upgrade to.
    return new HandshakeError('TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION', 'Unsupported Sec-WebSocket-Version', {
      'Sec-WebSocket-Version': SERVER_VERSIONS,
      Upgrade: 'websocket',
    })
  }
  const offers = parseOffers(headers)
  if (offers instanceof HandshakeError) return offers
  const { protocols, extensions } = offers
  // ws reads the origin of a version 8 request from Sec-WebSocket-Origin (the draft's name), of others from Origin.
  const origin = trimmed === '8' ? joinHeader(headers['sec-websocket-origin']) : joinHeader(headers.origin ?? headers['sec-websocket-origin'])
  return { key: key.trim(), protocols, extensions, origin }
}

/** The Sec-WebSocket-Accept value for a key (§4.2.2 point 5.4). */
export function acceptKey(key: string): string {
  return sha1Base64(key + WEBSOCKET_GUID)
}

/** The lines of a 101 answer, without the final blank line (the `ws` `headers` event shape). */
export function acceptResponseLines(options: {
  key: string
  protocol?: string | undefined
  extensions?: readonly ExtensionOffer[] | undefined
}): string[] {
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptKey(options.key)}`,
  ]
  if (options.protocol) lines.push(`Sec-WebSocket-Protocol: ${options.protocol}`)
  if (options.extensions && options.extensions.length > 0) {
    lines.push(`Sec-WebSocket-Extensions: ${serializeExtensions(options.extensions)}`)
  }
  return lines
}

/** Joins response lines into the bytes of an HTTP head. */
export function serializeResponseHead(lines: readonly string[]): string {
  return lines.join('\r\n') + '\r\n\r\n'
}

/** Reason phrases for the statuses a handshake answers with. */
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
}

/** A whole HTTP error answer that ends the exchange (`Connection: close`). */
export function rejectResponse(status: number, message?: string, headers: Readonly<Record<string, string | number>> = {}): string {
  const reason = REASONS[status] ?? 'Error'
  const body = message ?? reason
  let head = `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${byteLength(body)}\r\n`
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null) continue
    // A list is one field per value (as Node writes it). Header injection guard: a value never carries a line break.
    for (const one of Array.isArray(value) ? (value as unknown[]) : [value]) head += `${name}: ${String(one).replace(/[\r\n]/g, ' ')}\r\n`
  }
  return `${head}\r\n${body}`
}

/**
 * The UTF-8 length of `text` as the transport sends it. A high surrogate
 * followed by a low one is a 4-byte code point; any other surrogate is lone
 * and the encoder sends U+FFFD, 3 bytes (RFC 3629 §3: "The definition of
 * UTF-8 prohibits encoding character numbers between U+D800 and U+DFFF").
 */
function byteLength(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

// ----------------------------------------------------------------- client

/** A fresh random Sec-WebSocket-Key (§4.1 point 7). */
export function createClientKey(): string {
  const bytes = fillRandom(new Uint8Array(16))
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

/** The WebSocket-specific request headers a client sends (§4.1 points 5-10). */
export function clientRequestHeaders(options: {
  key: string
  protocols?: readonly string[]
  extensions?: readonly ExtensionOffer[]
}): Record<string, string> {
  const headers: Record<string, string> = {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': WEBSOCKET_VERSION,
    'Sec-WebSocket-Key': options.key,
  }
  if (options.protocols && options.protocols.length > 0) headers['Sec-WebSocket-Protocol'] = options.protocols.join(',')
  if (options.extensions && options.extensions.length > 0) {
    headers['Sec-WebSocket-Extensions'] = serializeExtensions(options.extensions)
  }
  return headers
}

/** An HTTP response as far as the handshake cares. */
export interface UpgradeResponse {
  status: number
  headers: HeadersRecord
}

/** What the server agreed to. */
export interface AcceptedResponse {
  protocol: string
  extensions: ExtensionOffer[]
}

/** Checks a server's answer (§4.1, "the client MUST validate the server's response"). */
export function verifyUpgradeResponse(
  response: UpgradeResponse,
  offered: { key: string; protocols?: readonly string[]; extensions?: readonly string[] },
): AcceptedResponse | HandshakeError {
  const { headers } = response
  // Point 1: "If the status code received from the server is not 101 ...".
  if (response.status !== 101) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_STATUS', `Unexpected server response: ${response.status}`, {}, response.status)
  }
  // Points 2 and 3.
  if (!hasToken(headers.upgrade, 'websocket')) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_STATUS', 'Invalid Upgrade header', {}, 101)
  }
  if (!hasToken(headers.connection, 'upgrade')) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_STATUS', 'Invalid Connection header', {}, 101)
  }
  // Point 4: the accept value.
  if (joinHeader(headers['sec-websocket-accept'])?.trim() !== acceptKey(offered.key)) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_ACCEPT', 'Invalid Sec-WebSocket-Accept header', {}, 101)
  }
  return verifyAgreement(headers, offered, 101)
}

/**
 * What a server's answer agreed on (§4.1 points 5 and 6), over either HTTP
 * version: the subprotocol and the extensions must be among those offered.
 * `status` is the answer's, for the error (101, or 200 over HTTP/2).
 */
export function verifyAgreement(
  headers: HeadersRecord,
  offered: { protocols?: readonly string[]; extensions?: readonly string[] },
  status: number,
): AcceptedResponse | HandshakeError {
  // Point 6: a subprotocol "that was not present in the client's handshake".
  const protocolHeader = joinHeader(headers['sec-websocket-protocol'])
  let protocol = ''
  if (protocolHeader !== undefined) {
    protocol = protocolHeader.trim()
    if (!offered.protocols || offered.protocols.length === 0) {
      return new HandshakeError('TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL', 'Server sent a subprotocol but none was requested', {}, status)
    }
    if (!offered.protocols.includes(protocol)) {
      return new HandshakeError('TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL', 'Server sent an invalid subprotocol', {}, status)
    }
  }
  // Point 5: extensions "not present in the client's handshake".
  const extensions = parseExtensions(headers['sec-websocket-extensions'])
  if (extensions === undefined) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS', 'Invalid Sec-WebSocket-Extensions header', {}, status)
  }
  // ws's words when the client offered nothing.
  if (extensions.length > 0 && (offered.extensions === undefined || offered.extensions.length === 0)) {
    return new HandshakeError(
      'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS',
      'Server sent a Sec-WebSocket-Extensions header but no extension was requested',
      {},
      status,
    )
  }
  const seen = new Set<string>()
  for (const { name } of extensions) {
    if (!offered.extensions?.includes(name) || seen.has(name)) {
      return new HandshakeError(
        'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS',
        'Server indicated an extension that was not requested',
        {},
        status,
      )
    }
    seen.add(name)
  }
  return { protocol, extensions }
}
