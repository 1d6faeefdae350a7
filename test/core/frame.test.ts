import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Opcode, firstHeaderByte, frameHeaderSize, serializeFrame, writeFrameHeader } from '../../src/core/frame.js'
import { hex, MASK } from '../helpers/bytes.js'

describe('frame header (RFC 6455 §5.2)', () => {
  it('uses the 7-bit length up to 125 bytes', () => {
    assert.deepEqual(serializeFrame({ fin: true, opcode: Opcode.Text, payload: new Uint8Array(125) }).subarray(0, 2), hex`81 7d`)
  })

  it('uses the 16-bit length from 126 to 65535 bytes', () => {
    assert.deepEqual(serializeFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(126) }).subarray(0, 4), hex`82 7e 00 7e`)
    assert.deepEqual(serializeFrame({ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(65535) }).subarray(0, 4), hex`82 7e ff ff`)
  })

  it('uses the 64-bit length from 65536 bytes, with the top bit clear', () => {
    const header = new Uint8Array(10)
    writeFrameHeader(header, 0, firstHeaderByte(true, Opcode.Binary), 65536, undefined)
    assert.deepEqual(header, hex`82 7f 00 00 00 00 00 01 00 00`)
    writeFrameHeader(header, 0, firstHeaderByte(true, Opcode.Binary), 2 ** 53 - 1, undefined)
    assert.deepEqual(header, hex`82 7f 00 1f ff ff ff ff ff ff`)
  })

  it('sets FIN, RSV bits and the opcode in the first byte', () => {
    assert.equal(firstHeaderByte(false, Opcode.Continuation), 0x00)
    assert.equal(firstHeaderByte(true, Opcode.Ping), 0x89)
    assert.equal(firstHeaderByte(true, Opcode.Text, true), 0xc1)
    assert.equal(firstHeaderByte(true, Opcode.Text, false, true, true), 0xb1)
  })

  it('masks the payload with the key that follows the length (§5.3)', () => {
    // The example of §5.7: a masked "Hello" from a client.
    const frame = serializeFrame({ fin: true, opcode: Opcode.Text, payload: new TextEncoder().encode('Hello'), mask: hex`37 fa 21 3d` })
    assert.deepEqual(frame, hex`81 85 37 fa 21 3d 7f 9f 4d 51 58`)
  })

  it('counts header sizes for every length class, masked or not', () => {
    assert.equal(frameHeaderSize(0, false), 2)
    assert.equal(frameHeaderSize(125, true), 6)
    assert.equal(frameHeaderSize(126, false), 4)
    assert.equal(frameHeaderSize(65535, true), 8)
    assert.equal(frameHeaderSize(65536, false), 10)
    assert.equal(frameHeaderSize(65536, true), 14)
    assert.equal(MASK.length, 4)
  })
})
