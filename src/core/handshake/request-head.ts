/**
 * Parsing an HTTP/1.1 request head from bytes (RFC 7230 §3), for servers
 * that own their port and do not need Node's HTTP server for the upgrade.
 *
 * Theory of operation: bytes are accumulated until the blank line that ends
 * the head ("CRLF CRLF"), within a size limit; the head is then split into
 * the request line and header fields in one pass. Header values are kept the
 * way Node's HTTP server presents them (lower-case names; repeated fields
 * joined with ", ", cookies with "; ", set-cookie as a list), so server code
 * written against `IncomingMessage.headers` reads them unchanged.
 *
 * Rule 1: a head larger than `maxHeadSize` is refused with 431 as soon as the
 * limit is passed, without waiting for its end; more than `maxHeaders` fields
 * is 431 too.
 * Rule 2: anything that is not a well-formed request line or field is 400.
 * Lines end with CRLF: a recipient "MAY recognize a single LF" (RFC 9112
 * §2.2), and Node's parser does not, so neither does this one (the same
 * request gets the same answer on every path); a CR elsewhere is refused too.
 * A CR that does not end a line is refused as soon as it is seen. Obsolete
 * line folding is refused (§3.2.4). Empty lines before the request line are
 * skipped, as a server SHOULD (RFC 9112 §2.2), and as Node's parser does, any
 * mix of CR and LF.
 * Rule 3: a field name is a token and has no whitespace before its colon
 * (§3.2.4: "No whitespace is allowed between the header field-name and colon").
 */
import { isTchar, isToken } from './headers.js'

export interface RequestHead {
  method: string
  /** The request-target, as sent (e.g. "/chat?room=1"). */
  url: string
  /** "1.1" for HTTP/1.1. */
  httpVersion: string
  /** Lower-case names, values joined as Node's HTTP server does. */
  headers: Record<string, string | string[]>
  /** Names and values as received, alternating (Node's `rawHeaders`). */
  rawHeaders: string[]
}

export type RequestHeadResult =
  | { state: 'incomplete' }
  | { state: 'done'; head: RequestHead; consumed: number }
  | { state: 'error'; status: 400 | 431; message: string }

export interface RequestHeadLimits {
  /** Bytes of request line and fields, default 16 KiB (Node's default). */
  maxHeadSize?: number
  /** Header fields, default 100. */
  maxHeaders?: number
}

/** Node discards repeats of these instead of joining them (IncomingMessage `_addHeaderLine`). */
const SINGLE = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer',
  'retry-after', 'server', 'user-agent',
])

/** ASCII heads (nearly all) are decoded natively; obs-text falls back to a latin1 loop. */
const asciiDecoder = new TextDecoder()

/**
 * Looks for a whole request head at the start of `bytes`. `bytes` is all that
 * was received so far on the connection.
 *
 * One pass over the decoded head, by index: no split lines, no regular
 * expressions, so the cost is linear in the head and small for the usual one.
 */
export function parseRequestHead(bytes: Uint8Array, limits: RequestHeadLimits = {}): RequestHeadResult {
  const maxHeadSize = limits.maxHeadSize ?? 16 * 1024
  const maxHeaders = limits.maxHeaders ?? 100
  // Rule 2: empty lines before the request line, CR and LF in any mix as Node's parser skips them (they count
  // towards the head's size).
  let skipped = 0
  while (bytes[skipped] === CR || bytes[skipped] === LF) skipped++
  if (skipped > 0) {
    if (skipped > maxHeadSize) return { state: 'error', status: 431, message: 'Request header fields too large' }
    const rest = parseRequestHead(bytes.subarray(skipped), { maxHeadSize: maxHeadSize - skipped, maxHeaders })
    return rest.state === 'done' ? { ...rest, consumed: rest.consumed + skipped } : rest
  }
  const limit = Math.min(bytes.length, maxHeadSize + 4)
  // Where the head ends: at the first "\n\n" or "\n\r\n"; `headEnd` excludes the blank line, `consumed` includes it.
  let headEnd = -1
  let consumed = 0
  let high = 0
  let badLineEnd = false
  for (let i = 0; i < limit; i++) {
    const byte = bytes[i]!
    high |= byte
    if (byte !== LF) {
      // A CR must end a line: one followed by anything else is refused at once, not left to time out.
      if (byte === CR && i + 1 < bytes.length && bytes[i + 1] !== LF) badLineEnd = true
      continue
    }
    if (bytes[i - 1] !== CR) badLineEnd = true
    if (bytes[i + 1] === LF) {
      badLineEnd = true
      headEnd = i
      consumed = i + 2
      break
    }
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) {
      headEnd = i
      consumed = i + 3
      break
    }
  }
  if (badLineEnd) return bad('Lines must end with CRLF')
  if (headEnd === -1) {
    if (bytes.length > maxHeadSize) return { state: 'error', status: 431, message: 'Request header fields too large' }
    return { state: 'incomplete' }
  }
  const text = high < 0x80 ? asciiDecoder.decode(bytes.subarray(0, headEnd)) : latin1(bytes, headEnd)
  const length = text.length
  // The first CR at or after the current line's start: Rule 2 allows one only at a line's end.
  let nextCr = text.indexOf('\r')
  if (nextCr === -1) nextCr = length

  let lineEnd = text.indexOf('\n')
  if (lineEnd === -1) lineEnd = length
  let contentEnd = withoutCr(text, 0, lineEnd)
  if (nextCr < contentEnd) return bad('Invalid request line')
  // method SP request-target SP HTTP-version; a run of spaces counts as one, as Node's parser
  // reads it (RFC 9112 §3 lets a recipient split on whitespace).
  const space1 = text.indexOf(' ')
  if (space1 === -1 || space1 >= contentEnd) return bad('Invalid request line')
  let targetStart = space1 + 1
  while (text.charCodeAt(targetStart) === SP) targetStart++
  const space2 = text.indexOf(' ', targetStart)
  if (space2 === -1 || space2 >= contentEnd) return bad('Invalid request line')
  let v = space2 + 1
  while (text.charCodeAt(v) === SP) v++
  const method = text.slice(0, space1)
  if (!isToken(method)) return bad('Invalid method')
  if (!isVisible(text, targetStart, space2)) return bad('Invalid request target')
  const url = text.slice(targetStart, space2)
  if (
    contentEnd - v !== 8 ||
    !text.startsWith('HTTP/', v) ||
    !isDigit(text.charCodeAt(v + 5)) ||
    text.charCodeAt(v + 6) !== 0x2e ||
    !isDigit(text.charCodeAt(v + 7))
  ) {
    return bad('Invalid HTTP version')
  }
  const httpVersion = text.slice(v + 5, contentEnd)

  const headers: Record<string, string | string[]> = {}
  const rawHeaders: string[] = []
  let count = 0
  for (let start = lineEnd + 1; start <= length; start = lineEnd + 1) {
    lineEnd = text.indexOf('\n', start)
    if (lineEnd === -1) lineEnd = length
    contentEnd = withoutCr(text, start, lineEnd)
    if (nextCr < start) {
      nextCr = text.indexOf('\r', start)
      if (nextCr === -1) nextCr = length
    }
    if (nextCr < contentEnd) return bad('Invalid header line')
    if (contentEnd === start) continue
    const first = text.charCodeAt(start)
    if (first === SP || first === HT) return bad('Obsolete line folding is not allowed')
    if (++count > maxHeaders) return { state: 'error', status: 431, message: 'Too many header fields' }
    let nameEnd = start
    while (nameEnd < contentEnd && isTchar(text.charCodeAt(nameEnd))) nameEnd++
    if (nameEnd === start || nameEnd === contentEnd || text.charCodeAt(nameEnd) !== COLON) {
      // Rule 3: a colon somewhere after a non-token character is a bad name; no colon, or nothing before it, a bad line.
      const colon = text.indexOf(':', start)
      return bad(colon === -1 || colon === start || colon >= contentEnd ? 'Invalid header line' : 'Invalid header name')
    }
    let valueStart = nameEnd + 1
    let valueEnd = contentEnd
    while (valueStart < valueEnd && isOws(text.charCodeAt(valueStart))) valueStart++
    while (valueEnd > valueStart && isOws(text.charCodeAt(valueEnd - 1))) valueEnd--
    if (!isFieldValue(text, valueStart, valueEnd)) return bad('Invalid header value')
    const name = text.slice(start, nameEnd)
    const value = text.slice(valueStart, valueEnd)
    rawHeaders.push(name, value)
    addHeader(headers, name.toLowerCase(), value)
  }
  return {
    state: 'done',
    head: { method, url, httpVersion, headers, rawHeaders },
    consumed,
  }
}

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const HT = 0x09
const COLON = 0x3a

function bad(message: string): RequestHeadResult {
  return { state: 'error', status: 400, message }
}

/** Rule 2: where the line [start, lineEnd) ends once a final CR is dropped. */
function withoutCr(text: string, start: number, lineEnd: number): number {
  return lineEnd > start && text.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39
}

function isOws(code: number): boolean {
  return code === SP || code === HT
}

function latin1(bytes: Uint8Array, end: number): string {
  let text = ''
  for (let i = 0; i < end; i += 4096) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 4096)) as unknown as number[])
  }
  return text
}

/** Visible ASCII, as a request-target is (RFC 7230 §3.1.1, §5.3). */
function isVisible(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return false
  }
  return true
}

/** field-value: visible characters, spaces, tabs and obs-text (RFC 7230 §3.2); no controls. */
function isFieldValue(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false
  }
  return true
}

/**
 * `headers` is a plain object, as `IncomingMessage.headers` is, so a field may
 * share its name with something inherited ("constructor", "__proto__"): only
 * own properties count, and "__proto__" is defined, never assigned (assigning
 * it would replace the prototype).
 */
function addHeader(headers: Record<string, string | string[]>, name: string, value: string): void {
  if (!Object.hasOwn(headers, name)) {
    const first = name === 'set-cookie' ? [value] : value
    if (name === '__proto__') Object.defineProperty(headers, name, { value: first, enumerable: true, writable: true, configurable: true })
    else headers[name] = first
    return
  }
  const existing = headers[name]!
  if (name === 'set-cookie') {
    ;(existing as string[]).push(value)
  } else if (name === 'host') {
    // RFC 7230 §5.4: more than one Host is a bad request; keep both so validation refuses it.
    headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value]
  } else if (!SINGLE.has(name)) {
    headers[name] = `${existing}${name === 'cookie' ? '; ' : ', '}${value}`
  }
}
