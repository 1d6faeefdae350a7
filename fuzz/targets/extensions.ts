/**
 * Fuzz target for the Sec-WebSocket-Extensions parser and what is built on
 * it: serializeExtensions, negotiateDeflate (server) and
 * acceptDeflateResponse (client), plus the token lists of
 * Sec-WebSocket-Protocol on the same text.
 *
 * An input is a header value (latin1); each "\n" starts another field line
 * of the same header, so the parser sees an array.
 *
 * ORACLES:
 * - no exception; linear time (HANG_MS, and the slowest input is
 *   reported);
 * - `checkParse`: parseExtensions agrees with the reference grammar
 *   (header-model.ts), and parseTokenList/parseSubprotocols with the
 *   reference token list;
 * - `checkRoundTrip`: a value that parses re-serializes to one line of
 *   header-safe characters that parses to the same offers, and
 *   serializing again gives the same text;
 * - `checkNegotiation`: for several server configurations, negotiateDeflate
 *   accepts exactly the first permessage-deflate offer RFC 7692 §7.1 lets
 *   it accept, its response honours the offer (§7.1.1.1, §7.1.2.1,
 *   §7.1.2.2) and the configuration, and a client that made that offer
 *   accepts the response and derives the same parameters;
 * - `checkClientAcceptance`: acceptDeflateResponse, given each parsed
 *   permessage-deflate element as a server's answer, accepts it exactly
 *   when the reference does, with the same parameters.
 */
import {
  type DeflateNegotiationOptions,
  type DeflateParameters,
  acceptDeflateResponse,
  negotiateDeflate,
} from '../../src/core/deflate/negotiate.js'
import { type ExtensionOffer, type HeaderValue, parseExtensions, parseSubprotocols, parseTokenList, serializeExtensions } from '../../src/core/handshake/headers.js'
import { HEADER_EDGES, latin1 } from '../mutate.js'
import { check, measure, type Target } from '../oracle.js'
import { type ModelDeflateParams, clientOptionsFor, isDeflate, modelReadParams } from './deflate-model.js'
import { type ModelExtension, modelParseExtensions, modelTokenList } from './header-model.js'

export function decodeValue(input: Uint8Array): HeaderValue {
  const text = Buffer.from(input).toString('latin1')
  const lines = text.split('\n')
  return lines.length === 1 ? text : lines
}

const show = (value: unknown): string => JSON.stringify(value)

export function checkParse(value: HeaderValue, parsed: ExtensionOffer[] | undefined): void {
  const expected = modelParseExtensions(value)
  check(show(parsed) === show(expected), 'extensions-model', () => `parseExtensions(${show(value)}) = ${show(parsed)}, the grammar gives ${show(expected)}`)
  const tokens = parseTokenList(value)
  const expectedTokens = modelTokenList(value)
  check(show(tokens) === show(expectedTokens), 'token-list-model', () => `parseTokenList(${show(value)}) = ${show(tokens)}, the grammar gives ${show(expectedTokens)}`)
  const protocols = parseSubprotocols(value)
  const expectedProtocols = expectedTokens !== undefined && new Set(expectedTokens).size === expectedTokens.length ? expectedTokens : undefined
  check(show(protocols) === show(expectedProtocols), 'token-list-model', () => `parseSubprotocols(${show(value)}) = ${show(protocols)}, expected ${show(expectedProtocols)}`)
}

export function checkRoundTrip(parsed: ExtensionOffer[]): void {
  const text = serializeExtensions(parsed)
  check(/^[\x20-\x7e]*$/.test(text), 'round-trip', `serializeExtensions produced a character that is not header-safe: ${show(text)}`)
  const again = parseExtensions(text)
  check(show(again) === show(parsed), 'round-trip', () => `${show(parsed)} serializes to ${show(text)}, which parses to ${show(again)}`)
  check(serializeExtensions(again!) === text, 'round-trip', `serializing ${show(text)} again gives another text`)
}

/** Server configurations tried on every input (ws's perMessageDeflate shapes). */
export const SERVER_CONFIGS: readonly DeflateNegotiationOptions[] = [
  {},
  { serverNoContextTakeover: true },
  { clientNoContextTakeover: true, clientMaxWindowBits: 10 },
  { serverMaxWindowBits: 9 },
  { serverMaxWindowBits: false, serverNoContextTakeover: false },
  { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
]

/** Whether a server configured with `options` may accept a valid offer (RFC 7692 §7.1, ws's option meanings). */
function serverMayAccept(offer: ModelDeflateParams, options: DeflateNegotiationOptions): boolean {
  if (options.serverNoContextTakeover === false && offer.serverNoContextTakeover) return false
  if (options.serverMaxWindowBits === false && offer.serverMaxWindowBits !== undefined) return false
  // §7.1.2.2: without client_max_window_bits in the offer the response cannot cap the client's window.
  if (typeof options.clientMaxWindowBits === 'number' && offer.clientMaxWindowBits === undefined) return false
  return true
}

/** `result` is what negotiateDeflate(offers, options) answered (a test hands in wrong ones). */
export function checkNegotiation(offers: ExtensionOffer[], options: DeflateNegotiationOptions, result: ReturnType<typeof negotiateDeflate>): void {
  const candidate = offers
    .filter(isDeflate)
    .map((offer) => modelReadParams(offer.params))
    .find((params): params is ModelDeflateParams => params !== undefined && serverMayAccept(params, options))
  const where = `negotiateDeflate(${show(offers)}, ${show(options)})`
  if (candidate === undefined) {
    check(result === undefined, 'negotiation', () => `${where} accepted ${show(result)}; no offer is acceptable`)
    return
  }
  check(result !== undefined, 'negotiation', `${where} declined the acceptable offer ${show(candidate)}`)
  const { parameters, response } = result
  check(response.name === 'permessage-deflate', 'negotiation', `${where} answered ${response.name}`)
  const answer = modelReadParams(response.params)
  check(answer !== undefined, 'negotiation', () => `${where} answered invalid parameters ${show(response.params)}`)
  // §7.1.1.1: "MUST include the server_no_context_takeover extension parameter in the ... response".
  if (candidate.serverNoContextTakeover || options.serverNoContextTakeover === true) {
    check(answer.serverNoContextTakeover, 'negotiation', `${where} dropped server_no_context_takeover`)
  }
  if (options.clientNoContextTakeover === true) check(answer.clientNoContextTakeover, 'negotiation', `${where} did not ask for client_no_context_takeover`)
  // §7.1.2.1: "MUST include the server_max_window_bits ... with the same or smaller value as the offer".
  if (candidate.serverMaxWindowBits !== undefined) {
    check(answer.serverMaxWindowBits !== undefined && answer.serverMaxWindowBits <= candidate.serverMaxWindowBits, 'negotiation', `${where} answered server_max_window_bits ${answer.serverMaxWindowBits}`)
  }
  if (typeof options.serverMaxWindowBits === 'number') {
    check(parameters.serverMaxWindowBits <= options.serverMaxWindowBits, 'negotiation', `${where} lets the server use ${parameters.serverMaxWindowBits} window bits`)
  }
  // §7.1.2.2: "MUST NOT include the client_max_window_bits" if the offer did not.
  if (candidate.clientMaxWindowBits === undefined) check(answer.clientMaxWindowBits === undefined, 'negotiation', `${where} answered client_max_window_bits not offered`)
  if (answer.clientMaxWindowBits !== undefined) check(answer.clientMaxWindowBits !== true, 'negotiation', `${where} answered client_max_window_bits without a value`)
  if (typeof candidate.clientMaxWindowBits === 'number') {
    check(parameters.clientMaxWindowBits <= candidate.clientMaxWindowBits, 'negotiation', `${where} lets the client use more window bits than it offered`)
  }
  if (typeof options.clientMaxWindowBits === 'number') {
    check(parameters.clientMaxWindowBits <= options.clientMaxWindowBits, 'negotiation', `${where} lets the client use ${parameters.clientMaxWindowBits} window bits`)
  }
  for (const bits of [parameters.serverMaxWindowBits, parameters.clientMaxWindowBits]) {
    check(Number.isInteger(bits) && bits >= 8 && bits <= 15, 'negotiation', `${where} agreed on ${bits} window bits`)
  }
  // The parameters are what the response says.
  check(parameters.serverNoContextTakeover === answer.serverNoContextTakeover && parameters.clientNoContextTakeover === answer.clientNoContextTakeover, 'negotiation', () => `${where}: parameters ${show(parameters)} do not match the response ${show(response)}`)
  // Both sides agree.
  const client = acceptDeflateResponse(response, clientOptionsFor(candidate))
  check(typeof client !== 'string', 'negotiation', () => `${where}: the client that offered ${show(candidate)} refuses ${show(response)}: ${client as string}`)
  check(show(client) === show(parameters), 'negotiation', () => `${where}: client ${show(client)} and server ${show(parameters)} disagree`)
}

/** Client configurations tried on every permessage-deflate answer. */
export const CLIENT_CONFIGS: readonly DeflateNegotiationOptions[] = [
  {},
  { serverNoContextTakeover: true, clientNoContextTakeover: true },
  { serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
  { clientMaxWindowBits: false },
]

/** What a client that offered according to `options` must conclude from `response` (RFC 7692 §7.1). */
export function modelClientAcceptance(response: ModelExtension, options: DeflateNegotiationOptions): DeflateParameters | undefined {
  const r = modelReadParams(response.params)
  if (r === undefined) return undefined
  const offeredClientBits = typeof options.clientMaxWindowBits === 'number' ? options.clientMaxWindowBits : options.clientMaxWindowBits === false ? undefined : true
  // §7.1.1.1: a client that asked for server_no_context_takeover needs it in the response.
  if (options.serverNoContextTakeover && !r.serverNoContextTakeover) return undefined
  // §7.1.2.1: the server's window must be the offered one or smaller, and present if offered.
  if (typeof options.serverMaxWindowBits === 'number') {
    if (r.serverMaxWindowBits === undefined || r.serverMaxWindowBits > options.serverMaxWindowBits) return undefined
  }
  // §7.1.2.2: client_max_window_bits only if offered, with a value, not above the offer.
  if (r.clientMaxWindowBits !== undefined) {
    if (offeredClientBits === undefined || r.clientMaxWindowBits === true) return undefined
    if (typeof offeredClientBits === 'number' && r.clientMaxWindowBits > offeredClientBits) return undefined
  }
  return {
    serverNoContextTakeover: r.serverNoContextTakeover,
    clientNoContextTakeover: r.clientNoContextTakeover || options.clientNoContextTakeover === true,
    serverMaxWindowBits: r.serverMaxWindowBits ?? 15,
    clientMaxWindowBits: typeof r.clientMaxWindowBits === 'number' ? r.clientMaxWindowBits : typeof offeredClientBits === 'number' ? offeredClientBits : 15,
  }
}

export function checkClientAcceptance(
  response: ExtensionOffer,
  options: DeflateNegotiationOptions,
  result: DeflateParameters | string = acceptDeflateResponse(response, options),
): string {
  const expected = modelClientAcceptance(response, options)
  const where = `acceptDeflateResponse(${show(response)}, ${show(options)})`
  if (expected === undefined) {
    check(typeof result === 'string', 'client-acceptance', () => `${where} accepted ${show(result)}; RFC 7692 §7.1 says fail`)
    return 'refused'
  }
  check(typeof result !== 'string', 'client-acceptance', () => `${where} refused (${result as string}); expected ${show(expected)}`)
  check(show(result) === show(expected), 'client-acceptance', () => `${where} = ${show(result)}, expected ${show(expected)}`)
  return 'agreed'
}

const WORDS = [
  'permessage-deflate', 'x-webkit-deflate-frame', 'server_no_context_takeover', 'client_no_context_takeover',
  'server_max_window_bits', 'client_max_window_bits', '=8', '=9', '=10', '=15', '=16', '=7', '=08', '="10"', '="1\\0"', '=""',
  '; ', ', ', ';', ',', '=', '"', '\\', ' ', '\t', 'foo', 'bar=baz', '\n', 'permessage-deflate; client_max_window_bits, ',
].map(latin1)

const SEEDS: Array<[string, string]> = [
  ['deflate', 'permessage-deflate'],
  ['deflate-client-bits', 'permessage-deflate; client_max_window_bits'],
  ['deflate-all-params', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9'],
  ['deflate-two-offers', 'permessage-deflate; server_max_window_bits=8, permessage-deflate'],
  ['deflate-quoted-bits', 'permessage-deflate; client_max_window_bits="10"'],
  ['deflate-quoted-escaped', 'permessage-deflate; client_max_window_bits="1\\0"'],
  ['deflate-bits-16', 'permessage-deflate; server_max_window_bits=16'],
  ['deflate-bits-7', 'permessage-deflate; client_max_window_bits=7'],
  ['deflate-bits-leading-zero', 'permessage-deflate; server_max_window_bits=08'],
  ['deflate-duplicate-param', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
  ['deflate-unknown-param', 'permessage-deflate; foo=bar'],
  ['deflate-takeover-with-value', 'permessage-deflate; server_no_context_takeover=1'],
  ['ows-everywhere', ' permessage-deflate ;\tclient_max_window_bits = 10 , x-foo '],
  ['empty-elements', ', , permessage-deflate,,'],
  ['two-lines', 'x-foo; a=1\npermessage-deflate'],
  ['other-extensions', 'x-webkit-deflate-frame, foo; bar="baz"; qux'],
  ['empty', ''],
  ['only-semicolons', ';;;'],
  ['trailing-semicolon', 'permessage-deflate;'],
  ['param-without-name', 'permessage-deflate; =1'],
  ['value-missing', 'permessage-deflate; client_max_window_bits='],
  ['quoted-not-token', 'foo; bar="a b"'],
  ['quoted-comma', 'foo; bar="a,b", baz'],
  ['unterminated-quote', 'foo; bar="abc'],
  ['backslash-at-end', 'foo; bar="abc\\'],
  ['name-quoted', '"permessage-deflate"'],
  ['space-in-name', 'permessage deflate'],
  ['non-ascii', 'permessage-deflate; x=\u00e9'],
  ['crlf', 'permessage-deflate\r\nx-injected: 1'],
  ['nul', 'permessage-deflate\u0000'],
  ['long-list', Array.from({ length: 200 }, (_, i) => `ext${i}; p${i}=${i}`).join(', ')],
  ['long-quoted', `foo; bar="${'a'.repeat(2000)}`],
  ['many-semicolons-ows', `foo${' ;'.repeat(1000)}`],
]

export const extensionsTarget: Target = {
  name: 'extensions',
  corpus: 'extensions',
  maxLength: 8192,
  text: true,
  dictionary: [...WORDS, ...HEADER_EDGES],
  memoryBound: 1024 * 1024,
  seeds: () => SEEDS.map(([name, text]) => [`seed-${name}.txt`, latin1(text)]),
  execute(input) {
    const value = decodeValue(input)
    const parsed = measure(() => parseExtensions(value))
    checkParse(value, parsed)
    if (parsed === undefined) return 'invalid'
    checkRoundTrip(parsed)
    const accepted: string[] = []
    for (const options of SERVER_CONFIGS) {
      const result = measure(() => negotiateDeflate(parsed, options))
      checkNegotiation(parsed, options, result)
      accepted.push(result === undefined ? '0' : '1')
    }
    const answers: string[] = []
    for (const extension of parsed.filter(isDeflate).slice(0, 4)) {
      for (const options of CLIENT_CONFIGS) answers.push(checkClientAcceptance(extension, options) === 'agreed' ? 'a' : 'r')
    }
    const known = ['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits']
    const params = new Set(parsed.flatMap((e) => e.params.map(([name, v]) => `${known.includes(name) ? name : 'other'}${v === true ? '' : '='}`)))
    return `ok|n${Math.min(parsed.length, 3)}|${accepted.join('')}|${[...new Set(answers)].sort().join('')}|${[...params].sort().join(',')}`
  },
  describe: (input) => JSON.stringify(decodeValue(input)),
}
