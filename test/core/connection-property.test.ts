/**
 * Connection property: parse(serialize(frames)) is the identity under every
 * chunking (RFC 6455 §5.2-§5.5). Random streams of valid frames (text with
 * random Unicode cut at arbitrary byte positions into fragments, binary with
 * random bytes, pings and pongs interleaved between fragments) are serialized
 * as the peer would (masked client to server, unmasked server to client), cut
 * at random points and byte by byte, and fed to a Connection. The events must
 * be exactly the messages, pings and pongs in order, and the automatic pongs
 * must echo the pings.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import type { Side } from '../../src/core/connection.js'
import { Opcode, serializeFrame } from '../../src/core/frame.js'
import { bytewise, concat, split, utf8 } from '../helpers/bytes.js'
import { client, feed, server } from '../helpers/pair.js'
import { decodeFrames, plain } from '../helpers/wire.js'

type Control = { kind: 'ping' | 'pong'; data: Uint8Array }
type Message = { kind: 'message'; binary: boolean; data: Uint8Array; cuts: number[]; controls: Control[][] }
type Item = Message | Control

const control: fc.Arbitrary<Control> = fc.record({
  kind: fc.constantFrom('ping' as const, 'pong' as const),
  data: fc.oneof(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 125 })),
})

const message: fc.Arbitrary<Message> = fc
  .record({
    binary: fc.boolean(),
    text: fc.string({ unit: 'binary', maxLength: 40 }),
    bytes: fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 60 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 126, maxLength: 400 }) }),
    cuts: fc.array(fc.nat(400), { maxLength: 4 }),
    controls: fc.array(fc.array(control, { maxLength: 2 }), { maxLength: 5 }),
  })
  .map(({ binary, text, bytes, cuts, controls }) => ({
    kind: 'message' as const,
    binary,
    data: binary ? bytes : utf8(text),
    cuts,
    controls,
  }))

const item: fc.Arbitrary<Item> = fc.oneof({ weight: 3, arbitrary: message }, { weight: 1, arbitrary: control })

/** Serializes `items` as the peer of `side` would, and lists the events and pongs `side` must produce. */
function build(items: readonly Item[], masks: readonly Uint8Array[], side: Side) {
  const frames: Uint8Array[] = []
  const events: unknown[] = []
  const pongs: string[] = []
  let maskIndex = 0
  const frame = (fin: boolean, opcode: number, payload: Uint8Array) => {
    const mask = side === 'server' ? masks[maskIndex++ % masks.length] : undefined
    frames.push(serializeFrame({ fin, opcode, payload, mask }))
  }
  const sendControl = (c: Control) => {
    frame(true, c.kind === 'ping' ? Opcode.Ping : Opcode.Pong, c.data)
    events.push(...plain([{ type: c.kind, data: c.data }]))
    if (c.kind === 'ping') pongs.push(Buffer.from(c.data).toString('hex'))
  }
  for (const it of items) {
    if (it.kind !== 'message') {
      sendControl(it)
      continue
    }
    // Fragments at arbitrary byte cuts (possibly inside a UTF-8 character), possibly empty.
    const points = [...new Set(it.cuts.map((c) => c % (it.data.length + 1)))].sort((a, b) => a - b)
    const bounds = [0, ...points, it.data.length]
    const fragments = bounds.slice(1).map((end, i) => it.data.subarray(bounds[i]!, end))
    fragments.forEach((fragment, i) => {
      const first = i === 0
      const last = i === fragments.length - 1
      frame(last, first ? (it.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation, fragment)
      if (!last) for (const c of it.controls[i] ?? []) sendControl(c)
    })
    events.push(...plain([{ type: 'message', data: it.data, binary: it.binary }]))
  }
  return { bytes: concat(frames), events, pongs }
}

function check(side: Side, items: readonly Item[], masks: readonly Uint8Array[], cuts: readonly number[]): void {
  const { bytes, events, pongs } = build(items, masks, side)
  const make = side === 'server' ? server : client
  for (const pieces of [[bytes], split(bytes, cuts), bytewise(bytes)]) {
    const connection = make()
    assert.deepEqual(plain(feed(connection, pieces)), events)
    const answered = decodeFrames(concat(connection.dataToSend()))
    assert.ok(answered.every((f) => f.opcode === Opcode.Pong && f.masked === (side === 'client')))
    assert.deepEqual(
      answered.map((f) => Buffer.from(f.payload).toString('hex')),
      pongs,
    )
    assert.equal(connection.error, undefined)
    assert.equal(connection.state, 'open')
  }
}

const masks = fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 4 })
const items = fc.array(item, { minLength: 1, maxLength: 5 })
const cuts = fc.array(fc.nat(3000), { maxLength: 40 })

describe('connection property: parse(serialize(frames)) is the identity under every chunking', () => {
  it('client -> server (masked frames)', () => {
    fc.assert(
      fc.property(items, masks, cuts, (generated, keys, points) => check('server', generated, keys, points)),
      { numRuns: 150 },
    )
  })

  it('server -> client (unmasked frames)', () => {
    fc.assert(
      fc.property(items, masks, cuts, (generated, keys, points) => check('client', generated, keys, points)),
      { numRuns: 150 },
    )
  })
})

describe('connection property: a peer cannot make the connection throw (Rule 1)', () => {
  const anyFrame = fc
    .record({
      fin: fc.boolean(),
      rsv: fc.constantFrom(0, 0, 0, 0, 0, 1, 2, 4),
      opcode: fc.oneof(fc.constantFrom(0, 1, 2, 8, 9, 10), fc.integer({ min: 0, max: 15 })),
      payload: fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 10 }).map(utf8), fc.uint8Array({ maxLength: 300 })),
      mask: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined, freq: 3 }),
    })
    .map((f) => serializeFrame({ ...f, rsv1: (f.rsv & 4) !== 0, rsv2: (f.rsv & 2) !== 0, rsv3: (f.rsv & 1) !== 0 }))
  const stream = fc.array(fc.oneof({ weight: 4, arbitrary: anyFrame }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }) }), { maxLength: 8 })

  it('any bytes, any chunking, any options: no exception; a failure is one error event and one close frame with its code', () => {
    fc.assert(
      fc.property(
        stream,
        fc.array(fc.nat(3000), { maxLength: 20 }),
        fc.constantFrom<Side>('client', 'server'),
        fc.record({ maxPayload: fc.constantFrom(0, 10, 100, undefined), skipUTF8Validation: fc.boolean(), autoPong: fc.boolean() }),
        (parts, points, side, options) => {
          const connection = (side === 'server' ? server : client)(options)
          const events = feed(connection, split(concat(parts), points))
          connection.receiveEof()
          events.push(...connection.eventsReceived())
          const frames = decodeFrames(concat(connection.dataToSend()))
          const errors = events.filter((e) => e.type === 'error')
          assert.ok(errors.length <= 1)
          assert.equal(events.at(-1)!.type, 'closed')
          assert.ok(frames.every((f) => f.masked === (side === 'client')))
          const closes = frames.filter((f) => f.opcode === Opcode.Close)
          assert.ok(closes.length <= 1, 'at most one close frame')
          if (errors.length === 1) {
            const { error } = errors[0] as Extract<(typeof events)[number], { type: 'error' }>
            assert.equal(closes.length, 1)
            assert.equal(closes[0]!.payload.length, 2)
            assert.equal((closes[0]!.payload[0]! << 8) | closes[0]!.payload[1]!, error.closeCode)
            assert.equal(frames.at(-1)!.opcode, Opcode.Close, 'nothing is sent after the close frame')
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
