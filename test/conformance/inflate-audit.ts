/**
 * An independent DEFLATE decoder (RFC 1951), used by the conformance peers
 * to audit what a testee's compressor produced.
 *
 * Why: node:zlib inflating a whole message into one buffer does not enforce
 * the window size (a reference 1,024 bytes back decodes fine with a 9-bit
 * window), so it cannot tell whether a testee honoured `server_max_window_bits`
 * or `client_max_window_bits` (RFC 7692 §7.1.2). This decoder records every
 * back-reference and reports the first one that reaches further than the
 * agreed window, or, without context takeover (§7.1.1), before the first
 * byte of the message.
 *
 * Theory of operation: each message's payload gets the removed tail
 * 00 00 ff ff back (§7.2.2) and is decoded block by block; the sync flush
 * leaves the stream byte-aligned at the end of every message, so a message
 * always starts with a fresh block header. With context takeover the last
 * 32 KiB of output are kept as history for the next message. The Huffman
 * decoding is the canonical-code walk of zlib's `puff` reference decoder:
 * slow, short and obviously correct, which is what an auditor needs.
 */

const TAIL = [0x00, 0x00, 0xff, 0xff]
const MAX_DISTANCE = 32768

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
const DISTANCE_BASE = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
]
const DISTANCE_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
/** The order in which code length code lengths are stored (RFC 1951 §3.2.7). */
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

interface Huffman {
  counts: Uint16Array
  symbols: Uint16Array
}

function buildHuffman(lengths: ArrayLike<number>, n: number): Huffman {
  const counts = new Uint16Array(16)
  for (let i = 0; i < n; i++) counts[lengths[i]!]!++
  let left = 1
  for (let len = 1; len < 16; len++) {
    left = (left << 1) - counts[len]!
    if (left < 0) throw new Error('over-subscribed Huffman code')
  }
  const offsets = new Uint16Array(16)
  for (let len = 1; len < 15; len++) offsets[len + 1] = offsets[len]! + counts[len]!
  const symbols = new Uint16Array(n)
  for (let symbol = 0; symbol < n; symbol++) if (lengths[symbol] !== 0) symbols[offsets[lengths[symbol]!]!++] = symbol
  return { counts, symbols }
}

const FIXED = (() => {
  const lengths = new Uint8Array(288)
  for (let i = 0; i < 144; i++) lengths[i] = 8
  for (let i = 144; i < 256; i++) lengths[i] = 9
  for (let i = 256; i < 280; i++) lengths[i] = 7
  for (let i = 280; i < 288; i++) lengths[i] = 8
  const distances = new Uint8Array(30).fill(5)
  return { literal: buildHuffman(lengths, 288), distance: buildHuffman(distances, 30) }
})()

class BitReader {
  private readonly input: Uint8Array
  position = 0
  private bitBuffer = 0
  private bitCount = 0

  constructor(input: Uint8Array) {
    this.input = input
  }

  bits(n: number): number {
    let value = this.bitBuffer
    while (this.bitCount < n) {
      if (this.position >= this.input.length) throw new Error('compressed data ends in the middle of a block')
      value |= this.input[this.position++]! << this.bitCount
      this.bitCount += 8
    }
    this.bitBuffer = value >>> n
    this.bitCount -= n
    return value & ((1 << n) - 1)
  }

  /** Drops the bits left in the current byte (stored blocks start byte-aligned). */
  align(): void {
    this.bitBuffer = 0
    this.bitCount = 0
  }

  byte(): number {
    if (this.position >= this.input.length) throw new Error('compressed data ends inside a stored block')
    return this.input[this.position++]!
  }

  get atEnd(): boolean {
    return this.position >= this.input.length && this.bitCount < 8 && this.bitBuffer === 0
  }

  decode(h: Huffman): number {
    let code = 0
    let first = 0
    let index = 0
    for (let len = 1; len < 16; len++) {
      code |= this.bits(1)
      const count = h.counts[len]!
      if (code - count < first) return h.symbols[index + (code - first)]!
      index += count
      first += count
      first <<= 1
      code <<= 1
    }
    throw new Error('invalid Huffman code')
  }
}

/** The result of decoding one message: its bytes, and the first problem found (if any). */
export interface AuditResult {
  data: Buffer
  problem: string | undefined
  maxDistance: number
}

export class DeflateAuditor {
  private readonly window: number
  private readonly takeover: boolean
  private readonly windowBits: number
  /** Output of earlier messages, at most 32 KiB (context takeover only). */
  private history: Uint8Array = new Uint8Array(0)
  private finished = false
  /** The largest distance seen on this connection. */
  maxDistance = 0

  constructor(windowBits: number, takeover: boolean) {
    this.windowBits = windowBits
    this.window = 2 ** windowBits
    this.takeover = takeover
  }

  decodeMessage(payload: Uint8Array): AuditResult {
    const input = new Uint8Array(payload.length + 4)
    input.set(payload, 0)
    input.set(TAIL, payload.length)
    const prefix = this.takeover ? this.history.length : 0
    let out = new Uint8Array(prefix + Math.max(1024, payload.length * 4))
    if (prefix > 0) out.set(this.history, 0)
    let length = prefix
    let problem: string | undefined
    let maxDistance = 0
    const ensure = (extra: number): void => {
      if (length + extra <= out.length) return
      const bigger = new Uint8Array(Math.max(out.length * 2, length + extra))
      bigger.set(out.subarray(0, length), 0)
      out = bigger
    }
    const reader = new BitReader(input)
    try {
      if (this.finished) throw new Error('a message after a final block (BFINAL) was sent with context takeover')
      while (!reader.atEnd) {
        const final = reader.bits(1)
        const type = reader.bits(2)
        if (type === 0) {
          reader.align()
          const len = reader.byte() | (reader.byte() << 8)
          const nlen = reader.byte() | (reader.byte() << 8)
          if ((len ^ 0xffff) !== nlen) throw new Error('stored block length does not match its complement')
          ensure(len)
          for (let i = 0; i < len; i++) out[length++] = reader.byte()
        } else if (type === 1 || type === 2) {
          const { literal, distance } = type === 1 ? FIXED : readDynamicTables(reader)
          for (;;) {
            const symbol = reader.decode(literal)
            if (symbol < 256) {
              ensure(1)
              out[length++] = symbol
              continue
            }
            if (symbol === 256) break
            const index = symbol - 257
            if (index >= 29) throw new Error('invalid length symbol')
            const copy = LENGTH_BASE[index]! + reader.bits(LENGTH_EXTRA[index]!)
            const distanceSymbol = reader.decode(distance)
            if (distanceSymbol >= 30) throw new Error('invalid distance symbol')
            const back = DISTANCE_BASE[distanceSymbol]! + reader.bits(DISTANCE_EXTRA[distanceSymbol]!)
            if (back > maxDistance) maxDistance = back
            if (back > this.window && problem === undefined) {
              problem = `a back-reference ${back} bytes long exceeds the agreed ${this.windowBits}-bit window (${this.window} bytes)`
            }
            if (back > length) {
              throw new Error(
                this.takeover
                  ? `a back-reference ${back} bytes long reaches before the start of the stream`
                  : `a back-reference ${back} bytes long reaches before the message start without context takeover`,
              )
            }
            ensure(copy)
            for (let i = 0; i < copy; i++, length++) out[length] = out[length - back]!
          }
        } else {
          throw new Error('invalid block type 3')
        }
        if (final) {
          // RFC 7692 lets a sender end a message with a final block; no context can follow it.
          if (this.takeover) this.finished = true
          break
        }
      }
    } catch (error) {
      problem = `independent DEFLATE decoder: ${(error as Error).message}`
    }
    if (maxDistance > this.maxDistance) this.maxDistance = maxDistance
    const data = Buffer.from(out.buffer, out.byteOffset + prefix, length - prefix)
    if (this.takeover) this.history = out.slice(Math.max(0, length - MAX_DISTANCE), length)
    return { data: Buffer.from(data), problem, maxDistance }
  }
}

function readDynamicTables(reader: BitReader): { literal: Huffman; distance: Huffman } {
  const literalCount = reader.bits(5) + 257
  const distanceCount = reader.bits(5) + 1
  const codeCount = reader.bits(4) + 4
  if (literalCount > 286 || distanceCount > 30) throw new Error('too many length or distance symbols')
  const codeLengths = new Uint8Array(19)
  for (let i = 0; i < codeCount; i++) codeLengths[CODE_LENGTH_ORDER[i]!] = reader.bits(3)
  const codeHuffman = buildHuffman(codeLengths, 19)
  const lengths = new Uint8Array(literalCount + distanceCount)
  let index = 0
  while (index < literalCount + distanceCount) {
    const symbol = reader.decode(codeHuffman)
    if (symbol < 16) {
      lengths[index++] = symbol
      continue
    }
    let value = 0
    let repeat: number
    if (symbol === 16) {
      if (index === 0) throw new Error('repeat with no previous length')
      value = lengths[index - 1]!
      repeat = 3 + reader.bits(2)
    } else if (symbol === 17) repeat = 3 + reader.bits(3)
    else repeat = 11 + reader.bits(7)
    if (index + repeat > literalCount + distanceCount) throw new Error('too many code lengths')
    while (repeat-- > 0) lengths[index++] = value
  }
  if (lengths[256] === 0) throw new Error('no end-of-block code')
  return {
    literal: buildHuffman(lengths.subarray(0, literalCount), literalCount),
    distance: buildHuffman(lengths.subarray(literalCount), distanceCount),
  }
}
