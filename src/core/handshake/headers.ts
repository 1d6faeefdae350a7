/**
 * The grammar of the handshake's list headers (RFC 6455 §4.3, §9.1; RFC 7230
 * §3.2.6 and §7).
 *
 *   Sec-WebSocket-Extensions = 1#extension
 *   extension       = extension-token *( OWS ";" OWS extension-param )
 *   extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
 *   Sec-WebSocket-Protocol   = 1#token
 *
 * Theory of operation: every parser here is a single left-to-right scan with
 * a fixed amount of state per character: no regular expressions, no
 * backtracking, so the time to reject a hostile header is linear in its
 * length (ws had a ReDoS in 2021 and a DoS in its extension parser in 2017).
 *
 * Rule 1: "a recipient MUST accept and ignore a reasonable number of empty
 * list elements" (RFC 7230 §7), so `a, , b` is the list `a, b`.
 * Rule 2: a quoted parameter value must still be a token once unescaped
 * (RFC 6455 §9.1).
 * Rule 3: a parse failure returns `undefined`; the caller picks the status.
 */

/**
 * A list header as Node presents it: one string, several, or absent; or a
 * number, as in requests built by hand (test injectors such as fastify's
 * `injectWS` set `'sec-websocket-version': 13`), read as its decimal text.
 */
export type HeaderValue = string | readonly string[] | number | undefined

/** tchar of RFC 7230 §3.2.6, indexed by character code. */
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1

/** Whether a character code is a tchar of RFC 7230 §3.2.6. */
export function isTchar(code: number): boolean {
  return code < 128 && TCHAR[code] === 1
}

/** Whether `text` is a non-empty RFC 7230 token. */
export function isToken(text: string): boolean {
  if (text.length === 0) return false
  for (let i = 0; i < text.length; i++) if (!isTchar(text.charCodeAt(i))) return false
  return true
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/**
 * How many times the field `lowerName` (lower case) occurs in `rawHeaders`
 * (names and values alternating, as Node's `rawHeaders`), counting up to
 * `stopAt`: where a repeat shows that `headers` folded away.
 */
export function countRawField(rawHeaders: readonly string[], lowerName: string, stopAt = Infinity): number {
  let count = 0
  for (let i = 0; i < rawHeaders.length && count < stopAt; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) count++
  }
  return count
}

/** Joins repeated header lines into one list, as RFC 7230 §3.2.2 allows. */
export function joinHeader(value: HeaderValue): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  return value.join(', ')
}

/**
 * Parses a comma-separated list of tokens (Sec-WebSocket-Protocol, Upgrade,
 * Connection). Returns undefined if an element is not a token.
 */
export function parseTokenList(value: HeaderValue): string[] | undefined {
  const text = joinHeader(value)
  if (text === undefined) return []
  const tokens: string[] = []
  let start = -1
  let end = -1
  let trailing = false
  for (let i = 0; i <= text.length; i++) {
    const code = i < text.length ? text.charCodeAt(i) : 0x2c
    if (code === 0x2c) {
      if (start !== -1) tokens.push(text.slice(start, end + 1))
      start = end = -1
      trailing = false
    } else if (isOws(code)) {
      if (start !== -1) trailing = true
    } else if (isTchar(code)) {
      // Whitespace is allowed only around elements, never inside one.
      if (trailing) return undefined
      if (start === -1) start = i
      end = i
    } else {
      return undefined
    }
  }
  return tokens
}

/** Whether a token list header contains `token`, compared ASCII case-insensitively. */
export function hasToken(value: HeaderValue, token: string): boolean {
  const tokens = parseTokenList(value)
  if (tokens === undefined) return false
  const wanted = token.toLowerCase()
  return tokens.some((t) => t.toLowerCase() === wanted)
}

/**
 * Parses Sec-WebSocket-Protocol. Subprotocol names are case-sensitive
 * (RFC 6455 §11.3.4); a name offered twice makes the header invalid.
 */
export function parseSubprotocols(value: HeaderValue): string[] | undefined {
  const tokens = parseTokenList(value)
  if (tokens === undefined) return undefined
  if (new Set(tokens).size !== tokens.length) return undefined
  return tokens
}

/** One extension offered or accepted, with its parameters in order. A parameter without a value is `true`. */
export interface ExtensionOffer {
  name: string
  params: Array<[name: string, value: string | true]>
}

/** Parses Sec-WebSocket-Extensions into its offers, in order; undefined if malformed. */
export function parseExtensions(value: HeaderValue): ExtensionOffer[] | undefined {
  const text = joinHeader(value)
  if (text === undefined) return []
  const offers: ExtensionOffer[] = []
  const length = text.length
  let i = 0

  const skipOws = (): void => {
    while (i < length && isOws(text.charCodeAt(i))) i++
  }
  const readToken = (): string | undefined => {
    const start = i
    while (i < length && isTchar(text.charCodeAt(i))) i++
    return i > start ? text.slice(start, i) : undefined
  }
  const readQuoted = (): string | undefined => {
    // At the opening quote. quoted-pair is "\" followed by any visible character.
    i++
    let out = ''
    while (i < length) {
      const code = text.charCodeAt(i)
      if (code === 0x22) {
        i++
        return out
      }
      if (code === 0x5c) {
        i++
        if (i >= length) return undefined
      }
      out += text[i]
      i++
    }
    return undefined
  }

  while (i < length) {
    skipOws()
    if (i >= length) break
    if (text.charCodeAt(i) === 0x2c) {
      i++ // Rule 1: an empty element.
      continue
    }
    const name = readToken()
    if (name === undefined) return undefined
    const offer: ExtensionOffer = { name, params: [] }
    skipOws()
    while (i < length && text.charCodeAt(i) === 0x3b) {
      i++
      skipOws()
      const param = readToken()
      if (param === undefined) return undefined
      skipOws()
      let paramValue: string | true = true
      if (i < length && text.charCodeAt(i) === 0x3d) {
        i++
        skipOws()
        const quoted = i < length && text.charCodeAt(i) === 0x22
        const raw = quoted ? readQuoted() : readToken()
        // Rule 2: the unescaped value must be a token either way.
        if (raw === undefined || !isToken(raw)) return undefined
        paramValue = raw
        skipOws()
      }
      offer.params.push([param, paramValue])
    }
    if (i < length && text.charCodeAt(i) !== 0x2c) return undefined
    offers.push(offer)
  }
  return offers
}

/** Serializes extension offers or responses; values that are not tokens are quoted. */
export function serializeExtensions(offers: readonly ExtensionOffer[]): string {
  return offers
    .map(({ name, params }) => {
      let out = name
      for (const [param, value] of params) {
        out += `; ${param}`
        if (value !== true) out += `=${isToken(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`}`
      }
      return out
    })
    .join(', ')
}
