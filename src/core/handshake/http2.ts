/**
 * The opening handshake over HTTP/2 (RFC 8441, "Bootstrapping WebSockets
 * with HTTP/2"), as pure functions on header records: the pseudo-header
 * fields (`:method`, `:protocol`, `:scheme`, `:path`, `:authority`,
 * `:status`) sit in the same record as the other fields, lower case, as
 * HTTP/2 carries them and Node hands them over. Nothing here touches a
 * session or a stream (node/http2-transport.ts, node/http2-client.ts do).
 *
 * Server: `validateConnectRequest` checks an extended CONNECT (§4, §5) and
 * says which status to answer if it is unacceptable; `connectResponseLines`
 * builds the 200 answer as lines (the shape of the `headers` event, so an
 * application amends both HTTP versions alike) and `headersFromLines` turns
 * them into HTTP/2 fields. Client: `connectRequestHeaders` builds the
 * request; `verifyConnectResponse` checks the answer.
 *
 * Rule 1 (no key, no accept): "Implementations using this extended CONNECT
 * to bootstrap WebSockets do not do the processing of the Sec-WebSocket-Key
 * and Sec-WebSocket-Accept header fields of [RFC6455] as that functionality
 * has been superseded by the :protocol pseudo-header field" (§5). A key a
 * client sends anyway is ignored.
 * Rule 2 (the stream is the connection): "An orderly closure of the stream
 * is signaled by END_STREAM ... the TCP FIN in [RFC6455]; a RST_STREAM
 * ... stands in for a TCP RST" (§5, paraphrased). The core's EOF to send
 * becomes END_STREAM, and a reset stream is a connection lost (1006); the
 * transport maps them (node/http2-transport.ts), the frames stay the same.
 * Rule 3: as in http1.ts, validation returns a HandshakeError instead of
 * throwing, and header names are lower case.
 */
import { HandshakeError } from '../errors.js'
import {
  type ExtensionOffer,
  type HeaderValue,
  joinHeader,
  serializeExtensions,
} from './headers.js'
import { type AcceptedResponse, type HeadersRecord, SERVER_VERSIONS, WEBSOCKET_VERSION, parseOffers, verifyAgreement } from './http1.js'

/** §3: the setting a server sends to say it accepts extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, 0x8). */
export const SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8
/** §4: the :protocol value of a WebSocket, the HTTP Upgrade Token of RFC 6455 §11.2. */
export const CONNECT_PROTOCOL = 'websocket'

/** What a valid extended CONNECT asks for (no key: Rule 1). */
export interface AcceptedConnect {
  /** Offered subprotocols, in the client's order of preference. */
  protocols: string[]
  extensions: ExtensionOffer[]
  origin: string | undefined
  /** :path, the request target (origin-form). */
  path: string
  /** :authority, the host (and port) the request names, if present. */
  authority: string | undefined
}

/**
 * Fields HTTP/2 forbids (RFC 9113 §8.2.2: "An endpoint MUST NOT generate an
 * HTTP/2 message containing connection-specific header fields"); an answer
 * built for HTTP/1.1 drops them.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding'])

function single(value: HeaderValue): string | undefined {
  return joinHeader(value)
}

/** Checks an extended CONNECT request (RFC 8441 §4, §5). Returns what it asks for, or the error to answer with. */
export function validateConnectRequest(headers: HeadersRecord): AcceptedConnect | HandshakeError {
  // §4: "a :protocol pseudo-header field MAY be included on request HEADERS ... of a CONNECT request".
  if (single(headers[':method']) !== 'CONNECT') {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_METHOD', 'A WebSocket over HTTP/2 is an extended CONNECT request', { Allow: 'CONNECT' })
  }
  // §5: "The :protocol pseudo-header field MUST be included in the CONNECT request and it MUST have a value of
  // websocket". Upgrade tokens compare case-insensitively (RFC 9110 §7.8), as RFC 6455 §4.2.1 treats "websocket".
  const protocol = single(headers[':protocol'])
  if (protocol === undefined) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_H2_PROTOCOL', 'Missing :protocol pseudo-header field (RFC 8441)')
  }
  if (protocol.toLowerCase() !== CONNECT_PROTOCOL) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_H2_PROTOCOL', `Unsupported :protocol ${JSON.stringify(protocol.slice(0, 64))}`)
  }
  // §4: "On requests that contain the :protocol pseudo-header field, the :scheme and :path pseudo-header fields
  // of the target URI ... MUST also be included."
  const path = single(headers[':path'])
  if (single(headers[':scheme']) === undefined || path === undefined || path === '') {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_H2_PSEUDO', 'Missing :scheme or :path pseudo-header field (RFC 8441 §4)')
  }
  // §5: the remaining fields are those of RFC 6455 §4.2.1, except the key (Rule 1). An unknown version is
  // refused with the versions we speak; not with 426, whose Upgrade field HTTP/2 cannot carry (RFC 9113 §8.2.2).
  const version = single(headers['sec-websocket-version'])?.trim()
  if (version === undefined || version === '') {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_VERSION', 'Missing or invalid Sec-WebSocket-Version header', {
      'Sec-WebSocket-Version': SERVER_VERSIONS,
    })
  }
  if (version !== WEBSOCKET_VERSION && version !== '8') {
    return new HandshakeError(
      'TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION',
      'Unsupported Sec-WebSocket-Version',
      { 'Sec-WebSocket-Version': SERVER_VERSIONS },
      400,
    )
  }
  const offers = parseOffers(headers)
  if (offers instanceof HandshakeError) return offers
  const { protocols, extensions } = offers
  const origin = version === '8' ? single(headers['sec-websocket-origin']) : single(headers.origin ?? headers['sec-websocket-origin'])
  return { protocols, extensions, origin, path, authority: single(headers[':authority']) }
}

/**
 * The 200 answer (§5: "...the server responds with a 2xx status code") as
 * lines: a status line, then `name: value` fields, as the `headers` event
 * hands them to applications. No Sec-WebSocket-Accept (Rule 1).
 */
export function connectResponseLines(options: { protocol?: string | undefined; extensions?: readonly ExtensionOffer[] | undefined }): string[] {
  const lines = ['HTTP/2 200']
  if (options.protocol) lines.push(`sec-websocket-protocol: ${options.protocol}`)
  if (options.extensions && options.extensions.length > 0) {
    lines.push(`sec-websocket-extensions: ${serializeExtensions(options.extensions)}`)
  }
  return lines
}

/**
 * HTTP/2 response fields from answer lines (the first line is the status
 * line, `HTTP/2 200` or `HTTP/1.1 101 ...`, and gives :status). Names are
 * lower-cased; repeated names become lists; connection-specific fields and
 * pseudo-header fields an application wrote are dropped; lines without a
 * colon, or with a name that is not a token, are skipped.
 */
export function headersFromLines(lines: readonly string[], status?: number): Record<string, string | string[] | number> {
  const out: Record<string, string | string[] | number> = Object.create(null)
  const statusLine = /^HTTP\/\S+ (\d{3})/.exec(lines[0] ?? '')
  out[':status'] = status ?? (statusLine ? Number(statusLine[1]) : 200)
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name) || CONNECTION_SPECIFIC.has(name)) continue
    // Header injection guard, as in http1.ts rejectResponse.
    const value = line.slice(colon + 1).trim().replace(/[\r\n\0]/g, ' ')
    const known = out[name]
    if (known === undefined) out[name] = value
    else out[name] = Array.isArray(known) ? [...known, value] : [String(known), value]
  }
  return out
}

// ----------------------------------------------------------------- client

/** The fields of an extended CONNECT (§4, §5): pseudo-header fields first, no key (Rule 1). */
export function connectRequestHeaders(options: {
  scheme: 'http' | 'https'
  authority: string
  path: string
  protocols?: readonly string[]
  extensions?: readonly ExtensionOffer[]
  version?: string
}): Record<string, string> {
  const headers: Record<string, string> = {
    ':method': 'CONNECT',
    ':protocol': CONNECT_PROTOCOL,
    ':scheme': options.scheme,
    ':path': options.path === '' ? '/' : options.path,
    ':authority': options.authority,
    'sec-websocket-version': options.version ?? WEBSOCKET_VERSION,
  }
  if (options.protocols && options.protocols.length > 0) headers['sec-websocket-protocol'] = options.protocols.join(', ')
  if (options.extensions && options.extensions.length > 0) headers['sec-websocket-extensions'] = serializeExtensions(options.extensions)
  return headers
}

/** An HTTP/2 answer as far as the handshake cares. */
export interface ConnectResponse {
  status: number
  headers: HeadersRecord
}

/**
 * Checks a server's answer to an extended CONNECT: a 2xx status (§5; RFC
 * 9113 §8.5: "Any 2xx series status code"), then the subprotocol and
 * extensions, as RFC 6455 §4.1 points 5 and 6 say.
 */
export function verifyConnectResponse(
  response: ConnectResponse,
  offered: { protocols?: readonly string[]; extensions?: readonly string[] },
): AcceptedResponse | HandshakeError {
  if (response.status < 200 || response.status > 299) {
    return new HandshakeError('TETHER_ERR_HANDSHAKE_STATUS', `Unexpected server response: ${response.status}`, {}, response.status)
  }
  return verifyAgreement(response.headers, offered, response.status)
}
