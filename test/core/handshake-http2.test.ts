/**
 * core/handshake/http2.ts: the extended CONNECT of RFC 8441, as records in
 * and records out. One describe per function; titles name the section.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HandshakeError } from '../../src/core/errors.js'
import type { HeaderValue } from '../../src/core/handshake/headers.js'
import {
  type AcceptedConnect,
  connectRequestHeaders,
  connectResponseLines,
  headersFromLines,
  validateConnectRequest,
  verifyConnectResponse,
} from '../../src/core/handshake/http2.js'

/** A valid extended CONNECT as Chromium sends it; `fields` overrides, `undefined` removes. */
function connect(fields: Record<string, HeaderValue> = {}): Record<string, HeaderValue> {
  const merged: Record<string, HeaderValue> = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': '/chat?room=1',
    ':authority': 'server.example.com',
    'sec-websocket-version': '13',
    origin: 'https://server.example.com',
  }
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) delete merged[name]
    else merged[name] = value
  }
  return merged
}

function refused(result: AcceptedConnect | HandshakeError): HandshakeError {
  assert.ok(result instanceof HandshakeError, `expected a refusal, got ${JSON.stringify(result)}`)
  return result
}

describe('validateConnectRequest (RFC 8441 §4, §5)', () => {
  it('accepts an extended CONNECT with :protocol websocket and reads path, authority, origin, offers', () => {
    const accepted = validateConnectRequest(connect({
      'sec-websocket-protocol': 'chat, superchat',
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
    }))
    assert.ok(!(accepted instanceof HandshakeError))
    assert.deepEqual(accepted, {
      protocols: ['chat', 'superchat'],
      extensions: [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }],
      origin: 'https://server.example.com',
      path: '/chat?room=1',
      authority: 'server.example.com',
    })
  })

  it('needs no Sec-WebSocket-Key and ignores one sent anyway (§5)', () => {
    assert.ok(!(validateConnectRequest(connect()) instanceof HandshakeError))
    assert.ok(!(validateConnectRequest(connect({ 'sec-websocket-key': 'not even base64' })) instanceof HandshakeError))
  })

  it('refuses a method other than CONNECT with 405 and Allow: CONNECT (§4)', () => {
    const error = refused(validateConnectRequest(connect({ ':method': 'GET' })))
    assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_METHOD')
    assert.equal(error.status, 405)
    assert.deepEqual(error.headers, { Allow: 'CONNECT' })
  })

  it('refuses a CONNECT without :protocol with 400 (§5: "MUST be included")', () => {
    const error = refused(validateConnectRequest(connect({ ':protocol': undefined })))
    assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_H2_PROTOCOL')
    assert.equal(error.status, 400)
  })

  it('refuses another :protocol with 400, and compares websocket case-insensitively', () => {
    const error = refused(validateConnectRequest(connect({ ':protocol': 'h2c' })))
    assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_H2_PROTOCOL')
    assert.equal(error.status, 400)
    assert.match(error.message, /"h2c"/)
    assert.ok(!(validateConnectRequest(connect({ ':protocol': 'WebSocket' })) instanceof HandshakeError))
  })

  it('refuses a request without :scheme or :path with 400 (§4: "MUST also be included")', () => {
    for (const missing of [':scheme', ':path']) {
      const error = refused(validateConnectRequest(connect({ [missing]: undefined })))
      assert.equal(error.code, 'TETHER_ERR_HANDSHAKE_H2_PSEUDO', missing)
      assert.equal(error.status, 400)
    }
    assert.equal(refused(validateConnectRequest(connect({ ':path': '' }))).code, 'TETHER_ERR_HANDSHAKE_H2_PSEUDO')
  })

  it('does not need :authority (§4 refers to RFC 7540 §8.1.2.3, where it is optional)', () => {
    const accepted = validateConnectRequest(connect({ ':authority': undefined }))
    assert.ok(!(accepted instanceof HandshakeError))
    assert.equal(accepted.authority, undefined)
  })

  it('refuses a missing version with 400 and an unknown one with 400 (not 426: HTTP/2 has no Upgrade field), naming 13 and 8', () => {
    const missing = refused(validateConnectRequest(connect({ 'sec-websocket-version': undefined })))
    assert.equal(missing.code, 'TETHER_ERR_HANDSHAKE_VERSION')
    assert.equal(missing.status, 400)
    assert.equal(missing.headers['Sec-WebSocket-Version'], '13, 8')
    const unknown = refused(validateConnectRequest(connect({ 'sec-websocket-version': '12' })))
    assert.equal(unknown.code, 'TETHER_ERR_HANDSHAKE_UNSUPPORTED_VERSION')
    assert.equal(unknown.status, 400)
    assert.deepEqual(unknown.headers, { 'Sec-WebSocket-Version': '13, 8' })
    assert.ok(!(validateConnectRequest(connect({ 'sec-websocket-version': '8' })) instanceof HandshakeError))
  })

  it('refuses malformed subprotocol and extension lists with 400, as over HTTP/1.1', () => {
    assert.equal(refused(validateConnectRequest(connect({ 'sec-websocket-protocol': 'a, a' }))).code, 'TETHER_ERR_HANDSHAKE_PROTOCOL')
    assert.equal(refused(validateConnectRequest(connect({ 'sec-websocket-extensions': 'x; =' }))).code, 'TETHER_ERR_HANDSHAKE_EXTENSIONS')
  })

  it('reads the origin of a version 8 request from Sec-WebSocket-Origin', () => {
    const accepted = validateConnectRequest(connect({ 'sec-websocket-version': '8', origin: undefined, 'sec-websocket-origin': 'https://a.example' }))
    assert.ok(!(accepted instanceof HandshakeError))
    assert.equal(accepted.origin, 'https://a.example')
  })
})

describe('connectResponseLines and headersFromLines (§5)', () => {
  it('answers 200 with the subprotocol and extensions, and no Sec-WebSocket-Accept', () => {
    const lines = connectResponseLines({ protocol: 'chat', extensions: [{ name: 'permessage-deflate', params: [['server_no_context_takeover', true]] }] })
    assert.deepEqual(lines, ['HTTP/2 200', 'sec-websocket-protocol: chat', 'sec-websocket-extensions: permessage-deflate; server_no_context_takeover'])
    assert.deepEqual({ ...headersFromLines(lines) }, {
      ':status': 200,
      'sec-websocket-protocol': 'chat',
      'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover',
    })
    assert.deepEqual(connectResponseLines({}), ['HTTP/2 200'])
  })

  it('keeps what an application added, lower-cased and repeated as lists; drops connection-specific and pseudo fields', () => {
    const headers = headersFromLines([
      'HTTP/2 200',
      'Set-Cookie: a=1',
      'set-cookie: b=2',
      'Connection: Upgrade',
      'Upgrade: websocket',
      ':status: 500',
      'no colon here',
      'X-Evil: one\r\ntwo',
      'Bad Name: x',
    ])
    assert.deepEqual({ ...headers }, { ':status': 200, 'set-cookie': ['a=1', 'b=2'], 'x-evil': 'one  two' })
  })

  it('takes the status from a status line, or the one given', () => {
    assert.equal(headersFromLines(['HTTP/1.1 101 Switching Protocols'])[':status'], 101)
    assert.equal(headersFromLines(['HTTP/2 200'], 403)[':status'], 403)
    assert.equal(headersFromLines([])[':status'], 200)
  })
})

describe('connectRequestHeaders (§4, §5)', () => {
  it('builds an extended CONNECT with :protocol websocket, :scheme, :path, :authority and the version, without a key', () => {
    const headers = connectRequestHeaders({
      scheme: 'https',
      authority: 'example.com:8443',
      path: '/feed?x=1',
      protocols: ['v1', 'v2'],
      extensions: [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }],
    })
    assert.deepEqual(headers, {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': '/feed?x=1',
      ':authority': 'example.com:8443',
      'sec-websocket-version': '13',
      'sec-websocket-protocol': 'v1, v2',
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
    })
    assert.ok(!('sec-websocket-key' in headers))
    assert.equal(connectRequestHeaders({ scheme: 'http', authority: 'a', path: '' })[':path'], '/')
  })

  it('is accepted by validateConnectRequest (the two sides agree)', () => {
    const accepted = validateConnectRequest(connectRequestHeaders({ scheme: 'http', authority: 'a', path: '/x', protocols: ['p'] }))
    assert.ok(!(accepted instanceof HandshakeError))
    assert.deepEqual(accepted.protocols, ['p'])
  })
})

describe('verifyConnectResponse (§5; RFC 6455 §4.1 points 5 and 6)', () => {
  const offered = { protocols: ['chat'], extensions: ['permessage-deflate'] }

  it('accepts any 2xx answer and reads what was agreed', () => {
    for (const status of [200, 204, 299]) {
      const result = verifyConnectResponse({ status, headers: { 'sec-websocket-protocol': 'chat', 'sec-websocket-extensions': 'permessage-deflate' } }, offered)
      assert.ok(!(result instanceof HandshakeError), String(status))
      assert.equal(result.protocol, 'chat')
      assert.deepEqual(result.extensions, [{ name: 'permessage-deflate', params: [] }])
    }
  })

  it('refuses a non-2xx answer with its status', () => {
    for (const status of [101, 400, 403, 404, 500]) {
      const result = verifyConnectResponse({ status, headers: {} }, offered)
      assert.ok(result instanceof HandshakeError)
      assert.equal(result.code, 'TETHER_ERR_HANDSHAKE_STATUS')
      assert.equal(result.status, status)
    }
  })

  it('refuses a subprotocol or an extension that was not offered', () => {
    const protocol = verifyConnectResponse({ status: 200, headers: { 'sec-websocket-protocol': 'other' } }, offered)
    assert.ok(protocol instanceof HandshakeError)
    assert.equal(protocol.code, 'TETHER_ERR_HANDSHAKE_SERVER_PROTOCOL')
    assert.equal(protocol.status, 200)
    const extension = verifyConnectResponse({ status: 200, headers: { 'sec-websocket-extensions': 'x-other' } }, offered)
    assert.ok(extension instanceof HandshakeError)
    assert.equal(extension.code, 'TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS')
    const none = verifyConnectResponse({ status: 200, headers: { 'sec-websocket-extensions': 'permessage-deflate' } }, { protocols: [] })
    assert.ok(none instanceof HandshakeError)
  })
})
