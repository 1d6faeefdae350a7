import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { MAX_RESERVED_TOTAL, MessageAssembler, RESERVE_FROM, reservedAddressSpace } from '../../src/core/messages.js'
import { concat, hex, split, utf8 } from '../helpers/bytes.js'

describe('message assembler (frames to messages, RFC 6455 §5.4)', () => {
  it('returns a message that arrived as one piece without copying it', () => {
    const assembler = new MessageAssembler()
    const chunk = utf8('xxHello, world')
    const piece = chunk.subarray(2)
    assembler.start(true)
    assert.equal(assembler.append(piece, true, 0), true)
    const data = assembler.finish()!
    assert.equal(data, piece)
    assert.equal(data.buffer, chunk.buffer)
    assert.equal(data.byteOffset, 2)
  })

  it('coalesces several pieces into one buffer, a copy independent of the pieces', () => {
    const assembler = new MessageAssembler()
    const pieces = [utf8('Hel'), utf8('lo, '), utf8('wor'), utf8('ld')]
    assembler.start(false)
    pieces.forEach((piece, i) => assert.equal(assembler.append(piece, i === pieces.length - 1, 0), true))
    assert.equal(assembler.length, 12)
    const data = assembler.finish()!
    assert.deepEqual(data, utf8('Hello, world'))
    for (const piece of pieces) assert.notEqual(data.buffer, piece.buffer)
    pieces[0]!.fill(0)
    assert.deepEqual(Buffer.from(data).toString(), 'Hello, world', 'later changes to the read buffers do not show')
  })

  it('gives an empty message for no pieces, and for empty pieces only', () => {
    const assembler = new MessageAssembler()
    assembler.start(true)
    assert.deepEqual(assembler.finish(), new Uint8Array(0))
    assembler.start(true)
    assert.equal(assembler.append(new Uint8Array(0), false, 0), true)
    assert.equal(assembler.append(new Uint8Array(0), true, 0), true)
    assert.deepEqual(assembler.finish(), new Uint8Array(0))
    assert.equal(assembler.length, 0)
  })

  it('keeps one buffer of at most twice the message size, however many pieces (the many-tiny-fragments bound)', () => {
    const assembler = new MessageAssembler()
    const count = 100_000
    assembler.start(false)
    for (let i = 0; i < count; i++) assembler.append(Uint8Array.of(i & 0xff), i === count - 1, 0)
    const data = assembler.finish()!
    assert.equal(data.length, count)
    assert.ok(data.buffer.byteLength <= 2 * count, `buffer of ${data.buffer.byteLength} bytes for a ${count}-byte message`)
    assert.ok(data.every((byte, i) => byte === (i & 0xff)))
  })

  it('sizes the buffer from the announced rest of the frame', () => {
    const assembler = new MessageAssembler()
    assembler.start(false)
    assembler.append(new Uint8Array(10).fill(1), false, 990)
    assembler.append(new Uint8Array(10).fill(2), false, 980)
    const data = concat([new Uint8Array(10).fill(1), new Uint8Array(10).fill(2)])
    assert.deepEqual(assembler.finish(), data)
  })

  it('trusts the announced rest of the frame only as far as the bytes received: memory follows data, not claims', () => {
    // A peer announces a 100 MiB frame and trickles bytes: the buffer must stay
    // within twice what arrived, not the 100 MiB it claimed.
    const assembler = new MessageAssembler()
    assembler.start(false)
    assembler.append(new Uint8Array(16).fill(1), false, 100 * 2 ** 20 - 16)
    assembler.append(new Uint8Array(16).fill(2), false, 100 * 2 ** 20 - 32)
    assembler.append(new Uint8Array(16).fill(3), false, 100 * 2 ** 20 - 48)
    const data = assembler.finish()!
    assert.equal(data.length, 48)
    assert.ok(data.buffer.byteLength <= Math.max(64, 2 * 48), `${data.buffer.byteLength} bytes allocated for 48 received`)
    assert.deepEqual(data, concat([new Uint8Array(16).fill(1), new Uint8Array(16).fill(2), new Uint8Array(16).fill(3)]))
  })

  it('does not throw for an announced rest beyond any possible allocation (2^53 - 1)', () => {
    const assembler = new MessageAssembler()
    assembler.start(false)
    assembler.append(Uint8Array.of(1), false, 2 ** 53 - 2)
    assembler.append(Uint8Array.of(2), false, 2 ** 53 - 3)
    assert.deepEqual(assembler.finish(), Uint8Array.of(1, 2))
  })

  it('validates text as pieces arrive: append refuses the piece with the first invalid byte (Rule 1)', () => {
    const assembler = new MessageAssembler()
    assembler.start(true)
    assert.equal(assembler.append(utf8('ok '), false, 10), true)
    assert.equal(assembler.append(hex`ff`, false, 9), false)
    // A first piece that is not the whole message is checked at once too.
    assembler.start(true)
    assert.equal(assembler.append(hex`41 f4 90`, false, 10), false)
  })

  it('refuses at finish a single-piece text message that is not UTF-8', () => {
    const assembler = new MessageAssembler()
    assembler.start(true)
    assert.equal(assembler.append(hex`41 c0 80`, true, 0), true, 'a whole message in one piece is checked once, at finish')
    assert.equal(assembler.finish(), undefined)
  })

  it('refuses at finish a text message truncated in the middle of a character', () => {
    const assembler = new MessageAssembler()
    assembler.start(true)
    assert.equal(assembler.append(utf8('a'), false, 0), true)
    assert.equal(assembler.append(hex`e2 82`, true, 0), true)
    assert.equal(assembler.finish(), undefined)
    assembler.start(true)
    assert.equal(assembler.append(hex`e2 82`, false, 0), true)
    assert.equal(assembler.finish(), undefined, 'a lone unfinished piece')
  })

  it('does not validate binary messages, or text when validation is off', () => {
    const assembler = new MessageAssembler()
    assembler.start(false)
    assert.equal(assembler.append(hex`ff`, false, 0), true)
    assert.equal(assembler.append(hex`c0 80`, true, 0), true)
    assert.deepEqual(assembler.finish(), hex`ff c0 80`)
  })

  it('starts each message afresh: no validator state or bytes leak from the previous one', () => {
    const assembler = new MessageAssembler()
    assembler.start(true)
    assembler.append(utf8('a'), false, 0)
    assembler.append(hex`e2 82`, false, 0) // unfinished character, message abandoned
    assembler.start(true)
    assert.equal(assembler.append(utf8('b'), false, 0), true)
    assert.equal(assembler.append(utf8('c'), true, 0), true)
    assert.deepEqual(assembler.finish(), utf8('bc'))
    assembler.start(true)
    assembler.append(hex`ff`, false, 0) // failed
    assembler.start(true)
    assert.equal(assembler.append(utf8('d'), false, 0), true)
    assert.equal(assembler.append(utf8('e'), true, 0), true)
    assert.deepEqual(assembler.finish(), utf8('de'))
  })

  it('property: whatever the announced rest of a frame that is not the last, the buffer stays within twice the bytes received (64 at least)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 50 }), fc.oneof(fc.nat(100), fc.constant(2 ** 53 - 1), fc.nat(2 ** 30))), { minLength: 2, maxLength: 20 }),
        (appends) => {
          const assembler = new MessageAssembler()
          assembler.start(false)
          const expected: Uint8Array[] = []
          appends.forEach(([size, announced], i) => {
            const piece = new Uint8Array(size).fill(i)
            expected.push(piece)
            assembler.append(piece, false, announced)
          })
          const data = assembler.finish()!
          assert.deepEqual(data, concat(expected))
          assert.ok(data.buffer.byteLength <= Math.max(64, 2 * data.length), `${data.buffer.byteLength} for ${data.length}`)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('property: any split of a message reassembles to the same bytes and the same UTF-8 verdict', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }).map(utf8), fc.uint8Array({ maxLength: 40 })),
        fc.array(fc.nat(60), { maxLength: 8 }),
        (bytes, cuts) => {
          const pieces = split(bytes, cuts)
          const assembler = new MessageAssembler()
          assembler.start(true)
          let ok = true
          pieces.forEach((piece, i) => {
            if (!assembler.append(piece, i === pieces.length - 1, 0)) ok = false
          })
          const data = assembler.finish()
          const valid = isUtf8(bytes)
          assert.equal(ok && data !== undefined, valid)
          if (valid) assert.deepEqual(data, bytes)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('writes a message of known size up to 1 MiB once, into a buffer of exactly its size (Rule 3)', () => {
    const sizes: number[] = []
    const assembler = new MessageAssembler((size) => (sizes.push(size), new Uint8Array(size)), 100 * 2 ** 20)
    const total = RESERVE_FROM
    const piece = 64 * 1024
    assembler.start(false)
    for (let at = 0; at < total; at += piece) {
      assert.equal(assembler.append(new Uint8Array(piece).fill(at / piece), at + piece === total, total - at - piece, true), true)
    }
    const data = assembler.finish()!
    assert.deepEqual(sizes, [total], 'one allocation, at the final size')
    assert.equal(data.length, total)
    assert.equal(data.buffer.byteLength, total)
    assert.equal(data[piece * 3], 3)
  })

  it('past 1 MiB, moves once into a reservation that commits as bytes arrive, then delivers a plain buffer of the exact size (Rule 4)', () => {
    for (const finalKnown of [true, false]) {
      const allocated: number[] = []
      const limit = 8 * 2 ** 20
      const assembler = new MessageAssembler((size) => (allocated.push(size), new Uint8Array(size)), limit)
      const total = 3 * 2 ** 20 + 5
      const piece = 6_500
      assembler.start(false)
      let appended = 0
      let maxAhead = 0
      while (appended < total) {
        const size = Math.min(piece, total - appended)
        const last = appended + size === total
        assembler.append(new Uint8Array(size).fill(appended & 0xff), last, finalKnown ? total - appended - size : 0, finalKnown)
        appended += size
        maxAhead = Math.max(maxAhead, assembler.capacity - assembler.length)
        if (appended > 2 ** 20) assert.equal(assembler.held, appended, 'a reservation counts what was written')
      }
      assert.ok(maxAhead <= 2 * 2 ** 20, `committed at most a step ahead of the data (${maxAhead})`)
      const data = assembler.finish()!
      assert.equal(data.length, total)
      assert.equal(data.buffer.byteLength, total, 'delivered in a plain buffer of its exact size')
      assert.equal((data.buffer as ArrayBuffer & { resizable?: boolean }).resizable ?? false, false)
      assert.ok(allocated.every((size) => size <= 2 ** 20 || size === total), `growth below 1 MiB, then the final buffer: ${allocated}`)
      let at = 0
      while (at < total) {
        assert.equal(data[at], at & 0xff)
        at += piece
      }
      assert.equal(data[total - 1], (total - (total % piece || piece)) & 0xff)
      assert.equal(assembler.held, 0)
    }
  })

  it('counts a small buffer whole and a reservation by the bytes written in it (`held`, Rule 4), and release() drops it', () => {
    const assembler = new MessageAssembler((size) => new Uint8Array(size), 64 * 2 ** 20)
    assembler.start(false)
    assert.equal(assembler.held, 0)
    assembler.append(new Uint8Array(100), false, 400, true)
    assert.equal(assembler.held, 500, 'the exact final size was allocated')
    assembler.start(false)
    const piece = new Uint8Array(256 * 1024)
    for (let i = 0; i < 6; i++) assembler.append(piece, false, 0, false)
    assert.equal(assembler.length, 6 * piece.length)
    assert.equal(assembler.held, 6 * piece.length, 'past 1 MiB the reservation counts what was written')
    assembler.release()
    assert.equal(assembler.held, 0)
    assert.equal(assembler.length, 0)
  })

  it('grows by doubling past 1 MiB when the limit is too large to reserve, and gives a reservation back at once when released', () => {
    const huge = new MessageAssembler((size) => new Uint8Array(size), 2 ** 40)
    huge.start(false)
    const piece = new Uint8Array(512 * 1024).fill(7)
    for (let i = 0; i < 4; i++) huge.append(piece, i === 3, 0, false)
    const data = huge.finish()!
    assert.equal(data.length, 4 * piece.length)
    assert.equal(data[data.length - 1], 7)

    const abandoned = new MessageAssembler((size) => new Uint8Array(size), 64 * 2 ** 20)
    abandoned.start(false)
    for (let i = 0; i < 8; i++) abandoned.append(piece, false, 0, false)
    assert.ok(abandoned.held >= 4 * 2 ** 20)
    abandoned.release()
    assert.equal(abandoned.held, 0)
    assert.equal(abandoned.capacity, 0)
  })

  // Issue 13, found by an outsider: 80 connections claiming 100 MiB frames reserved 8 GiB of address space,
  // and under `ulimit -v` V8 could no longer map its heap (the process aborted).
  it('reserves at most MAX_RESERVED_TOTAL of address space at once; past it, messages grow by doubling', () => {
    const limit = 100 * 2 ** 20
    const piece = new Uint8Array(512 * 1024).fill(9)
    const assemblers: MessageAssembler[] = []
    const start = reservedAddressSpace()
    for (let i = 0; i < Math.ceil(MAX_RESERVED_TOTAL / limit) + 3; i++) {
      const assembler = new MessageAssembler((size) => new Uint8Array(size), limit)
      assembler.start(false)
      for (let j = 0; j < 3; j++) assembler.append(piece, false, 0, false)
      assemblers.push(assembler)
      assert.ok(reservedAddressSpace() <= MAX_RESERVED_TOTAL, `${reservedAddressSpace()} reserved`)
    }
    assert.ok(reservedAddressSpace() > start, 'some did reserve')
    const last = assemblers.at(-1)!
    last.append(piece, true, 0, false)
    assert.equal(last.finish()!.length, 4 * piece.length, 'one past the cap still assembles its message')
    for (const assembler of assemblers) assembler.release()
    assert.equal(reservedAddressSpace(), start, 'released, the space is counted back')
  })
})
