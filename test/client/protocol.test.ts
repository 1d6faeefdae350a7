/**
 * The tether.v1 codec (src/client/protocol.ts): every message survives both
 * forms (binary and JSON), fixtures pin the binary layout, and bytes or text
 * that are not a message give a reason, never an exception.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  type ClientMessage,
  type ServerMessage,
  fromBase64,
  parseClientMessage,
  parseServerMessage,
  serializeClientMessage,
  serializeClientMessageJson,
  serializeServerMessage,
  serializeServerMessageJson,
  toBase64,
} from '../../src/client/protocol.js'
import { hex } from '../helpers/bytes.js'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('tether.v1 binary layout', () => {
  test('deliver: type, flags, topic, epoch, offset (varint), then the payload as is', () => {
    const frame = serializeServerMessage({ type: 'deliver', topic: 'ab', position: { epoch: 'e1', offset: 300 }, data: bytes('hi'), binary: false })
    assert.deepEqual(Buffer.from(frame), Buffer.from(hex`83 00 02 61 62 02 65 31 ac 02 68 69`))
  })

  test('subscribe from a position with a request id', () => {
    const frame = serializeClientMessage({ type: 'subscribe', id: 5, topic: 't', from: { epoch: 'x', offset: 7 } })
    assert.deepEqual(Buffer.from(frame), Buffer.from(hex`01 05 01 01 74 01 78 07`))
  })

  test('a gap with an unknown count writes 0; a count n writes n + 1', () => {
    const unknown = serializeServerMessage({ type: 'gap', topic: 't', reason: 'reset', count: undefined, from: { epoch: 'a', offset: 1 }, to: { epoch: 'b', offset: 0 } })
    assert.deepEqual(Buffer.from(unknown), Buffer.from(hex`84 01 74 01 00 01 61 01 01 62 00`))
    const counted = serializeServerMessage({ type: 'gap', topic: 't', reason: 'expired', count: 0, from: { epoch: 'a', offset: 1 }, to: { epoch: 'a', offset: 1 } })
    assert.equal(counted[3], 0, 'reason expired')
    assert.equal(counted[4], 1, 'count 0 is written as 1')
  })
})

const position = fc.record({ epoch: fc.string({ maxLength: 12 }), offset: fc.maxSafeNat() })
const topic = fc.string({ minLength: 1, maxLength: 40 })
const payload = fc.oneof(
  fc.string().map((text) => ({ data: bytes(text), binary: false })),
  fc.uint8Array({ maxLength: 64 }).map((data) => ({ data, binary: true })),
)
const clientMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.record({ type: fc.constant('subscribe' as const), id: fc.maxSafeNat(), topic, from: fc.option(position, { nil: undefined }), recent: fc.option(fc.nat(), { nil: undefined }) }),
  fc.record({ type: fc.constant('unsubscribe' as const), id: fc.maxSafeNat(), topic }),
  fc.tuple(fc.maxSafeNat(), topic, payload, fc.option(fc.string({ maxLength: 30 }), { nil: undefined })).map(([id, name, { data, binary }, key]) => ({ type: 'publish' as const, id, topic: name, data, binary, key })),
)
const serverMessage: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc.tuple(topic, position, payload).map(([name, at, { data, binary }]) => ({ type: 'deliver' as const, topic: name, position: at, data, binary })),
  fc.record({ type: fc.constant('subscribed' as const), id: fc.maxSafeNat(), topic, position, recovered: fc.nat() }),
  fc.record({ type: fc.constant('unsubscribed' as const), id: fc.maxSafeNat(), topic }),
  fc.record({ type: fc.constant('gap' as const), topic, reason: fc.constantFrom('expired' as const, 'reset' as const, 'ahead' as const), count: fc.option(fc.nat(), { nil: undefined }), from: position, to: position }),
  fc.record({ type: fc.constant('published' as const), id: fc.maxSafeNat(), topic, position }),
  fc.record({ type: fc.constant('error' as const), id: fc.maxSafeNat(), code: fc.string(), message: fc.string(), topic: fc.string() }),
)

/** Messages compared as plain values: payload bytes as arrays, absent options dropped. */
function plain(message: object): unknown {
  return JSON.parse(JSON.stringify(message, (_key, value) => (value instanceof Uint8Array ? Array.from(value) : value)))
}

describe('tether.v1 round trips', () => {
  test('client messages, binary and JSON', () => {
    fc.assert(
      fc.property(clientMessage, (message) => {
        assert.deepEqual(plain(parseClientMessage(serializeClientMessage(message), true)), plain(message))
        assert.deepEqual(plain(parseClientMessage(serializeClientMessageJson(message), false)), plain(message))
      }),
    )
  })

  test('server messages, binary and JSON', () => {
    fc.assert(
      fc.property(serverMessage, (message) => {
        assert.deepEqual(plain(parseServerMessage(serializeServerMessage(message))), plain(message))
        assert.deepEqual(plain(parseServerMessage(serializeServerMessageJson(message))), plain(message))
      }),
    )
  })

  test('base64 agrees with Buffer both ways, and refuses what is not base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (data) => {
        const text = toBase64(data)
        assert.equal(text, Buffer.from(data).toString('base64'))
        assert.deepEqual(fromBase64(text), data)
      }),
    )
    for (const bad of ['abc', 'a===', '@@@@', 'ab=c']) assert.equal(fromBase64(bad), undefined, bad)
  })
})

describe('tether.v1 input that is not a message (never throws)', () => {
  test('random bytes and random text give a message or a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        const client = parseClientMessage(data, true)
        const server = parseServerMessage(data)
        for (const parsed of [client, server]) assert.ok(typeof parsed.type === 'string')
      }),
    )
    fc.assert(fc.property(fc.string(), (text) => assert.ok(typeof parseClientMessage(text, false).type === 'string')))
  })

  test('each kind of bad input names its reason', () => {
    const cases: Array<[Uint8Array | string, boolean, RegExp]> = [
      [new Uint8Array(), true, /empty/],
      [hex`7f`, true, /unknown message type 0x7f/],
      [hex`01 05`, true, /truncated/],
      [hex`02 01 05 61`, true, /truncated string/],
      [hex`02 01 01 ff`, true, /not UTF-8/],
      [hex`02 01 01 61 00`, true, /bytes after/],
      [hex`02 ff ff ff ff ff ff ff ff 01`, true, /2\^53/],
      [hex`03 00 00 01 61 ff fe`, true, /text payload that is not UTF-8/],
      ['not json', false, /not JSON/],
      ['[1]', false, /not a JSON object/],
      ['{"type":"subscribe","id":-1,"topic":"a"}', false, /"id" must be/],
      ['{"type":"subscribe","id":1,"topic":"a","from":{"epoch":"x","offset":1.5}}', false, /"offset" must be/],
      ['{"type":"publish","id":1,"topic":"a","data64":"@@"}', false, /"data64" must be base64/],
      ['{"type":"dance","id":1,"topic":"a"}', false, /"type" must be/],
      // Outsider (issue 17): an unknown type without a topic was told about the topic; both payload forms were taken.
      ['{"type":"frobnicate","id":1}', false, /"type" must be/],
      ['{"type":"publish","id":1,"topic":"a","data":"x","data64":"eA=="}', false, /"data" and "data64" together/],
    ]
    for (const [input, isBinary, reason] of cases) {
      const parsed = parseClientMessage(typeof input === 'string' ? input : input, isBinary)
      assert.equal(parsed.type, 'invalid', String(input))
      assert.match((parsed as { reason: string }).reason, reason)
    }
  })
})
