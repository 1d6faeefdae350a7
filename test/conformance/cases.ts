/**
 * The catalogue of the conformance suite: what the raw peer sends, byte for
 * byte and piece by piece, and what a correct endpoint does in answer.
 *
 * The case groups follow the public layout of the Autobahn|Testsuite
 * (1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes,
 * 5 fragmentation, 6 UTF-8, 7 closing, 9 limits, 10 auto-fragmentation,
 * 12 and 13 permessage-deflate). The cases, their wording and their payloads
 * are our own, written from RFC 6455, RFC 7692 and RFC 3629 / Unicode
 * Table 3-7.
 *
 * Theory of operation: a case is data. `plan()` builds (lazily, since
 * group 9 needs megabytes) a list of steps and the expectation; the suite
 * plays the steps through a raw peer in either role (the peer masks when it
 * is the client) and `verdict.ts` compares what happened with the
 * expectation. Every case runs in both roles: the testee is a tether server
 * driven by a raw client, then a tether client driven by a raw server.
 *
 * Rule 1: an expectation lists the data messages the testee echoes and the
 * pongs it sends; how the connection ends (the peer closes normally, or the
 * testee fails it with a given code); and for the fail-fast cases, that the
 * failure comes before the rest of the message is sent.
 * Rule 2: delays are short (tens of milliseconds where Autobahn waits a
 * second), so the whole catalogue runs in about a minute.
 */
import zlib from 'node:zlib'
import { type FrameSpec, Op, closePayload, isUtf8 } from './peers.js'

export type Role = 'server' | 'client'

/** After a piece of a `pieces` step: a pause, or the fail-fast checkpoint. */
export type Gap = { pause: number } | { checkpoint: number }

export type Step =
  /** Frames written in one write, or in chops of `chop` bytes with `pause` ms between chops (0: one event-loop turn). */
  | { kind: 'send'; frames: FrameSpec[]; chop?: number; pause?: number }
  /** One frame written in pieces cut at payload offsets `cuts`; `gaps[i]` follows piece i. */
  | { kind: 'pieces'; frame: FrameSpec; cuts: number[]; gaps: Gap[] }
  | { kind: 'wait'; ms: number }
  /** Fail fast: wait up to `ms` for the testee's close; whether it came is recorded. */
  | { kind: 'checkpoint'; ms: number }
  /** Messages the peer compresses itself when permessage-deflate was agreed (RFC 7692). */
  | { kind: 'deflated'; messages: DeflatedMessage[] }
  /** Messages sent one at a time, each after the previous echo arrived. */
  | { kind: 'roundTrips'; messages: Array<{ type: 'text' | 'binary'; data: Buffer }>; ms: number }

export interface DeflatedMessage {
  type: 'text' | 'binary'
  data: Buffer
  /** Default true (when permessage-deflate was agreed). */
  compress?: boolean
  /** Split the (compressed) payload into frames of this many bytes. */
  fragment?: number
}

export type ExpectedItem =
  | {
      type: 'text' | 'binary'
      data: Buffer
      /** Whether the echo must be compressed: 'no' without permessage-deflate (the default), 'any' when compression may not pay. */
      compressed?: 'yes' | 'no' | 'any'
    }
  | { type: 'pong'; data: Buffer }

/** How the connection must end. Code 1005 stands for a close frame without payload. */
export type Ending =
  /** The peer closes (in the steps, or after the items came back, with 1000); the testee answers with one of `codes`. */
  | { by: 'peer'; codes: number[] }
  /** The testee fails the connection with one of `codes` (§7.1.7). */
  | { by: 'testee'; codes: number[] }

export interface Plan {
  steps: Step[]
  items: ExpectedItem[]
  ending: Ending
  /** The steps hold a checkpoint; failing before it is strict, failing later NON-STRICT. */
  failFast?: boolean
}

export type DeflateParam = 'server_no_context_takeover' | 'client_no_context_takeover' | 'server_max_window_bits' | 'client_max_window_bits'
/** 'present' / 'absent'; `{ atMost }`: present with a value <= atMost (optional when `optional`). */
export type ResponseRule = 'present' | 'absent' | { atMost: number; optional?: boolean }
/** 'novalue': present without a value; a number: present with exactly that value. */
export type OfferRule = 'present' | 'absent' | 'novalue' | number

export interface DeflateSpec {
  /** Server role: the Sec-WebSocket-Extensions our raw client sends. */
  offer: string
  /** Server role: what the answer must say (other parameters must still be valid for the offer); null: declined. */
  response: Partial<Record<DeflateParam, ResponseRule>> | null
  /** Client role: tether's `perMessageDeflate` option (the suite adds `threshold: 0`). */
  client: Record<string, unknown>
  /** Client role: what the tether client's offer must carry. */
  clientOffer: Partial<Record<DeflateParam, OfferRule>>
  /** Client role: the raw server's Sec-WebSocket-Extensions answer; null: decline. */
  answer: string | null
}

export interface ConformanceCase {
  id: string
  group: number
  description: string
  /** Where the client role does something different (group 13), what. */
  clientDescription?: string
  plan: () => Plan
  deflate?: DeflateSpec
  /** Bound on the whole case, ms. */
  timeoutMs?: number
}

export const GROUP_TITLES: Record<number, string> = {
  1: 'Framing',
  2: 'Pings and pongs',
  3: 'Reserved bits',
  4: 'Opcodes',
  5: 'Fragmentation',
  6: 'UTF-8 handling',
  7: 'Closing handshake',
  9: 'Limits and performance (timed)',
  10: 'Auto-fragmentation',
  12: 'permessage-deflate: messages',
  13: 'permessage-deflate: negotiation parameters',
}

/** Where Autobahn waits a second. */
const DELAY = 100
/** Between frames written separately ("frame-wise" / one frame per write). */
const SYNC = 10
/** How long a fail-fast checkpoint waits for the testee to fail. */
const FAIL_FAST = 500

// ------------------------------------------------------------------ payloads

/** A deterministic generator (xorshift32), so every run sends the same bytes. */
function generator(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

export function noise(n: number, seed = 1): Buffer {
  const next = generator(seed)
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = next() & 0xff
  return out
}

/** Printable ASCII noise: valid UTF-8 that compresses poorly. */
export function asciiNoise(n: number, seed = 2): Buffer {
  const next = generator(seed)
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = 0x20 + (next() % 95)
  return out
}

/** ASCII text of exactly n bytes. */
export function asciiText(n: number): Buffer {
  const unit = Buffer.from('The five boxing wizards jump quickly; pack my box with five dozen liquor jugs. ')
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = unit[i % unit.length]!
  return out
}

/** Compressible UTF-8 text of exactly n bytes, with multi-byte characters; a cut character is padded with '.'. */
export function compressibleText(n: number): Buffer {
  const unit = Buffer.from('{"user":"zoë","city":"Tōkyō","score":42,"tags":["ünïcode","✓","🙂"]}\n')
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = unit[i % unit.length]!
  // Do not end inside a character: replace an unfinished one with dots.
  let k = n - 1
  while (k >= 0 && (out[k]! & 0xc0) === 0x80) k--
  if (k >= 0 && out[k]! >= 0xc0) {
    const need = out[k]! >= 0xf0 ? 4 : out[k]! >= 0xe0 ? 3 : 2
    if (k + need > n) out.fill(0x2e, k)
  }
  return out
}

/** Compressible binary of exactly n bytes. */
export function compressibleBytes(n: number): Buffer {
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = (i % 97) ^ ((i >> 9) & 0x3f)
  return out
}

/**
 * Text that checks the window: random ASCII blocks, each repeated once right
 * after itself, of 200, 700, 3,000 and 20,000 bytes. Matches are available
 * only at those distances, so a compressor exceeding its agreed window shows.
 */
export function windowProbe(seed: number, binary = false): Buffer {
  const parts: Buffer[] = []
  for (const [i, size] of [200, 700, 3000, 20000].entries()) {
    const block = binary ? noise(size, seed * 10 + i) : asciiNoise(size, seed * 10 + i)
    parts.push(block, block)
  }
  return Buffer.concat(parts)
}

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8')
const bytes = (...values: number[]): Buffer => Buffer.from(values)
const EMPTY = Buffer.alloc(0)

/** Whether zlib shrinks `data` by a tenth, with a fresh context: then an echo must be compressed. */
function shrinks(data: Buffer): boolean {
  if (data.length === 0) return false
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
  return out.length - 4 < data.length * 0.9
}

// ------------------------------------------------------------ frames, steps

const T = (payload: Buffer | string, options: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode: Op.Text,
  payload: typeof payload === 'string' ? utf8(payload) : payload,
  ...options,
})
const B = (payload: Buffer, options: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.Binary, payload, ...options })
const Cont = (payload: Buffer | string, fin: boolean): FrameSpec => ({
  opcode: Op.Continuation,
  payload: typeof payload === 'string' ? utf8(payload) : payload,
  fin,
})
const Ping = (payload: Buffer | string = EMPTY, options: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode: Op.Ping,
  payload: typeof payload === 'string' ? utf8(payload) : payload,
  ...options,
})
const Pong = (payload: Buffer | string = EMPTY): FrameSpec => ({ opcode: Op.Pong, payload: typeof payload === 'string' ? utf8(payload) : payload })
const Close = (code = 1000, reason: Buffer | string = EMPTY, options: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode: Op.Close,
  payload: closePayload(code, reason),
  ...options,
})
const CloseRaw = (payload: Buffer): FrameSpec => ({ opcode: Op.Close, payload })
const Raw = (opcode: number, payload: Buffer | string = EMPTY, options: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode,
  payload: typeof payload === 'string' ? utf8(payload) : payload,
  ...options,
})

/** Frames in one write (they usually arrive in one read). */
const one = (...frames: FrameSpec[]): Step => ({ kind: 'send', frames })
/** Each frame in its own write, SYNC ms apart. */
const each = (...frames: FrameSpec[]): Step[] =>
  frames.flatMap((frame, i) => (i === 0 ? [one(frame)] : [{ kind: 'wait', ms: SYNC } as Step, one(frame)]))
/** Every octet in its own write, one event-loop turn apart. */
const octets = (...frames: FrameSpec[]): Step => ({ kind: 'send', frames, chop: 1, pause: 0 })
const wait = (ms: number): Step => ({ kind: 'wait', ms })

const text = (data: Buffer | string, compressed?: 'yes' | 'no' | 'any'): ExpectedItem => ({
  type: 'text',
  data: typeof data === 'string' ? utf8(data) : data,
  ...(compressed ? { compressed } : {}),
})
const binary = (data: Buffer, compressed?: 'yes' | 'no' | 'any'): ExpectedItem => ({ type: 'binary', data, ...(compressed ? { compressed } : {}) })
const pong = (data: Buffer | string = EMPTY): ExpectedItem => ({ type: 'pong', data: typeof data === 'string' ? utf8(data) : data })

const closes = (...codes: number[]): Ending => ({ by: 'peer', codes: codes.length ? codes : [1000] })
const fails = (...codes: number[]): Ending => ({ by: 'testee', codes })

// ---------------------------------------------------------------- catalogue

export const CASES: ConformanceCase[] = []
let currentGroup = 0

function group(n: number): void {
  currentGroup = n
}

function add(id: string, description: string, plan: () => Plan, extra: Partial<ConformanceCase> = {}): void {
  if (CASES.some((c) => c.id === id)) throw new Error(`duplicate case id ${id}`)
  CASES.push({ id, group: currentGroup, description, plan, ...extra })
}

// ======================================================== 1: framing (§5.2)
group(1)
{
  const lengths: Array<[number, string]> = [
    [0, 'empty payload'],
    [125, '125-byte payload (the largest 7-bit length)'],
    [126, '126-byte payload (the smallest 16-bit length)'],
    [127, '127-byte payload (7-bit field value 127 as a real length)'],
    [128, '128-byte payload'],
    [65535, '65535-byte payload (the largest 16-bit length)'],
    [65536, '65536-byte payload (the smallest 64-bit length)'],
  ]
  for (const [kind, sub, make, item] of [
    ['Text', 1, asciiText, text],
    ['Binary', 2, (n: number) => noise(n, n + 7), binary],
  ] as const) {
    lengths.forEach(([n, what], i) => {
      add(`1.${sub}.${i + 1}`, `${kind} message, ${what}; echoed`, () => {
        const payload = make(n)
        return { steps: [one({ opcode: sub, payload })], items: [item(payload)], ending: closes() }
      })
    })
    add(`1.${sub}.8`, `${kind} message of 65536 bytes whose frame is written in 997-byte pieces; echoed`, () => {
      const payload = make(65536)
      return { steps: [{ kind: 'send', frames: [{ opcode: sub, payload }], chop: 997, pause: 0 }], items: [item(payload)], ending: closes() }
    })
  }
}

// ================================================ 2: pings and pongs (§5.5.2-3)
group(2)
{
  const binaryPayload = bytes(0x00, 0xff, 0xfe, 0x80, 0x7f, 0x01, 0xc0, 0xc1)
  add('2.1', 'Ping without payload; answered by an empty pong', () => ({ steps: [one(Ping())], items: [pong()], ending: closes() }))
  add('2.2', 'Ping with a short text payload; the pong carries the same bytes', () => ({
    steps: [one(Ping('are you there?'))],
    items: [pong('are you there?')],
    ending: closes(),
  }))
  add('2.3', 'Ping with a binary payload that is not UTF-8; the pong carries the same bytes', () => ({
    steps: [one(Ping(binaryPayload))],
    items: [pong(binaryPayload)],
    ending: closes(),
  }))
  add('2.4', 'Ping with a 125-byte payload (the control frame maximum); answered', () => {
    const payload = noise(125, 24)
    return { steps: [one(Ping(payload))], items: [pong(payload)], ending: closes() }
  })
  add('2.5', 'Ping with a 126-byte payload (over the control frame maximum); the testee fails with 1002', () => ({
    steps: [one(Ping(noise(126, 25)))],
    items: [],
    ending: fails(1002),
  }))
  add('2.6', 'Ping with a 125-byte payload written one octet at a time; answered', () => {
    const payload = noise(125, 26)
    return { steps: [octets(Ping(payload))], items: [pong(payload)], ending: closes() }
  })
  add('2.7', 'Unsolicited pong without payload; ignored', () => ({ steps: [one(Pong())], items: [], ending: closes() }))
  add('2.8', 'Unsolicited pong with a payload; ignored', () => ({ steps: [one(Pong('nobody asked'))], items: [], ending: closes() }))
  add('2.9', 'Unsolicited pong, then a ping with a payload; only the ping is answered', () => ({
    steps: [one(Pong('unasked')), one(Ping('asked'))],
    items: [pong('asked')],
    ending: closes(),
  }))
  const ten = Array.from({ length: 10 }, (_, i) => `ping number ${i + 1}`)
  add('2.10', 'Ten pings with distinct payloads in one write; ten pongs, in order', () => ({
    steps: [one(...ten.map((p) => Ping(p)))],
    items: ten.map((p) => pong(p)),
    ending: closes(),
  }))
  add('2.11', 'Ten pings with distinct payloads, every octet written separately; ten pongs, in order', () => ({
    steps: [octets(...ten.map((p) => Ping(p)))],
    items: ten.map((p) => pong(p)),
    ending: closes(),
  }))
}

// ===================================================== 3: reserved bits (§5.2)
group(3)
{
  // RSV1 = 4, RSV2 = 2, RSV3 = 1 in the 3-bit value; each value 1..7 is used once.
  const hello = 'reserved bits test'
  add('3.1', 'Text frame with RSV3 set (value 1), no extension negotiated; fail 1002', () => ({
    steps: [one(T(hello, { rsv: 1 }))],
    items: [],
    ending: fails(1002),
  }))
  add('3.2', 'Text (echoed), then text with RSV2 (value 2), then a ping, in one write; fail 1002, no pong', () => ({
    steps: [one(T(hello), T(hello, { rsv: 2 }), Ping('after'))],
    items: [text(hello)],
    ending: fails(1002),
  }))
  add('3.3', 'Text (echoed), then text with RSV2+RSV3 (value 3), then a ping, one frame per write; fail 1002, no pong', () => ({
    steps: [...each(T(hello), T(hello, { rsv: 3 }), Ping('after'))],
    items: [text(hello)],
    ending: fails(1002),
  }))
  add('3.4', 'Text (echoed), then text with RSV1 (value 4) without permessage-deflate, then a ping, octet by octet; fail 1002, no pong', () => ({
    steps: [octets(T(hello), T(hello, { rsv: 4 }), Ping('after'))],
    items: [text(hello)],
    ending: fails(1002),
  }))
  add('3.5', 'Binary frame with RSV1+RSV3 (value 5); fail 1002', () => ({
    steps: [one(B(noise(32, 35), { rsv: 5 }))],
    items: [],
    ending: fails(1002),
  }))
  add('3.6', 'Ping with RSV1+RSV2 (value 6); fail 1002 without a pong', () => ({
    steps: [one(Ping('rsv ping', { rsv: 6 }))],
    items: [],
    ending: fails(1002),
  }))
  add('3.7', 'Close frame (1000) with all three RSV bits (value 7); fail 1002', () => ({
    steps: [one(Close(1000, '', { rsv: 7 }))],
    items: [],
    ending: fails(1002),
  }))
}

// ========================================================== 4: opcodes (§5.2)
group(4)
{
  const hello = 'before the bad opcode'
  for (const [sub, opcodes, kind] of [
    [1, [3, 4, 5, 6, 7], 'data'],
    [2, [11, 12, 13, 14, 15], 'control'],
  ] as const) {
    const [a, b, c, d, e] = opcodes
    add(`4.${sub}.1`, `Frame with reserved ${kind} opcode ${a}, empty; fail 1002`, () => ({
      steps: [one(Raw(a))],
      items: [],
      ending: fails(1002),
    }))
    add(`4.${sub}.2`, `Frame with reserved ${kind} opcode ${b} and a payload; fail 1002`, () => ({
      steps: [one(Raw(b, 'payload of a reserved opcode'))],
      items: [],
      ending: fails(1002),
    }))
    add(`4.${sub}.3`, `Text (echoed), reserved ${kind} opcode ${c} (empty), ping, in one write; fail 1002, no pong`, () => ({
      steps: [one(T(hello), Raw(c), Ping('after'))],
      items: [text(hello)],
      ending: fails(1002),
    }))
    add(`4.${sub}.4`, `Text (echoed), reserved ${kind} opcode ${d} with payload, ping, one frame per write; fail 1002, no pong`, () => ({
      steps: [...each(T(hello), Raw(d, 'xyz'), Ping('after'))],
      items: [text(hello)],
      ending: fails(1002),
    }))
    add(`4.${sub}.5`, `Text (echoed), reserved ${kind} opcode ${e} with payload, ping, octet by octet; fail 1002, no pong`, () => ({
      steps: [octets(T(hello), Raw(e, 'xyz'), Ping('after'))],
      items: [text(hello)],
      ending: fails(1002),
    }))
  }
}

// ================================================= 5: fragmentation (§5.4)
group(5)
{
  const f1 = 'first fragment, '
  const f2 = 'second fragment'
  const whole = f1 + f2
  add('5.1', 'Ping split into two fragments (FIN clear, then a continuation); fail 1002', () => ({
    steps: [one(Ping('half a ', { fin: false }), Cont('ping', true))],
    items: [],
    ending: fails(1002),
  }))
  add('5.2', 'Pong split into two fragments; fail 1002', () => ({
    steps: [one({ opcode: Op.Pong, payload: utf8('half a '), fin: false }, Cont('pong', true))],
    items: [],
    ending: fails(1002),
  }))
  add('5.3', 'Text in two fragments, one write; echoed whole', () => ({
    steps: [one(T(f1, { fin: false }), Cont(f2, true))],
    items: [text(whole)],
    ending: closes(),
  }))
  add('5.4', 'Text in two fragments, one fragment per write; echoed whole', () => ({
    steps: each(T(f1, { fin: false }), Cont(f2, true)),
    items: [text(whole)],
    ending: closes(),
  }))
  add('5.5', 'Text in two fragments, every octet written separately; echoed whole', () => ({
    steps: [octets(T(f1, { fin: false }), Cont(f2, true))],
    items: [text(whole)],
    ending: closes(),
  }))
  add('5.6', 'Text in two fragments with a ping between them, one write; pong, then the echo', () => ({
    steps: [one(T(f1, { fin: false }), Ping('between'), Cont(f2, true))],
    items: [pong('between'), text(whole)],
    ending: closes(),
  }))
  add('5.7', 'Text in two fragments with a ping between them, one frame per write; pong, then the echo', () => ({
    steps: each(T(f1, { fin: false }), Ping('between'), Cont(f2, true)),
    items: [pong('between'), text(whole)],
    ending: closes(),
  }))
  add('5.8', 'Text in two fragments with a ping between them, octet by octet; pong, then the echo', () => ({
    steps: [octets(T(f1, { fin: false }), Ping('between'), Cont(f2, true))],
    items: [pong('between'), text(whole)],
    ending: closes(),
  }))
  for (const [base, fin] of [
    [9, true],
    [12, false],
  ] as const) {
    const stray = Cont('nothing to continue', fin)
    const label = `Continuation frame (FIN ${fin ? 'set' : 'clear'}) with no message started, then a text message`
    add(`5.${base}`, `${label}, one write; fail 1002, nothing echoed`, () => ({
      steps: [one(stray, T('never echoed'))],
      items: [],
      ending: fails(1002),
    }))
    add(`5.${base + 1}`, `${label}, one frame per write; fail 1002`, () => ({
      steps: each(stray, T('never echoed')),
      items: [],
      ending: fails(1002),
    }))
    add(`5.${base + 2}`, `${label}, octet by octet; fail 1002`, () => ({
      steps: [octets(stray, T('never echoed'))],
      items: [],
      ending: fails(1002),
    }))
  }
  add('5.15', 'Text in two fragments (echoed), a stray continuation (FIN clear), then text, one write; fail 1002', () => ({
    steps: [one(T(f1, { fin: false }), Cont(f2, true), Cont('stray', false), T('never echoed'))],
    items: [text(whole)],
    ending: fails(1002),
  }))
  add('5.16', 'Twice: stray continuation (FIN clear), text fragment, final continuation, one write; fail 1002 at the first frame', () => {
    const round = [Cont('stray', false), T(f1, { fin: false }), Cont(f2, true)]
    return { steps: [one(...round, ...round)], items: [], ending: fails(1002) }
  })
  add('5.17', 'Twice: stray continuation (FIN set), text fragment, final continuation, one write; fail 1002 at the first frame', () => {
    const round = [Cont('stray', true), T(f1, { fin: false }), Cont(f2, true)]
    return { steps: [one(...round, ...round)], items: [], ending: fails(1002) }
  })
  add('5.18', 'Text fragment followed by a second text frame instead of a continuation; fail 1002', () => ({
    steps: [one(T(f1, { fin: false }), T(f2, { fin: true }))],
    items: [],
    ending: fails(1002),
  }))
  const parts = ['one|', 'two|', 'three|', 'four|', 'five']
  add('5.19', `Text in five fragments: 2, ping, pause ${DELAY} ms, 2, ping, 1; two pongs, then the echo`, () => ({
    steps: [
      one(T(parts[0]!, { fin: false }), Cont(parts[1]!, false), Ping('ping 1')),
      wait(DELAY),
      one(Cont(parts[2]!, false), Cont(parts[3]!, false), Ping('ping 2'), Cont(parts[4]!, true)),
    ],
    items: [pong('ping 1'), pong('ping 2'), text(parts.join(''))],
    ending: closes(),
  }))
  add('5.20', `As 5.19, but every frame in its own write, ${SYNC} ms apart, and a ${DELAY} ms pause; two pongs, then the echo`, () => ({
    steps: [
      ...each(T(parts[0]!, { fin: false }), Cont(parts[1]!, false), Ping('ping 1')),
      wait(DELAY),
      ...each(Cont(parts[2]!, false), Cont(parts[3]!, false), Ping('ping 2'), Cont(parts[4]!, true)),
    ],
    items: [pong('ping 1'), pong('ping 2'), text(parts.join(''))],
    ending: closes(),
  }))
}

// ================================================ 6: UTF-8 (§8.1, RFC 3629)
group(6)
{
  /** The bytes of code point `cp` in an n-byte form, whether or not that form is allowed. */
  const form = (cp: number, n: number): number[] => {
    if (n === 1) return [cp]
    const out: number[] = new Array(n)
    let value = cp
    for (let i = n - 1; i > 0; i--) {
      out[i] = 0x80 | (value % 64)
      value = Math.floor(value / 64)
    }
    out[0] = ((0xff << (8 - n)) & 0xff) | value
    return out
  }
  const enc = (cp: number): number[] => form(cp, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4)
  const hex = (cp: number): string => 'U+' + cp.toString(16).toUpperCase().padStart(4, '0')

  /** A one-frame text case: echoed if `valid`, else the testee fails with 1007. */
  const single = (id: string, description: string, payload: Buffer, valid: boolean): void => {
    if (valid !== isUtf8(payload)) throw new Error(`catalogue error in ${id}: declared ${valid ? 'valid' : 'invalid'}`)
    add(id, `${description}; ${valid ? 'echoed' : 'fail 1007'}`, () => ({
      steps: [one(T(payload))],
      items: valid ? [text(payload)] : [],
      ending: valid ? closes() : fails(1007),
    }))
  }
  /** A text case sent as the given fragments (one write). */
  const fragmented = (id: string, description: string, fragments: Buffer[], valid: boolean, octetWise = false): void => {
    const whole = Buffer.concat(fragments)
    if (valid !== isUtf8(whole)) throw new Error(`catalogue error in ${id}`)
    add(id, `${description}; ${valid ? 'echoed' : 'fail 1007'}`, () => {
      const frames = fragments.map((fragment, i) =>
        i === 0 ? T(fragment, { fin: fragments.length === 1 }) : Cont(fragment, i === fragments.length - 1),
      )
      return {
        steps: [octetWise ? octets(...frames) : one(...frames)],
        items: valid ? [text(whole)] : [],
        ending: valid ? closes() : fails(1007),
      }
    })
  }

  // 6.1 Empty messages and fragments.
  fragmented('6.1.1', 'Empty text message', [EMPTY], true)
  fragmented('6.1.2', 'Text message made of three empty fragments', [EMPTY, EMPTY, EMPTY], true)
  fragmented('6.1.3', 'Text in three fragments: empty, "middle", empty', [EMPTY, utf8('middle'), EMPTY], true)

  // 6.2 Valid text, cut anywhere.
  const sample = utf8('Grüße aus Köln: ½ × π ≈ 1,57 € — ok')
  const world = utf8('Ελληνικά · русский · 日本語 · 🙂🚀')
  fragmented('6.2.1', 'Valid multi-byte text (Latin-1, symbols, €) in one frame', [sample], true)
  fragmented('6.2.2', 'The same text in two fragments cut between code points', [sample.subarray(0, 8), sample.subarray(8)], true)
  fragmented('6.2.3', 'The same text in one-byte fragments, so fragments end inside code points', [...sample].map((b) => bytes(b)), true)
  fragmented('6.2.4', 'Greek, Cyrillic, CJK and emoji in one-byte fragments', [...world].map((b) => bytes(b)), true)

  // 6.3 Invalid text, whole and in one-byte fragments.
  const withSurrogate = Buffer.concat([utf8('valid start '), bytes(0xed, 0xa0, 0x80), utf8(' valid end')])
  fragmented('6.3.1', 'Text with an encoded surrogate (ED A0 80) in the middle, one frame', [withSurrogate], false)
  fragmented('6.3.2', 'The same text in one-byte fragments', [...withSurrogate].map((b) => bytes(b)), false)

  // 6.4 Fail fast: the testee must fail as soon as the text cannot be UTF-8, before the rest is sent.
  {
    const part1 = utf8('Ελληνικά ')
    const part2 = bytes(0xf4, 0x90, 0x80, 0x80) // U+110000: beyond the Unicode range
    const part3 = utf8(' and then some valid text')
    const ff = { failFast: true }
    add('6.4.1', 'Fail fast: fragment 1 valid; fragment 2 is F4 90 80 80 (above U+10FFFF); fragment 3 withheld until the testee fails; fail 1007 before fragment 3', () => ({
      steps: [
        one(T(part1, { fin: false })),
        wait(SYNC),
        one(Cont(part2, false)),
        { kind: 'checkpoint', ms: FAIL_FAST },
        one(Cont(part3, true)),
      ],
      items: [],
      ending: fails(1007),
      ...ff,
    }))
    add('6.4.2', 'Fail fast: fragment 1 ends with F4; fragment 2 is only the octet 90 that makes it invalid; fail 1007 before the rest', () => ({
      steps: [
        one(T(Buffer.concat([part1, bytes(0xf4)]), { fin: false })),
        wait(SYNC),
        one(Cont(bytes(0x90), false)),
        { kind: 'checkpoint', ms: FAIL_FAST },
        one(Cont(Buffer.concat([bytes(0x80, 0x80), part3]), true)),
      ],
      items: [],
      ending: fails(1007),
      ...ff,
    }))
    const payload = Buffer.concat([part1, part2, part3])
    add('6.4.3', 'Fail fast inside one frame: written in 3 pieces, the 2nd holds F4 90 80 80; fail 1007 before the 3rd piece', () => ({
      steps: [
        {
          kind: 'pieces',
          frame: T(payload),
          cuts: [part1.length, part1.length + part2.length],
          gaps: [{ pause: SYNC }, { checkpoint: FAIL_FAST }],
        },
      ],
      items: [],
      ending: fails(1007),
      ...ff,
    }))
    add('6.4.4', 'Fail fast inside one frame: the 2nd piece is only the octet 90 after F4; fail 1007 before the rest', () => ({
      steps: [
        {
          kind: 'pieces',
          frame: T(payload),
          cuts: [part1.length + 1, part1.length + 2],
          gaps: [{ pause: SYNC }, { checkpoint: FAIL_FAST }],
        },
      ],
      items: [],
      ending: fails(1007),
      ...ff,
    }))
  }

  // 6.5 Valid samples.
  const samples: Array<[string, string]> = [
    ['plain ASCII', 'nothing but plain ASCII here, 0123456789 ~!@#'],
    ['Latin-1 supplement', 'façade, naïve, smørrebrød, crème brûlée'],
    ['Greek and Cyrillic', 'Καλημέρα κόσμε / Доброе утро, мир'],
    ['CJK and Hangul', '漢字とかなカナ、한국어 텍스트'],
    ['emoji and mathematical letters (4-byte)', '🎉🚀🙂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚'],
    ['CJK extensions in planes 2 and 3', '𠀀𠜎𪜀𫝀𰀀𱍊'],
    ['combining marks', 'e\u0301 a\u0308 o\u0302\u0323 Z\u0335'],
    ['right-to-left scripts', 'שלום עולם · مرحبا بالعالم'],
  ]
  samples.forEach(([what, value], i) => single(`6.5.${i + 1}`, `Valid text: ${what}`, utf8(value), true))

  // 6.6 Every prefix of a string with 1-, 2-, 3- and 4-byte characters.
  {
    const s = utf8('añ€𝄞') // 61 | c3 b1 | e2 82 ac | f0 9d 84 9e
    const boundaries = new Set([1, 3, 6, 10])
    for (let n = 1; n <= s.length; n++) {
      const valid = boundaries.has(n)
      single(`6.6.${n}`, `The first ${n} of the 10 bytes of "añ€𝄞" (${valid ? 'ends on a character' : 'ends inside a character'})`, s.subarray(0, n), valid)
    }
  }

  // 6.7 - 6.11 Boundaries of each sequence length.
  ;[0x0000, 0x0080, 0x0800, 0x10000].forEach((cp, i) =>
    single(`6.7.${i + 1}`, `First code point of the ${i + 1}-byte form, ${hex(cp)}`, Buffer.from(enc(cp)), true),
  )
  single('6.8.1', 'First 5-byte form (U+200000), no longer UTF-8', Buffer.from(form(0x200000, 5)), false)
  single('6.8.2', 'First 6-byte form (U+4000000), no longer UTF-8', Buffer.from(form(0x4000000, 6)), false)
  ;[0x007f, 0x07ff, 0xffff, 0x10ffff].forEach((cp, i) =>
    single(`6.9.${i + 1}`, `Last code point of the ${i + 1}-byte form, ${hex(cp)}`, Buffer.from(enc(cp)), true),
  )
  single('6.10.1', 'F4 90 80 80: U+110000, the first value above U+10FFFF', Buffer.from(form(0x110000, 4)), false)
  single('6.10.2', 'F7 BF BF BF: U+1FFFFF, the last 4-byte form value', Buffer.from(form(0x1fffff, 4)), false)
  single('6.10.3', 'Last 5-byte form, U+3FFFFFF', Buffer.from(form(0x3ffffff, 5)), false)
  single('6.10.4', 'Last 6-byte form, U+7FFFFFFF', Buffer.from(form(0x7fffffff, 6)), false)
  ;[0xd7ff, 0xe000, 0xfffd, 0xfeff].forEach((cp, i) =>
    single(`6.11.${i + 1}`, `Code point next to a boundary or special: ${hex(cp)}`, Buffer.from(enc(cp)), true),
  )

  // 6.12 Continuation bytes where a character should start.
  {
    const runs: Array<[string, number[]]> = [
      ['a lone 80', [0x80]],
      ['a lone BF', [0xbf]],
      ['80 BF', [0x80, 0xbf]],
      ['80 BF 80', [0x80, 0xbf, 0x80]],
      ['80 BF 80 BF', [0x80, 0xbf, 0x80, 0xbf]],
      ['five continuation bytes', [0x80, 0xbf, 0x80, 0xbf, 0x80]],
      ['six continuation bytes', [0x80, 0xbf, 0x80, 0xbf, 0x80, 0xbf]],
      ['seven continuation bytes', [0x80, 0xbf, 0x80, 0xbf, 0x80, 0xbf, 0x80]],
      ['all 64 continuation bytes 80..BF in a row', Array.from({ length: 64 }, (_, i) => 0x80 + i)],
    ]
    runs.forEach(([what, value], i) => single(`6.12.${i + 1}`, `Unexpected continuation: ${what}`, Buffer.from(value), false))
  }

  // 6.13 Lead bytes followed by a space instead of their continuation bytes.
  {
    const leads: Array<[string, number, number]> = [
      ['2-byte', 0xc0, 0xdf],
      ['3-byte', 0xe0, 0xef],
      ['4-byte', 0xf0, 0xf7],
      ['5-byte', 0xf8, 0xfb],
      ['6-byte', 0xfc, 0xfd],
    ]
    leads.forEach(([what, from, to], i) => {
      const out: number[] = []
      for (let b = from; b <= to; b++) out.push(b, 0x20)
      single(`6.13.${i + 1}`, `Every ${what} lead byte (${from.toString(16).toUpperCase()}..${to.toString(16).toUpperCase()}) alone, each followed by a space`, Buffer.from(out), false)
    })
  }

  // 6.14 - 6.15 Sequences missing their last continuation byte.
  {
    const truncated: Array<[string, number[]]> = []
    for (let n = 2; n <= 6; n++) truncated.push([`${n}-byte form of U+0000`, form(0, n).slice(0, -1)])
    const lasts = [0x7ff, 0xffff, 0x1fffff, 0x3ffffff, 0x7fffffff]
    lasts.forEach((cp, i) => truncated.push([`${i + 2}-byte form of ${hex(cp)}`, form(cp, i + 2).slice(0, -1)]))
    truncated.forEach(([what, value], i) => single(`6.14.${i + 1}`, `Last continuation byte missing: ${what}`, Buffer.from(value), false))
    single('6.15.1', 'All ten truncated sequences of 6.14 concatenated', Buffer.from(truncated.flatMap(([, value]) => value)), false)
  }

  // 6.16 Bytes that never occur in UTF-8.
  single('6.16.1', 'The byte FE', bytes(0xfe), false)
  single('6.16.2', 'The byte FF', bytes(0xff), false)
  single('6.16.3', 'FE FE FF FF', bytes(0xfe, 0xfe, 0xff, 0xff), false)

  // 6.17 - 6.19 Overlong forms.
  for (let n = 2; n <= 6; n++) single(`6.17.${n - 1}`, `Overlong "/" (U+002F) in ${n} bytes`, Buffer.from(form(0x2f, n)), false)
  ;[
    [0x7f, 2],
    [0x7ff, 3],
    [0xffff, 4],
    [0x1fffff, 5],
    [0x3ffffff, 6],
  ].forEach(([cp, n], i) => single(`6.18.${i + 1}`, `Largest overlong ${n}-byte form (${hex(cp!)})`, Buffer.from(form(cp!, n!)), false))
  for (let n = 2; n <= 6; n++) single(`6.19.${n - 1}`, `Overlong NUL in ${n} bytes`, Buffer.from(form(0, n)), false)

  // 6.20 - 6.21 UTF-16 surrogates encoded as if they were characters.
  ;[0xd800, 0xdb7f, 0xdb80, 0xdbff, 0xdc00, 0xdf80, 0xdfff].forEach((cp, i) =>
    single(`6.20.${i + 1}`, `Lone surrogate ${hex(cp)}`, Buffer.from(form(cp, 3)), false),
  )
  {
    const pairs: Array<[number, number]> = []
    for (const high of [0xd800, 0xdb7f, 0xdb80, 0xdbff]) for (const low of [0xdc00, 0xdfff]) pairs.push([high, low])
    pairs.forEach(([high, low], i) =>
      single(`6.21.${i + 1}`, `Surrogate pair ${hex(high)} ${hex(low)} encoded separately (CESU-8)`, Buffer.from([...form(high, 3), ...form(low, 3)]), false),
    )
  }

  // 6.22 Noncharacters: valid UTF-8 (Unicode Corrigendum #9), to be delivered as they are.
  {
    let i = 1
    for (let plane = 0; plane <= 16; plane++) {
      for (const last of [0xfffe, 0xffff]) {
        const cp = plane * 0x10000 + last
        single(`6.22.${i++}`, `Noncharacter ${hex(cp)}`, Buffer.from(enc(cp)), true)
      }
    }
    const fdd: number[] = []
    for (let cp = 0xfdd0; cp <= 0xfdef; cp++) fdd.push(...enc(cp))
    single(`6.22.${i}`, 'The 32 noncharacters U+FDD0..U+FDEF in one message', Buffer.from(fdd), true)
  }

  // 6.23 Lead bytes that UTF-8 never uses, each with the continuation bytes its form would have.
  {
    const invalidLeads: Array<[number, number]> = [
      [0xc0, 1],
      [0xc1, 1],
      [0xf5, 3],
      [0xf6, 3],
      [0xf7, 3],
      [0xf8, 4],
      [0xf9, 4],
      [0xfa, 4],
      [0xfb, 4],
      [0xfc, 5],
      [0xfd, 5],
      [0xfe, 0],
      [0xff, 0],
    ]
    invalidLeads.forEach(([lead, follow], i) => {
      const value = [0x61, lead, ...new Array<number>(follow).fill(0x81), 0x62]
      single(`6.23.${i + 1}`, `Invalid lead byte ${lead.toString(16).toUpperCase()} with ${follow} continuation byte(s), between ASCII`, Buffer.from(value), false)
    })
  }

  // 6.24 Sequences cut short, at the end of the message and before ASCII.
  {
    const cuts: Array<[string, number[]]> = [
      ['é cut after its lead byte, at the end', [0x61, 0x62, 0x63, 0xc3]],
      ['€ cut after 2 of 3 bytes, at the end', [0x61, 0x62, 0x63, 0xe2, 0x82]],
      ['😀 cut after 3 of 4 bytes, at the end', [0x61, 0x62, 0x63, 0xf0, 0x9f, 0x98]],
      ['é cut after its lead byte, then ASCII', [0xc3, 0x78, 0x79]],
      ['€ cut after 2 of 3 bytes, then ASCII', [0xe2, 0x82, 0x78, 0x79]],
      ['😀 cut after 3 of 4 bytes, then ASCII', [0xf0, 0x9f, 0x98, 0x78, 0x79]],
    ]
    cuts.forEach(([what, value], i) => single(`6.24.${i + 1}`, `Truncated sequence: ${what}`, Buffer.from(value), false))
  }

  // 6.25 A message split into two fragments at every byte inside a multi-byte character.
  {
    let i = 1
    for (const ch of ['ß', '€', '𝄞']) {
      const value = utf8(`a${ch}b`)
      for (let cut = 2; cut < value.length - 1; cut++) {
        fragmented(`6.25.${i++}`, `"a${ch}b" in two fragments cut after byte ${cut} (inside ${ch})`, [value.subarray(0, cut), value.subarray(cut)], true)
      }
    }
    const clef = utf8('a𝄞b')
    fragmented(`6.25.${i++}`, '"a𝄞b" with each byte of 𝄞 in its own fragment', [clef.subarray(0, 2), clef.subarray(2, 3), clef.subarray(3, 4), clef.subarray(4)], true)
    const surrogate = Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62])
    for (const cut of [2, 3]) {
      fragmented(`6.25.${i++}`, `Surrogate ED A0 80 split into two fragments after byte ${cut}`, [surrogate.subarray(0, cut), surrogate.subarray(cut)], false)
    }
    const above = Buffer.from([0x61, 0xf4, 0x90, 0x80, 0x80, 0x62])
    for (const cut of [2, 3, 4]) {
      fragmented(`6.25.${i++}`, `F4 90 80 80 (above U+10FFFF) split into two fragments after byte ${cut}`, [above.subarray(0, cut), above.subarray(cut)], false)
    }
    fragmented(`6.25.${i++}`, 'Fragment ends with an unfinished € (E2 82); the next fragment starts with ASCII', [bytes(0x61, 0xe2, 0x82), utf8('b')], false)
    fragmented(`6.25.${i++}`, 'Last fragment ends with an unfinished 😀 (F0 9F 98)', [utf8('smile: '), bytes(0xf0, 0x9f, 0x98)], false)
  }

  // 6.26 One character from each plane in use.
  ;[0x1f600, 0x20000, 0x30000, 0xe0041, 0xf0000, 0x100000].forEach((cp, i) =>
    single(`6.26.${i + 1}`, `Supplementary plane ${Math.floor(cp / 0x10000)} character ${hex(cp)} between ASCII`, Buffer.from([0x3c, ...enc(cp), 0x3e]), true),
  )

  // 6.27 Every code point of a range in one message.
  {
    const range = (from: number, to: number): Buffer => {
      const out: number[] = []
      for (let cp = from; cp <= to; cp++) if (cp < 0xd800 || cp > 0xdfff) out.push(...enc(cp))
      return Buffer.from(out)
    }
    single('6.27.1', 'Every 2-byte code point, U+0080..U+07FF, in one message', range(0x80, 0x7ff), true)
    single('6.27.2', 'Every 3-byte code point except surrogates, U+0800..U+FFFF, in one message', range(0x800, 0xffff), true)
    single('6.27.3', 'Every code point of plane 1, U+10000..U+1FFFF, in one message', range(0x10000, 0x1ffff), true)
    const bmp = range(0x800, 0xffff)
    const pieces: Buffer[] = []
    for (let at = 0; at < bmp.length; at += 1001) pieces.push(bmp.subarray(at, at + 1001))
    fragmented('6.27.4', `U+0800..U+FFFF in ${pieces.length} fragments of 1001 bytes (cut inside characters)`, pieces, true)
  }
}

// ============================================= 7: the closing handshake (§5.5.1, §7)
group(7)
{
  const hello = 'before closing'
  add('7.1.1', 'Text message then close 1000, one write; the echo comes before the close answer', () => ({
    steps: [one(T(hello), Close(1000))],
    items: [text(hello)],
    ending: closes(1000),
  }))
  add('7.1.2', 'Two close frames in one write; one close answer, the second frame ignored', () => ({
    steps: [one(Close(1000), Close(1001))],
    items: [],
    ending: closes(1000),
  }))
  add('7.1.3', 'Close, then a ping, one write; no pong after the close', () => ({
    steps: [one(Close(1000), Ping('too late'))],
    items: [],
    ending: closes(1000),
  }))
  add('7.1.4', 'Close, then a text message, one write; the text is not echoed', () => ({
    steps: [one(Close(1000), T('too late'))],
    items: [],
    ending: closes(1000),
  }))
  add('7.1.5', 'First fragment of a text, close, then the final fragment; nothing echoed', () => ({
    steps: [one(T('half a ', { fin: false }), Close(1000), Cont('message', true))],
    items: [],
    ending: closes(1000),
  }))
  add('7.1.6', '256 KiB text, close, ping, one write; the whole echo, then the close answer, no pong', () => {
    const payload = asciiText(256 * 1024)
    return { steps: [one(T(payload), Close(1000), Ping('too late'))], items: [text(payload)], ending: closes(1000) }
  })
  add('7.3.1', 'Close frame without payload; answered (empty or 1000)', () => ({
    steps: [one(CloseRaw(EMPTY))],
    items: [],
    ending: closes(1005, 1000),
  }))
  add('7.3.2', 'Close frame with a 1-byte payload; fail 1002', () => ({
    steps: [one(CloseRaw(bytes(0x03)))],
    items: [],
    ending: fails(1002),
  }))
  add('7.3.3', 'Close 1000 without a reason; answered with 1000', () => ({ steps: [one(Close(1000))], items: [], ending: closes(1000) }))
  add('7.3.4', 'Close 1000 with a short reason; answered with 1000', () => ({
    steps: [one(Close(1000, 'see you'))],
    items: [],
    ending: closes(1000),
  }))
  add('7.3.5', 'Close 1000 with a 123-byte reason (payload 125, the maximum); answered', () => ({
    steps: [one(Close(1000, asciiText(123)))],
    items: [],
    ending: closes(1000),
  }))
  add('7.3.6', 'Close 1000 with a 124-byte reason (payload 126, too long for a control frame); fail 1002', () => ({
    steps: [one(Close(1000, asciiText(124)))],
    items: [],
    ending: fails(1002),
  }))
  add('7.5.1', 'Close 1000 whose reason is not UTF-8 ("Grüße" then an encoded surrogate ED B0 80); fail 1007', () => ({
    steps: [one(Close(1000, Buffer.concat([utf8('Grüße'), bytes(0xed, 0xb0, 0x80)])))],
    items: [],
    ending: fails(1007),
  }))
  add('7.5.2', 'Close 1000 with a multi-byte UTF-8 reason of 123 bytes; answered', () => ({
    steps: [one(Close(1000, utf8('€'.repeat(41))))],
    items: [],
    ending: closes(1000),
  }))
  const valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
  valid.forEach((code, i) =>
    add(`7.7.${i + 1}`, `Close with code ${code}, which a peer may send; answered with ${code} (or 1000)`, () => ({
      steps: [one(Close(code, 'bye'))],
      items: [],
      ending: closes(code, 1000),
    })),
  )
  const invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
  invalid.forEach((code, i) =>
    add(`7.9.${i + 1}`, `Close with code ${code}, which no peer may send (§7.4); fail 1002`, () => ({
      steps: [one(CloseRaw(closePayloadRaw(code)))],
      items: [],
      ending: fails(1002),
    })),
  )
}

/** A close payload with any 16-bit value, even those closePayload treats specially. */
function closePayloadRaw(code: number): Buffer {
  const out = Buffer.alloc(2)
  out.writeUInt16BE(code, 0)
  return out
}

// ================================================== 9: limits and performance
group(9)
{
  const KiB = 1024
  const MiB = 1024 * KiB
  const big = { timeoutMs: 60_000 }
  const label = (n: number): string => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`)
  const sizes = [64 * KiB, 256 * KiB, MiB, 4 * MiB, 8 * MiB, 16 * MiB]
  for (const [sub, kind] of [
    [1, 'text'],
    [2, 'binary'],
  ] as const) {
    const make = (n: number): Buffer => (kind === 'text' ? asciiText(n) : noise(n, n))
    sizes.forEach((n, i) =>
      add(`9.${sub}.${i + 1}`, `One ${kind} message of ${label(n)} in one frame; echoed`, () => {
        const payload = make(n)
        return { steps: [one({ opcode: sub, payload })], items: [{ type: kind, data: payload }], ending: closes() }
      }, big),
    )
  }
  const frameSizes = [64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB]
  for (const [sub, kind, opcode] of [
    [3, 'text', Op.Text],
    [4, 'binary', Op.Binary],
  ] as const) {
    frameSizes.forEach((size, i) =>
      add(`9.${sub}.${i + 1}`, `A 4 MiB ${kind} message in frames of ${size >= KiB ? label(size) : `${size} B`}; echoed`, () => {
        const payload = kind === 'text' ? asciiText(4 * MiB) : noise(4 * MiB, 93)
        const frames: FrameSpec[] = []
        for (let at = 0; at < payload.length; at += size) {
          frames.push({ opcode: at === 0 ? opcode : Op.Continuation, payload: payload.subarray(at, at + size), fin: at + size >= payload.length })
        }
        return { steps: [one(...frames)], items: [{ type: kind, data: payload }], ending: closes() }
      }, big),
    )
  }
  const chops = [64, 128, 256, 512, 1024, 2048, 4096]
  for (const [sub, kind, opcode] of [
    [5, 'text', Op.Text],
    [6, 'binary', Op.Binary],
  ] as const) {
    chops.forEach((chop, i) =>
      add(`9.${sub}.${i + 1}`, `A 1 MiB ${kind} message in one frame, written in ${chop}-byte pieces; echoed`, () => {
        const payload = kind === 'text' ? asciiText(MiB) : noise(MiB, 95)
        return { steps: [{ kind: 'send', frames: [{ opcode, payload }], chop }], items: [{ type: kind, data: payload }], ending: closes() }
      }, big),
    )
  }
  const roundTripSizes = [16, 256, 4096]
  for (const [sub, kind] of [
    [7, 'text'],
    [8, 'binary'],
  ] as const) {
    roundTripSizes.forEach((size, i) =>
      add(`9.${sub}.${i + 1}`, `1000 ${kind} messages of ${size} bytes, each sent after the previous echo arrived`, () => {
        const messages = Array.from({ length: 1000 }, (_, k) => {
          const data = kind === 'text' ? asciiText(size) : noise(size, k + 1)
          if (kind === 'text') data.write(String(k).padStart(Math.min(size, 4), '0').slice(0, size), 0, 'latin1')
          return { type: kind, data }
        })
        return {
          steps: [{ kind: 'roundTrips', messages, ms: 2000 }],
          items: messages.map((m) => ({ type: m.type, data: m.data })),
          ending: closes(),
        }
      }, big),
    )
  }
}

// ================================================== 10: auto-fragmentation
group(10)
{
  for (const [sub, kind, opcode] of [
    [1, 'text', Op.Text],
    [2, 'binary', Op.Binary],
  ] as const) {
    add(`10.1.${sub}`, `A 64 KiB ${kind} message sent as fragments of 1300 bytes (the last one shorter); echoed intact`, () => {
      const payload = kind === 'text' ? compressibleText(65536) : noise(65536, 101)
      const frames: FrameSpec[] = []
      for (let at = 0; at < payload.length; at += 1300) {
        frames.push({ opcode: at === 0 ? opcode : Op.Continuation, payload: payload.subarray(at, at + 1300), fin: at + 1300 >= payload.length })
      }
      return { steps: [one(...frames)], items: [{ type: kind, data: payload }], ending: closes() }
    })
  }
}

// ============================================ 12: permessage-deflate messages
group(12)
{
  const DEFAULT: DeflateSpec = {
    offer: 'permessage-deflate; client_max_window_bits',
    response: {},
    client: {},
    clientOffer: { client_max_window_bits: 'novalue' },
    answer: 'permessage-deflate',
  }
  const sizes = [16, 64, 256, 1024, 4096, 16384, 65536, 131072]
  const kinds: Array<[number, string, 'text' | 'binary', (n: number, k: number) => Buffer]> = [
    [1, 'compressible text', 'text', (n) => compressibleText(n)],
    [2, 'compressible binary', 'binary', (n) => compressibleBytes(n)],
    [3, 'random printable ASCII text', 'text', (n, k) => asciiNoise(n, n + k)],
    [4, 'random binary (incompressible)', 'binary', (n, k) => noise(n, n * 7 + k)],
  ]
  const echoOf = (type: 'text' | 'binary', data: Buffer): ExpectedItem => ({ type, data, compressed: shrinks(data) ? 'yes' : 'any' })
  for (const [sub, what, type, make] of kinds) {
    sizes.forEach((n, i) =>
      add(`12.${sub}.${i + 1}`, `10 compressed ${what} messages of ${n} bytes, context takeover both ways; echoed compressed`, () => {
        const messages = Array.from({ length: 10 }, (_, k) => ({ type, data: make(n, k) }))
        return { steps: [{ kind: 'deflated', messages }], items: messages.map((m) => echoOf(m.type, m.data)), ending: closes() }
      }, { deflate: DEFAULT }),
    )
  }
  ;[1024, 4096, 16384, 65536, 131072].forEach((n, i) =>
    add(`12.5.${i + 1}`, `10 compressed text messages of ${n} bytes, each sent as frames of 256 compressed bytes (RSV1 on the first only)`, () => {
      const messages = Array.from({ length: 10 }, (_, k) => ({ type: 'text' as const, data: compressibleText(n + k), fragment: 256 }))
      return { steps: [{ kind: 'deflated', messages }], items: messages.map((m) => echoOf(m.type, m.data)), ending: closes() }
    }, { deflate: DEFAULT }),
  )
  ;[256, 4096, 65536].forEach((n, i) =>
    add(`12.6.${i + 1}`, `10 messages of ${n} bytes alternating compressed and uncompressed (per-message choice) with context takeover`, () => {
      const messages = Array.from({ length: 10 }, (_, k) => ({
        type: (k % 3 === 2 ? 'binary' : 'text') as 'text' | 'binary',
        data: k % 3 === 2 ? compressibleBytes(n + k) : compressibleText(n + k),
        compress: k % 2 === 0,
      }))
      return { steps: [{ kind: 'deflated', messages }], items: messages.map((m) => echoOf(m.type, m.data)), ending: closes() }
    }, { deflate: DEFAULT }),
  )
  add('12.7.1', 'Empty text and binary messages, compressed (payload 00) and not, between non-empty ones; echoed', () => {
    const messages: DeflatedMessage[] = [
      { type: 'text', data: EMPTY },
      { type: 'binary', data: EMPTY },
      { type: 'text', data: compressibleText(300) },
      { type: 'text', data: EMPTY, compress: false },
      { type: 'binary', data: EMPTY },
      { type: 'text', data: compressibleText(300) },
    ]
    return { steps: [{ kind: 'deflated', messages }], items: messages.map((m) => echoOf(m.type, m.data)), ending: closes() }
  }, { deflate: DEFAULT })
  add('12.7.2', 'A compressed text message whose multi-byte characters are cut by frame boundaries (frames of 7 bytes)', () => {
    const data = utf8('Ελληνικά · русский · 日本語 · 🙂🚀 '.repeat(40))
    const messages: DeflatedMessage[] = [{ type: 'text', data, fragment: 7 }]
    return { steps: [{ kind: 'deflated', messages }], items: [echoOf('text', data)], ending: closes() }
  }, { deflate: DEFAULT })
}

// ============================================ 13: permessage-deflate parameters
group(13)
{
  /** The messages every group-13 case exchanges: short and long, text and binary, repeats across messages, window probes. */
  const standard = (): DeflatedMessage[] => [
    { type: 'text', data: compressibleText(64) },
    { type: 'text', data: compressibleText(1024) },
    { type: 'binary', data: compressibleBytes(4096) },
    { type: 'text', data: windowProbe(1) },
    { type: 'binary', data: windowProbe(2, true) },
    { type: 'text', data: compressibleText(1024) },
    { type: 'text', data: EMPTY },
    { type: 'binary', data: compressibleBytes(131072) },
  ]
  const exchange = (): Plan => {
    const messages = standard()
    return {
      steps: [{ kind: 'deflated', messages }],
      items: messages.map((m) => ({ type: m.type, data: m.data, compressed: shrinks(m.data) ? 'yes' : 'any' })),
      ending: closes(),
    }
  }
  const deflateCase = (id: string, description: string, clientDescription: string, deflate: DeflateSpec, plan: () => Plan = exchange): void =>
    add(id, description, plan, { deflate, clientDescription })

  deflateCase('13.1.1', 'Offer "permessage-deflate" without parameters; accepted; 8 messages echoed compressed',
    'Client offers by default; the server accepts with no parameters; 8 messages echoed compressed', {
      offer: 'permessage-deflate',
      response: { client_max_window_bits: 'absent', server_no_context_takeover: 'absent' },
      client: {},
      clientOffer: { client_max_window_bits: 'novalue' },
      answer: 'permessage-deflate',
    })
  deflateCase('13.2.1', 'Offer server_no_context_takeover; the answer must carry it; each echo inflates on its own',
    'Client configured with serverNoContextTakeover: offer carries it, server agrees and compresses each message alone', {
      offer: 'permessage-deflate; server_no_context_takeover',
      response: { server_no_context_takeover: 'present' },
      client: { serverNoContextTakeover: true },
      clientOffer: { server_no_context_takeover: 'present' },
      answer: 'permessage-deflate; server_no_context_takeover',
    })
  deflateCase('13.3.1', 'Offer client_no_context_takeover; the peer compresses each message alone; echoed',
    'Client configured with clientNoContextTakeover: offer carries it; its messages must inflate on their own', {
      offer: 'permessage-deflate; client_no_context_takeover',
      response: {},
      client: { clientNoContextTakeover: true },
      clientOffer: { client_no_context_takeover: 'present' },
      answer: 'permessage-deflate; client_no_context_takeover',
    })
  for (let bits = 8; bits <= 15; bits++) {
    deflateCase(`13.4.${bits - 7}`, `Offer server_max_window_bits=${bits}; the answer must carry a value <= ${bits}, and no echo may reach further back`,
      `Client configured with serverMaxWindowBits ${bits}: offer carries it; server agrees and compresses with that window`, {
        offer: `permessage-deflate; server_max_window_bits=${bits}`,
        response: { server_max_window_bits: { atMost: bits } },
        client: { serverMaxWindowBits: bits },
        clientOffer: { server_max_window_bits: bits },
        answer: `permessage-deflate; server_max_window_bits=${bits}`,
      })
  }
  for (let bits = 8; bits <= 15; bits++) {
    deflateCase(`13.5.${bits - 7}`, `Offer client_max_window_bits=${bits}; the peer compresses with a ${bits}-bit window; echoed`,
      `Client configured with clientMaxWindowBits ${bits}: offer carries it; its messages may not reach further back`, {
        offer: `permessage-deflate; client_max_window_bits=${bits}`,
        response: { client_max_window_bits: { atMost: bits, optional: true } },
        client: { clientMaxWindowBits: bits },
        clientOffer: { client_max_window_bits: bits },
        answer: `permessage-deflate; client_max_window_bits=${bits}`,
      })
  }
  deflateCase('13.6.1', 'Offer client_max_window_bits without a value; any answer value 8-15 (or none) is honoured by the peer',
    'Default client offer (client_max_window_bits without value); the server answers client_max_window_bits=15', {
      offer: 'permessage-deflate; client_max_window_bits',
      response: { client_max_window_bits: { atMost: 15, optional: true } },
      client: {},
      clientOffer: { client_max_window_bits: 'novalue' },
      answer: 'permessage-deflate; client_max_window_bits=15',
    })
  deflateCase('13.6.2', 'Offer client_max_window_bits without a value and server_max_window_bits=11',
    'Default client offer; the server limits the client to client_max_window_bits=11', {
      offer: 'permessage-deflate; client_max_window_bits; server_max_window_bits=11',
      response: { server_max_window_bits: { atMost: 11 }, client_max_window_bits: { atMost: 15, optional: true } },
      client: {},
      clientOffer: { client_max_window_bits: 'novalue' },
      answer: 'permessage-deflate; client_max_window_bits=11',
    })
  deflateCase('13.6.3', 'Offer client_max_window_bits without a value and client_no_context_takeover',
    'Default client offer; the server limits the client to client_max_window_bits=8', {
      offer: 'permessage-deflate; client_no_context_takeover; client_max_window_bits',
      response: { client_max_window_bits: { atMost: 15, optional: true } },
      client: {},
      clientOffer: { client_max_window_bits: 'novalue' },
      answer: 'permessage-deflate; client_max_window_bits=8',
    })
  const combos: Array<[string, string, Record<string, unknown>, Partial<Record<DeflateParam, ResponseRule>>, Partial<Record<DeflateParam, OfferRule>>]> = [
    ['no context takeover both ways', 'server_no_context_takeover; client_no_context_takeover',
      { serverNoContextTakeover: true, clientNoContextTakeover: true },
      { server_no_context_takeover: 'present' },
      { server_no_context_takeover: 'present', client_no_context_takeover: 'present' }],
    ['9-bit windows both ways', 'server_max_window_bits=9; client_max_window_bits=9',
      { serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
      { server_max_window_bits: { atMost: 9 }, client_max_window_bits: { atMost: 9, optional: true } },
      { server_max_window_bits: 9, client_max_window_bits: 9 }],
    ['all four parameters, 10-bit windows', 'server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10',
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
      { server_no_context_takeover: 'present', server_max_window_bits: { atMost: 10 }, client_max_window_bits: { atMost: 10, optional: true } },
      { server_no_context_takeover: 'present', client_no_context_takeover: 'present', server_max_window_bits: 10, client_max_window_bits: 10 }],
    ['8-bit server window without server context takeover', 'server_max_window_bits=8; server_no_context_takeover',
      { serverMaxWindowBits: 8, serverNoContextTakeover: true },
      { server_no_context_takeover: 'present', server_max_window_bits: { atMost: 8 } },
      { server_no_context_takeover: 'present', server_max_window_bits: 8 }],
    ['8-bit client window without client context takeover', 'client_max_window_bits=8; client_no_context_takeover',
      { clientMaxWindowBits: 8, clientNoContextTakeover: true },
      { client_max_window_bits: { atMost: 8, optional: true } },
      { client_no_context_takeover: 'present', client_max_window_bits: 8 }],
  ]
  combos.forEach(([what, params, client, response, clientOffer], i) =>
    deflateCase(`13.7.${i + 1}`, `Offer ${what} (${params}); answered accordingly, 8 messages echoed`,
      `Client configured for ${what}; its offer carries them and the server agrees to all`, {
        offer: `permessage-deflate; ${params}`,
        response,
        client,
        clientOffer,
        answer: `permessage-deflate; ${params}`,
      }),
  )
  // Several offers (server role); answers a client must accept although it did not ask for them (client role).
  deflateCase('13.8.1', 'Two offers, the first invalid (server_max_window_bits=7): the second (server_no_context_takeover) is accepted',
    'The server answers server_max_window_bits=12 although the client did not offer it (allowed, §7.1.2.1); the client accepts', {
      offer: 'permessage-deflate; server_max_window_bits=7, permessage-deflate; server_no_context_takeover',
      response: { server_no_context_takeover: 'present' },
      client: {},
      clientOffer: { server_max_window_bits: 'absent' },
      answer: 'permessage-deflate; server_max_window_bits=12',
    })
  deflateCase('13.8.2', 'Two offers, the first with an unknown parameter: the second (client_max_window_bits=10) is accepted',
    'The server answers client_no_context_takeover although not offered (§7.1.1.2); the client must not take over context', {
      offer: 'permessage-deflate; no_such_parameter, permessage-deflate; client_max_window_bits=10',
      response: { client_max_window_bits: { atMost: 10, optional: true } },
      client: {},
      clientOffer: { client_no_context_takeover: 'absent' },
      answer: 'permessage-deflate; client_no_context_takeover',
    })
  deflateCase('13.8.3', 'Two acceptable offers: the first (server_no_context_takeover; server_max_window_bits=10) is chosen',
    'The server answers server_no_context_takeover although not offered (§7.1.1.1); the client accepts', {
      offer: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10, permessage-deflate',
      response: { server_no_context_takeover: 'present', server_max_window_bits: { atMost: 10 } },
      client: {},
      clientOffer: { server_no_context_takeover: 'absent' },
      answer: 'permessage-deflate; server_no_context_takeover',
    })
  deflateCase('13.8.4', 'An unknown extension offered first, then permessage-deflate; client_no_context_takeover: the latter is accepted',
    'The server answers with extra whitespace and parameters in another order; the client accepts', {
      offer: 'x-tether-unknown-extension; level=3, permessage-deflate; client_no_context_takeover',
      response: {},
      client: {},
      clientOffer: {},
      answer: 'permessage-deflate ;  client_max_window_bits=12 ;server_no_context_takeover',
    })
  const uncompressed = (): Plan => {
    const messages = standard().map((m) => ({ ...m, compress: false }))
    return {
      steps: [{ kind: 'deflated', messages }],
      items: messages.map((m) => ({ type: m.type, data: m.data, compressed: 'no' as const })),
      ending: closes(),
    }
  }
  deflateCase('13.8.5', 'Two offers, both invalid (window 16; a value on client_no_context_takeover): declined, messages uncompressed both ways',
    'The server declines (no extension in the answer): the client runs uncompressed', {
      offer: 'permessage-deflate; server_max_window_bits=16, permessage-deflate; client_no_context_takeover=1',
      response: null,
      client: {},
      clientOffer: {},
      answer: null,
    }, uncompressed)
  deflateCase('13.8.6', 'Two offers, the first with a duplicated parameter: the plain second one is accepted',
    'The server answers the default windows explicitly (server_max_window_bits=15; client_max_window_bits=15); the client accepts', {
      offer: 'permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate',
      response: {},
      client: {},
      clientOffer: {},
      answer: 'permessage-deflate; server_max_window_bits=15; client_max_window_bits=15',
    })
}

/** The groups in the catalogue, in order. */
export const GROUPS = [...new Set(CASES.map((c) => c.group))]
