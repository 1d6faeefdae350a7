/**
 * permessage-deflate negotiation as RFC 7692 §7.1 states it, for the
 * oracles: what makes an offer or a response acceptable, and the
 * properties an accepted negotiation must have. Independent of
 * src/core/deflate/negotiate.ts.
 */
import type { ModelExtension } from './header-model.js'

export interface ModelDeflateParams {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number | undefined
  /** true: present without a value. */
  clientMaxWindowBits: number | true | undefined
}

const KNOWN = ['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits']

/** §7.1.2.1: "a decimal integer value without leading zeroes between 8 to 15, inclusive". */
function windowBits(value: string | true): number | undefined {
  if (value === true) return undefined
  const n = Number(value)
  return /^[0-9]+$/.test(value) && String(n) === value && n >= 8 && n <= 15 ? n : undefined
}

/**
 * The parameters of an offer or response, or undefined when it must be
 * declined (§7.1: an unknown parameter, an invalid value, a parameter twice).
 */
export function modelReadParams(params: ReadonlyArray<readonly [string, string | true]>): ModelDeflateParams | undefined {
  const names = params.map(([name]) => name)
  if (new Set(names).size !== names.length || names.some((name) => !KNOWN.includes(name))) return undefined
  const out: ModelDeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  }
  for (const [name, value] of params) {
    if (name === 'server_no_context_takeover' || name === 'client_no_context_takeover') {
      if (value !== true) return undefined
      if (name === 'server_no_context_takeover') out.serverNoContextTakeover = true
      else out.clientNoContextTakeover = true
    } else if (name === 'server_max_window_bits') {
      const bits = windowBits(value)
      if (bits === undefined) return undefined
      out.serverMaxWindowBits = bits
    } else {
      if (value === true) out.clientMaxWindowBits = true
      else {
        const bits = windowBits(value)
        if (bits === undefined) return undefined
        out.clientMaxWindowBits = bits
      }
    }
  }
  return out
}

/** The client options (ws's perMessageDeflate shape) whose offer is `offer`. */
export function clientOptionsFor(offer: ModelDeflateParams): {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number | undefined
  clientMaxWindowBits: number | boolean
} {
  return {
    serverNoContextTakeover: offer.serverNoContextTakeover,
    clientNoContextTakeover: offer.clientNoContextTakeover,
    serverMaxWindowBits: offer.serverMaxWindowBits,
    clientMaxWindowBits: offer.clientMaxWindowBits ?? false,
  }
}

export function isDeflate(extension: ModelExtension): boolean {
  return extension.name === 'permessage-deflate'
}
