import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { type RequestHeadResult, parseRequestHead } from '../../src/core/handshake/request-head.js'

const bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))
const parse = (text: string, limits?: Parameters<typeof parseRequestHead>[1]): RequestHeadResult => parseRequestHead(bytes(text), limits)

const UPGRADE =
  'GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

/**
 * The reference model: the grammar of RFC 7230 §3 written the plain way (split
 * into lines, trim with a regular expression), and Node's way of joining
 * repeated fields. The parser under test must give the same answer for any input.
 */
function model(input: Uint8Array, maxHeadSize = 16 * 1024, maxHeaders = 100): RequestHeadResult {
  const bad = (message: string): RequestHeadResult => ({ state: 'error', status: 400, message })
  // Empty lines (CRLF) before the request line are skipped, and count towards the size.
  let skipped = 0
  while (input[skipped] === 0x0d || input[skipped] === 0x0a) skipped++
  if (skipped > 0) {
    if (skipped > maxHeadSize) return { state: 'error', status: 431, message: 'Request header fields too large' }
    const rest = model(input.subarray(skipped), maxHeadSize - skipped, maxHeaders)
    return rest.state === 'done' ? { ...rest, consumed: rest.consumed + skipped } : rest
  }
  let headEnd = -1
  let consumed = 0
  const limit = Math.min(input.length, maxHeadSize + 4)
  for (let i = 0; i < limit && headEnd === -1; i++) {
    if (input[i] !== 0x0a) continue
    if (input[i + 1] === 0x0a) [headEnd, consumed] = [i, i + 2]
    else if (input[i + 1] === 0x0d && input[i + 2] === 0x0a) [headEnd, consumed] = [i, i + 3]
  }
  // Every line ends with CRLF, the blank line too, in what was looked at.
  const looked = input.subarray(0, headEnd === -1 ? limit : consumed)
  if (looked.some((byte, i) => byte === 0x0a && looked[i - 1] !== 0x0d)) return bad('Lines must end with CRLF')
  // A CR followed by anything but LF, where the next byte has arrived.
  if (looked.some((byte, i) => byte === 0x0d && i + 1 < input.length && input[i + 1] !== 0x0a)) return bad('Lines must end with CRLF')
  if (headEnd === -1) {
    return input.length > maxHeadSize ? { state: 'error', status: 431, message: 'Request header fields too large' } : { state: 'incomplete' }
  }
  const text = Array.from(input.subarray(0, headEnd), (b) => String.fromCharCode(b)).join('')
  const strip = (line: string): string | undefined => {
    const body = line.endsWith('\r') ? line.slice(0, -1) : line
    return body.includes('\r') ? undefined : body
  }
  const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
  const lines = text.split('\n')
  const requestLine = strip(lines[0]!)
  if (requestLine === undefined) return bad('Invalid request line')
  // A run of spaces separates as one.
  const parts = /^([^ ]*) +([^ ]+) +(.*)$/s.exec(requestLine)
  if (parts === null) return bad('Invalid request line')
  const [, method, url, version] = parts as unknown as [string, string, string, string]
  if (!token.test(method)) return bad('Invalid method')
  if (!/^[\x21-\x7e]+$/.test(url)) return bad('Invalid request target')
  const v = /^HTTP\/(\d)\.(\d)$/.exec(version)
  if (!v) return bad('Invalid HTTP version')
  const single = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'if-modified-since',
    'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent'])
  const headers = new Map<string, string | string[]>()
  const rawHeaders: string[] = []
  let count = 0
  for (const raw of lines.slice(1)) {
    const line = strip(raw)
    if (line === undefined) return bad('Invalid header line')
    if (line === '') continue
    if (line[0] === ' ' || line[0] === '\t') return bad('Obsolete line folding is not allowed')
    if (++count > maxHeaders) return { state: 'error', status: 431, message: 'Too many header fields' }
    const colon = line.indexOf(':')
    if (colon <= 0) return bad('Invalid header line')
    const name = line.slice(0, colon)
    if (!token.test(name)) return bad('Invalid header name')
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return bad('Invalid header value')
    rawHeaders.push(name, value)
    const key = name.toLowerCase()
    const existing = headers.get(key)
    if (existing === undefined) headers.set(key, key === 'set-cookie' ? [value] : value)
    else if (key === 'set-cookie') (existing as string[]).push(value)
    else if (key === 'host') headers.set(key, [...[existing].flat(), value])
    else if (!single.has(key)) headers.set(key, `${existing as string}${key === 'cookie' ? '; ' : ', '}${value}`)
  }
  const record: Record<string, string | string[]> = {}
  for (const [key, value] of headers) Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
  return { state: 'done', head: { method, url, httpVersion: `${v[1]}.${v[2]}`, headers: record, rawHeaders }, consumed }
}

describe('parseRequestHead', () => {
  it('parses an upgrade request into Node-shaped headers', () => {
    const result = parse(UPGRADE + 'first frame')
    assert.equal(result.state, 'done')
    if (result.state !== 'done') return
    assert.equal(result.consumed, UPGRADE.length)
    assert.equal(result.head.method, 'GET')
    assert.equal(result.head.url, '/chat?room=1')
    assert.equal(result.head.httpVersion, '1.1')
    assert.equal(result.head.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==')
    assert.equal(result.head.rawHeaders[0], 'Host')
    assert.equal(Object.getPrototypeOf(result.head.headers), Object.prototype, 'a plain object, as IncomingMessage.headers')
  })

  it('waits for the blank line, then refuses a head over the size limit with 431', () => {
    assert.deepEqual(parse(UPGRADE.slice(0, -2)), { state: 'incomplete' })
    assert.deepEqual(parse('GET / HTTP/1.1\r\nX: ' + 'a'.repeat(200), { maxHeadSize: 100 }), {
      state: 'error',
      status: 431,
      message: 'Request header fields too large',
    })
  })

  it('refuses more than maxHeaders fields with 431', () => {
    const head = 'GET / HTTP/1.1\r\n' + Array.from({ length: 4 }, (_, i) => `X-${i}: ${i}\r\n`).join('') + '\r\n'
    assert.equal(parse(head, { maxHeaders: 4 }).state, 'done')
    assert.deepEqual(parse(head, { maxHeaders: 3 }), { state: 'error', status: 431, message: 'Too many header fields' })
  })

  it('joins repeated fields as Node does', () => {
    const result = parse(
      'GET / HTTP/1.1\r\nAccept: a\r\naccept: b\r\nCookie: x=1\r\nCookie: y=2\r\nSet-Cookie: p\r\nSet-Cookie: q\r\n' +
        'User-Agent: first\r\nUser-Agent: second\r\nHost: one\r\nHost: two\r\n\r\n',
    )
    assert.equal(result.state, 'done')
    if (result.state !== 'done') return
    assert.deepEqual(result.head.headers, {
      accept: 'a, b',
      cookie: 'x=1; y=2',
      'set-cookie': ['p', 'q'],
      'user-agent': 'first',
      host: ['one', 'two'],
    })
  })

  it('keeps names such as __proto__ and constructor as plain fields', () => {
    const result = parse('GET / HTTP/1.1\r\n__proto__: x\r\nconstructor: y\r\nconstructor: z\r\ntoString: t\r\n\r\n')
    assert.equal(result.state, 'done')
    if (result.state !== 'done') return
    assert.equal(Object.getPrototypeOf(result.head.headers), Object.prototype)
    assert.equal(Object.getOwnPropertyDescriptor(result.head.headers, '__proto__')?.value, 'x')
    assert.equal(result.head.headers.constructor, 'y, z')
    assert.equal(result.head.headers.tostring, 't')
  })

  it('trims optional whitespace around values', () => {
    const result = parse('GET / HTTP/1.1\r\nX-A: \t padded \t\r\nX-B:\r\n\r\n')
    assert.equal(result.state, 'done')
    if (result.state !== 'done') return
    assert.equal(result.head.headers['x-a'], 'padded')
    assert.equal(result.head.headers['x-b'], '')
  })

  it('reads the request line as Node does: empty lines before it skipped, runs of spaces as one', () => {
    const result = parse('\r\n\n\rGET  /chat   HTTP/1.1\r\nHost: a\r\n\r\nrest')
    assert.equal(result.state, 'done')
    if (result.state !== 'done') return
    assert.deepEqual([result.head.method, result.head.url, result.head.httpVersion], ['GET', '/chat', '1.1'])
    assert.equal(result.consumed, '\r\n\n\rGET  /chat   HTTP/1.1\r\nHost: a\r\n\r\n'.length)
    assert.deepEqual(parse('\r\n'.repeat(60) + 'GET / HTTP/1.1\r\n\r\n', { maxHeadSize: 100 }), {
      state: 'error',
      status: 431,
      message: 'Request header fields too large',
    })
  })

  it('decodes obs-text bytes as latin1, as Node does', () => {
    const input = Uint8Array.from([...bytes('GET / HTTP/1.1\r\nX-Name: caf'), 0xe9, 0x85, ...bytes('\r\n\r\n')])
    const result = parseRequestHead(input)
    assert.equal(result.state, 'done')
    if (result.state !== 'done') return
    assert.equal(result.head.headers['x-name'], 'caf\u00e9\u0085')
  })

  for (const [name, head, message] of [
    ['a request line without a version', 'GET /\r\n\r\n', 'Invalid request line'],
    ['bare LF line ends (Node refuses them too)', 'GET / HTTP/1.1\nHost: a\n\n', 'Lines must end with CRLF'],
    ['a bare LF among CRLFs, before the head is complete', 'GET / HTTP/1.1\r\nHost: a\n', 'Lines must end with CRLF'],
    ['a bare LF for the blank line', 'GET / HTTP/1.1\r\nHost: a\r\n\n', 'Lines must end with CRLF'],
    ['a tab between method and target', 'GET\t/ HTTP/1.1\r\n\r\n', 'Invalid request line'],
    ['a CR inside the request line', 'GET /\r HTTP/1.1\r\n\r\n', 'Lines must end with CRLF'],
    ['lines ended by CR alone, before any LF arrives', 'GET / HTTP/1.1\rHost: a\r\r', 'Lines must end with CRLF'],
    ['a method that is not a token', 'G(T / HTTP/1.1\r\n\r\n', 'Invalid method'],
    ['a control character in the target', 'GET /\x01 HTTP/1.1\r\n\r\n', 'Invalid request target'],
    ['a bad version', 'GET / HTTP/1.10\r\n\r\n', 'Invalid HTTP version'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n', 'Obsolete line folding is not allowed'],
    ['a field without a colon', 'GET / HTTP/1.1\r\nX\r\n\r\n', 'Invalid header line'],
    ['a field with an empty name', 'GET / HTTP/1.1\r\n: x\r\n\r\n', 'Invalid header line'],
    ['whitespace before the colon', 'GET / HTTP/1.1\r\nX : x\r\n\r\n', 'Invalid header name'],
    ['a CR inside a field', 'GET / HTTP/1.1\r\nX: a\rb\r\n\r\n', 'Lines must end with CRLF'],
    ['a control character in a value', 'GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', 'Invalid header value'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n', 'Invalid header value'],
  ] as const) {
    it(`answers 400 to ${name}`, () => {
      assert.deepEqual(parse(head), { state: 'error', status: 400, message })
    })
  }

  it('gives the same answer as the reference model for generated heads', () => {
    const pick = <T>(...values: T[]) => fc.constantFrom(...values)
    const piece = fc.oneof(
      { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/) },
      { weight: 2, arbitrary: pick('Host', 'host', 'Cookie', 'Set-Cookie', 'User-Agent', 'Upgrade', '__proto__', 'constructor', 'hasOwnProperty') },
      { weight: 2, arbitrary: pick(' ', '\t', ':', ': ', '\r', '\n', '\r\n', '\x00', '\x7f', '\xe9', '\x85', '(', ' x ', '  ') },
    )
    const line = fc.array(piece, { maxLength: 6 }).map((parts) => parts.join(''))
    const field = fc.tuple(piece, pick(':', ': ', ':\t', ' :', ''), line).map(([name, sep, value]) => name + sep + value)
    const requestLine = fc.oneof(
      { weight: 8, arbitrary: pick('GET / HTTP/1.1', 'GET /chat?x=1 HTTP/1.1', 'POST /a HTTP/1.0') },
      { weight: 2, arbitrary: line },
    )
    const head = fc
      .tuple(requestLine, fc.array(field, { maxLength: 8 }), fc.array(pick('\r\n', '\n'), { minLength: 10, maxLength: 10 }), pick('\r\n', '\n', ''), line)
      .map(([first, fields, ends, blank, rest]) => [first, ...fields].map((l, i) => l + ends[i % ends.length]).join('') + blank + rest)
    const states = new Map<string, number>()
    fc.assert(
      fc.property(head, fc.integer({ min: 20, max: 400 }), fc.integer({ min: 1, max: 10 }), (text, maxHeadSize, maxHeaders) => {
        const input = bytes(text)
        const result = parseRequestHead(input, { maxHeadSize, maxHeaders })
        assert.deepEqual(result, model(input, maxHeadSize, maxHeaders))
        const key = result.state === 'error' ? `${result.status}` : result.state
        states.set(key, (states.get(key) ?? 0) + 1)
      }),
      { numRuns: 3000 },
    )
    // The generator must reach every outcome often, or the comparison proves little.
    for (const key of ['done', 'incomplete', '400', '431']) assert.ok((states.get(key) ?? 0) >= 50, `${key}: ${states.get(key) ?? 0} of 3000`)
  })

  it('never throws on arbitrary bytes, and agrees with the model', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (random, terminated) => {
        const input = terminated ? Uint8Array.from([...random, 0x0d, 0x0a, 0x0d, 0x0a]) : random
        const result = parseRequestHead(input, { maxHeadSize: 200 })
        assert.deepEqual(result, model(input, 200))
      }),
      { numRuns: 2000 },
    )
  })
})
