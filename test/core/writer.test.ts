import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Opcode, firstHeaderByte } from '../../src/core/frame.js'
import { FrameWriter } from '../../src/core/writer.js'
import { concat, hex, utf8 } from '../helpers/bytes.js'
import { sent, server } from '../helpers/pair.js'
import { decodeFrames } from '../helpers/wire.js'

const TEXT = firstHeaderByte(true, Opcode.Text)
const BINARY = firstHeaderByte(true, Opcode.Binary)

function fixedMask(...key: number[]): (mask: Uint8Array) => void {
  return (mask) => mask.set(key)
}

describe('frame writer (RFC 6455 §5.2, §5.3)', () => {
  it('coalesces consecutive small frames into one chunk', () => {
    const writer = new FrameWriter('server')
    writer.writeFrame(TEXT, utf8('Hello'))
    writer.writeFrame(firstHeaderByte(true, Opcode.Ping), utf8('p'))
    writer.writeFrame(BINARY, Uint8Array.of(1, 2))
    const chunks = writer.take()
    assert.equal(chunks.length, 1)
    assert.deepEqual(chunks[0], hex`81 05 48 65 6c 6c 6f 89 01 70 82 02 01 02`)
  })

  it('writes the minimal length encoding for 0, 125, 126, 65535 and 65536 bytes', () => {
    for (const [length, header] of [
      [0, hex`82 00`],
      [125, hex`82 7d`],
      [126, hex`82 7e 00 7e`],
      [65535, hex`82 7e ff ff`],
      [65536, hex`82 7f 00 00 00 00 00 01 00 00`],
    ] as const) {
      const writer = new FrameWriter('server')
      writer.writeFrame(BINARY, new Uint8Array(length))
      const bytes = concat(writer.take())
      assert.deepEqual(bytes.subarray(0, header.length), header, `length ${length}`)
      assert.equal(bytes.length, header.length + length)
    }
  })

  it('passes a large server payload (> 4096 bytes) through without copying, after a separate header chunk', () => {
    const writer = new FrameWriter('server')
    const payload = new Uint8Array(4097).fill(7)
    writer.writeFrame(TEXT, utf8('hi'))
    writer.writeFrame(BINARY, payload)
    const chunks = writer.take()
    assert.equal(chunks.length, 2)
    assert.deepEqual(chunks[0], hex`81 02 68 69 82 7e 10 01`, 'the small frame and the large frame header share a chunk')
    assert.equal(chunks[1], payload, 'the payload chunk is the caller’s array itself')
    assert.equal(chunks[1]!.buffer, payload.buffer)
  })

  it('copies a payload of exactly 4096 bytes next to its header', () => {
    const writer = new FrameWriter('server')
    const payload = new Uint8Array(4096).fill(7)
    writer.writeFrame(BINARY, payload)
    const chunks = writer.take()
    assert.equal(chunks.length, 1)
    assert.notEqual(chunks[0]!.buffer, payload.buffer)
    assert.deepEqual(chunks[0]!.subarray(4), payload)
  })

  it('never masks server frames (§5.1)', () => {
    const writer = new FrameWriter('server')
    writer.writeFrame(TEXT, utf8('Hello'))
    writer.writeFrame(BINARY, new Uint8Array(5000).fill(1))
    for (const frame of decodeFrames(concat(writer.take()))) assert.equal(frame.masked, false)
  })

  it('masks client frames with the key from generateMask (the §5.7 example)', () => {
    const writer = new FrameWriter('client', undefined, fixedMask(0x37, 0xfa, 0x21, 0x3d))
    writer.writeFrame(TEXT, utf8('Hello'))
    assert.deepEqual(concat(writer.take()), hex`81 85 37 fa 21 3d 7f 9f 4d 51 58`)
  })

  it('uses a fresh random key for every client frame by default (§5.3)', () => {
    const writer = new FrameWriter('client')
    const payload = utf8('same payload')
    for (let i = 0; i < 4; i++) writer.writeFrame(TEXT, payload)
    const frames = decodeFrames(concat(writer.take()))
    const keys = new Set(frames.map((frame) => Buffer.from(frame.mask!).toString('hex')))
    assert.equal(keys.size, 4, 'four frames, four keys')
    for (const frame of frames) {
      assert.equal(frame.masked, true)
      assert.deepEqual(frame.payload, payload)
    }
  })

  it('copies client payloads, small and large, and never modifies the caller’s buffer', () => {
    for (const length of [10, 4096, 4097, 70000]) {
      const writer = new FrameWriter('client', undefined, fixedMask(0xff, 0xff, 0xff, 0xff))
      const payload = new Uint8Array(length).fill(0x41)
      writer.writeFrame(BINARY, payload)
      const chunks = writer.take()
      assert.ok(payload.every((b) => b === 0x41), `payload of ${length} untouched`)
      for (const chunk of chunks) assert.notEqual(chunk.buffer, payload.buffer)
      const [frame] = decodeFrames(concat(chunks))
      assert.deepEqual(frame!.payload, payload)
    }
  })

  it('allocates through the allocate option', () => {
    const sizes: number[] = []
    const writer = new FrameWriter('client', (size) => {
      sizes.push(size)
      return new Uint8Array(size)
    })
    writer.writeFrame(BINARY, new Uint8Array(10))
    writer.writeFrame(BINARY, new Uint8Array(5000))
    writer.take()
    assert.ok(sizes.length >= 2)
    assert.ok(sizes.includes(5000), 'the masked copy of the large payload')
  })

  it('counts queued bytes and resets the count on take()', () => {
    const writer = new FrameWriter('client')
    assert.equal(writer.bytes, 0)
    writer.writeFrame(TEXT, utf8('Hello')) // 6 + 5
    assert.equal(writer.bytes, 11)
    writer.writeFrame(BINARY, new Uint8Array(5000)) // 8 + 5000
    assert.equal(writer.bytes, 11 + 5008)
    writer.writeRaw(hex`8a 00`)
    assert.equal(writer.bytes, 11 + 5008 + 2)
    const taken = writer.take()
    assert.equal(concat(taken).length, 11 + 5008 + 2)
    assert.equal(writer.bytes, 0)
  })

  it('take() returns each byte once, and never rewrites bytes it handed out (Rule 1)', () => {
    const writer = new FrameWriter('server')
    writer.writeFrame(TEXT, utf8('one'))
    const first = writer.take()
    const snapshot = concat(first)
    assert.deepEqual(snapshot, hex`81 03 6f 6e 65`)
    assert.deepEqual(writer.take(), [])
    for (let i = 0; i < 100; i++) writer.writeFrame(TEXT, utf8('two'))
    const second = concat(writer.take())
    assert.deepEqual(concat(first), snapshot, 'bytes handed out earlier are unchanged')
    assert.equal(second.length, 100 * 5)
    assert.deepEqual(second.subarray(0, 5), hex`81 03 74 77 6f`)
  })

  it('take() hands over the array it returns, even an empty one: changing it queues nothing', () => {
    const writer = new FrameWriter('server')
    const empty = writer.take()
    assert.equal(empty.length, 0)
    empty.push(hex`ff ff`)
    assert.equal(writer.bytes, 0)
    assert.deepEqual(writer.take(), [], 'nothing was queued by the caller’s push')
    writer.writeFrame(TEXT, utf8('a'))
    assert.deepEqual(concat(writer.take()), hex`81 01 61`)
  })

  it('keeps the order of small frames, large payloads and raw frames', () => {
    const writer = new FrameWriter('server')
    const large = new Uint8Array(5000).fill(2)
    writer.writeFrame(TEXT, utf8('a'))
    writer.writeFrame(BINARY, large)
    writer.writeRaw(hex`8a 00`)
    writer.writeFrame(TEXT, utf8('b'))
    const frames = decodeFrames(concat(writer.take()))
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.payload.length]),
      [
        [1, 1],
        [2, 5000],
        [10, 0],
        [1, 1],
      ],
    )
  })
})

describe('frame writer: what an idle connection keeps (issue 18)', () => {
  it('rests after a small batch is taken, and not after a batch that taught it a larger arena', () => {
    const writer = new FrameWriter('server')
    assert.equal(writer.resting, true)
    writer.writeFrame(TEXT, utf8('hi'))
    assert.equal(writer.resting, false, 'holds a frame')
    writer.take()
    assert.equal(writer.resting, true, 'a 4-byte batch teaches nothing')
    writer.writeFrame(BINARY, new Uint8Array(1000))
    writer.take()
    assert.equal(writer.resting, false, 'remembers the 1 KiB arena for its next batch')
  })

  it('a connection lets its writer go once a heartbeat or a small send is taken, and makes one again to send more', () => {
    const s = server()
    const held = () => (s as unknown as { writer: FrameWriter | undefined }).writer
    assert.equal(held(), undefined, 'an idle connection holds no writer')
    s.sendPing()
    assert.equal(held()?.resting, false)
    assert.deepEqual(sent(s), hex`89 00`)
    assert.equal(held(), undefined, 'let go after the ping was taken')
    s.sendText('one')
    s.sendText('two')
    assert.deepEqual(sent(s), hex`81 03 6f 6e 65 81 03 74 77 6f`)
    assert.equal(held(), undefined)
    s.sendBinary(new Uint8Array(5000).fill(7))
    assert.equal(sent(s).length, 4 + 5000)
    assert.equal(held(), undefined, 'a payload sent as its own chunk teaches nothing either')
    s.sendBinary(new Uint8Array(1000).fill(7))
    assert.equal(sent(s).length, 4 + 1000)
    assert.notEqual(held(), undefined, 'a writer that learnt a larger arena is kept')
  })
})
