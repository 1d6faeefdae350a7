/**
 * Byte fixtures for tests: a `hex` tag for raw bytes, frame builders, and
 * helpers to split a byte stream into pieces.
 */
import { serializeFrame, type Frame } from '../../src/core/frame.js'

/** hex`81 05 48 65 6c 6c 6f` → the bytes; whitespace is ignored. */
export function hex(strings: TemplateStringsArray, ...values: unknown[]): Uint8Array {
  const text = strings.reduce((out, part, i) => out + part + (i < values.length ? String(values[i]) : ''), '')
  const digits = text.replace(/\s+/g, '')
  if (digits.length % 2 !== 0 || /[^0-9a-fA-F]/.test(digits)) throw new Error(`bad hex fixture: ${text}`)
  const out = new Uint8Array(digits.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** Bytes of a UTF-8 string. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

/** A fixed masking key, so expected bytes are reproducible. */
export const MASK = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d)

/** A frame as a client sends it (masked). */
export function clientFrame(frame: Omit<Frame, 'mask'> & { mask?: Uint8Array }): Uint8Array {
  return serializeFrame({ ...frame, mask: frame.mask ?? MASK })
}

/** A frame as a server sends it (unmasked). */
export function serverFrame(frame: Frame): Uint8Array {
  return serializeFrame(frame)
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0)
  const out = new Uint8Array(total)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** Splits `bytes` at the given cut points (copies, so in-place unmasking of one run never affects another). */
export function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.filter((cut) => cut > 0 && cut < bytes.length))].sort((a, b) => a - b)
  const pieces: Uint8Array[] = []
  let start = 0
  for (const cut of [...points, bytes.length]) {
    pieces.push(bytes.slice(start, cut))
    start = cut
  }
  return pieces
}

/** Every byte as its own piece. */
export function bytewise(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (byte) => Uint8Array.of(byte))
}
