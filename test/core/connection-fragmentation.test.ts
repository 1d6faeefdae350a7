/**
 * Connection: fragmentation (RFC 6455 §5.4) and the memory bound of message
 * assembly (the "many tiny fragments" attack).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Connection, ConnectionEvent } from '../../src/core/connection.js'
import { Opcode, firstHeaderByte, writeFrameHeader } from '../../src/core/frame.js'
import { bytewise, clientFrame, concat, hex, utf8 } from '../helpers/bytes.js'
import { client, feed, sent, server } from '../helpers/pair.js'
import { assertFailed, decodeFrames, plain } from '../helpers/wire.js'

// A real full GC for the retention tests below (each test file runs in its own process).
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * Masked one-byte frames in one buffer, built in place (the key is 0 so the
 * byte is its own masked form): `count` fragments of `byteAt(i)`, the first a
 * binary frame, the rest continuations; FIN on the last only if `finish`.
 */
function tinyFragments(count: number, byteAt: (i: number) => number, finish: boolean, first = 0): Uint8Array {
  const out = new Uint8Array(count * 7)
  for (let i = 0; i < count; i++) {
    const at = i * 7
    const opcode = first + i === 0 ? Opcode.Binary : Opcode.Continuation
    out[at] = firstHeaderByte(finish && i === count - 1, opcode)
    out[at + 1] = 0x81
    // Mask bytes at + 2 .. at + 5 stay 0.
    out[at + 6] = byteAt(first + i)
  }
  return out
}

/** Awaits until `done()` or gives up after many GC cycles; finalizers run as separate tasks. */
async function collectUntil(done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 50 && !done(); i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return done()
}

function messages(events: readonly ConnectionEvent[]): Extract<ConnectionEvent, { type: 'message' }>[] {
  return events.filter((e): e is Extract<ConnectionEvent, { type: 'message' }> => e.type === 'message')
}

describe('connection: fragmentation (§5.4)', () => {
  it('assembles a text message from fragments (the §5.7 example)', () => {
    const c = client()
    const events = feed(c, [hex`01 03 48 65 6c`, hex`80 02 6c 6f`])
    assert.deepEqual(plain(events), plain([{ type: 'message', data: utf8('Hello'), binary: false }]))
  })

  it('assembles a binary message from fragments, empty fragments included', () => {
    const s = server()
    const events = feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Binary, payload: new Uint8Array(0) }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: Uint8Array.of(1, 2) }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: new Uint8Array(0) }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: Uint8Array.of(3) }),
    ])
    assert.deepEqual(plain(events), plain([{ type: 'message', data: Uint8Array.of(1, 2, 3), binary: true }]))
  })

  it('delivers an empty message made of empty fragments', () => {
    const s = server()
    const events = feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Text, payload: new Uint8Array(0) }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: new Uint8Array(0) }),
    ])
    assert.deepEqual(plain(events), plain([{ type: 'message', data: new Uint8Array(0), binary: false }]))
  })

  it('allows ping, pong and close frames between fragments; the message before close is not delivered, pings are answered', () => {
    const s = server()
    const events = feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Text, payload: utf8('fra') }),
      clientFrame({ fin: true, opcode: Opcode.Ping, payload: utf8('p1') }),
      clientFrame({ fin: false, opcode: Opcode.Continuation, payload: utf8('gme') }),
      clientFrame({ fin: true, opcode: Opcode.Pong, payload: utf8('p2') }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: utf8('nted') }),
    ])
    assert.deepEqual(
      plain(events),
      plain([
        { type: 'ping', data: utf8('p1') },
        { type: 'pong', data: utf8('p2') },
        { type: 'message', data: utf8('fragmented'), binary: false },
      ]),
    )
    assert.deepEqual(sent(s), hex`8a 02 70 31`, 'the ping was answered in the middle of the message')
  })

  it('allows control frames between fragments when fed byte by byte, and the message arrives intact', () => {
    const c = client()
    const stream = concat([
      hex`02 02 01 02`, // binary, not final
      hex`89 01 61`, // ping "a"
      hex`00 01 03`,
      hex`8a 00`, // pong
      hex`80 02 04 05`,
    ])
    const events = feed(c, bytewise(stream))
    assert.deepEqual(
      plain(events),
      plain([
        { type: 'ping', data: utf8('a') },
        { type: 'pong', data: new Uint8Array(0) },
        { type: 'message', data: Uint8Array.of(1, 2, 3, 4, 5), binary: true },
      ]),
    )
  })

  it('a close frame between fragments starts the closing handshake (§5.5.1), the partial message is dropped', () => {
    const s = server()
    const events = feed(s, [
      clientFrame({ fin: false, opcode: Opcode.Text, payload: utf8('part') }),
      clientFrame({ fin: true, opcode: Opcode.Close, payload: hex`03 e8` }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: utf8('rest') }),
    ])
    assert.deepEqual(plain(events), plain([{ type: 'close', code: 1000, reason: new Uint8Array(0) }]))
    assert.deepEqual(sent(s), hex`88 02 03 e8`)
  })

  it('fails 1002 on a continuation frame without a message to continue (§5.4)', () => {
    const s = server()
    assertFailed(s, feed(s, [clientFrame({ fin: true, opcode: Opcode.Continuation, payload: utf8('x') })]), 'WS_ERR_INVALID_OPCODE', 1002)
    const c = client()
    assertFailed(c, feed(c, [hex`00 00`]), 'WS_ERR_INVALID_OPCODE', 1002)
  })

  it('fails 1002 on a continuation frame after a message already finished (§5.4)', () => {
    const s = server()
    const events = feed(s, [
      clientFrame({ fin: true, opcode: Opcode.Text, payload: utf8('done') }),
      clientFrame({ fin: true, opcode: Opcode.Continuation, payload: utf8('x') }),
    ])
    assert.equal(events[0]!.type, 'message')
    assertFailed(s, events.slice(1), 'WS_ERR_INVALID_OPCODE', 1002)
  })

  for (const opcode of [Opcode.Text, Opcode.Binary]) {
    it(`fails 1002 on a new ${opcode === Opcode.Text ? 'text' : 'binary'} frame in the middle of a fragmented message (§5.4)`, () => {
      const s = server()
      const events = feed(s, [
        clientFrame({ fin: false, opcode: Opcode.Binary, payload: utf8('a') }),
        clientFrame({ fin: true, opcode, payload: utf8('b') }),
      ])
      assertFailed(s, events, 'WS_ERR_INVALID_OPCODE', 1002)
    })
  }
})

describe('connection: memory bound of fragmented messages (many tiny fragments), with maxFragments: 0', () => {
  it('assembles 200,000 one-byte fragments fed as one chunk into one buffer of at most twice the message size', () => {
    const count = 200_000
    const byteAt = (i: number) => (i * 31) & 0xff
    const chunk = tinyFragments(count, byteAt, true)
    const s = server({ maxFragments: 0 })
    s.receiveData(chunk)
    const [message, ...rest] = messages(s.eventsReceived())
    assert.equal(rest.length, 0)
    assert.equal(message!.data.length, count)
    for (let i = 0; i < count; i++) if (message!.data[i] !== byteAt(i)) assert.fail(`byte ${i}`)
    // Structural bound: the message is one buffer of its own, not views into
    // the 1.4 MB chunk, and the buffer is at most twice the message.
    assert.notEqual(message!.data.buffer, chunk.buffer)
    assert.ok(message!.data.buffer.byteLength <= 2 * count, `${message!.data.buffer.byteLength} bytes kept for ${count}`)
  })

  it('accepts 200,000 zero-byte fragments and keeps no buffer for them', () => {
    const count = 200_000
    const out = new Uint8Array(count * 6 + 8)
    for (let i = 0; i < count; i++) {
      out[i * 6] = i === 0 ? Opcode.Text : Opcode.Continuation
      out[i * 6 + 1] = 0x80
    }
    out.set(clientFrame({ fin: true, opcode: Opcode.Continuation, payload: utf8('ok') }), count * 6)
    const s = server({ maxFragments: 0 })
    s.receiveData(out)
    assert.deepEqual(plain(s.eventsReceived()), plain([{ type: 'message', data: utf8('ok'), binary: false }]))
  })

  /*
   * Retention, checked structurally rather than by sampling memory counters
   * (heapUsed and arrayBuffers move with unrelated allocations and GC timing,
   * which makes byte thresholds flaky). Each read buffer fed to the connection
   * is registered with a FinalizationRegistry and all references to it are
   * dropped; after full GCs (gc() via --expose-gc set at run time) every one
   * of them must have been finalized although the message is still
   * incomplete. An assembler that kept views of its pieces (the ws 2026
   * memory exhaustion) keeps every read buffer alive and fails this; one that
   * copies into its own growing buffer lets them all go. Finalization is
   * awaited for up to 50 GC cycles, so slow finalizer scheduling cannot make
   * the test flaky, and a correct implementation has nothing to retain.
   */
  it('does not keep read buffers alive while assembling: one large chunk of 199,999 fragments', async () => {
    const count = 200_000
    const byteAt = (i: number) => (i * 7) & 0xff
    let finalized = 0
    const registry = new FinalizationRegistry<string>(() => finalized++)
    const s = server({ maxFragments: 0 })
    // A separate function, so no local variable of this test keeps the chunk.
    ;((connection: Connection) => {
      const chunk = tinyFragments(count - 1, byteAt, false)
      registry.register(chunk.buffer, 'chunk')
      connection.receiveData(chunk)
    })(s)
    assert.deepEqual(s.eventsReceived(), [], 'the message is not complete yet')
    assert.ok(await collectUntil(() => finalized === 1), 'the 1.4 MB read buffer was not retained')

    s.receiveData(tinyFragments(1, byteAt, true, count - 1))
    const [message] = messages(s.eventsReceived())
    assert.equal(message!.data.length, count)
    for (let i = 0; i < count; i++) if (message!.data[i] !== byteAt(i)) assert.fail(`byte ${i}`)
  })

  it('does not keep read buffers alive while assembling: 20,000 fragments in 20,000 reads', async () => {
    const count = 20_000
    let finalized = 0
    const registry = new FinalizationRegistry<number>(() => finalized++)
    const s = server({ maxFragments: 0 })
    ;((connection: Connection) => {
      for (let i = 0; i < count; i++) {
        // Each read is a 64-byte buffer holding one 7-byte frame, as a socket would deliver it.
        const read = new Uint8Array(64)
        read.set(tinyFragments(1, () => i & 0xff, false, i))
        registry.register(read.buffer, i)
        connection.receiveData(read.subarray(0, 7))
      }
    })(s)
    assert.deepEqual(s.eventsReceived(), [])
    assert.ok(await collectUntil(() => finalized === count), `${count - finalized} of ${count} read buffers retained`)
    s.receiveData(tinyFragments(1, () => 0xff, true, count))
    const [message] = messages(s.eventsReceived())
    assert.equal(message!.data.length, count + 1)
    assert.equal(message!.data[count - 1], (count - 1) & 0xff)
  })

  it('a frame announcing 100 MiB (the default maxPayload) but sending 32 bytes does not make the connection allocate 100 MiB', () => {
    // Memory must follow the bytes received, not the length a peer claims:
    // otherwise a few bytes per connection pin maxPayload bytes each.
    // arrayBuffers counts live ArrayBuffer memory; the connection is live, so
    // an eager 100 MiB buffer would show in full. The bound (16 MiB) is far
    // from both the correct growth (bytes) and the bug (100 MiB).
    gc()
    const before = process.memoryUsage().arrayBuffers
    const s = server({ maxFragments: 0 })
    s.receiveData(hex`82 ff 00 00 00 00 06 40 00 00 00 00 00 00`) // 100 MiB, masked with a zero key
    s.receiveData(new Uint8Array(16))
    s.receiveData(new Uint8Array(16))
    const growth = process.memoryUsage().arrayBuffers - before
    assert.deepEqual(s.eventsReceived(), [])
    assert.ok(growth < 16 * 2 ** 20, `${(growth / 2 ** 20).toFixed(1)} MiB allocated for 32 bytes received`)
    assert.equal(s.state, 'open')
  })

  it('with maxPayload 0, a frame announcing 2^40 bytes and sending a few pieces neither throws nor fails (Rule 1: no exceptions from peer input)', () => {
    const s = server({ maxPayload: 0 })
    const header = hex`82 ff 00 00 01 00 00 00 00 00 00 00 00 00`
    const events = feed(s, [header, new Uint8Array(10), new Uint8Array(10), new Uint8Array(1000)])
    assert.deepEqual(events, [])
    assert.equal(s.error, undefined)
    assert.equal(s.state, 'open')
  })

  it('accepts a legitimate 4 MiB message sent as 65,536 fragments of 64 bytes, byte-identical, when maxFragments is 0', () => {
    const fragmentSize = 64
    const count = 65_536
    const payload = new Uint8Array(randomBytes(fragmentSize * count))
    const mask = Uint8Array.of(0x12, 0x34, 0x56, 0x78)
    // Build the client's byte stream (6-byte header + 64 masked bytes per fragment).
    const stream = new Uint8Array(count * (6 + fragmentSize))
    for (let i = 0; i < count; i++) {
      const at = i * (6 + fragmentSize)
      const opcode = i === 0 ? Opcode.Binary : Opcode.Continuation
      const end = writeFrameHeader(stream, at, firstHeaderByte(i === count - 1, opcode), fragmentSize, mask)
      for (let j = 0; j < fragmentSize; j++) stream[end + j] = payload[i * fragmentSize + j]! ^ mask[j & 3]!
    }
    const s = server({ maxFragments: 0 })
    const events: ConnectionEvent[] = []
    for (let at = 0; at < stream.length; at += 65536) {
      s.receiveData(stream.subarray(at, at + 65536))
      events.push(...s.eventsReceived())
    }
    assert.equal(events.length, 1)
    const [message] = messages(events)
    assert.equal(message!.binary, true)
    assert.ok(Buffer.from(message!.data).equals(Buffer.from(payload)), 'byte-identical')
    assert.equal(s.error, undefined)
    assert.deepEqual(decodeFrames(sent(s)), [], 'nothing to send back')
  })
})

describe('connection: maxFragments (ws: WS_ERR_TOO_MANY_BUFFERED_PARTS)', () => {
  const fragments = (count: number) =>
    Array.from({ length: count }, (_, i) => clientFrame({ fin: i === count - 1, opcode: i === 0 ? Opcode.Binary : Opcode.Continuation, payload: utf8('x') }))

  it('counts no fragments by default: 65,537 one-byte fragments make one message (issue 13: Autobahn 9.3/9.4 sizes)', () => {
    const s = server()
    const events = feed(s, [concat(fragments(65_537))])
    assert.equal(messages(events)[0]!.data.length, 65_537)
    assert.equal(s.error, undefined)
  })

  it('fails the fragment past a configured count with 1008, before buffering it', () => {
    const s = server({ maxFragments: 16_384 })
    const events = feed(s, [concat(fragments(16_385))])
    assertFailed(s, events, 'WS_ERR_TOO_MANY_BUFFERED_PARTS', 1008)
  })

  it('counts per message, honours a configured limit, and 0 means no limit', () => {
    const s = server({ maxFragments: 3 })
    const ok = feed(s, [concat([...fragments(3), ...fragments(3)])])
    assert.equal(messages(ok).length, 2)
    assertFailed(s, feed(s, [concat(fragments(4))]), 'WS_ERR_TOO_MANY_BUFFERED_PARTS', 1008)
    const unlimited = server({ maxFragments: 0 })
    assert.equal(messages(feed(unlimited, [concat(fragments(20_000))])).length, 1)
  })
})
