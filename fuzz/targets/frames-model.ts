/**
 * A reference receiver for the frames targets: what a Connection must
 * report for a byte stream, written independently of src/core (no shared
 * parser, validator or tables) as a plain whole-buffer loop.
 *
 * Theory of operation: the stream is read frame by frame. Each header is
 * judged only once it is whole (the Connection gathers a split header
 * before judging it), in this order, the first problem winning:
 *   1. RSV2/RSV3 set (§5.2), RSV1 without permessage-deflate or on a frame
 *      that is not the first of a data message (RFC 7692 §6);
 *   2. the opcode: reserved (§5.2), continuation without a message,
 *      a new data frame inside a fragmented message (§5.4), a control frame
 *      fragmented or longer than 125 bytes, or a 1-byte close (§5.5);
 *   3. the mask bit for the role (§5.1);
 *   4. the 64-bit length: MSB set is 1002 (§5.2 "MUST be 0"), above 2^53-1 is
 *      1009 (not representable);
 *   5. the message size against maxPayload, from declared lengths (for a
 *      compressed message, its wire size).
 * Structural problems (1-3) outrank the length's own problems (4): a
 * control frame announcing 2^60 bytes is malformed (1002), not too big.
 * A text message fails at the first byte that cannot begin valid UTF-8
 * (§8.1), even in a frame that has not fully arrived. A close frame ends
 * the input (§5.5.1).
 *
 * Compressed messages (RFC 7692 §7.2.2) are inflated here with one-shot
 * zlib over the whole message so far (and, with context takeover, every
 * earlier compressed message). A streaming inflater sees the same bytes
 * in pieces, so when a message is both corrupt and too big, or corrupt
 * after producing invalid UTF-8, which problem it notices first depends on
 * where the pieces were cut: the model then allows each of those codes.
 *
 * The model is evaluated at frame boundaries only: within a frame no event
 * can happen, so the order of events is the same whatever the chunking.
 *
 * A window below 15 bits is not enforced exactly by zlib: a distance is
 * checked against the window plus what the current call has output, so a
 * peer that reaches further back than it agreed to (RFC 7692 §7.1.2) is
 * accepted when the message arrives in one piece and refused (1007) when it
 * is cut near the reference. The model inflates with a 15-bit window, and
 * where a strict inflater (8-bit window, 64-byte output calls: no distance
 * beyond 320) disagrees, the rest of the stream is left open: both
 * outcomes are a receiver's right.
 *
 * A message may end the DEFLATE stream with a final block (BFINAL, as
 * RFC 7692 §7.2.3.4 allows). zlib then takes no more input, so with context
 * takeover the transport starts a new stream for the next message
 * (zlib-engine Rule 4); the model does the same: it forgets the history once
 * it no longer inflates anything appended to it.
 */
import { constants, inflateRawSync } from 'node:zlib'
import { Utf8Prefix, concatBytes, isCompleteUtf8 } from '../wire.js'

export type ModelSide = 'client' | 'server'

export interface ModelConfig {
  side: ModelSide
  /** 0: no limit. */
  maxPayload: number
  skipUtf8: boolean
  /** permessage-deflate negotiated: the peer's context takeover and window. */
  deflate?: { takeover: boolean; windowBits: number } | undefined
}

export type ModelEvent =
  | { type: 'message'; data: Uint8Array; binary: boolean }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'close'; code: number; reason: Uint8Array }

export interface ModelResult {
  events: ModelEvent[]
  /** The connection must fail with one of these codes after `events`; undefined: it must not fail. */
  failure: string[] | undefined
  /** After `events`, anything may happen (a peer exceeding its negotiated window); `failure` is then unused. */
  open?: boolean
  /** What the stream exercised (length encodings, fragmentation, ...), for outcome signatures. */
  features: Set<string>
}

const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff)
const TWO_53 = 2n ** 53n
const TWO_63 = 2n ** 63n

/** Close codes a peer may send: RFC 6455 §7.4.1 minus 1004-1006 and 1015, the IANA registrations 1012-1014, and 3000-4999. */
function peerMaySend(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true
  return [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014].includes(code)
}

type Inflated = { ok: true; out: Uint8Array } | { ok: false }

function inflateAll(bytes: Uint8Array, windowBits: number, chunkSize?: number): Inflated {
  try {
    const out = inflateRawSync(bytes, { finishFlush: constants.Z_SYNC_FLUSH, windowBits, chunkSize })
    return { ok: true, out: new Uint8Array(out.buffer, out.byteOffset, out.length) }
  } catch {
    return { ok: false }
  }
}

/** "Hello" in a non-final block with its tail: what a live stream takes in and an ended one leaves unread. */
const PROBE = Uint8Array.of(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff)

/**
 * Whether the DEFLATE stream in `history` has ended (a final block): zlib takes
 * none of the bytes appended to it. A stream stopped inside a block is not
 * ended: it takes them in, even if nothing comes out.
 */
function streamEnded(history: Uint8Array[]): boolean {
  const bytes = concatBytes(history)
  try {
    const { engine } = inflateRawSync(concatBytes([bytes, PROBE]), { finishFlush: constants.Z_SYNC_FLUSH, windowBits: 15, info: true }) as unknown as {
      engine: { bytesWritten: number }
    }
    return engine.bytesWritten <= bytes.length
  } catch {
    return false
  }
}

interface MessageState {
  binary: boolean
  compressed: boolean
  /** Sum of declared lengths (the wire size for a compressed message). */
  declared: bigint
  plain: Uint8Array[]
  plainLength: number
  utf8: Utf8Prefix
  /** Compressed bytes received so far. */
  deflated: Uint8Array[]
  /** Compressed bytes not yet judged by `judgeInflate`. */
  dirty: boolean
}

export function referenceReceive(stream: Uint8Array, config: ModelConfig): ModelResult {
  const events: ModelEvent[] = []
  const features = new Set<string>()
  const validate = !config.skipUtf8
  const limit = config.maxPayload > 0 ? config.maxPayload : Number.POSITIVE_INFINITY
  // Inflate leniently; with a smaller window, also strictly (see the module comment).
  const windowBits = 15
  const checkWindow = (config.deflate?.windowBits ?? 15) < 15
  /** Compressed messages so far, tails restored (context takeover). */
  const history: Uint8Array[] = []
  let historyOutput = 0
  let message: MessageState | undefined
  let pos = 0

  const done = (failure: string[] | undefined | 'open'): ModelResult => {
    if (failure === 'open') {
      features.add('window-exceeded')
      return { events, failure: undefined, open: true, features }
    }
    if (failure) features.add(`fail:${[...failure].sort().join('/')}`)
    return { events, failure, features }
  }

  /**
   * Judges the compressed message so far (with its tail when `final`).
   * Returns the allowed failure codes, 'open', or the inflated bytes when fine.
   */
  const judgeInflate = (m: MessageState, final: boolean): string[] | 'open' | Uint8Array => {
    m.dirty = false
    const own = concatBytes(final ? [...m.deflated, TAIL] : m.deflated)
    const prefix = config.deflate!.takeover ? concatBytes(history) : new Uint8Array(0)
    const whole = inflateAll(concatBytes([prefix, own]), windowBits)
    if (checkWindow && !inflateAll(concatBytes([prefix, own]), 8, 64).ok) {
      // Corrupt whatever the window, or only beyond a small one?
      if (whole.ok) return 'open'
      let good = 0
      let bad = own.length
      while (bad - good > 1) {
        const mid = (good + bad) >>> 1
        if (inflateAll(concatBytes([prefix, own.subarray(0, mid)]), windowBits).ok) good = mid
        else bad = mid
      }
      if (!inflateAll(concatBytes([prefix, own.subarray(0, good)]), 8, 64).ok) return 'open'
    }
    const text = !m.binary && validate
    if (whole.ok) {
      const out = whole.out.subarray(historyOutput)
      const prefixOk = !text || new Utf8Prefix().push(out)
      if (out.length > limit) return prefixOk ? ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'] : ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_INVALID_UTF8']
      if (!prefixOk) return ['WS_ERR_INVALID_UTF8']
      if (final && text && !isCompleteUtf8(out)) return ['WS_ERR_INVALID_UTF8']
      return out
    }
    // Corrupt: what came out before zlib noticed is the output of the longest prefix that inflates.
    features.add('corrupt')
    let good = 0
    let bad = own.length
    let partial: Uint8Array = new Uint8Array(0)
    while (bad - good > 1) {
      const mid = (good + bad) >>> 1
      const attempt = inflateAll(concatBytes([prefix, own.subarray(0, mid)]), windowBits)
      if (attempt.ok) {
        good = mid
        partial = attempt.out.subarray(historyOutput)
      } else {
        bad = mid
      }
    }
    const allowed = ['WS_ERR_INVALID_COMPRESSED_DATA']
    if (text && !new Utf8Prefix().push(partial)) allowed.push('WS_ERR_INVALID_UTF8')
    if (partial.length > limit) allowed.push('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
    return allowed
  }

  /** Judges compressed bytes received but not judged yet (before anything else can happen). */
  const settle = (): string[] | 'open' | undefined => {
    if (message === undefined || !message.compressed || !message.dirty) return undefined
    const judged = judgeInflate(message, false)
    return judged instanceof Uint8Array ? undefined : judged
  }

  while (true) {
    if (stream.length - pos < 2) break
    const b0 = stream[pos]!
    const b1 = stream[pos + 1]!
    const len7 = b1 & 0x7f
    const masked = (b1 & 0x80) !== 0
    const size = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0)
    if (stream.length - pos < size) break
    let length = BigInt(len7)
    if (len7 === 126) length = BigInt((stream[pos + 2]! << 8) | stream[pos + 3]!)
    if (len7 === 127) {
      length = 0n
      for (let i = 0; i < 8; i++) length = (length << 8n) | BigInt(stream[pos + 2 + i]!)
    }
    features.add(len7 === 126 ? 'len16' : len7 === 127 ? 'len64' : 'len7')
    const key = masked ? stream.subarray(pos + size - 4, pos + size) : undefined
    pos += size
    const fin = (b0 & 0x80) !== 0
    const rsv1 = (b0 & 0x40) !== 0
    const opcode = b0 & 0x0f
    const control = opcode >= 0x8
    features.add(['op-cont', 'op-text', 'op-binary'][opcode] ?? (['op-close', 'op-ping', 'op-pong'][opcode - 8] ?? 'op-reserved'))
    if (!fin) features.add('nofin')
    if ((b0 & 0x70) !== 0) features.add('rsv')

    // 1-3: what the first two bytes and the message state decide.
    let problem: string | undefined
    if ((b0 & 0x30) !== 0) problem = 'WS_ERR_UNEXPECTED_RSV_2_3'
    else if (rsv1 && (config.deflate === undefined || (opcode !== 0x1 && opcode !== 0x2))) problem = 'WS_ERR_UNEXPECTED_RSV_1'
    else if (opcode === 0x0 && message === undefined) problem = 'WS_ERR_INVALID_OPCODE'
    else if ((opcode === 0x1 || opcode === 0x2) && message !== undefined) problem = 'WS_ERR_INVALID_OPCODE'
    else if (opcode === 0x8 || opcode === 0x9 || opcode === 0xa) {
      if (!fin) problem = 'WS_ERR_EXPECTED_FIN'
      else if (length > 125n || (opcode === 0x8 && length === 1n)) problem = 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'
    } else if (opcode > 0x2) problem = 'WS_ERR_INVALID_OPCODE'
    if (problem === undefined) {
      if (config.side === 'server' && !masked) problem = 'WS_ERR_EXPECTED_MASK'
      else if (config.side === 'client' && masked) problem = 'WS_ERR_UNEXPECTED_MASK'
    }
    // 4: the 64-bit length itself.
    if (problem === undefined && length >= TWO_63) problem = 'WS_ERR_INVALID_PAYLOAD_LENGTH'
    if (problem === undefined && length >= TWO_53) problem = 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'

    // Compressed bytes already received were inflated before this header was read.
    if (problem !== undefined || control) {
      const earlier = settle()
      if (earlier) return done(earlier)
    }
    if (problem !== undefined) return done([problem])

    const declared = Number(length)
    const available = Math.min(declared, stream.length - pos)
    const payload = stream.slice(pos, pos + available)
    if (key) for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!
    pos += available
    const complete = available === declared

    if (control) {
      // A control frame is acted on once whole.
      if (!complete) break
      if (opcode === 0x9) events.push({ type: 'ping', data: payload })
      else if (opcode === 0xa) events.push({ type: 'pong', data: payload })
      else {
        features.add(length === 0n ? 'close-empty' : 'close-code')
        if (length === 0n) {
          events.push({ type: 'close', code: 1005, reason: new Uint8Array(0) })
          return done(undefined)
        }
        const code = (payload[0]! << 8) | payload[1]!
        if (!peerMaySend(code)) return done(['WS_ERR_INVALID_CLOSE_CODE'])
        const reason = payload.subarray(2)
        if (validate && !isCompleteUtf8(reason)) return done(['WS_ERR_INVALID_UTF8'])
        events.push({ type: 'close', code, reason })
        return done(undefined)
      }
      if (message !== undefined) features.add('control-inside-message')
      continue
    }

    // A data frame.
    if (opcode !== 0x0) {
      message = {
        binary: opcode === 0x2,
        compressed: rsv1,
        declared: 0n,
        plain: [],
        plainLength: 0,
        utf8: new Utf8Prefix(),
        deflated: [],
        dirty: false,
      }
      if (rsv1) features.add('compressed')
    } else {
      features.add('fragmented')
    }
    const m = message!
    m.declared += length
    // 5: the size, from declared lengths, before any payload is kept.
    const sizeSoFar = m.compressed ? m.declared : BigInt(m.plainLength) + length
    if (config.maxPayload > 0 && sizeSoFar > BigInt(config.maxPayload)) {
      const earlier = settle()
      return done(earlier ?? ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'])
    }

    if (!m.compressed) {
      m.plain.push(payload)
      m.plainLength += payload.length
      const text = !m.binary && validate
      if (text && !m.utf8.push(payload)) return done(['WS_ERR_INVALID_UTF8'])
      if (complete && fin) {
        if (text && !m.utf8.complete) return done(['WS_ERR_INVALID_UTF8'])
        events.push({ type: 'message', data: concatBytes(m.plain), binary: m.binary })
        message = undefined
      }
    } else {
      m.deflated.push(payload)
      if (payload.length > 0) m.dirty = true
      if (complete && fin) {
        const judged = judgeInflate(m, true)
        if (!(judged instanceof Uint8Array)) return done(judged)
        events.push({ type: 'message', data: judged, binary: m.binary })
        if (config.deflate!.takeover) {
          history.push(...m.deflated, TAIL)
          historyOutput += judged.length
          if (streamEnded(history)) {
            history.length = 0
            historyOutput = 0
          }
        }
        message = undefined
      }
    }
    if (!complete) break
  }
  // End of input: compressed bytes received were inflated as they came.
  if (pos < stream.length || message !== undefined) features.add('partial')
  return done(settle())
}
