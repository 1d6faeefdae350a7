/**
 * Negotiation of permessage-deflate (RFC 7692 §5, §7.1) for both roles.
 *
 * Theory of operation: a client sends one offer built from its options; a
 * server walks the offers in the client's order and accepts the first one it
 * can honour, answering with the parameters both sides will use; the client
 * checks that answer against what it offered. The result, `DeflateParameters`,
 * is the same record on both sides.
 *
 * Rule 1 (server): an offer with an unknown parameter, an invalid value or a
 * duplicated parameter is declined, not fatal: "A server MUST decline an
 * extension negotiation offer for this extension if any of the following
 * conditions are met" (§7.1). Declining every offer means running without
 * compression, never refusing the handshake.
 * Rule 2 (client): an answer the client cannot accept fails the connection:
 * "a client MUST _Fail the WebSocket Connection_" (§7.1).
 * Rule 3: window sizes are "a decimal integer value without leading zeroes
 * between 8 to 15, inclusive" (§7.1.2.1).
 */
import type { ExtensionOffer } from '../handshake/headers.js'

export const PERMESSAGE_DEFLATE = 'permessage-deflate'

/** What both sides agreed to. Window bits are 15 when the parameter was absent. */
export interface DeflateParameters {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number
  clientMaxWindowBits: number
}

/**
 * The negotiation knobs, with the names and meanings of ws's `perMessageDeflate` options.
 * - `serverNoContextTakeover`: true, the server resets its compressor after every message (and says so);
 *   false, a server declines offers asking it to; undefined, the client decides.
 * - `clientNoContextTakeover`: true, the client resets its compressor after every message (server: asks for it).
 * - `serverMaxWindowBits`: a number caps the server's window; false declines offers that cap it.
 * - `clientMaxWindowBits`: a number caps the client's window (a server declines offers that do not let it);
 *   true (client) offers the parameter without a value, so the server may cap it.
 */
export interface DeflateNegotiationOptions {
  serverNoContextTakeover?: boolean
  clientNoContextTakeover?: boolean
  serverMaxWindowBits?: boolean | number
  clientMaxWindowBits?: boolean | number
}

const MAX_WINDOW_BITS = 15

/** Parses a window-bits value (Rule 3); undefined if invalid. */
function parseWindowBits(value: string | true): number | undefined {
  if (value === true || !/^(?:8|9|1[0-5])$/.test(value)) return undefined
  return Number(value)
}

/** Checks a configured window size; throws RangeError for values outside 8-15. */
function checkWindowOption(name: string, value: boolean | number | undefined): void {
  if (typeof value === 'number' && !(Number.isInteger(value) && value >= 8 && value <= MAX_WINDOW_BITS)) {
    throw new RangeError(`Invalid value for ${name}: ${value} (must be an integer from 8 to 15)`)
  }
}

/** Validates permessage-deflate options (called when a server or client is configured). */
export function checkDeflateOptions(options: DeflateNegotiationOptions): void {
  checkWindowOption('serverMaxWindowBits', options.serverMaxWindowBits)
  checkWindowOption('clientMaxWindowBits', options.clientMaxWindowBits)
}

/** An offer's or answer's parameters, each at most once and well-formed; undefined otherwise. */
interface ReceivedParameters {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  /** Undefined when absent. */
  serverMaxWindowBits: number | undefined
  /** Undefined when absent, true when present without a value. */
  clientMaxWindowBits: number | true | undefined
}

function readParameters(params: ExtensionOffer['params']): ReceivedParameters | undefined {
  const seen = new Set<string>()
  const out: ReceivedParameters = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  }
  for (const [name, value] of params) {
    if (seen.has(name)) return undefined
    seen.add(name)
    switch (name) {
      case 'server_no_context_takeover':
        if (value !== true) return undefined
        out.serverNoContextTakeover = true
        break
      case 'client_no_context_takeover':
        if (value !== true) return undefined
        out.clientNoContextTakeover = true
        break
      case 'server_max_window_bits': {
        const bits = parseWindowBits(value)
        if (bits === undefined) return undefined
        out.serverMaxWindowBits = bits
        break
      }
      case 'client_max_window_bits': {
        if (value === true) {
          out.clientMaxWindowBits = true
          break
        }
        const bits = parseWindowBits(value)
        if (bits === undefined) return undefined
        out.clientMaxWindowBits = bits
        break
      }
      default:
        return undefined
    }
  }
  return out
}

function toParams(agreed: DeflateParameters, includeClientWindow: boolean, includeServerWindow: boolean): ExtensionOffer {
  const params: ExtensionOffer['params'] = []
  if (agreed.serverNoContextTakeover) params.push(['server_no_context_takeover', true])
  if (agreed.clientNoContextTakeover) params.push(['client_no_context_takeover', true])
  if (includeServerWindow) params.push(['server_max_window_bits', String(agreed.serverMaxWindowBits)])
  if (includeClientWindow) params.push(['client_max_window_bits', String(agreed.clientMaxWindowBits)])
  return { name: PERMESSAGE_DEFLATE, params }
}

/** The server's choice: the agreed parameters and the answer to put in Sec-WebSocket-Extensions. */
export interface DeflateAcceptance {
  parameters: DeflateParameters
  response: ExtensionOffer
}

/**
 * Server side: accepts the first acceptable permessage-deflate offer among
 * `offers` (other extensions are skipped), or returns undefined (Rule 1).
 */
export function negotiateDeflate(
  offers: readonly ExtensionOffer[],
  options: DeflateNegotiationOptions = {},
): DeflateAcceptance | undefined {
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue
    const received = readParameters(offer.params)
    if (received === undefined) continue
    // The server insists on keeping its context but the client asks it not to.
    if (options.serverNoContextTakeover === false && received.serverNoContextTakeover) continue
    // §7.1.2.1: the client caps the server's window; a server configured not to be capped declines.
    if (options.serverMaxWindowBits === false && received.serverMaxWindowBits !== undefined) continue
    // §7.1.2.2: "If a received extension negotiation offer doesn't have the client_max_window_bits
    // extension parameter, the corresponding extension negotiation response to the offer MUST NOT
    // include the client_max_window_bits extension parameter." A server that needs to cap the
    // client's window (to bound its own inflate memory) must decline such an offer.
    const clientCap = typeof options.clientMaxWindowBits === 'number' ? options.clientMaxWindowBits : undefined
    if (clientCap !== undefined && received.clientMaxWindowBits === undefined) continue

    const serverCap = typeof options.serverMaxWindowBits === 'number' ? options.serverMaxWindowBits : MAX_WINDOW_BITS
    const serverMaxWindowBits = Math.min(serverCap, received.serverMaxWindowBits ?? MAX_WINDOW_BITS)
    const offeredClientBits = typeof received.clientMaxWindowBits === 'number' ? received.clientMaxWindowBits : MAX_WINDOW_BITS
    const clientMaxWindowBits = Math.min(clientCap ?? MAX_WINDOW_BITS, offeredClientBits)
    const parameters: DeflateParameters = {
      // §7.1.1.1: "A server accepting an extension negotiation offer with this parameter MUST include
      // the server_no_context_takeover extension parameter in the extension negotiation response".
      serverNoContextTakeover: received.serverNoContextTakeover || options.serverNoContextTakeover === true,
      // §7.1.1.2: the server may ask the client not to take over context; a client's hint is honoured.
      clientNoContextTakeover: received.clientNoContextTakeover || options.clientNoContextTakeover === true,
      serverMaxWindowBits,
      clientMaxWindowBits,
    }
    const includeServerWindow = received.serverMaxWindowBits !== undefined || serverCap < MAX_WINDOW_BITS
    const includeClientWindow =
      received.clientMaxWindowBits !== undefined && (clientCap !== undefined || typeof received.clientMaxWindowBits === 'number')
    return { parameters, response: toParams(parameters, includeClientWindow, includeServerWindow) }
  }
  return undefined
}

/** Client side: the offer to send for `options`. */
export function deflateOffer(options: DeflateNegotiationOptions = {}): ExtensionOffer {
  const params: ExtensionOffer['params'] = []
  if (options.serverNoContextTakeover) params.push(['server_no_context_takeover', true])
  if (options.clientNoContextTakeover) params.push(['client_no_context_takeover', true])
  if (typeof options.serverMaxWindowBits === 'number') {
    params.push(['server_max_window_bits', String(options.serverMaxWindowBits)])
  }
  if (typeof options.clientMaxWindowBits === 'number') {
    params.push(['client_max_window_bits', String(options.clientMaxWindowBits)])
  } else if (options.clientMaxWindowBits !== false) {
    // Offering the parameter without a value lets the server cap our window (§7.1.2.2).
    params.push(['client_max_window_bits', true])
  }
  return { name: PERMESSAGE_DEFLATE, params }
}

/**
 * Client side: checks the server's answer against the offer made with
 * `options`. Returns the agreed parameters, or a message saying why the
 * connection must fail (Rule 2).
 */
export function acceptDeflateResponse(
  response: ExtensionOffer,
  options: DeflateNegotiationOptions = {},
): DeflateParameters | string {
  const received = readParameters(response.params)
  if (received === undefined) return 'Invalid permessage-deflate parameters in the server response'
  const offer = readParameters(deflateOffer(options).params)!
  if (offer.serverNoContextTakeover && !received.serverNoContextTakeover) {
    return 'The server did not accept server_no_context_takeover'
  }
  if (received.serverMaxWindowBits !== undefined && offer.serverMaxWindowBits !== undefined &&
    received.serverMaxWindowBits > offer.serverMaxWindowBits) {
    return 'The server answered a larger server_max_window_bits than offered'
  }
  if (offer.serverMaxWindowBits !== undefined && received.serverMaxWindowBits === undefined) {
    return 'The server did not accept server_max_window_bits'
  }
  if (received.clientMaxWindowBits !== undefined) {
    // §7.1.2.2: a response may carry it only if the offer did, and then with a value.
    if (offer.clientMaxWindowBits === undefined) return 'The server answered client_max_window_bits, which was not offered'
    if (received.clientMaxWindowBits === true) return 'client_max_window_bits in a response needs a value'
    if (typeof offer.clientMaxWindowBits === 'number' && received.clientMaxWindowBits > offer.clientMaxWindowBits) {
      return 'The server answered a larger client_max_window_bits than offered'
    }
  }
  const ownClientBits = typeof offer.clientMaxWindowBits === 'number' ? offer.clientMaxWindowBits : MAX_WINDOW_BITS
  return {
    serverNoContextTakeover: received.serverNoContextTakeover,
    clientNoContextTakeover: received.clientNoContextTakeover || options.clientNoContextTakeover === true,
    serverMaxWindowBits: received.serverMaxWindowBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: typeof received.clientMaxWindowBits === 'number' ? received.clientMaxWindowBits : ownClientBits,
  }
}
