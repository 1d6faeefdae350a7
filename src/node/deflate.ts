/**
 * The `perMessageDeflate` option (ws-compatible, plus tether's memory
 * modes) and the negotiation of permessage-deflate under the process-wide
 * memory budget, for servers and clients.
 *
 * Theory of operation: `resolveDeflateOptions` turns the option into
 * negotiation knobs (core/deflate/negotiate.ts) and compression settings.
 * A server calls `acceptDeflate` with the client's offers; a client calls
 * `offerDeflate` before its request and `completeDeflate` with the answer.
 * Both consult the budget: when it has no room for the context a peer's
 * context takeover needs, they ask the peer not to take over context
 * (RFC 7692 §7.1.1), so the connection still compresses, statelessly.
 */
import type { ExtensionOffer } from '../core/handshake/headers.js'
import {
  type DeflateNegotiationOptions,
  type DeflateParameters,
  PERMESSAGE_DEFLATE,
  acceptDeflateResponse,
  checkDeflateOptions,
  deflateOffer,
  negotiateDeflate,
} from '../core/deflate/negotiate.js'
import type { Side } from '../core/writer.js'
import {
  type CompressionSettings,
  ZlibCodec,
  countTakeoverDeclined,
  inflaterCost,
  releaseMemory,
  reserveMemory,
} from './zlib-codec.js'

/** The `perMessageDeflate` option object: ws's fields, plus `mode`. */
export interface PerMessageDeflateOptions extends DeflateNegotiationOptions {
  /** Messages smaller than this are sent uncompressed. Default 1024 (as ws). */
  threshold?: number
  /** Accepted for ws compatibility; tether compresses synchronously, without a thread-pool queue. */
  concurrencyLimit?: number
  zlibDeflateOptions?: { level?: number; memLevel?: number; strategy?: number; windowBits?: number; chunkSize?: number }
  zlibInflateOptions?: { windowBits?: number; chunkSize?: number }
  /**
   * Memory mode (tether):
   * - 'default': context takeover as negotiated, dedicated contexts while the budget allows;
   * - 'shared': no context takeover either way, so a connection holds no zlib context at all
   *   (shared stateless compression; messages to many are compressed once);
   * - 'small': dedicated contexts with 9-bit windows and memLevel 1 (about 100 KiB per connection
   *   instead of about 240 KiB; Node's zlib keeps a 64 KiB hash table whatever memLevel says).
   */
  mode?: 'default' | 'shared' | 'small'
}

/** A resolved configuration, or undefined when compression is off. */
export interface DeflateConfig {
  negotiation: DeflateNegotiationOptions
  settings: CompressionSettings
}

export function resolveDeflateOptions(option: boolean | PerMessageDeflateOptions | undefined): DeflateConfig | undefined {
  if (!option) return undefined
  const options: PerMessageDeflateOptions = option === true ? {} : option
  const negotiation: DeflateNegotiationOptions = {
    serverNoContextTakeover: options.serverNoContextTakeover,
    clientNoContextTakeover: options.clientNoContextTakeover,
    serverMaxWindowBits: options.serverMaxWindowBits,
    clientMaxWindowBits: options.clientMaxWindowBits,
  }
  let memLevel = options.zlibDeflateOptions?.memLevel
  if (options.mode === 'shared') {
    negotiation.serverNoContextTakeover = true
    negotiation.clientNoContextTakeover = true
  } else if (options.mode === 'small') {
    negotiation.serverMaxWindowBits = Math.min(9, typeof negotiation.serverMaxWindowBits === 'number' ? negotiation.serverMaxWindowBits : 9)
    negotiation.clientMaxWindowBits = Math.min(9, typeof negotiation.clientMaxWindowBits === 'number' ? negotiation.clientMaxWindowBits : 9)
    memLevel ??= 1
  } else if (options.mode !== undefined && options.mode !== 'default') {
    throw new TypeError(`Invalid perMessageDeflate mode: ${String(options.mode)}`)
  }
  checkDeflateOptions(negotiation)
  return {
    negotiation,
    settings: {
      threshold: options.threshold ?? 1024,
      level: options.zlibDeflateOptions?.level,
      memLevel,
      strategy: options.zlibDeflateOptions?.strategy,
    },
  }
}

/** What a handshake agreed on: the parameters and a codec that owns the connection's contexts. */
export interface DeflateSession {
  parameters: DeflateParameters
  codec: ZlibCodec
}

/**
 * Server side: accepts the first acceptable offer (RFC 7692 §5), asking the
 * client not to take over context if the budget has no room for the
 * inflater that would need. Returns the session and the answer for the
 * Sec-WebSocket-Extensions header, or undefined to run without compression.
 */
export function acceptDeflate(
  offers: readonly ExtensionOffer[],
  config: DeflateConfig,
): { session: DeflateSession; response: ExtensionOffer } | undefined {
  let acceptance = negotiateDeflate(offers, config.negotiation)
  if (acceptance === undefined) return undefined
  let reservation = 0
  if (!acceptance.parameters.clientNoContextTakeover) {
    reservation = inflaterCost(acceptance.parameters.clientMaxWindowBits)
    if (!reserveMemory(reservation)) {
      countTakeoverDeclined()
      reservation = 0
      acceptance = negotiateDeflate(offers, { ...config.negotiation, clientNoContextTakeover: true })
      if (acceptance === undefined) return undefined
    }
  }
  const codec = new ZlibCodec('server', acceptance.parameters, config.settings, reservation)
  return { session: { parameters: acceptance.parameters, codec }, response: acceptance.response }
}

/** A client's pending offer: what to send, and the budget it reserved. */
export interface DeflateOfferState {
  offer: ExtensionOffer
  negotiation: DeflateNegotiationOptions
  reservation: number
  config: DeflateConfig
}

/** Client side: the offer to send, reserving the inflater the server's context takeover would need. */
export function offerDeflate(config: DeflateConfig): DeflateOfferState {
  let negotiation = config.negotiation
  let reservation = 0
  if (!negotiation.serverNoContextTakeover) {
    const windowBits = typeof negotiation.serverMaxWindowBits === 'number' ? negotiation.serverMaxWindowBits : 15
    reservation = inflaterCost(windowBits)
    if (!reserveMemory(reservation)) {
      countTakeoverDeclined()
      reservation = 0
      negotiation = { ...negotiation, serverNoContextTakeover: true }
    }
  }
  return { offer: deflateOffer(negotiation), negotiation, reservation, config }
}

/** Gives back what an offer reserved (the handshake failed, or the server declined compression). */
export function abandonDeflateOffer(state: DeflateOfferState): void {
  releaseMemory(state.reservation)
  state.reservation = 0
}

/**
 * Client side: checks the server's answer (RFC 7692 §7.1); a string says
 * why the connection must fail. Undefined `response`: compression declined.
 */
export function completeDeflate(
  state: DeflateOfferState,
  response: ExtensionOffer | undefined,
): DeflateSession | undefined | string {
  if (response === undefined) {
    abandonDeflateOffer(state)
    return undefined
  }
  const parameters = acceptDeflateResponse(response, state.negotiation)
  if (typeof parameters === 'string') {
    abandonDeflateOffer(state)
    return parameters
  }
  let reservation = state.reservation
  if (parameters.serverNoContextTakeover) {
    releaseMemory(reservation)
    reservation = 0
  } else {
    // The server may have chosen a smaller window than the one reserved for.
    const needed = inflaterCost(parameters.serverMaxWindowBits)
    releaseMemory(reservation - needed)
    reservation = needed
  }
  state.reservation = 0
  return { parameters, codec: new ZlibCodec('client' satisfies Side, parameters, state.config.settings, reservation) }
}

export { PERMESSAGE_DEFLATE }
