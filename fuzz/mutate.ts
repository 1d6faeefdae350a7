/**
 * Byte-level mutations for a coverage-free fuzzer.
 *
 * Theory of operation: an input is taken from the corpus and run through a
 * stack of 1 to 16 random mutations ("havoc", as AFL calls it): bit flips,
 * byte and word overwrites with values that sit on the parsers' boundaries,
 * inserts, deletes, duplications, splices with other corpus entries, and
 * tokens from the target's dictionary. Without coverage feedback the
 * boundaries have to be handed in: the interesting values below are the
 * ones RFC 6455 and RFC 7230 draw lines at (7-bit lengths 125/126/127, the
 * 16-bit and 64-bit length encodings, the MSB of a 64-bit length, 2^53, the
 * close-code ranges, the UTF-8 lead and continuation ranges of Unicode
 * Table 3-7, and the characters that delimit header tokens).
 *
 * Rule 1: mutations are pure functions of (input, rng, corpus, dictionary),
 * so a run is reproducible from its seed.
 * Rule 2: the result never exceeds `maxLength` (it is cut), so a run's
 * memory and time per input stay bounded by construction.
 */
import type { Rng } from './rng.js'

/** Single bytes on the boundaries: frame header bits and lengths, UTF-8 lead/continuation limits, ASCII delimiters. */
export const INTERESTING_8: readonly number[] = [
  0x00, 0x01, 0x02, 0x08, 0x09, 0x0a, 0x0f, 0x10, 0x20, 0x40, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a,
  0x8f, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xfe, 0xff, 0xfd, 0xfe, 0xfc,
]

/** Big-endian 16-bit values: 16-bit lengths and close codes around their range edges. */
export const INTERESTING_16: readonly number[] = [
  0, 1, 125, 126, 127, 128, 255, 256, 1023, 1024, 1025, 0x7fff, 0x8000, 0xfffe, 0xffff,
  999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1016,
  2999, 3000, 3999, 4000, 4999, 5000,
]

/** Big-endian 64-bit lengths: the encodings' edges, the MSB, 2^53 and the limits the fuzzer configures. */
export const INTERESTING_64: readonly bigint[] = [
  0n, 1n, 125n, 126n, 127n, 0xffffn, 0x10000n, 0x10001n, 64n * 1024n - 1n, 64n * 1024n, 64n * 1024n + 1n,
  0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n,
  (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n,
]

/** UTF-8 sequences at the edges of well-formedness (Unicode Table 3-7), valid and not. */
export const UTF8_EDGES: readonly Uint8Array[] = [
  [0x7f], [0xc2, 0x80], [0xdf, 0xbf], [0xe0, 0xa0, 0x80], [0xed, 0x9f, 0xbf], [0xee, 0x80, 0x80], [0xef, 0xbf, 0xbf],
  [0xf0, 0x90, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80],
  // Invalid: overlong, surrogates, beyond U+10FFFF, lone continuation, truncated.
  [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf0, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xff], [0x80], [0xbf],
  [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc2],
].map((bytes) => Uint8Array.from(bytes))

/** Characters that delimit or break header tokens (RFC 7230 §3.2.6), and a few that a lax parser might let through. */
export const HEADER_EDGES: readonly Uint8Array[] = [
  ',', ';', '=', '"', '\\', ' ', '\t', '\r', '\n', '\r\n', '\0', '\x7f', '\x80', '\xa0', '\xff', ':', '/', '(', ')',
  '<', '>', '@', '?', '[', ']', '{', '}', ',,', ', ,', ' ;', '; ', '="', '=""', '\\"', '"\\', '\x0b', '\x0c',
].map(latin1)

/** A string's latin1 bytes (one byte per char code 0-255). */
export function latin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

export interface MutationContext {
  rng: Rng
  /** Other inputs to splice with. */
  corpus: readonly Uint8Array[]
  /** The target's tokens: whole frames, header words, parameter names. */
  dictionary: readonly Uint8Array[]
  /** Results are cut to this length (Rule 2). */
  maxLength: number
  /** Text inputs: random bytes are mostly printable ASCII. */
  text?: boolean
}

type Mutation = (data: Uint8Array, ctx: MutationContext) => Uint8Array

function randomByte(ctx: MutationContext): number {
  const { rng } = ctx
  if (ctx.text && rng.chance(0.8)) return 0x20 + rng.int(95)
  return rng.int(256)
}

function insert(data: Uint8Array, at: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + bytes.length)
  out.set(data.subarray(0, at), 0)
  out.set(bytes, at)
  out.set(data.subarray(at), at + bytes.length)
  return out
}

function remove(data: Uint8Array, at: number, count: number): Uint8Array {
  const out = new Uint8Array(data.length - count)
  out.set(data.subarray(0, at), 0)
  out.set(data.subarray(at + count), at)
  return out
}

function overwrite(data: Uint8Array, at: number, bytes: Uint8Array): Uint8Array {
  const out = data.slice()
  const n = Math.min(bytes.length, out.length - at)
  out.set(bytes.subarray(0, n), at)
  return out
}

function be(value: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width)
  let v = value
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

/** A position biased towards the start, where headers live. */
function position(data: Uint8Array, ctx: MutationContext, inclusiveEnd = false): number {
  const n = data.length + (inclusiveEnd ? 1 : 0)
  if (n <= 1) return 0
  return ctx.rng.chance(0.3) ? ctx.rng.int(Math.min(n, 16)) : ctx.rng.int(n)
}

const mutations: Array<[weight: number, name: string, mutation: Mutation]> = [
  [6, 'flip-bit', (d, ctx) => {
    if (d.length === 0) return d
    const out = d.slice()
    const at = position(d, ctx)
    out[at]! ^= 1 << ctx.rng.int(8)
    return out
  }],
  [5, 'interesting-8', (d, ctx) => {
    if (d.length === 0) return Uint8Array.of(ctx.rng.pick(INTERESTING_8))
    const out = d.slice()
    out[position(d, ctx)] = ctx.rng.pick(INTERESTING_8)
    return out
  }],
  [3, 'random-byte', (d, ctx) => {
    if (d.length === 0) return Uint8Array.of(randomByte(ctx))
    const out = d.slice()
    out[position(d, ctx)] = randomByte(ctx)
    return out
  }],
  [3, 'arith-8', (d, ctx) => {
    if (d.length === 0) return d
    const out = d.slice()
    const at = position(d, ctx)
    out[at] = (out[at]! + ctx.rng.range(-16, 16)) & 0xff
    return out
  }],
  [3, 'interesting-16', (d, ctx) => {
    const value = be(BigInt(ctx.rng.pick(INTERESTING_16)), 2)
    return ctx.rng.chance(0.7) && d.length >= 2 ? overwrite(d, ctx.rng.int(d.length - 1), value) : insert(d, position(d, ctx, true), value)
  }],
  [3, 'interesting-64', (d, ctx) => {
    const value = be(ctx.rng.pick(INTERESTING_64), 8)
    return ctx.rng.chance(0.6) && d.length >= 8 ? overwrite(d, ctx.rng.int(d.length - 7), value) : insert(d, position(d, ctx, true), value)
  }],
  [4, 'insert-bytes', (d, ctx) => {
    const n = 1 + ctx.rng.size(16)
    const bytes = new Uint8Array(n)
    for (let i = 0; i < n; i++) bytes[i] = randomByte(ctx)
    return insert(d, position(d, ctx, true), bytes)
  }],
  [2, 'insert-repeat', (d, ctx) => {
    const n = 1 + ctx.rng.size(512)
    const bytes = new Uint8Array(n).fill(ctx.rng.chance(0.5) ? ctx.rng.pick(INTERESTING_8) : randomByte(ctx))
    return insert(d, position(d, ctx, true), bytes)
  }],
  [5, 'delete', (d, ctx) => {
    if (d.length === 0) return d
    const at = position(d, ctx)
    return remove(d, at, 1 + ctx.rng.int(Math.min(d.length - at, 1 + ctx.rng.size(64))))
  }],
  [3, 'duplicate', (d, ctx) => {
    if (d.length === 0) return d
    const from = ctx.rng.int(d.length)
    const n = 1 + ctx.rng.int(Math.min(d.length - from, 1 + ctx.rng.size(256)))
    const chunk = d.slice(from, from + n)
    let out = d
    // Sometimes repeat the chunk many times (many fragments, long lists).
    const times = ctx.rng.chance(0.2) ? 1 + ctx.rng.size(64) : 1
    for (let i = 0; i < times; i++) out = insert(out, ctx.rng.chance(0.5) ? from + n : position(out, ctx, true), chunk)
    return out
  }],
  [2, 'copy-within', (d, ctx) => {
    if (d.length < 2) return d
    const from = ctx.rng.int(d.length)
    const n = 1 + ctx.rng.int(Math.min(d.length - from, 32))
    return overwrite(d, ctx.rng.int(d.length), d.slice(from, from + n))
  }],
  [2, 'swap', (d, ctx) => {
    if (d.length < 2) return d
    const out = d.slice()
    const i = ctx.rng.int(d.length)
    const j = ctx.rng.int(d.length)
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
    return out
  }],
  [2, 'truncate', (d, ctx) => (d.length === 0 ? d : d.slice(0, ctx.rng.int(d.length)))],
  [4, 'splice', (d, ctx) => {
    if (ctx.corpus.length === 0) return d
    const other = ctx.rng.pick(ctx.corpus)
    if (ctx.rng.chance(0.5)) {
      // Crossover: our head, their tail.
      const cut = ctx.rng.int(d.length + 1)
      const from = ctx.rng.int(other.length + 1)
      const out = new Uint8Array(cut + other.length - from)
      out.set(d.subarray(0, cut), 0)
      out.set(other.subarray(from), cut)
      return out
    }
    // Insert a piece of theirs.
    const from = ctx.rng.int(other.length + 1)
    const n = ctx.rng.int(other.length - from + 1)
    return insert(d, position(d, ctx, true), other.subarray(from, from + n))
  }],
  [6, 'dictionary', (d, ctx) => {
    if (ctx.dictionary.length === 0) return d
    const token = ctx.rng.pick(ctx.dictionary)
    return ctx.rng.chance(0.7) ? insert(d, position(d, ctx, true), token) : overwrite(d, position(d, ctx), token)
  }],
  [3, 'utf8-edge', (d, ctx) => {
    const seq = ctx.rng.pick(UTF8_EDGES)
    return ctx.rng.chance(0.6) ? insert(d, position(d, ctx, true), seq) : overwrite(d, position(d, ctx), seq)
  }],
  [2, 'header-edge', (d, ctx) => {
    const seq = ctx.rng.pick(HEADER_EDGES)
    return ctx.rng.chance(0.6) ? insert(d, position(d, ctx, true), seq) : overwrite(d, position(d, ctx), seq)
  }],
]

const totalWeight = mutations.reduce((sum, [weight]) => sum + weight, 0)

/** Names of the mutations, for statistics and tests. */
export const mutationNames: readonly string[] = mutations.map(([, name]) => name)

/** Applies one named mutation (tests use this to check each one). */
export function applyMutation(name: string, data: Uint8Array, ctx: MutationContext): Uint8Array {
  const entry = mutations.find(([, n]) => n === name)
  if (entry === undefined) throw new Error(`unknown mutation ${name}`)
  return cap(entry[2](data, ctx), ctx.maxLength)
}

function cap(data: Uint8Array, maxLength: number): Uint8Array {
  return data.length > maxLength ? data.slice(0, maxLength) : data
}

/** Stacks 1 to 16 random mutations on `input` (havoc). Never returns `input` itself. */
export function mutate(input: Uint8Array, ctx: MutationContext): Uint8Array {
  let data: Uint8Array = input.slice()
  const stack = 1 << ctx.rng.int(5)
  for (let i = 0; i < stack; i++) {
    let pick = ctx.rng.int(totalWeight)
    for (const [weight, , mutation] of mutations) {
      if (pick < weight) {
        data = cap(mutation(data, ctx), ctx.maxLength)
        break
      }
      pick -= weight
    }
  }
  return data
}
