import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { Opcode } from '../../src/core/frame.js'
import { type FrameHeader, FrameParser, type FrameSink } from '../../src/core/parser.js'
import { bytewise, clientFrame, concat, hex, serverFrame, split } from '../helpers/bytes.js'

type Record =
  | { t: 'start'; header: FrameHeader }
  | { t: 'payload'; bytes: string }
  | { t: 'end' }
  | { t: 'invalid'; code: string }

/** A sink that records everything; `onEvent` may call `parser.stop()`. */
class Recorder implements FrameSink {
  records: Record[] = []
  pieces: Uint8Array[] = []
  onEvent: ((record: Record) => void) | undefined
  frameStarted(header: FrameHeader): void {
    // Copy the FrameHeader fields: the object is the parser's own and changes with the next frame.
    const { fin, rsv1, rsv2, rsv3, opcode, masked, length } = header
    this.push({ t: 'start', header: { fin, rsv1, rsv2, rsv3, opcode, masked, length } })
  }
  payloadReceived(piece: Uint8Array): void {
    this.pieces.push(piece)
    this.push({ t: 'payload', bytes: Buffer.from(piece).toString('hex') })
  }
  frameEnded(): void {
    this.push({ t: 'end' })
  }
  headerInvalid(code: string): void {
    this.push({ t: 'invalid', code })
  }
  private push(record: Record): void {
    this.records.push(record)
    this.onEvent?.(record)
  }
}

/** Records with adjacent payload pieces merged, so that different chunkings compare equal. */
function merged(records: readonly Record[]): Record[] {
  const out: Record[] = []
  for (const record of records) {
    const last = out.at(-1)
    if (record.t === 'payload' && last?.t === 'payload') last.bytes += record.bytes
    else out.push(record.t === 'payload' ? { ...record } : record)
  }
  return out.filter((record) => record.t !== 'payload' || record.bytes.length > 0)
}

/** Parses `pieces` (copied first: the parser unmasks in place) and returns the merged records. */
function parse(pieces: readonly Uint8Array[]): Record[] {
  const sink = new Recorder()
  const parser = new FrameParser(sink)
  for (const piece of pieces) parser.feed(piece.slice())
  return merged(sink.records)
}

function header(fin: boolean, opcode: number, masked: boolean, length: number, rsv = 0): FrameHeader {
  return { fin, rsv1: (rsv & 4) !== 0, rsv2: (rsv & 2) !== 0, rsv3: (rsv & 1) !== 0, opcode, masked, length }
}

const LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536]

describe('frame parser (RFC 6455 §5.2)', () => {
  for (const length of LENGTHS) {
    it(`reads a ${length}-byte payload (${length < 126 ? '7' : length < 65536 ? '16' : '64'}-bit length), masked and not, whole and byte by byte`, () => {
      const payload = Uint8Array.from({ length }, (_, i) => (i * 13) & 0xff)
      for (const [masked, bytes] of [
        [false, serverFrame({ fin: true, opcode: Opcode.Binary, payload })],
        [true, clientFrame({ fin: true, opcode: Opcode.Binary, payload })],
      ] as const) {
        const expected: Record[] = [{ t: 'start', header: header(true, Opcode.Binary, masked, length) }]
        if (length > 0) expected.push({ t: 'payload', bytes: Buffer.from(payload).toString('hex') })
        expected.push({ t: 'end' })
        assert.deepEqual(parse([bytes]), expected)
        assert.deepEqual(parse(bytewise(bytes)), expected)
      }
    })
  }

  it('reads FIN, RSV1-3 and the opcode from the first byte', () => {
    assert.deepEqual(parse([hex`70 00`])[0], { t: 'start', header: header(false, 0, false, 0, 7) })
    assert.deepEqual(parse([hex`c9 00`])[0], { t: 'start', header: header(true, 9, false, 0, 4) })
    assert.deepEqual(parse([hex`a2 00`])[0], { t: 'start', header: header(true, 2, false, 0, 2) })
    assert.deepEqual(parse([hex`1f 00`])[0], { t: 'start', header: header(false, 15, false, 0, 1) })
  })

  it('unmasks in place and hands out views of the fed bytes, never copies (Rule 1)', () => {
    const chunk = clientFrame({ fin: true, opcode: Opcode.Text, payload: new TextEncoder().encode('Hello') })
    const sink = new Recorder()
    new FrameParser(sink).feed(chunk)
    assert.equal(sink.pieces.length, 1)
    assert.equal(sink.pieces[0]!.buffer, chunk.buffer)
    assert.equal(sink.pieces[0]!.byteOffset, 6)
    assert.deepEqual(chunk.subarray(6), new TextEncoder().encode('Hello'), 'the chunk itself was unmasked')
  })

  it('accepts the largest length 2^53 - 1 and reads it exactly', () => {
    const records = parse([hex`82 7f 00 1f ff ff ff ff ff ff`])
    assert.deepEqual(records, [{ t: 'start', header: header(true, 2, false, 2 ** 53 - 1) }])
  })

  it('reads a 64-bit length above 2^32', () => {
    assert.deepEqual(parse([hex`82 7f 00 00 00 01 00 00 00 05`]), [{ t: 'start', header: header(true, 2, false, 2 ** 32 + 5) }])
  })

  it('refuses a 64-bit length with the most significant bit set (WS_ERR_INVALID_PAYLOAD_LENGTH), whole or byte by byte', () => {
    for (const bytes of [hex`82 7f 80 00 00 00 00 00 00 00`, hex`82 ff ff ff ff ff ff ff ff ff 01 02 03 04`]) {
      const expected = [{ t: 'invalid', code: 'WS_ERR_INVALID_PAYLOAD_LENGTH' }]
      assert.deepEqual(parse([bytes]), expected)
      assert.deepEqual(parse(bytewise(bytes)), expected)
    }
  })

  it('refuses a length above 2^53 - 1 with the top bit clear (WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH)', () => {
    for (const bytes of [hex`82 7f 00 20 00 00 00 00 00 00`, hex`82 7f 7f ff ff ff ff ff ff ff`]) {
      const expected = [{ t: 'invalid', code: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH' }]
      assert.deepEqual(parse([bytes]), expected)
      assert.deepEqual(parse(bytewise(bytes)), expected)
    }
  })

  // Found by the fuzzer: the sink needs the rest of the header to put its other problems first
  // (a ping announcing 2^60 bytes is malformed, not too big; connection-framing.test.ts).
  it('reports a refused length with the rest of the header', () => {
    const seen: FrameHeader[] = []
    const sink = new Recorder()
    sink.headerInvalid = (code: string, _message?: string, h?: FrameHeader) => {
      sink.records.push({ t: 'invalid', code })
      const { fin, rsv1, rsv2, rsv3, opcode, masked, length } = h!
      seen.push({ fin, rsv1, rsv2, rsv3, opcode, masked, length })
    }
    for (const bytes of [hex`09 ff 10 00 00 00 00 00 00 00 01 02 03 04`, hex`b3 7f 80 00 00 00 00 00 00 01`]) {
      new FrameParser(sink).feed(bytes)
    }
    assert.deepEqual(sink.records.map((r) => (r.t === 'invalid' ? r.code : r.t)), ['WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'WS_ERR_INVALID_PAYLOAD_LENGTH'])
    assert.deepEqual(seen, [header(false, Opcode.Ping, true, 2 ** 60), header(true, 3, false, 2 ** 63 + 1, 3)])
  })

  it('reads nothing after an invalid header', () => {
    const sink = new Recorder()
    const parser = new FrameParser(sink)
    parser.feed(concat([hex`82 7f 80 00 00 00 00 00 00 00`, hex`81 00`]))
    parser.feed(hex`81 00`)
    assert.deepEqual(sink.records, [{ t: 'invalid', code: 'WS_ERR_INVALID_PAYLOAD_LENGTH' }])
  })

  it('reports a header only once it is whole, for every header size split at every point', () => {
    const frames = [
      serverFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(3) }), // 2-byte header
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(3) }), // 6
      serverFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(300) }), // 4
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(300) }), // 8
      serverFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(70000) }), // 10
      clientFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(70000) }), // 14
    ]
    for (const bytes of frames) {
      const expected = parse([bytes])
      for (let cut = 1; cut < 15; cut++) {
        const sink = new Recorder()
        const parser = new FrameParser(sink)
        const copy = bytes.slice()
        parser.feed(copy.subarray(0, cut))
        const started = sink.records.some((r) => r.t === 'start')
        const size = 2 + ((bytes[1]! & 0x7f) === 126 ? 2 : (bytes[1]! & 0x7f) === 127 ? 8 : 0) + (bytes[1]! & 0x80 ? 4 : 0)
        assert.equal(started, cut >= size, `cut ${cut}, header size ${size}`)
        assert.equal(parser.atFrameBoundary, cut >= bytes.length)
        parser.feed(copy.subarray(cut))
        assert.deepEqual(merged(sink.records), expected)
        assert.equal(parser.atFrameBoundary, true)
      }
    }
  })

  it('property: any chunking of a stream of frames gives the same records as one chunk', () => {
    const frame = fc.record({
      fin: fc.boolean(),
      opcode: fc.constantFrom(0, 1, 2, 8, 9, 10),
      payload: fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ minLength: 120, maxLength: 300 })),
      mask: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
    })
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(2000), { maxLength: 12 }), (frames, cuts) => {
        const bytes = concat(frames.map((f) => (f.mask ? clientFrame({ ...f, mask: f.mask }) : serverFrame(f))))
        const expected: Record[] = frames.flatMap((f): Record[] => [
          { t: 'start', header: header(f.fin, f.opcode, f.mask !== undefined, f.payload.length) },
          ...(f.payload.length > 0 ? [{ t: 'payload' as const, bytes: Buffer.from(f.payload).toString('hex') }] : []),
          { t: 'end' },
        ])
        assert.deepEqual(parse([bytes]), expected)
        assert.deepEqual(parse(split(bytes, cuts)), expected)
      }),
      { numRuns: 200 },
    )
  })

  it('property: feeding one byte at a time gives the same records as one chunk', () => {
    const frame = fc.record({
      fin: fc.boolean(),
      opcode: fc.constantFrom(0, 1, 2, 9),
      payload: fc.uint8Array({ maxLength: 140 }),
      mask: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
    })
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 4 }), (frames) => {
        const bytes = concat(frames.map((f) => (f.mask ? clientFrame({ ...f, mask: f.mask }) : serverFrame(f))))
        assert.deepEqual(parse(bytewise(bytes)), parse([bytes]))
      }),
      { numRuns: 100 },
    )
  })
})

describe('frame parser stop/resume (Rule 2)', () => {
  const stream = concat([
    clientFrame({ fin: true, opcode: Opcode.Text, payload: new TextEncoder().encode('one') }),
    clientFrame({ fin: true, opcode: Opcode.Ping, payload: new Uint8Array(0) }),
    clientFrame({ fin: true, opcode: Opcode.Binary, payload: Uint8Array.of(1, 2, 3, 4, 5) }),
  ])
  const expected = parse([stream])

  for (const at of ['start', 'payload', 'end'] as const) {
    it(`stopping in every '${at}' callback and resuming continues exactly where it stopped`, () => {
      // Whole, in pieces of 5 bytes (a stop inside a piece leaves a rest that must stay ahead of later pieces), byte by byte.
      const fives = split(stream, Array.from({ length: stream.length }, (_, i) => i * 5))
      for (const pieces of [[stream], fives, bytewise(stream)]) {
        const sink = new Recorder()
        const parser = new FrameParser(sink)
        let stops = 0
        sink.onEvent = (record) => {
          if (record.t === at) {
            parser.stop()
            stops++
          }
        }
        for (const piece of pieces) parser.feed(piece.slice())
        assert.ok(merged(sink.records).length < expected.length, 'stopped before the end')
        // Each resume runs to the next stop; there are fewer stops than records.
        for (let i = 0; i < 20; i++) parser.resume()
        assert.equal(parser.pendingBytes, 0)
        assert.equal(parser.atFrameBoundary, true)
        assert.deepEqual(merged(sink.records), expected)
        assert.ok(stops >= 1)
      }
    })
  }

  it('stopping in the start of a zero-length frame delays its end to resume()', () => {
    const sink = new Recorder()
    const parser = new FrameParser(sink)
    sink.onEvent = (record) => {
      if (record.t === 'start') parser.stop()
    }
    parser.feed(concat([hex`89 00`, hex`8a 00`]))
    assert.deepEqual(sink.records.map((r) => r.t), ['start'])
    assert.equal(parser.pendingBytes, 2)
    sink.onEvent = undefined
    parser.resume()
    assert.deepEqual(sink.records.map((r) => r.t), ['start', 'end', 'start', 'end'])
  })

  it('keeps input fed while stopped, in order, and counts it in pendingBytes', () => {
    const sink = new Recorder()
    const parser = new FrameParser(sink)
    parser.stop()
    const pieces = split(stream, [3, 7, 12])
    for (const piece of pieces) parser.feed(piece.slice())
    assert.equal(sink.records.length, 0)
    assert.equal(parser.pendingBytes, stream.length)
    parser.resume()
    assert.deepEqual(merged(sink.records), expected)
    assert.equal(parser.pendingBytes, 0)
  })
})
