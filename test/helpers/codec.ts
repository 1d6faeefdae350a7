/**
 * permessage-deflate fixtures for core tests (RFC 7692): real DEFLATE output
 * from node:zlib, inflate codecs that answer a Connection's `inflate` events
 * synchronously or later, and a driver that wires a codec to a Connection as
 * a transport would.
 */
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib'
import type { Connection, ConnectionEvent, Side } from '../../src/core/connection.js'
import type { InflateCodec, InflateOutcome } from '../../src/core/deflate/codec.js'
import { Opcode, serializeFrame } from '../../src/core/frame.js'
import { MASK, concat } from './bytes.js'

/** The tail a sender removes and a receiver appends (RFC 7692 §7.2.1, §7.2.2). */
export const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff)

/** One message compressed without context takeover, flushed and without its tail (RFC 7692 §7.2.1). */
export function compress(data: Uint8Array): Uint8Array {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH })
  const tail = out.subarray(out.length - 4)
  if (!tail.every((byte, i) => byte === TAIL[i])) throw new Error('zlib output does not end with 00 00 ff ff')
  return new Uint8Array(out.subarray(0, out.length - 4))
}

/**
 * A synchronous inflater on zlib.inflateRawSync. Node has no public
 * synchronous inflate with a persistent context, so it re-inflates every
 * compressed byte it has seen (of the current message, or of the whole
 * connection with `contextTakeover`) with Z_SYNC_FLUSH and answers only the
 * output that is new. It therefore answers output as soon as zlib can
 * produce it, not only at the message's end. Quadratic, fine for tests.
 */
export function zlibInflater(options: { contextTakeover?: boolean } = {}): InflateCodec {
  let history: Uint8Array[] = []
  let produced = 0
  const reset = () => {
    history = []
    produced = 0
  }
  return {
    inflate(data, end, limit, done) {
      // Copy: the connection may reuse the bytes once answered.
      history.push(data.slice())
      if (end) history.push(TAIL)
      let output: Uint8Array
      try {
        output = inflateRawSync(concat(history), { finishFlush: constants.Z_SYNC_FLUSH })
      } catch (error) {
        reset()
        return done({ ok: false, reason: 'corrupt', message: (error as Error).message })
      }
      const fresh = new Uint8Array(output.subarray(produced))
      if (fresh.length > limit) {
        reset()
        return done({ ok: false, reason: 'too-big', message: 'Max payload size exceeded' })
      }
      produced = output.length
      if (end && !options.contextTakeover) reset()
      done({ ok: true, data: fresh.length > 0 ? [fresh] : [] })
    },
  }
}

/** `codec`, answering on a later turn of the event loop (as zlib's asynchronous API does). */
export function deferred(codec: InflateCodec): InflateCodec {
  return {
    inflate(data, end, limit, done) {
      setImmediate(() => codec.inflate(data, end, limit, done))
    },
  }
}

/** A codec whose answers the test writes: each request is queued with its `done`. */
export function manualCodec(): InflateCodec & {
  requests: Array<{ data: Uint8Array; end: boolean; limit: number; done: (outcome: InflateOutcome) => void }>
} {
  const requests: Array<{ data: Uint8Array; end: boolean; limit: number; done: (outcome: InflateOutcome) => void }> = []
  return {
    requests,
    inflate(data, end, limit, done) {
      requests.push({ data, end, limit, done })
    },
  }
}

/**
 * Wires `codec` to `connection` as a transport does: every `inflate` event
 * goes to the codec and its answer back through `receiveInflated`, after
 * which the events that follow are collected. `events` keeps everything,
 * `inflate` events included, in order.
 */
export class InflateDriver {
  readonly events: ConnectionEvent[] = []
  private outstanding = 0
  private readonly connection: Connection
  private readonly codec: InflateCodec

  constructor(connection: Connection, codec: InflateCodec) {
    this.connection = connection
    this.codec = codec
  }

  /** Feeds each piece (a copy: the connection unmasks in place) and collects. */
  feed(pieces: readonly Uint8Array[]): this {
    for (const piece of pieces) {
      this.connection.receiveData(piece.slice())
      this.collect()
    }
    return this
  }

  /** Whether an inflate request is still unanswered. */
  get pending(): boolean {
    return this.outstanding > 0
  }

  /** Waits until every request has been answered. */
  async settle(): Promise<this> {
    while (this.outstanding > 0) await new Promise((resolve) => setImmediate(resolve))
    return this
  }

  /** The events without the `inflate` requests. */
  get delivered(): ConnectionEvent[] {
    return this.events.filter((event) => event.type !== 'inflate')
  }

  /** The `inflate` requests, in order. */
  get requests(): Array<Extract<ConnectionEvent, { type: 'inflate' }>> {
    return this.events.filter((event) => event.type === 'inflate')
  }

  private collect(): void {
    for (const event of this.connection.eventsReceived()) {
      this.events.push(event)
      if (event.type !== 'inflate') continue
      this.outstanding++
      this.codec.inflate(event.data, event.end, event.limit, (outcome) => {
        this.outstanding--
        this.connection.receiveInflated(outcome)
        this.collect()
      })
    }
  }
}

/**
 * The frames of a message as the peer of `side` sends it: `payload` (already
 * compressed when `compressed`) cut at `cuts` (byte offsets) into
 * fragments, RSV1 on the
 * first frame only when `compressed` (RFC 7692 §6).
 */
export function messageFrames(
  side: Side,
  binary: boolean,
  payload: Uint8Array,
  options: { compressed?: boolean; cuts?: readonly number[]; mask?: Uint8Array } = {},
): Uint8Array[] {
  // Cuts at 0, at the end or repeated make empty fragments, which are legal (§5.4).
  const points = (options.cuts ?? []).map((cut) => Math.min(Math.max(cut, 0), payload.length)).sort((a, b) => a - b)
  const bounds = [0, ...points, payload.length]
  const mask = side === 'server' ? (options.mask ?? MASK) : undefined
  return bounds.slice(1).map((end, i) =>
    serializeFrame({
      fin: i === bounds.length - 2,
      rsv1: i === 0 && options.compressed === true,
      opcode: i === 0 ? (binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation,
      payload: payload.subarray(bounds[i]!, end),
      mask,
    }),
  )
}
