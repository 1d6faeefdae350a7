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
 * "A recipient MAY recognize a single LF as a line terminator and ignore any
 * preceding CR" (§3.5), so bare LF is accepted; a CR elsewhere is refused.
 * Obsolete line folding is refused (§3.2.4).
 * Rule 3: a field name is a token and has no whitespace before its colon
 * (§3.2.4: "No whitespace is allowed between the header field-name and colon").
 */
import { isToken } from './headers.js'

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

/**
 * Looks for a whole request head at the start of `bytes`. `bytes` is all that
 * was received so far on the connection.
 */
export function parseRequestHead(bytes: Uint8Array, limits: RequestHeadLimits = {}): RequestHeadResult {
  const maxHeadSize = limits.maxHeadSize ?? 16 * 1024
  const maxHeaders = limits.maxHeaders ?? 100
  const end = findHeadEnd(bytes, Math.min(bytes.length, maxHeadSize + 4))
  if (end === -1) {
    if (bytes.length > maxHeadSize) return { state: 'error', status: 431, message: 'Request header fields too large' }
    return { state: 'incomplete' }
  }
  const text = latin1(bytes, end.headEnd)
  const lines = text.split('\n')
  const requestLine = stripCr(lines[0]!)
  if (requestLine === undefined) return bad('Invalid request line')
  const parts = requestLine.split(' ')
  if (parts.length !== 3) return bad('Invalid request line')
  const [method, url, version] = parts as [string, string, string]
  if (!isToken(method)) return bad('Invalid method')
  if (url.length === 0 || !isVisible(url)) return bad('Invalid request target')
  const versionMatch = /^HTTP\/(\d)\.(\d)$/.exec(version)
  if (!versionMatch) return bad('Invalid HTTP version')

  const headers: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>
  const rawHeaders: string[] = []
  let count = 0
  for (let i = 1; i < lines.length; i++) {
    const line = stripCr(lines[i]!)
    if (line === undefined) return bad('Invalid header line')
    if (line.length === 0) continue
    if (line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09) return bad('Obsolete line folding is not allowed')
    if (++count > maxHeaders) return { state: 'error', status: 431, message: 'Too many header fields' }
    const colon = line.indexOf(':')
    if (colon <= 0) return bad('Invalid header line')
    const name = line.slice(0, colon)
    if (!isToken(name)) return bad('Invalid header name')
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (!isFieldValue(value)) return bad('Invalid header value')
    rawHeaders.push(name, value)
    addHeader(headers, name.toLowerCase(), value)
  }
  return {
    state: 'done',
    head: { method, url, httpVersion: `${versionMatch[1]}.${versionMatch[2]}`, headers: { ...headers }, rawHeaders },
    consumed: end.consumed,
  }
}

function bad(message: string): RequestHeadResult {
  return { state: 'error', status: 400, message }
}

/** Where the head ends: `headEnd` excludes the blank line, `consumed` includes it; -1 if not within `limit`. */
function findHeadEnd(bytes: Uint8Array, limit: number): { headEnd: number; consumed: number } | -1 {
  for (let i = 0; i < limit; i++) {
    if (bytes[i] !== 0x0a) continue
    // "\n\n" or "\n\r\n" ends the head.
    if (bytes[i + 1] === 0x0a) return { headEnd: i, consumed: i + 2 }
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return { headEnd: i, consumed: i + 3 }
  }
  return -1
}

function latin1(bytes: Uint8Array, end: number): string {
  let text = ''
  for (let i = 0; i < end; i += 4096) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 4096)) as unknown as number[])
  }
  return text
}

/** Rule 2: the line without its CR; undefined if a CR appears anywhere else. */
function stripCr(line: string): string | undefined {
  const body = line.endsWith('\r') ? line.slice(0, -1) : line
  return body.includes('\r') ? undefined : body
}

/** Visible ASCII, as a request-target is (RFC 7230 §3.1.1, §5.3). */
function isVisible(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return false
  }
  return true
}

/** field-value: visible characters, spaces, tabs and obs-text (RFC 7230 §3.2); no controls. */
function isFieldValue(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false
  }
  return true
}

function addHeader(headers: Record<string, string | string[]>, name: string, value: string): void {
  const existing = headers[name]
  if (existing === undefined) {
    headers[name] = name === 'set-cookie' ? [value] : value
  } else if (name === 'set-cookie') {
    ;(existing as string[]).push(value)
  } else if (name === 'host') {
    // RFC 7230 §5.4: more than one Host is a bad request; keep both so validation refuses it.
    headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value]
  } else if (!SINGLE.has(name)) {
    headers[name] = `${existing}${name === 'cookie' ? '; ' : ', '}${value}`
  }
}
