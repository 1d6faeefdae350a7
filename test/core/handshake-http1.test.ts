import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { HandshakeError, type HandshakeErrorCode, handshakeErrorStatuses } from '../../src/core/errors.js'
import type { ExtensionOffer, HeaderValue } from '../../src/core/handshake/headers.js'
import {
  type AcceptedRequest,
  type AcceptedResponse,
  type HeadersRecord,
  type UpgradeRequest,
  WEBSOCKET_GUID,
  acceptKey,
  acceptResponseLines,
  clientRequestHeaders,
  createClientKey,
  rejectResponse,
  serializeResponseHead,
  validateUpgradeRequest,
  verifyUpgradeResponse,
} from '../../src/core/handshake/http1.js'

/** The example of RFC 6455 §1.3. */
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

/** A valid upgrade request; `headers` overrides, and `undefined` removes a header. */
function request(headers: Record<string, HeaderValue> = {}, line: Partial<Omit<UpgradeRequest, 'headers'>> = {}): UpgradeRequest {
  const merged: Record<string, HeaderValue> = {
    host: 'server.example.com',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': KEY,
    'sec-websocket-version': '13',
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) delete merged[name]
    else merged[name] = value
  }
  return { method: 'GET', httpVersion: '1.1', ...line, headers: merged }
}

function accepted(result: AcceptedRequest | HandshakeError): AcceptedRequest {
  if (result instanceof HandshakeError) assert.fail(`rejected: ${result.code} ${result.message}`)
  return result
}

function rejected(
  result: AcceptedRequest | AcceptedResponse | HandshakeError,
  expected: { code?: HandshakeErrorCode; status?: number; headers?: Record<string, string> },
  label = '',
): HandshakeError {
  assert.ok(result instanceof HandshakeError, `expected a HandshakeError ${label}, got ${JSON.stringify(result)}`)
  if (expected.code !== undefined) assert.equal(result.code, expected.code, label)
  if (expected.status !== undefined) assert.equal(result.status, expected.status, label)
  if (expected.headers !== undefined) assert.deepEqual({ ...result.headers }, expected.headers, label)
  return result
}

/** Splits an HTTP/1.1 response into status line, header fields and body, checking the framing. */
function parseResponse(text: string): { status: number; reason: string; headers: Map<string, string[]>; body: Buffer; contentLength: number } {
  // As the Node transport sends it: `socket.end(string)` writes UTF-8.
  const bytes = Buffer.from(text, 'utf8')
  const end = bytes.indexOf('\r\n\r\n')
  assert.ok(end > 0, 'the head ends with a blank line')
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n')
  const statusLine = /^HTTP\/1\.1 (\d{3}) ([^\r\n]*)$/.exec(lines[0]!)
  assert.ok(statusLine, `status line: ${JSON.stringify(lines[0])}`)
  const headers = new Map<string, string[]>()
  for (const line of lines.slice(1)) {
    const field = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([^\r\n]*)$/.exec(line)
    assert.ok(field, `header field: ${JSON.stringify(line)}`)
    const name = field[1]!.toLowerCase()
    headers.set(name, [...(headers.get(name) ?? []), field[2]!])
  }
  const length = headers.get('content-length')
  assert.equal(length?.length, 1, 'exactly one Content-Length')
  return {
    status: Number(statusLine[1]),
    reason: statusLine[2]!,
    headers,
    body: bytes.subarray(end + 4),
    contentLength: Number(length![0]),
  }
}

/** The header record a client sees for the lines of a 101 answer (lower-case names, as Node gives them). */
function headersOfLines(lines: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  return headers
}

describe('validateUpgradeRequest: a valid request (RFC 6455 §4.2.1)', () => {
  it('accepts the §1.3 example and returns what it asks for', () => {
    assert.deepEqual(accepted(validateUpgradeRequest(request())), { key: KEY, protocols: [], extensions: [], origin: undefined })
  })

  it('returns the offered protocols, extensions and origin', () => {
    const result = accepted(
      validateUpgradeRequest(
        request({
          origin: 'http://example.com',
          'sec-websocket-protocol': 'chat, superchat',
          'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
        }),
      ),
    )
    assert.deepEqual(result, {
      key: KEY,
      protocols: ['chat', 'superchat'],
      extensions: [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }],
      origin: 'http://example.com',
    })
  })

  it('takes the origin from Sec-WebSocket-Origin when Origin is absent (protocol version 8)', () => {
    assert.equal(accepted(validateUpgradeRequest(request({ 'sec-websocket-origin': 'http://old.example' }))).origin, 'http://old.example')
  })

  it('accepts a key a client made', () => {
    const key = createClientKey()
    assert.equal(accepted(validateUpgradeRequest(request({ 'sec-websocket-key': key }))).key, key)
  })
})

describe('validateUpgradeRequest: request line', () => {
  it('answers a method other than GET with 405 and Allow: GET', () => {
    for (const method of ['POST', 'HEAD', 'PUT', 'OPTIONS', 'CONNECT', 'get']) {
      rejected(
        validateUpgradeRequest(request({}, { method })),
        { code: 'TETHER_ERR_HANDSHAKE_METHOD', status: 405, headers: { Allow: 'GET' } },
        method,
      )
    }
  })

  // Issue 15: RFC 6455 asks for HTTP/1.1, but ws accepts an HTTP/1.0 request carrying the upgrade headers.
  it('accepts HTTP/1.0 with the upgrade headers, as ws does, and answers HTTP/0.9 with 505', () => {
    accepted(validateUpgradeRequest(request({}, { httpVersion: '1.0' })))
    rejected(validateUpgradeRequest(request({}, { httpVersion: '0.9' })), { code: 'TETHER_ERR_HANDSHAKE_HTTP_VERSION', status: 505 }, '0.9')
  })

  // Issue 15: RFC 7230 §5.4 wants 400 without a Host, but ws accepts such requests and requests built by
  // hand (fastify's injectWS, test clients) have none; tether does not route by Host, so it accepts them too.
  it('accepts a missing, empty or blank Host, as ws does', () => {
    for (const host of [undefined, '', ' ', '\t \t', []]) accepted(validateUpgradeRequest(request({ host })))
  })

  // Found by the fuzzer (fuzz/corpus/handshake-server/seed-two-hosts.txt): two Host field lines were
  // joined into "a, b" and accepted.
  it('answers a repeated Host with 400 (RFC 7230 §5.4: "more than one Host header field")', () => {
    for (const host of [['server.example.com', 'evil.example.com'], ['server.example.com', 'server.example.com']]) {
      rejected(validateUpgradeRequest(request({ host })), { code: 'TETHER_ERR_HANDSHAKE_HOST', status: 400 }, JSON.stringify(host))
    }
    // One field line given as an array is one Host.
    accepted(validateUpgradeRequest(request({ host: ['server.example.com'] })))
  })

  // Issue 15: a request built by hand may carry numbers ('sec-websocket-version': 13); ws reads them as text.
  it('reads a header value given as a number as its decimal text, and never throws', () => {
    accepted(validateUpgradeRequest(request({ 'sec-websocket-version': 13 })))
    rejected(validateUpgradeRequest(request({ 'sec-websocket-version': 7 })), { code: 'TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION', status: 426 })
    rejected(validateUpgradeRequest(request({ 'sec-websocket-key': 12 })), { code: 'TETHER_ERR_HANDSHAKE_KEY', status: 400 })
  })
})

describe('validateUpgradeRequest: every refusal answers the status handshakeErrorStatuses gives its code', () => {
  // Found by the fuzzer: TETHER_ERR_HANDSHAKE_UPGRADE answered 426 while the table said 400.
  it('for each kind of bad request', () => {
    const cases: UpgradeRequest[] = [
      request({}, { method: 'POST' }),
      request({}, { httpVersion: '0.9' }),
      request({ host: ['a.example', 'b.example'] }),
      request({ upgrade: 'h2c' }),
      request({ connection: 'close' }),
      request({ 'sec-websocket-key': 'short' }),
      request({ 'sec-websocket-version': undefined }),
      request({ 'sec-websocket-version': '7' }),
      request({ 'sec-websocket-protocol': 'a b' }),
      request({ 'sec-websocket-extensions': ';' }),
    ]
    const codes = new Set<string>()
    for (const bad of cases) {
      const error = validateUpgradeRequest(bad)
      assert.ok(error instanceof HandshakeError)
      assert.equal(error.status, handshakeErrorStatuses[error.code], error.code)
      codes.add(error.code)
    }
    assert.equal(codes.size, cases.length, 'each case exercises another code')
    assert.equal(handshakeErrorStatuses.TETHER_ERR_HANDSHAKE_UPGRADE, 426)
  })
})

describe('validateUpgradeRequest: Upgrade and Connection are case-insensitive token lists', () => {
  it('accepts Upgrade in any case and among other protocols', () => {
    for (const upgrade of ['websocket', 'WebSocket', 'WEBSOCKET', 'foo, websocket', 'websocket, foo', ['h2c', 'websocket']]) {
      accepted(validateUpgradeRequest(request({ upgrade })))
    }
  })

  it('accepts Connection in any case and among other options', () => {
    for (const connection of ['Upgrade', 'upgrade', 'UPGRADE', 'keep-alive, Upgrade', 'Upgrade, keep-alive', ['keep-alive', 'upgrade']]) {
      accepted(validateUpgradeRequest(request({ connection })))
    }
  })

  it('answers a missing or wrong Upgrade with 426 and Upgrade: websocket', () => {
    for (const upgrade of [undefined, '', 'h2c', 'websockets', 'web socket', 'websocket;', 'foo, web socket, websocket']) {
      rejected(
        validateUpgradeRequest(request({ upgrade })),
        { code: 'TETHER_ERR_HANDSHAKE_UPGRADE', status: 426, headers: { Upgrade: 'websocket' } },
        JSON.stringify(upgrade),
      )
    }
  })

  it('answers a missing or wrong Connection with 400', () => {
    for (const connection of [undefined, '', 'keep-alive', 'close', 'upgrades', 'up grade', 'Upgrade;', 'keep-alive Upgrade']) {
      rejected(
        validateUpgradeRequest(request({ connection })),
        { code: 'TETHER_ERR_HANDSHAKE_CONNECTION', status: 400 },
        JSON.stringify(connection),
      )
    }
  })
})

describe('validateUpgradeRequest: Sec-WebSocket-Key (§4.1 point 7: 16 bytes, base64)', () => {
  it('accepts any 16 bytes, whatever base64 characters they use', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const key = Buffer.from(bytes).toString('base64')
        assert.equal(accepted(validateUpgradeRequest(request({ 'sec-websocket-key': key }))).key, key)
      }),
    )
  })

  it('answers a missing, short, long or non-base64 key with 400', () => {
    const bad: HeaderValue[] = [
      undefined,
      '',
      KEY.slice(1), // 23 characters
      'A' + KEY, // 25 characters
      KEY.slice(0, 22), // no padding
      KEY.slice(0, 22) + 'A=', // 24 characters, one "=": not 16 bytes
      KEY.slice(0, 23) + 'A', // "=" then a character
      KEY.slice(0, 22) + 'AA', // 18 bytes, no padding
      Buffer.alloc(15).toString('base64'), // 15 bytes
      Buffer.alloc(17, 1).toString('base64'), // 17 bytes, 24 characters
      Buffer.alloc(18, 1).toString('base64'), // 18 bytes, 24 characters
      'dGhlIHNhbXBsZSBub25jZQ', // unpadded
      'dGhlIHNhbXBsZSBub25jZ-==', // base64url alphabet
      'dGhlIHNhbXBsZSBub25jZ_==',
      'dGhlIHNhbXBsZSBub25jZ!==',
      'dGhlIHNhbXBsZSBub25j ZQ=',
      'dGhlIHNhbXBsZSBub25jZé==',
      '========================',
      [KEY, KEY], // two header lines: Node joins them as "a, b"
      `${KEY}, ${KEY}`,
    ]
    for (const key of bad) {
      rejected(
        validateUpgradeRequest(request({ 'sec-websocket-key': key })),
        { code: 'TETHER_ERR_HANDSHAKE_KEY', status: 400 },
        JSON.stringify(key),
      )
    }
  })
})

describe('validateUpgradeRequest: Sec-WebSocket-Version (§4.2.2)', () => {
  it('answers a missing version with 400 and Sec-WebSocket-Version: 13, 8', () => {
    for (const version of [undefined, '', '  ']) {
      const error = rejected(validateUpgradeRequest(request({ 'sec-websocket-version': version })), { code: 'TETHER_ERR_HANDSHAKE_VERSION', status: 400 })
      assert.equal(error.headers['Sec-WebSocket-Version'], '13, 8')
    }
  })

  // Issue 15: ws accepts the last draft's version 8 (same framing; its Origin is Sec-WebSocket-Origin).
  it('accepts versions 13 and 8; a version 8 request gives its origin in Sec-WebSocket-Origin', () => {
    accepted(validateUpgradeRequest(request({ 'sec-websocket-version': '13' })))
    const draft = accepted(validateUpgradeRequest(request({ 'sec-websocket-version': '8', origin: 'https://a.example', 'sec-websocket-origin': 'https://b.example' })))
    assert.equal(draft.origin, 'https://b.example')
  })

  it('answers any other version with 426 and Sec-WebSocket-Version: 13, 8 (§4.4)', () => {
    for (const version of ['7', '12', '14', '13, 8', '8, 13', ['13', '8'], '013', '13.0']) {
      const error = rejected(
        validateUpgradeRequest(request({ 'sec-websocket-version': version })),
        { code: 'TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION', status: 426 },
        JSON.stringify(version),
      )
      assert.equal(error.headers['Sec-WebSocket-Version'], '13, 8')
    }
  })
})

describe('validateUpgradeRequest: Sec-WebSocket-Protocol', () => {
  it('returns the offered subprotocols in order', () => {
    assert.deepEqual(accepted(validateUpgradeRequest(request({ 'sec-websocket-protocol': 'chat, superchat' }))).protocols, ['chat', 'superchat'])
    assert.deepEqual(accepted(validateUpgradeRequest(request({ 'sec-websocket-protocol': ['chat', 'superchat'] }))).protocols, ['chat', 'superchat'])
  })

  it('tolerates empty list elements', () => {
    assert.deepEqual(accepted(validateUpgradeRequest(request({ 'sec-websocket-protocol': 'a, , b' }))).protocols, ['a', 'b'])
  })

  it('answers duplicates, non-token names and quoted strings with 400', () => {
    for (const protocol of ['chat, chat', ['chat', 'chat'], 'a b', 'a;b', 'ch@t', '"chat"', 'chat, "superchat"']) {
      rejected(
        validateUpgradeRequest(request({ 'sec-websocket-protocol': protocol })),
        { code: 'TETHER_ERR_HANDSHAKE_PROTOCOL', status: 400 },
        JSON.stringify(protocol),
      )
    }
  })
})

describe('validateUpgradeRequest: Sec-WebSocket-Extensions (§9.1)', () => {
  const offered = (value: HeaderValue) => accepted(validateUpgradeRequest(request({ 'sec-websocket-extensions': value }))).extensions

  it('parses offers, parameters, quoted values, several offers and repeated lines', () => {
    assert.deepEqual(offered('permessage-deflate; client_max_window_bits'), [
      { name: 'permessage-deflate', params: [['client_max_window_bits', true]] },
    ])
    assert.deepEqual(offered('permessage-deflate; client_max_window_bits=10'), [
      { name: 'permessage-deflate', params: [['client_max_window_bits', '10']] },
    ])
    assert.deepEqual(offered('permessage-deflate; client_max_window_bits="10"'), [
      { name: 'permessage-deflate', params: [['client_max_window_bits', '10']] },
    ])
    assert.deepEqual(offered('a; x=1, b, a; y'), [
      { name: 'a', params: [['x', '1']] },
      { name: 'b', params: [] },
      { name: 'a', params: [['y', true]] },
    ])
    assert.deepEqual(offered(['a; x=1', 'b']), [
      { name: 'a', params: [['x', '1']] },
      { name: 'b', params: [] },
    ])
    assert.deepEqual(offered('a, , b'), [
      { name: 'a', params: [] },
      { name: 'b', params: [] },
    ])
  })

  it('answers a malformed header with 400', () => {
    for (const value of ['a; x="10', 'a; x="1 0"', 'a;', 'a; =1', 'a b', 'a;; b', 'a; x="1,0"', 'é', 'a; x=é', ['a', 'b;']]) {
      rejected(
        validateUpgradeRequest(request({ 'sec-websocket-extensions': value })),
        { code: 'TETHER_ERR_HANDSHAKE_EXTENSIONS', status: 400 },
        JSON.stringify(value),
      )
    }
  })

  it('rejects a 1 MiB hostile header in linear time', () => {
    const start = performance.now()
    rejected(validateUpgradeRequest(request({ 'sec-websocket-extensions': 'a;'.repeat(1 << 19) })), { status: 400 })
    rejected(validateUpgradeRequest(request({ 'sec-websocket-protocol': 'b' + ' '.repeat(1 << 20) + 'x' })), { status: 400 })
    const ms = performance.now() - start
    assert.ok(ms < 2000, `${ms} ms`) // a coarse guard only
  })
})

describe('server response (§4.2.2)', () => {
  it('computes the §1.3 accept value', () => {
    assert.equal(acceptKey(KEY), ACCEPT)
  })

  it('computes base64(SHA-1(key + GUID)) for any key', () => {
    assert.equal(WEBSOCKET_GUID, '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const key = Buffer.from(bytes).toString('base64')
        const expected = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
        assert.equal(acceptKey(key), expected)
      }),
      { numRuns: 50 },
    )
  })

  it('builds the 101 answer lines, without protocol or extensions unless given', () => {
    const expected = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${ACCEPT}`]
    assert.deepEqual(acceptResponseLines({ key: KEY }), expected)
    assert.deepEqual(acceptResponseLines({ key: KEY, protocol: undefined, extensions: undefined }), expected)
    assert.deepEqual(acceptResponseLines({ key: KEY, protocol: '', extensions: [] }), expected)
  })

  it('adds Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when given', () => {
    const lines = acceptResponseLines({
      key: KEY,
      protocol: 'chat',
      extensions: [{ name: 'permessage-deflate', params: [['server_no_context_takeover', true], ['client_max_window_bits', '10']] }],
    })
    assert.deepEqual(lines, [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${ACCEPT}`,
      'Sec-WebSocket-Protocol: chat',
      'Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=10',
    ])
    assert.deepEqual(acceptResponseLines({ key: KEY, protocol: 'chat' }).slice(4), ['Sec-WebSocket-Protocol: chat'])
    assert.deepEqual(acceptResponseLines({ key: KEY, extensions: [{ name: 'x', params: [] }] }).slice(4), ['Sec-WebSocket-Extensions: x'])
  })

  it('serializes the head with CRLF line ends and a final blank line', () => {
    const lines = acceptResponseLines({ key: KEY, protocol: 'chat' })
    const head = serializeResponseHead(lines)
    assert.equal(head, lines.join('\r\n') + '\r\n\r\n')
    assert.ok(head.endsWith('\r\n\r\n'))
    assert.equal(head.indexOf('\r\n\r\n'), head.length - 4, 'the blank line comes only at the end')
    assert.ok(head.startsWith('HTTP/1.1 101 Switching Protocols\r\n'))
  })
})

describe('rejectResponse', () => {
  it('gives a well-formed HTTP/1.1 answer that closes the connection', () => {
    const response = parseResponse(rejectResponse(400, 'Missing or invalid Sec-WebSocket-Key header'))
    assert.equal(response.status, 400)
    assert.equal(response.reason, 'Bad Request')
    assert.deepEqual(response.headers.get('connection'), ['close'])
    assert.equal(response.body.toString(), 'Missing or invalid Sec-WebSocket-Key header')
    assert.equal(response.contentLength, response.body.length)
  })

  it('uses the reason phrase as body when no message is given', () => {
    const response = parseResponse(rejectResponse(426))
    assert.equal(response.status, 426)
    assert.equal(response.reason, 'Upgrade Required')
    assert.equal(response.body.toString(), 'Upgrade Required')
    assert.equal(response.contentLength, 'Upgrade Required'.length)
  })

  it('answers an unlisted status with a generic reason', () => {
    const response = parseResponse(rejectResponse(418, 'teapot'))
    assert.equal(response.status, 418)
    assert.ok(response.reason.length > 0)
    assert.equal(response.contentLength, 6)
  })

  it('sends the extra headers', () => {
    const response = parseResponse(rejectResponse(405, undefined, { Allow: 'GET', 'Retry-After': 3 }))
    assert.deepEqual(response.headers.get('allow'), ['GET'])
    assert.deepEqual(response.headers.get('retry-after'), ['3'])

    const upgrade = parseResponse(rejectResponse(426, 'Unsupported Sec-WebSocket-Version', { 'Sec-WebSocket-Version': '13', Upgrade: 'websocket' }))
    assert.deepEqual(upgrade.headers.get('sec-websocket-version'), ['13'])
    assert.deepEqual(upgrade.headers.get('upgrade'), ['websocket'])
  })

  it('counts Content-Length in bytes for non-ASCII messages', () => {
    for (const message of ['héllo', 'Ünïcödé', '日本語のメッセージ', '😀', 'a😀b🎉c', '👩‍👩‍👧', '', 'x\r\n\r\ny']) {
      const text = rejectResponse(400, message)
      const response = parseResponse(text)
      assert.equal(response.contentLength, Buffer.byteLength(message), JSON.stringify(message))
      assert.equal(response.body.length, response.contentLength, JSON.stringify(message))
      assert.equal(response.body.toString(), message)
    }
  })

  it('counts lone surrogates as the U+FFFD (3 bytes) they are sent as', () => {
    for (const message of ['\uD800', 'a\uD83D', '\uDC00x', '\uD800\uD800', '\uD83D\u00e9', '\uD83Dx\uDE00', '\uDE00\uD83D', '\uD83D\uD83D\uDE00']) {
      const response = parseResponse(rejectResponse(400, message))
      assert.equal(response.contentLength, Buffer.byteLength(message), JSON.stringify(message))
      assert.equal(response.body.length, response.contentLength, JSON.stringify(message))
    }
  })

  it('counts Content-Length in the bytes actually sent, for any string', () => {
    // Any code point, plus lone surrogate halves (which go out as U+FFFD, 3 bytes).
    const unit = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
    )
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 40 }), (message) => {
        const response = parseResponse(rejectResponse(400, message))
        assert.equal(response.contentLength, Buffer.byteLength(message))
        assert.equal(response.body.length, response.contentLength)
      }),
      { numRuns: 500 },
    )
  })

  it('strips CR and LF from header values (no header injection)', () => {
    const text = rejectResponse(403, 'Forbidden', {
      'X-Reason': 'bad\r\nSet-Cookie: session=stolen',
      'X-Other': 'a\rb\nc',
    })
    const response = parseResponse(text)
    assert.equal(response.headers.has('set-cookie'), false)
    assert.equal(response.headers.get('x-reason')?.length, 1)
    assert.ok(!/[\r\n]/.test(response.headers.get('x-reason')![0]!))
    assert.ok(!/[\r\n]/.test(response.headers.get('x-other')![0]!))
    assert.equal(response.body.toString(), 'Forbidden')
    assert.equal(response.contentLength, response.body.length)
  })
})

describe('client request (§4.1)', () => {
  it('creates a 24-character base64 key of 16 bytes', () => {
    const key = createClientKey()
    assert.equal(key.length, 24)
    assert.match(key, /^[A-Za-z0-9+/]{22}==$/)
    const bytes = Buffer.from(key, 'base64')
    assert.equal(bytes.length, 16)
    assert.equal(bytes.toString('base64'), key)
  })

  it('creates a fresh key each time', () => {
    const keys = new Set(Array.from({ length: 64 }, () => createClientKey()))
    assert.equal(keys.size, 64)
  })

  it('sends Upgrade, Connection, version 13 and the key; no protocol or extensions unless given', () => {
    const expected = { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': KEY }
    assert.deepEqual(clientRequestHeaders({ key: KEY }), expected)
    assert.deepEqual(clientRequestHeaders({ key: KEY, protocols: [], extensions: [] }), expected)
  })

  it('sends Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when given', () => {
    const headers = clientRequestHeaders({
      key: KEY,
      protocols: ['chat', 'superchat'],
      extensions: [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }],
    })
    assert.deepEqual(headers['Sec-WebSocket-Protocol']?.split(',').map((p) => p.trim()), ['chat', 'superchat'])
    assert.equal(headers['Sec-WebSocket-Extensions'], 'permessage-deflate; client_max_window_bits')
  })

  it('builds a request the server accepts, offering what was asked', () => {
    const key = createClientKey()
    const extensions: ExtensionOffer[] = [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }]
    const headers: Record<string, string> = { host: 'example.com' }
    for (const [name, value] of Object.entries(clientRequestHeaders({ key, protocols: ['chat', 'superchat'], extensions }))) {
      headers[name.toLowerCase()] = value
    }
    assert.deepEqual(accepted(validateUpgradeRequest({ method: 'GET', httpVersion: '1.1', headers })), {
      key,
      protocols: ['chat', 'superchat'],
      extensions,
      origin: undefined,
    })
  })
})

describe('verifyUpgradeResponse (§4.1, "the client MUST validate the server\'s response")', () => {
  /** A valid 101 answer to KEY; `headers` overrides, and `undefined` removes a header. */
  function response(headers: Record<string, HeaderValue> = {}, status = 101): { status: number; headers: HeadersRecord } {
    const merged: Record<string, HeaderValue> = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': ACCEPT }
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined) delete merged[name]
      else merged[name] = value
    }
    return { status, headers: merged }
  }

  it('accepts the §1.3 answer', () => {
    assert.deepEqual(verifyUpgradeResponse(response(), { key: KEY }), { protocol: '', extensions: [] })
  })

  it('rejects a status other than 101, naming it', () => {
    for (const status of [200, 400, 403, 426, 500]) {
      const error = rejected(verifyUpgradeResponse(response({}, status), { key: KEY }), { code: 'TETHER_ERR_HANDSHAKE_STATUS', status })
      assert.equal(error.message, `Unexpected server response: ${status}`)
    }
  })

  it('accepts Upgrade and Connection in any case and among other tokens', () => {
    for (const upgrade of ['WebSocket', 'foo, websocket']) assert.ok(!(verifyUpgradeResponse(response({ upgrade }), { key: KEY }) instanceof HandshakeError))
    for (const connection of ['upgrade', 'keep-alive, UPGRADE']) assert.ok(!(verifyUpgradeResponse(response({ connection }), { key: KEY }) instanceof HandshakeError))
  })

  it('rejects a missing or wrong Upgrade header', () => {
    for (const upgrade of [undefined, '', 'h2c', 'web socket']) {
      const error = rejected(verifyUpgradeResponse(response({ upgrade }), { key: KEY }), {}, JSON.stringify(upgrade))
      assert.match(error.message, /Upgrade/)
    }
  })

  it('rejects a missing or wrong Connection header', () => {
    for (const connection of [undefined, '', 'keep-alive', 'close']) {
      const error = rejected(verifyUpgradeResponse(response({ connection }), { key: KEY }), {}, JSON.stringify(connection))
      assert.match(error.message, /Connection/)
    }
  })

  it('rejects a missing or wrong accept value', () => {
    for (const accept of [undefined, '', KEY, ACCEPT.toLowerCase(), ACCEPT.slice(0, -1), acceptKey(createClientKey()), [ACCEPT, ACCEPT]]) {
      rejected(verifyUpgradeResponse(response({ 'sec-websocket-accept': accept }), { key: KEY }), { code: 'TETHER_ERR_HANDSHAKE_ACCEPT' }, JSON.stringify(accept))
    }
    // The right answer to another key.
    rejected(verifyUpgradeResponse(response(), { key: createClientKey() }), { code: 'TETHER_ERR_HANDSHAKE_ACCEPT' })
  })

  it('returns the subprotocol the server chose among those offered', () => {
    assert.deepEqual(verifyUpgradeResponse(response({ 'sec-websocket-protocol': 'superchat' }), { key: KEY, protocols: ['chat', 'superchat'] }), {
      protocol: 'superchat',
      extensions: [],
    })
  })

  it('accepts no subprotocol when some were offered, as protocol "" (RFC 6455 §4.1 lets the server choose none)', () => {
    assert.deepEqual(verifyUpgradeResponse(response(), { key: KEY, protocols: ['chat'] }), { protocol: '', extensions: [] })
  })

  it('rejects a subprotocol that was not offered, or several', () => {
    for (const protocol of ['superchat', 'Chat', 'chat, superchat', 'chat, chat', ['chat', 'chat'], '']) {
      rejected(
        verifyUpgradeResponse(response({ 'sec-websocket-protocol': protocol }), { key: KEY, protocols: ['chat', 'other'] }),
        { code: 'TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL' },
        JSON.stringify(protocol),
      )
    }
  })

  it('rejects a subprotocol when none was offered', () => {
    rejected(verifyUpgradeResponse(response({ 'sec-websocket-protocol': 'chat' }), { key: KEY }), { code: 'TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL' })
    rejected(verifyUpgradeResponse(response({ 'sec-websocket-protocol': 'chat' }), { key: KEY, protocols: [] }), { code: 'TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL' })
  })

  it('returns the extensions the server accepted, parsed', () => {
    const result = verifyUpgradeResponse(
      response({ 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover; client_max_window_bits="10"' }),
      { key: KEY, extensions: ['permessage-deflate', 'x-other'] },
    )
    assert.deepEqual(result, {
      protocol: '',
      extensions: [{ name: 'permessage-deflate', params: [['server_no_context_takeover', true], ['client_max_window_bits', '10']] }],
    })
  })

  it('rejects an extension that was not offered', () => {
    rejected(verifyUpgradeResponse(response({ 'sec-websocket-extensions': 'permessage-deflate' }), { key: KEY }), {
      code: 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS',
    })
    rejected(verifyUpgradeResponse(response({ 'sec-websocket-extensions': 'x-other' }), { key: KEY, extensions: ['permessage-deflate'] }), {
      code: 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS',
    })
  })

  it('rejects an extension the server accepted twice', () => {
    for (const value of ['permessage-deflate, permessage-deflate', ['permessage-deflate', 'permessage-deflate; client_max_window_bits=10']]) {
      rejected(
        verifyUpgradeResponse(response({ 'sec-websocket-extensions': value }), { key: KEY, extensions: ['permessage-deflate'] }),
        { code: 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS' },
        JSON.stringify(value),
      )
    }
  })

  it('rejects a malformed extensions header', () => {
    for (const value of ['permessage-deflate;', 'permessage-deflate; x="1 0"', 'permessage-deflate; x="10']) {
      rejected(
        verifyUpgradeResponse(response({ 'sec-websocket-extensions': value }), { key: KEY, extensions: ['permessage-deflate'] }),
        { code: 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS' },
        JSON.stringify(value),
      )
    }
  })

  it('accepts what acceptResponseLines builds for a request validateUpgradeRequest accepted', () => {
    const key = createClientKey()
    const server = accepted(
      validateUpgradeRequest(request({ 'sec-websocket-key': key, 'sec-websocket-protocol': 'chat, superchat', 'sec-websocket-extensions': 'permessage-deflate' })),
    )
    const extensions: ExtensionOffer[] = [{ name: 'permessage-deflate', params: [['client_max_window_bits', '12']] }]
    const lines = acceptResponseLines({ key: server.key, protocol: server.protocols[1], extensions })
    assert.deepEqual(
      verifyUpgradeResponse({ status: 101, headers: headersOfLines(lines) }, { key, protocols: ['chat', 'superchat'], extensions: ['permessage-deflate'] }),
      { protocol: 'superchat', extensions },
    )
  })
})
