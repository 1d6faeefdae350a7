/**
 * ws's header helpers, `extension` and `subprotocol`, in the shapes ws
 * exports them, on top of tether's own parsers (core/handshake/headers.ts):
 * code written against `require('ws').extension.parse(...)` keeps working.
 *
 * Shapes: an extensions header parses to an object (no prototype) from each
 * extension name to the list of its offers, each offer an object (no
 * prototype) from a parameter name to the list of its values (`true` for a
 * parameter without a value). A malformed header throws a SyntaxError, as
 * with ws.
 */
import { parseExtensions, parseSubprotocols } from '../core/handshake/headers.js'

export type ExtensionParams = Record<string, Array<string | true>>
export type Extensions = Record<string, ExtensionParams[]>

/** Parses a Sec-WebSocket-Extensions value; throws a SyntaxError if it is malformed. */
function parse(header: string): Extensions {
  const offers = parseExtensions(header)
  if (offers === undefined) throw new SyntaxError(`Invalid Sec-WebSocket-Extensions header: ${header}`)
  const out: Extensions = Object.create(null)
  for (const offer of offers) {
    const params: ExtensionParams = Object.create(null)
    for (const [name, value] of offer.params) (params[name] ??= []).push(value)
    ;(out[offer.name] ??= []).push(params)
  }
  return out
}

/** Writes extensions (as `parse` gives them, or with single values instead of lists) back as a header value. */
function format(extensions: Record<string, Record<string, unknown> | Array<Record<string, unknown>>>): string {
  const parts: string[] = []
  for (const [name, offers] of Object.entries(extensions)) {
    for (const offer of Array.isArray(offers) ? offers : [offers]) {
      const pieces = [name]
      for (const [param, values] of Object.entries(offer)) {
        for (const value of Array.isArray(values) ? values : [values]) pieces.push(value === true ? param : `${param}=${String(value)}`)
      }
      parts.push(pieces.join('; '))
    }
  }
  return parts.join(', ')
}

/** ws's `extension` module: `parse` and `format` of Sec-WebSocket-Extensions. */
export const extension = { parse, format }

/** ws's `subprotocol` module: the protocols of a Sec-WebSocket-Protocol value as a Set; throws a SyntaxError if malformed. */
export const subprotocol = {
  parse(header: string): Set<string> {
    const protocols = parseSubprotocols(header)
    if (protocols === undefined) throw new SyntaxError(`Invalid Sec-WebSocket-Protocol header: ${header}`)
    return new Set(protocols)
  },
}
