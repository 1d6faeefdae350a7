/**
 * Frames and UTF-8 for the fuzzer, written independently of src/core (the
 * oracles must not share the code they judge): a frame builder for seeds
 * and generators, a decoder for what a Connection sends back, and a UTF-8
 * prefix checker straight from Unicode Table 3-7.
 */

export interface WireFrame {
  fin: boolean
  /** RSV1-3 as a 3-bit number (RSV1 = 4). */
  rsv: number
  opcode: number
  masked: boolean
  /** Unmasked payload. */
  payload: Uint8Array
}

export interface BuildFrame {
  fin?: boolean
  rsv?: number
  opcode: number
  payload: Uint8Array
  /** Four bytes: the frame is masked with them. */
  mask?: Uint8Array | undefined
  /** Length encoding: minimal (default), or forced 16/64-bit (legal but not minimal). */
  encoding?: 'min' | '16' | '64'
  /** Announce this length instead of the payload's (a lie). */
  announce?: bigint
}

/** Serializes one frame (RFC 6455 §5.2). */
export function buildFrame(frame: BuildFrame): Uint8Array {
  const { fin = true, rsv = 0, opcode, payload, mask, encoding = 'min' } = frame
  const length = frame.announce ?? BigInt(payload.length)
  const head: number[] = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)]
  const maskBit = mask ? 0x80 : 0
  if (encoding === 'min' && length < 126n) head.push(maskBit | Number(length))
  else if (encoding !== '64' && length <= 0xffffn) head.push(maskBit | 126, Number(length >> 8n) & 0xff, Number(length) & 0xff)
  else {
    head.push(maskBit | 127)
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((length >> shift) & 0xffn))
  }
  if (mask) head.push(mask[0]!, mask[1]!, mask[2]!, mask[3]!)
  const out = new Uint8Array(head.length + payload.length)
  out.set(head, 0)
  for (let i = 0; i < payload.length; i++) out[head.length + i] = mask ? payload[i]! ^ mask[i & 3]! : payload[i]!
  return out
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const part of parts) total += part.length
  const out = new Uint8Array(total)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/** Decodes bytes made of whole frames; throws on anything else (a Connection must only send whole frames). */
export function decodeFrames(bytes: Uint8Array): WireFrame[] {
  const frames: WireFrame[] = []
  let at = 0
  while (at < bytes.length) {
    if (bytes.length - at < 2) throw new Error('truncated frame header in output')
    const first = bytes[at]!
    const second = bytes[at + 1]!
    at += 2
    let length = second & 0x7f
    if (length === 126) {
      length = bytes[at]! * 256 + bytes[at + 1]!
      at += 2
    } else if (length === 127) {
      length = 0
      for (let i = 0; i < 8; i++) length = length * 256 + bytes[at + i]!
      at += 8
    }
    const masked = (second & 0x80) !== 0
    let key: Uint8Array | undefined
    if (masked) {
      key = bytes.subarray(at, at + 4)
      at += 4
    }
    if (bytes.length - at < length) throw new Error('truncated frame payload in output')
    const payload = bytes.slice(at, at + length)
    if (key) for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!
    at += length
    frames.push({ fin: (first & 0x80) !== 0, rsv: (first >> 4) & 7, opcode: first & 0x0f, masked, payload })
  }
  return frames
}

/**
 * A UTF-8 checker that knows, byte by byte, whether what it has seen can
 * still be completed into well-formed UTF-8 (Unicode Table 3-7).
 */
export class Utf8Prefix {
  private need = 0
  private lo = 0x80
  private hi = 0xbf
  /** False once the bytes seen can no longer be completed. */
  ok = true

  push(bytes: Uint8Array): boolean {
    for (let i = 0; i < bytes.length && this.ok; i++) this.byte(bytes[i]!)
    return this.ok
  }

  /** True if everything seen is complete, well-formed UTF-8. */
  get complete(): boolean {
    return this.ok && this.need === 0
  }

  private byte(b: number): void {
    if (this.need > 0) {
      if (b < this.lo || b > this.hi) {
        this.ok = false
        return
      }
      this.need--
      this.lo = 0x80
      this.hi = 0xbf
      return
    }
    if (b <= 0x7f) return
    if (b >= 0xc2 && b <= 0xdf) this.need = 1
    else if (b === 0xe0) [this.need, this.lo] = [2, 0xa0]
    else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) this.need = 2
    else if (b === 0xed) [this.need, this.hi] = [2, 0x9f]
    else if (b === 0xf0) [this.need, this.lo] = [3, 0x90]
    else if (b >= 0xf1 && b <= 0xf3) this.need = 3
    else if (b === 0xf4) [this.need, this.hi] = [3, 0x8f]
    else this.ok = false
  }
}

export function isCompleteUtf8(bytes: Uint8Array): boolean {
  const checker = new Utf8Prefix()
  checker.push(bytes)
  return checker.complete
}

export function hex(bytes: Uint8Array, max = 64): string {
  const text = Buffer.from(bytes.subarray(0, max)).toString('hex')
  return bytes.length > max ? `${text}... (${bytes.length} bytes)` : text
}
