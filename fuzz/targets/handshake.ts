/**
 * Fuzz targets for the opening handshake (RFC 6455 §4): the server's
 * check of an upgrade request (validateUpgradeRequest) and the client's
 * check of the answer (verifyUpgradeResponse).
 *
 * An input is a request or response record written as text (latin1):
 *   line 1: `METHOD VERSION` (server) or `STATUS [flags]` (client; flag `n`:
 *           no subprotocols offered, `x`: no extensions offered);
 *   then:   `name:value` lines, one optional space after the colon kept out
 *           of the value. Names are lower-cased (as Node gives them); a name
 *           repeated makes an array value, as a transport that keeps
 *           duplicated field lines apart presents it.
 *
 * ORACLES:
 * - no exception (engine);
 * - `checkServerError`: a HandshakeError's status is one of 400, 405, 426,
 *   505, equals handshakeErrorStatuses[code] and the status RFC 6455 / RFC
 *   7231 call for; its headers and the rejectResponse built from it are a
 *   well-formed HTTP head (no injected lines, exact Content-Length);
 * - `checkServerModel`: the outcome (the error code, or the key, protocols,
 *   extensions and origin accepted) is one the reference check allows
 *   (header-model.ts; where tether is deliberately lenient, e.g. trimming
 *   with String.prototype.trim, either reading is allowed);
 * - `checkServerToClient`: for an accepted request, the 101 the server
 *   builds (acceptResponseLines, with the first subprotocol and the
 *   negotiated permessage-deflate) has no CR/LF inside a line, and
 *   verifyUpgradeResponse accepts it for the same offer, agreeing on the
 *   subprotocol and (acceptDeflateResponse) on the deflate parameters;
 * - `checkClientModel`: verifyUpgradeResponse's verdict and code match the
 *   reference; its status is the response's; accepted extensions were
 *   offered, once each.
 */
import { createHash } from 'node:crypto'
import { acceptDeflateResponse, negotiateDeflate } from '../../src/core/deflate/negotiate.js'
import { HandshakeError, handshakeErrorStatuses } from '../../src/core/errors.js'
import {
  type AcceptedRequest,
  type AcceptedResponse,
  type UpgradeRequest,
  type UpgradeResponse,
  acceptResponseLines,
  rejectResponse,
  validateUpgradeRequest,
  verifyUpgradeResponse,
} from '../../src/core/handshake/http1.js'
import { HEADER_EDGES, latin1 } from '../mutate.js'
import { check, measure, type Target } from '../oracle.js'
import type { Rng } from '../rng.js'
import { clientOptionsFor, isDeflate, modelReadParams } from './deflate-model.js'
import { CLIENT_CONFIGS, checkClientAcceptance } from './extensions.js'
import {
  type ModelExtension,
  type ModelHeaderValue,
  modelHasToken,
  modelJoin,
  modelParseExtensions,
  modelTokenList,
  modelUpgradeOffersWebsocket,
  trimOws,
} from './header-model.js'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
export const CLIENT_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

type Headers = Record<string, string | string[]>

function decodeLines(input: Uint8Array): { first: string; headers: Headers } {
  const text = Buffer.from(input).toString('latin1')
  const [first = '', ...rest] = text.split('\n')
  // No prototype: a header named __proto__ or constructor is just a header.
  const headers: Headers = Object.create(null) as Headers
  for (const line of rest) {
    const colon = line.indexOf(':')
    if (colon === -1) continue
    const name = line.slice(0, colon).toLowerCase()
    let value = line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    const existing = headers[name]
    if (existing === undefined) headers[name] = value
    else if (typeof existing === 'string') headers[name] = [existing, value]
    else existing.push(value)
  }
  return { first, headers }
}

export function decodeRequest(input: Uint8Array): UpgradeRequest {
  const { first, headers } = decodeLines(input)
  const space = first.indexOf(' ')
  return {
    method: space === -1 ? first : first.slice(0, space),
    httpVersion: space === -1 ? '' : first.slice(space + 1),
    headers,
  }
}

export interface ClientCase {
  response: UpgradeResponse
  offered: { key: string; protocols: string[]; extensions: string[] }
}

export function decodeResponse(input: Uint8Array): ClientCase {
  const { first, headers } = decodeLines(input)
  const [status = '', flags = ''] = first.split(' ')
  return {
    response: { status: status === '' ? Number.NaN : Number(status), headers },
    offered: {
      key: CLIENT_KEY,
      protocols: flags.includes('n') ? [] : ['chat', 'superchat', 'v1.x'],
      extensions: flags.includes('x') ? [] : ['permessage-deflate', 'x-custom'],
    },
  }
}

function modelAccept(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

// --------------------------------------------------------------- server

/** The status each server-side code calls for (RFC 6455 §4.2.1-§4.2.2, RFC 7231 §6.5.5, §6.5.15, §6.6.6). */
export const SERVER_STATUSES: Readonly<Record<string, number>> = {
  TETHER_ERR_HANDSHAKE_METHOD: 405,
  TETHER_ERR_HANDSHAKE_HTTP_VERSION: 505,
  TETHER_ERR_HANDSHAKE_HOST: 400,
  TETHER_ERR_HANDSHAKE_UPGRADE: 426,
  TETHER_ERR_HANDSHAKE_CONNECTION: 400,
  TETHER_ERR_HANDSHAKE_KEY: 400,
  TETHER_ERR_HANDSHAKE_VERSION: 400,
  TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION: 426,
  TETHER_ERR_HANDSHAKE_PROTOCOL: 400,
  TETHER_ERR_HANDSHAKE_EXTENSIONS: 400,
}

export type ServerVerdict =
  | { code: string }
  | { accept: { key: string; protocols: string[]; extensions: ModelExtension[]; origin: string | undefined } }

/** How an Upgrade header is read: RFC 7230's `1#protocol` (versions allowed), or tether's plain token list. */
type UpgradeReading = (value: ModelHeaderValue) => boolean
const upgradeReadings: readonly UpgradeReading[] = [modelUpgradeOffersWebsocket, (value) => modelHasToken(value, 'websocket')]

function modelServer(request: UpgradeRequest, lenientVersion: boolean, trim: (text: string) => string, upgradeOk: UpgradeReading): ServerVerdict {
  const h = request.headers as Record<string, ModelHeaderValue>
  if (request.method !== 'GET') return { code: 'TETHER_ERR_HANDSHAKE_METHOD' }
  // §4.2.1 point 1 asks for HTTP/1.1 or higher; HTTP/1.0 with the upgrade headers is accepted as ws accepts
  // it (issue 15). Node's parser only ever gives "d.d"; anything else may go either way.
  const version = /^(\d+)(?:\.(\d+))?$/.exec(request.httpVersion)
  if (version) {
    if (!(Number(version[1]) >= 1)) return { code: 'TETHER_ERR_HANDSHAKE_HTTP_VERSION' }
  } else if (!lenientVersion) {
    return { code: 'TETHER_ERR_HANDSHAKE_HTTP_VERSION' }
  }
  // §4.2.1 point 2, RFC 7230 §5.4: at most one Host field line. A missing or empty one is accepted, as ws
  // accepts it (issue 15: requests built by hand, such as fastify's injectWS, have none).
  const host = h.host
  if (Array.isArray(host) && host.length > 1) return { code: 'TETHER_ERR_HANDSHAKE_HOST' }
  if (!upgradeOk(h.upgrade)) return { code: 'TETHER_ERR_HANDSHAKE_UPGRADE' }
  if (!modelHasToken(h.connection, 'upgrade')) return { code: 'TETHER_ERR_HANDSHAKE_CONNECTION' }
  const key = modelJoin(h['sec-websocket-key'])
  if (key === undefined || !/^[A-Za-z0-9+/]{22}==$/.test(trim(key))) return { code: 'TETHER_ERR_HANDSHAKE_KEY' }
  const wsVersion = modelJoin(h['sec-websocket-version'])
  if (wsVersion === undefined || trim(wsVersion) === '') return { code: 'TETHER_ERR_HANDSHAKE_VERSION' }
  // 13 and the last draft's 8 (issue 15: ws accepts both).
  if (trim(wsVersion) !== '13' && trim(wsVersion) !== '8') return { code: 'TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION' }
  const protocols = modelTokenList(h['sec-websocket-protocol'])
  if (protocols === undefined || new Set(protocols).size !== protocols.length) return { code: 'TETHER_ERR_HANDSHAKE_PROTOCOL' }
  const extensions = modelParseExtensions(h['sec-websocket-extensions'])
  if (extensions === undefined) return { code: 'TETHER_ERR_HANDSHAKE_EXTENSIONS' }
  const origin = trim(wsVersion) === '8' ? modelJoin(h['sec-websocket-origin']) : modelJoin(h.origin ?? h['sec-websocket-origin'])
  return { accept: { key: trim(key), protocols, extensions, origin } }
}

/**
 * Every verdict the reference allows. tether trims with String.prototype.trim,
 * which also strips NBSP and other Unicode spaces an HTTP parser leaves in
 * place; that leniency is allowed, as is any verdict on an HTTP version
 * Node's parser could not have produced. tether reads Upgrade as a plain
 * token list, so `Upgrade: HTTP/2.0, websocket` (valid RFC 7230, sent by no
 * known client) is refused: a known deviation, allowed here.
 */
export function serverVerdicts(request: UpgradeRequest): ServerVerdict[] {
  const out: ServerVerdict[] = []
  for (const lenientVersion of [false, true]) {
    for (const trim of [trimOws, (text: string) => text.trim()]) {
      for (const upgrade of upgradeReadings) out.push(modelServer(request, lenientVersion, trim, upgrade))
    }
  }
  return out
}

function describeVerdict(v: ServerVerdict | AcceptedRequest | HandshakeError): string {
  if (v instanceof HandshakeError) return `${v.code} (${v.status})`
  if ('code' in v) return v.code
  const a = 'accept' in v ? v.accept : v
  return `accept ${JSON.stringify(a)}`
}

/** A rejection as the server sends it: status, headers and body, framed exactly. */
export function checkServerError(error: HandshakeError): void {
  check([400, 405, 426, 505].includes(error.status), 'handshake-status', `${error.code} answers ${error.status}`)
  check(error.status === handshakeErrorStatuses[error.code], 'handshake-status', `${error.code} answers ${error.status}, handshakeErrorStatuses says ${handshakeErrorStatuses[error.code]}`)
  check(SERVER_STATUSES[error.code] === error.status, 'handshake-status', `${error.code} answers ${error.status}, RFC 6455 §4.2 calls for ${SERVER_STATUSES[error.code]}`)
  const head = rejectResponse(error.status, error.message, error.headers)
  const end = head.indexOf('\r\n\r\n')
  check(end > 0, 'reject-response', 'the rejection has no end of head')
  const lines = head.slice(0, end).split('\r\n')
  check(new RegExp(`^HTTP/1\\.1 ${error.status} [\\x20-\\x7e]+$`).test(lines[0]!), 'reject-response', `status line ${JSON.stringify(lines[0])}`)
  let length: number | undefined
  for (const line of lines.slice(1)) {
    check(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\r\n]*$/.test(line), 'reject-response', `header line ${JSON.stringify(line)}`)
    if (/^content-length:/i.test(line)) length = Number(line.slice(line.indexOf(':') + 1))
  }
  check(length === Buffer.byteLength(head.slice(end + 4)), 'reject-response', `Content-Length ${length} for a ${Buffer.byteLength(head.slice(end + 4))}-byte body`)
}

export function checkServerModel(result: AcceptedRequest | HandshakeError, verdicts: ServerVerdict[]): void {
  const match = verdicts.some((v) => {
    if (result instanceof HandshakeError) return 'code' in v && v.code === result.code
    if (!('accept' in v)) return false
    const a = v.accept
    return (
      a.key === result.key &&
      a.origin === result.origin &&
      JSON.stringify(a.protocols) === JSON.stringify(result.protocols) &&
      JSON.stringify(a.extensions) === JSON.stringify(result.extensions)
    )
  })
  check(match, 'handshake-model', () => `validateUpgradeRequest says ${describeVerdict(result)}; the model allows ${[...new Set(verdicts.map(describeVerdict))].join(' | ')}`)
}

/** What the server answers, the client accepts, and both agree on what was negotiated. */
export function checkServerToClient(accepted: AcceptedRequest, buildLines: typeof acceptResponseLines = acceptResponseLines): void {
  const protocol = accepted.protocols[0]
  const negotiated = negotiateDeflate(accepted.extensions)
  const lines = buildLines({ key: accepted.key, protocol, extensions: negotiated ? [negotiated.response] : undefined })
  const headers: Headers = Object.create(null) as Headers
  for (const line of lines.slice(1)) {
    check(!/[\r\n\0]/.test(line), 'server-to-client', `a 101 header line with a line break: ${JSON.stringify(line)}`)
    const colon = line.indexOf(': ')
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 2)
  }
  const answer = verifyUpgradeResponse(
    { status: 101, headers },
    { key: accepted.key, protocols: accepted.protocols, extensions: accepted.extensions.map((e) => e.name) },
  )
  check(!(answer instanceof HandshakeError), 'server-to-client', () => `the client refuses the server's own 101: ${(answer as HandshakeError).code} ${lines.join(' | ')}`)
  check(answer.protocol === (protocol ?? ''), 'server-to-client', `the client sees subprotocol ${answer.protocol}, the server chose ${protocol}`)
  if (negotiated === undefined) {
    check(answer.extensions.length === 0, 'server-to-client', 'the client sees an extension the server did not accept')
    return
  }
  check(answer.extensions.length === 1, 'server-to-client', 'the client does not see the one extension accepted')
  const offer = accepted.extensions.filter(isDeflate).map((e) => modelReadParams(e.params)).find((p) => p !== undefined)
  check(offer !== undefined, 'server-to-client', 'negotiateDeflate accepted although no offer is valid')
  const client = acceptDeflateResponse(answer.extensions[0]!, clientOptionsFor(offer))
  check(typeof client !== 'string', 'server-to-client', () => `the client refuses the server's permessage-deflate answer: ${client as string}`)
  check(JSON.stringify(client) === JSON.stringify(negotiated.parameters), 'server-to-client', () => `client and server disagree: ${JSON.stringify(client)} vs ${JSON.stringify(negotiated.parameters)}`)
}

// --------------------------------------------------------------- client

export type ClientVerdict = { code: string } | { accept: { protocol: string; extensions: ModelExtension[] } }

function modelClient({ response, offered }: ClientCase, trim: (text: string) => string, upgradeOk: UpgradeReading): ClientVerdict {
  const h = response.headers as Record<string, ModelHeaderValue>
  if (response.status !== 101) return { code: 'TETHER_ERR_HANDSHAKE_STATUS' }
  if (!upgradeOk(h.upgrade)) return { code: 'TETHER_ERR_HANDSHAKE_STATUS' }
  if (!modelHasToken(h.connection, 'upgrade')) return { code: 'TETHER_ERR_HANDSHAKE_STATUS' }
  const accept = modelJoin(h['sec-websocket-accept'])
  if (accept === undefined || trim(accept) !== modelAccept(offered.key)) return { code: 'TETHER_ERR_HANDSHAKE_ACCEPT' }
  const protocolHeader = modelJoin(h['sec-websocket-protocol'])
  let protocol = ''
  if (protocolHeader !== undefined) {
    protocol = trim(protocolHeader)
    if (!offered.protocols.includes(protocol)) return { code: 'TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL' }
  }
  const extensions = modelParseExtensions(h['sec-websocket-extensions'])
  if (extensions === undefined) return { code: 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS' }
  const names = extensions.map((e) => e.name)
  if (new Set(names).size !== names.length || names.some((n) => !offered.extensions.includes(n))) {
    return { code: 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS' }
  }
  return { accept: { protocol, extensions } }
}

export function clientVerdicts(c: ClientCase): ClientVerdict[] {
  const out: ClientVerdict[] = []
  for (const trim of [trimOws, (text: string) => text.trim()]) {
    for (const upgrade of upgradeReadings) out.push(modelClient(c, trim, upgrade))
  }
  return out
}

export function checkClientModel(c: ClientCase, result: AcceptedResponse | HandshakeError, verdicts: ClientVerdict[]): void {
  if (result instanceof HandshakeError) {
    check(handshakeErrorStatuses[result.code] === 0, 'handshake-client', `the client reported a server-side code ${result.code}`)
    check(Object.is(result.status, c.response.status), 'handshake-client', `${result.code} carries status ${result.status}, the response had ${c.response.status}`)
  }
  const match = verdicts.some((v) => {
    if (result instanceof HandshakeError) return 'code' in v && v.code === result.code
    return 'accept' in v && v.accept.protocol === result.protocol && JSON.stringify(v.accept.extensions) === JSON.stringify(result.extensions)
  })
  const show = (v: ClientVerdict | AcceptedResponse | HandshakeError): string =>
    v instanceof HandshakeError ? v.code : 'code' in v ? v.code : `accept ${JSON.stringify('accept' in v ? v.accept : v)}`
  check(match, 'handshake-model', () => `verifyUpgradeResponse says ${show(result)}; the model allows ${[...new Set(verdicts.map(show))].join(' | ')}`)
}

// -------------------------------------------------------- seeds, targets

const REQUEST = [
  'GET 1.1',
  'host: server.example.com',
  'upgrade: websocket',
  'connection: Upgrade',
  `sec-websocket-key: ${CLIENT_KEY}`,
  'sec-websocket-version: 13',
]

function request(replace: Record<string, string | null> = {}, extra: string[] = [], first = 'GET 1.1'): string {
  const lines = [first]
  for (const line of REQUEST.slice(1)) {
    const name = line.slice(0, line.indexOf(':'))
    if (name in replace) {
      if (replace[name] !== null) lines.push(`${name}: ${replace[name]}`)
    } else lines.push(line)
  }
  return [...lines, ...extra].join('\n')
}

const serverSeeds: Array<[string, string]> = [
  ['valid', request()],
  ['valid-with-origin', request({}, ['origin: https://example.com'])],
  ['valid-protocols', request({}, ['sec-websocket-protocol: chat, superchat'])],
  ['valid-protocols-two-lines', request({}, ['sec-websocket-protocol: chat', 'sec-websocket-protocol: superchat'])],
  ['valid-deflate', request({}, ['sec-websocket-extensions: permessage-deflate; client_max_window_bits'])],
  ['valid-deflate-full', request({}, ['sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9, permessage-deflate'])],
  ['valid-deflate-quoted', request({}, ['sec-websocket-extensions: permessage-deflate; client_max_window_bits="10"'])],
  ['valid-extensions-two-lines', request({}, ['sec-websocket-extensions: x-foo', 'sec-websocket-extensions: permessage-deflate'])],
  ['valid-http-2', request({}, [], 'GET 2.0')],
  ['valid-case-insensitive', request({ upgrade: 'WebSocket', connection: 'keep-alive, UPGRADE' })],
  ['valid-key-padded', request({ 'sec-websocket-key': `  ${CLIENT_KEY}\t` })],
  ['valid-upgrade-list', request({ upgrade: 'h2c, websocket' })],
  ['upgrade-with-version', request({ upgrade: 'HTTP/2.0, websocket' })],
  ['method-post', request({}, [], 'POST 1.1')],
  ['method-lowercase', request({}, [], 'get 1.1')],
  ['http-1-0', request({}, [], 'GET 1.0')],
  ['http-odd-version', request({}, [], 'GET 1.1.1')],
  ['no-host', request({ host: null })],
  ['empty-host', request({ host: '' })],
  ['two-hosts', request({}, ['host: evil.example.com'])],
  ['no-upgrade', request({ upgrade: null })],
  ['upgrade-h2c', request({ upgrade: 'h2c' })],
  ['no-connection', request({ connection: null })],
  ['connection-keep-alive', request({ connection: 'keep-alive' })],
  ['no-key', request({ 'sec-websocket-key': null })],
  ['key-short', request({ 'sec-websocket-key': 'AAAAAAAAAAAAAAAAAAAA' })],
  ['key-bad-chars', request({ 'sec-websocket-key': '!!!!!!!!!!!!!!!!!!!!!!==' })],
  ['key-twice', request({}, [`sec-websocket-key: ${CLIENT_KEY}`])],
  ['key-nbsp', request({ 'sec-websocket-key': `${CLIENT_KEY}\u00a0` })],
  ['no-version', request({ 'sec-websocket-version': null })],
  ['version-8', request({ 'sec-websocket-version': '8' })],
  ['version-13-twice', request({}, ['sec-websocket-version: 13'])],
  ['protocol-duplicate', request({}, ['sec-websocket-protocol: chat, chat'])],
  ['protocol-not-token', request({}, ['sec-websocket-protocol: a b;c'])],
  ['protocol-empty-elements', request({}, ['sec-websocket-protocol: , chat,, '])],
  ['extensions-malformed', request({}, ['sec-websocket-extensions: ;;;'])],
  ['extensions-unterminated-quote', request({}, ['sec-websocket-extensions: permessage-deflate; client_max_window_bits="10'])],
  ['extensions-crlf', request({}, ['sec-websocket-extensions: permessage-deflate\r'])],
  ['header-proto', request({}, ['__proto__: x', 'constructor: y'])],
]

const ACCEPT = modelAccept(CLIENT_KEY)
const RESPONSE = ['101', 'upgrade: websocket', 'connection: Upgrade', `sec-websocket-accept: ${ACCEPT}`]

function response(extra: string[] = [], replace: Record<string, string | null> = {}, first = '101'): string {
  const lines = [first]
  for (const line of RESPONSE.slice(1)) {
    const name = line.slice(0, line.indexOf(':'))
    if (name in replace) {
      if (replace[name] !== null) lines.push(`${name}: ${replace[name]}`)
    } else lines.push(line)
  }
  return [...lines, ...extra].join('\n')
}

const clientSeeds: Array<[string, string]> = [
  ['valid', response()],
  ['valid-protocol', response(['sec-websocket-protocol: chat'])],
  ['valid-deflate', response(['sec-websocket-extensions: permessage-deflate'])],
  ['valid-deflate-params', response(['sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=10'])],
  ['valid-two-extensions', response(['sec-websocket-extensions: permessage-deflate, x-custom'])],
  ['valid-accept-padded', response([], { 'sec-websocket-accept': ` ${ACCEPT} ` })],
  ['status-200', response([], {}, '200')],
  ['status-not-a-number', response([], {}, 'abc')],
  ['no-upgrade', response([], { upgrade: null })],
  ['no-connection', response([], { connection: null })],
  ['wrong-accept', response([], { 'sec-websocket-accept': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' })],
  ['accept-twice', response([`sec-websocket-accept: ${ACCEPT}`])],
  ['protocol-not-offered', response(['sec-websocket-protocol: other'])],
  ['protocol-none-offered', response(['sec-websocket-protocol: chat'], {}, '101 n')],
  ['protocol-twice', response(['sec-websocket-protocol: chat', 'sec-websocket-protocol: chat'])],
  ['extension-not-offered', response(['sec-websocket-extensions: x-other'])],
  ['extension-none-offered', response(['sec-websocket-extensions: permessage-deflate'], {}, '101 x')],
  ['extension-twice', response(['sec-websocket-extensions: permessage-deflate, permessage-deflate'])],
  ['extension-malformed', response(['sec-websocket-extensions: permessage-deflate;'])],
  ['deflate-bad-window', response(['sec-websocket-extensions: permessage-deflate; server_max_window_bits=16'])],
  ['deflate-client-window-no-value', response(['sec-websocket-extensions: permessage-deflate; client_max_window_bits'])],
]

const HANDSHAKE_WORDS = [
  'GET', 'POST', '1.1', '1.0', '2.0', 'host: ', 'upgrade: ', 'connection: ', 'sec-websocket-key: ', 'sec-websocket-version: ',
  'sec-websocket-protocol: ', 'sec-websocket-extensions: ', 'sec-websocket-accept: ', 'origin: ', 'websocket', 'Upgrade', 'keep-alive',
  '13', '8', CLIENT_KEY, ACCEPT, 'permessage-deflate', 'server_no_context_takeover', 'client_no_context_takeover',
  'server_max_window_bits', 'client_max_window_bits', '=15', '=8', '="10"', 'chat', 'superchat', 'x-custom', '101', '\n',
  '\nhost: a', '\nupgrade: websocket', '\nsec-websocket-key: ', '==', '/', 'h2c/1',
].map(latin1)

function pickLine(rng: Rng, lines: string[]): string {
  return rng.pick(lines)
}

export const serverHandshakeTarget: Target = {
  name: 'handshake-server',
  corpus: 'handshake-server',
  maxLength: 4096,
  text: true,
  dictionary: [...HANDSHAKE_WORDS, ...HEADER_EDGES],
  memoryBound: 1024 * 1024,
  seeds: () => serverSeeds.map(([name, text]) => [`seed-${name}.txt`, latin1(text)]),
  generate(rng) {
    // A valid request with a few lines replaced, duplicated or dropped.
    const lines = request().split('\n')
    const extra = ['sec-websocket-protocol: chat, superchat', 'sec-websocket-extensions: permessage-deflate; client_max_window_bits', 'origin: http://a.example']
    for (let i = 0; i < rng.int(4); i++) lines.push(pickLine(rng, extra))
    for (let i = 0; i < rng.int(3); i++) {
      const at = 1 + rng.int(lines.length - 1)
      if (rng.chance(0.5)) lines.splice(at, 1)
      else lines.push(lines[at]!)
    }
    return latin1(lines.join('\n'))
  },
  execute(input) {
    const req = decodeRequest(input)
    const result = measure(() => validateUpgradeRequest(req))
    if (result instanceof HandshakeError) checkServerError(result)
    checkServerModel(result, serverVerdicts(req))
    if (!(result instanceof HandshakeError)) checkServerToClient(result)
    if (result instanceof HandshakeError) return `${result.code}|${result.status}`
    const deflate = negotiateDeflate(result.extensions) !== undefined
    return `accept|p${Math.min(result.protocols.length, 2)}|e${Math.min(result.extensions.length, 2)}|${deflate ? 'deflate' : '-'}|${result.origin === undefined ? '-' : 'origin'}`
  },
  describe: (input) => JSON.stringify(decodeRequest(input)),
}

export const clientHandshakeTarget: Target = {
  name: 'handshake-client',
  corpus: 'handshake-client',
  maxLength: 4096,
  text: true,
  dictionary: [...HANDSHAKE_WORDS, ...HEADER_EDGES],
  memoryBound: 1024 * 1024,
  seeds: () => clientSeeds.map(([name, text]) => [`seed-${name}.txt`, latin1(text)]),
  execute(input) {
    const c = decodeResponse(input)
    const result = measure(() => verifyUpgradeResponse(c.response, c.offered))
    checkClientModel(c, result, clientVerdicts(c))
    if (result instanceof HandshakeError) return `${result.code}`
    let deflate = '-'
    for (const extension of result.extensions) {
      if (extension.name !== 'permessage-deflate') continue
      deflate = CLIENT_CONFIGS.map((options) => checkClientAcceptance(extension, options)[0]).join('')
    }
    return `accept|${result.protocol === '' ? '-' : 'p'}|e${result.extensions.length}|${deflate}`
  },
  describe: (input) => JSON.stringify(decodeResponse(input)),
}
