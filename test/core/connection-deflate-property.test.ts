/**
 * Connection property with permessage-deflate (RFC 7692 §6, §7.2): random
 * streams of messages, some compressed with real zlib (flushed, tail removed,
 * no context takeover), some plain, fragmented at random (compressed bytes
 * and characters cut anywhere, empty fragments included), with pings and
 * pongs between fragments, serialized as a client sends them and cut at
 * random points, give a server Connection exactly the same messages in
 * order, whether the codec answers at once or later.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import type { ConnectionEvent } from '../../src/core/connection.js'
import type { DeflateParameters } from '../../src/core/deflate/negotiate.js'
import { Opcode, serializeFrame } from '../../src/core/frame.js'
import { bytewise, concat, split, utf8 } from '../helpers/bytes.js'
import { InflateDriver, compress, deferred, zlibInflater } from '../helpers/codec.js'
import { server } from '../helpers/pair.js'
import { decodeFrames, plain } from '../helpers/wire.js'

const deflate: DeflateParameters = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
}

type Control = { kind: 'ping' | 'pong'; data: Uint8Array }
type Message = { kind: 'message'; binary: boolean; compressed: boolean; data: Uint8Array; cuts: number[]; controls: Control[][] }
type Item = Message | Control

const control: fc.Arbitrary<Control> = fc.record({
  kind: fc.constantFrom('ping' as const, 'pong' as const),
  data: fc.uint8Array({ maxLength: 20 }),
})

const message: fc.Arbitrary<Message> = fc
  .record({
    binary: fc.boolean(),
    compressed: fc.boolean(),
    // Repetitive text compresses into back-references; random bytes into literals and stored blocks.
    text: fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => s.repeat(30))),
    bytes: fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ minLength: 200, maxLength: 600 }), fc.nat(700).map((n) => new Uint8Array(n).fill(n & 0xff))),
    cuts: fc.array(fc.nat(700), { maxLength: 5 }),
    controls: fc.array(fc.array(control, { maxLength: 2 }), { maxLength: 6 }),
  })
  .map(({ binary, compressed, text, bytes, cuts, controls }) => ({
    kind: 'message' as const,
    binary,
    compressed,
    data: binary ? bytes : utf8(text),
    cuts,
    controls,
  }))

const items = fc.array(fc.oneof({ weight: 4, arbitrary: message }, { weight: 1, arbitrary: control }), { minLength: 1, maxLength: 6 })
const masks = fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 3 })
const cuts = fc.array(fc.nat(4000), { maxLength: 30 })

/** The client's byte stream for `items`, the events a server must deliver, and the compressed payloads. */
function build(list: readonly Item[], keys: readonly Uint8Array[]) {
  const frames: Uint8Array[] = []
  const events: ConnectionEvent[] = []
  const compressedPayloads: Uint8Array[] = []
  let k = 0
  const frame = (fin: boolean, rsv1: boolean, opcode: number, payload: Uint8Array) =>
    frames.push(serializeFrame({ fin, rsv1, opcode, payload, mask: keys[k++ % keys.length] }))
  const sendControl = (c: Control) => {
    frame(true, false, c.kind === 'ping' ? Opcode.Ping : Opcode.Pong, c.data)
    events.push({ type: c.kind, data: c.data })
  }
  for (const it of list) {
    if (it.kind !== 'message') {
      sendControl(it)
      continue
    }
    const payload = it.compressed ? compress(it.data) : it.data
    if (it.compressed) compressedPayloads.push(payload)
    // Cuts anywhere in the (compressed) payload, repeated ones giving empty fragments.
    const points = it.cuts.map((c) => c % (payload.length + 1)).sort((a, b) => a - b)
    const bounds = [0, ...points, payload.length]
    const fragments = bounds.slice(1).map((end, i) => payload.subarray(bounds[i]!, end))
    fragments.forEach((fragment, i) => {
      const first = i === 0
      const last = i === fragments.length - 1
      // RFC 7692 §6: RSV1 on the first frame only.
      frame(last, first && it.compressed, first ? (it.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation, fragment)
      if (!last) for (const c of it.controls[i] ?? []) sendControl(c)
    })
    events.push({ type: 'message', data: it.data, binary: it.binary })
  }
  return { bytes: concat(frames), events: plain(events), compressedPayloads }
}

/** What every run must show besides the events: requests that add up, and a healthy connection. */
function checkRun(driver: InflateDriver, compressedPayloads: readonly Uint8Array[]): void {
  const requests = driver.requests
  // One end = true request per compressed message, and the requests carry exactly the compressed bytes.
  assert.equal(requests.filter((r) => r.end).length, compressedPayloads.length)
  assert.deepEqual(Buffer.from(concat(requests.map((r) => r.data))), Buffer.from(concat(compressedPayloads)))
}

describe('connection property with permessage-deflate: client stream in, same messages out', () => {
  it('a synchronous codec, whole, at random cuts and byte by byte', () => {
    fc.assert(
      fc.property(items, masks, cuts, (list, keys, points) => {
        const { bytes, events, compressedPayloads } = build(list, keys)
        const pings = events.filter((e) => (e as { type: string }).type === 'ping').map((e) => (e as { data: string }).data)
        for (const pieces of [[bytes], split(bytes, points), bytewise(bytes)]) {
          const s = server({ deflate })
          const driver = new InflateDriver(s, zlibInflater()).feed(pieces)
          assert.equal(driver.pending, false)
          assert.deepEqual(plain(driver.delivered), events)
          checkRun(driver, compressedPayloads)
          assert.equal(s.error, undefined)
          assert.equal(s.state, 'open')
          // Every ping was answered (autoPong), in order, and nothing else was sent.
          const answered = decodeFrames(concat(s.dataToSend()))
          assert.ok(answered.every((f) => f.opcode === Opcode.Pong && f.rsv === 0 && !f.masked))
          assert.deepEqual(answered.map((f) => Buffer.from(f.payload).toString('hex')), pings)
        }
      }),
      { numRuns: 120 },
    )
  })

  it('an asynchronous codec, with input arriving while answers are pending', async () => {
    await fc.assert(
      fc.asyncProperty(items, masks, cuts, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), async (list, keys, points, waits) => {
        const { bytes, events, compressedPayloads } = build(list, keys)
        const s = server({ deflate })
        const driver = new InflateDriver(s, deferred(zlibInflater()))
        const pieces = split(bytes, points)
        for (let i = 0; i < pieces.length; i++) {
          driver.feed([pieces[i]!])
          // Sometimes let answers arrive between pieces, sometimes not.
          if (waits[i % waits.length]) await new Promise((resolve) => setImmediate(resolve))
        }
        await driver.settle()
        assert.deepEqual(plain(driver.delivered), events)
        checkRun(driver, compressedPayloads)
        assert.equal(s.error, undefined)
      }),
      { numRuns: 60 },
    )
  })
})
