/**
 * Fuzz targets for the frame parser and the receive side of Connection
 * (RFC 6455 §5-§8, RFC 7692 §6-§7): server and client role, with and
 * without permessage-deflate.
 *
 * An input is `[chunking][flags][stream...]`:
 * - chunking: how the stream is cut into `receiveData` calls: 0 whole,
 *   1 byte by byte, else random cuts seeded by this byte (7: with empty
 *   chunks in between);
 * - flags: bit 0 skipUTF8Validation; bits 1-2 maxPayload (64 KiB, 1 KiB,
 *   125, and none: 256 KiB with deflate, whose inflated size needs a limit);
 *   bit 3 the peer takes over its context (one inflater for the whole
 *   connection); bit 4 inflate with a 9-bit window; bit 5 autoPong off;
 *   bit 6 receiveEof at the end; bit 7 inflate requests answered late
 *   (after the next chunk was fed), as an asynchronous codec would.
 * With deflate, every `inflate` event is answered by a real SyncZlib
 * (src/node/zlib-engine.ts) with the event's limit, as the Node transport
 * does.
 *
 * ORACLES (each is an exported function, so tests can show it failing):
 * - no exception from receiveData, receiveInflated or receiveEof (engine);
 * - `checkEventOrder`: at most one error and one close; nothing after
 *   either but the final `closed`;
 * - `checkErrorMapping`: every error is a ProtocolError whose closeCode is
 *   protocolErrorCloseCodes[code]; Connection.error is that error;
 * - `checkDeliveries`: a message never exceeds maxPayload; text is UTF-8
 *   unless skipUTF8Validation; pings and pongs <= 125 bytes; a close code
 *   a peer may send, a reason <= 123 bytes of UTF-8;
 * - `checkInflateRequests`: only with deflate, one at a time, limit within
 *   [0, maxPayload]; SyncZlib never returns more than the limit;
 * - `checkOutput`: the bytes queued are whole frames, masked iff client:
 *   one pong per ping (same payload) with autoPong, then at most one close
 *   frame, last, carrying the error's close code after a failure or echoing
 *   the received close; the EOF request and the state follow §7.1 (a server
 *   half-closes after the closing handshake or a failure, a client waits
 *   for the server's EOF, §7.1.1);
 * - `checkBuffers`: memory per connection follows data, not claims: the
 *   message buffer holds at most twice the bytes received and never more
 *   than maxPayload; input kept while stopped is at most what was fed;
 * - `checkAgainstModel`: the events and the error code are exactly what
 *   the reference receiver (frames-model.ts) says for the whole stream;
 * - time per input under HANG_MS and memory across batches (engine).
 */
import { constants, deflateRawSync } from 'node:zlib'
import { Connection, type ConnectionEvent, type Side } from '../../src/core/connection.js'
import { RESERVE_FROM } from '../../src/core/messages.js'
import type { InflateOutcome } from '../../src/core/deflate/codec.js'
import type { DeflateParameters } from '../../src/core/deflate/negotiate.js'
import { ProtocolError, protocolErrorCloseCodes } from '../../src/core/errors.js'
import { SyncZlib, inflateMessageStart } from '../../src/node/zlib-engine.js'
import { latin1 } from '../mutate.js'
import { check, measure, type Target } from '../oracle.js'
import { Rng, hashBytes } from '../rng.js'
import { type BuildFrame, buildFrame, concatBytes, decodeFrames, hex, isCompleteUtf8 } from '../wire.js'
import { type ModelResult, referenceReceive } from './frames-model.js'

export const KiB = 1024
const MAX_PAYLOADS = [64 * KiB, KiB, 125, 0] as const
/** maxPayload "none" with deflate: an inflated size needs some limit. */
const DEFLATE_NO_LIMIT = 256 * KiB
const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff)
const FIXED_MASK = Uint8Array.of(0x5a, 0xc3, 0x0f, 0x96)

export interface FrameRunOptions {
  side: Side
  deflate: boolean
  chunking: number
  skipUtf8: boolean
  maxPayload: number
  takeover: boolean
  windowBits: number
  autoPong: boolean
  eof: boolean
  lateInflate: boolean
}

export function decodeOptions(input: Uint8Array, side: Side, deflate: boolean): { options: FrameRunOptions; stream: Uint8Array } {
  const chunking = input[0] ?? 0
  const flags = input[1] ?? 0
  const payloadIndex = (flags >> 1) & 3
  return {
    options: {
      side,
      deflate,
      chunking,
      skipUtf8: (flags & 0x01) !== 0,
      maxPayload: deflate && payloadIndex === 3 ? DEFLATE_NO_LIMIT : MAX_PAYLOADS[payloadIndex]!,
      takeover: deflate && (flags & 0x08) !== 0,
      windowBits: (flags & 0x10) !== 0 ? 9 : 15,
      autoPong: (flags & 0x20) === 0,
      eof: (flags & 0x40) !== 0,
      lateInflate: deflate && (flags & 0x80) !== 0,
    },
    stream: input.subarray(2),
  }
}

/** Cuts `stream` into the pieces fed to receiveData (copies: the parser unmasks in place). */
export function chunk(stream: Uint8Array, mode: number): Uint8Array[] {
  if (stream.length === 0) return [new Uint8Array(0)]
  const kind = mode & 7
  if (kind === 0) return [stream.slice()]
  if (kind === 1) return Array.from(stream, (byte) => Uint8Array.of(byte))
  const rng = new Rng(hashBytes(Uint8Array.of(mode), stream.length))
  const count = 1 + rng.int(Math.min(32, stream.length))
  const cuts = new Set<number>()
  for (let i = 0; i < count; i++) cuts.add(1 + rng.int(stream.length - 1))
  const points = [...cuts].sort((a, b) => a - b)
  const pieces: Uint8Array[] = []
  let start = 0
  for (const cut of [...points, stream.length]) {
    pieces.push(stream.slice(start, cut))
    if (kind === 7 && rng.chance(0.3)) pieces.push(new Uint8Array(0))
    start = cut
  }
  return pieces
}

/** SyncZlib Rule 1: an inflate that succeeds never returns more than its limit. */
export function checkInflateLimit(length: number, limit: number): void {
  check(length <= limit, 'inflate-limit', `SyncZlib returned ${length} bytes for a limit of ${limit}`)
}

/** Inflates as the Node transport does: SyncZlib with the event's limit, the tail restored on the last piece. */
class HarnessInflater {
  private engines = new Map<number, SyncZlib>()
  private messageFed = false

  engine(windowBits: number): SyncZlib {
    let engine = this.engines.get(windowBits)
    if (engine === undefined || engine.broken) {
      engine = new SyncZlib('inflate', { windowBits })
      this.engines.set(windowBits, engine)
    }
    return engine
  }

  /** A fresh history for a new connection. */
  start(windowBits: number): SyncZlib {
    const engine = this.engine(windowBits)
    engine.reset()
    this.messageFed = false
    return engine
  }

  inflate(engine: SyncZlib, data: Uint8Array, end: boolean, limit: number, takeover: boolean): InflateOutcome {
    const input = end ? concatBytes([data, TAIL]) : data
    // As the codec does (zlib-engine Rule 4): a message's first bytes go through a new
    // stream if the last message ended the old one with a final block.
    const start = takeover && !this.messageFed && input.length > 0
    if (input.length > 0) this.messageFed = !end
    const result = start ? inflateMessageStart(engine, input, limit) : engine.process(input, limit)
    if (!result.ok) return result
    checkInflateLimit(result.length, limit)
    if (end && !takeover) engine.reset()
    return { ok: true, data: result.chunks }
  }
}

/** Everything one run produced, for the oracles. */
export interface FramesOutcome {
  options: FrameRunOptions
  inputLength: number
  /** Every event in order, inflate requests and `closed` included. */
  events: ConnectionEvent[]
  /** Every byte the connection queued for the peer. */
  output: Uint8Array
  eofSent: boolean
  state: string
  connectionError: ProtocolError | undefined
  /** An inflate event arrived while another was unanswered. */
  overlappingInflate: boolean
  buffers: { messageLength: number; messageCapacity: number; control: number; pending: number }
}

interface ConnectionInternals {
  message?: { length: number; capacity: number }
  control?: Uint8Array
  parser: { pendingBytes: number }
}

const inflater = new HarnessInflater()

/** Feeds `pieces` (see `chunk`) to a Connection configured by `options` and records everything it does. */
export function runFrames(pieces: readonly Uint8Array[], options: FrameRunOptions): FramesOutcome {
  const deflate: DeflateParameters | undefined = options.deflate
    ? {
        serverNoContextTakeover: options.side === 'client' ? !options.takeover : true,
        clientNoContextTakeover: options.side === 'server' ? !options.takeover : true,
        serverMaxWindowBits: options.side === 'client' ? options.windowBits : 15,
        clientMaxWindowBits: options.side === 'server' ? options.windowBits : 15,
      }
    : undefined
  const conn = new Connection({
    side: options.side,
    maxPayload: options.maxPayload,
    skipUTF8Validation: options.skipUtf8,
    autoPong: options.autoPong,
    deflate,
    generateMask: (mask) => mask.set(FIXED_MASK),
  })
  const engine = options.deflate ? inflater.start(options.windowBits) : undefined
  const events: ConnectionEvent[] = []
  const output: Uint8Array[] = []
  let outstanding: Extract<ConnectionEvent, { type: 'inflate' }> | undefined
  let overlappingInflate = false

  const collect = (): void => {
    for (const event of conn.eventsReceived()) {
      events.push(event)
      if (event.type === 'inflate') {
        if (outstanding !== undefined) overlappingInflate = true
        outstanding = event
      }
    }
  }
  const answer = (): void => {
    while (outstanding !== undefined) {
      const request = outstanding
      outstanding = undefined
      conn.receiveInflated(inflater.inflate(engine!, request.data, request.end, request.limit, options.takeover))
      collect()
    }
  }

  let inputLength = 0
  for (let i = 0; i < pieces.length; i++) {
    inputLength += pieces[i]!.length
    conn.receiveData(pieces[i]!)
    collect()
    if (!options.lateInflate || (i & 1) === 1) answer()
    output.push(...conn.dataToSend())
  }
  answer()
  if (options.eof) {
    conn.receiveEof()
    collect()
  }
  output.push(...conn.dataToSend())
  const internals = conn as unknown as ConnectionInternals
  const message = internals.message
  return {
    options,
    inputLength,
    events,
    output: concatBytes(output),
    eofSent: conn.eofToSend(),
    state: conn.state,
    connectionError: conn.error,
    overlappingInflate,
    buffers: {
      messageLength: message?.length ?? 0,
      messageCapacity: message?.capacity ?? 0,
      control: internals.control?.length ?? 0,
      pending: internals.parser.pendingBytes,
    },
  }
}

// -------------------------------------------------------------- oracles

const CLOSE_MAY_SEND = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)

export function checkEventOrder(o: FramesOutcome): void {
  let errors = 0
  let closes = 0
  let ended = false
  o.events.forEach((event, i) => {
    if (event.type === 'closed') {
      check(o.options.eof, 'event-order', 'a closed event without receiveEof')
      check(i === o.events.length - 1, 'event-order', `closed is event ${i} of ${o.events.length}, not the last`)
      return
    }
    check(!ended, 'event-order', () => `a ${event.type} event after ${errors > 0 ? 'an error' : 'a close frame'}`)
    if (event.type === 'error') errors++
    if (event.type === 'close') closes++
    if (event.type === 'error' || event.type === 'close') ended = true
  })
  check(errors <= 1 && closes <= 1, 'event-order', `${errors} errors and ${closes} close events`)
  if (o.options.eof) check(o.events.at(-1)?.type === 'closed', 'event-order', 'receiveEof did not end with a closed event')
}

export function checkErrorMapping(o: FramesOutcome): void {
  for (const event of o.events) {
    if (event.type !== 'error') continue
    const { error } = event
    check(error instanceof ProtocolError, 'error-mapping', 'the error is not a ProtocolError')
    check(Object.hasOwn(protocolErrorCloseCodes, error.code), 'error-mapping', `unknown error code ${error.code}`)
    const expected = protocolErrorCloseCodes[error.code]
    check(error.closeCode === expected, 'error-mapping', `${error.code} has closeCode ${error.closeCode}, the table says ${expected}`)
    check(o.connectionError === error, 'error-mapping', 'Connection.error is not the error reported')
  }
}

export function checkDeliveries(o: FramesOutcome): void {
  const { maxPayload, skipUtf8 } = o.options
  for (const event of o.events) {
    if (event.type === 'message') {
      check(maxPayload === 0 || event.data.length <= maxPayload, 'max-payload', `a ${event.data.length}-byte message with maxPayload ${maxPayload}`)
      if (!event.binary && !skipUtf8) check(isCompleteUtf8(event.data), 'utf8', () => `a text message that is not UTF-8: ${hex(event.data)}`)
    } else if (event.type === 'ping' || event.type === 'pong') {
      check(event.data.length <= 125, 'control-length', `a ${event.data.length}-byte ${event.type}`)
    } else if (event.type === 'close') {
      check(event.code === 1005 ? event.reason.length === 0 : CLOSE_MAY_SEND(event.code), 'close-code', `close event with code ${event.code}`)
      check(event.reason.length <= 123, 'close-reason', `a ${event.reason.length}-byte close reason`)
      if (!skipUtf8) check(isCompleteUtf8(event.reason), 'utf8', () => `a close reason that is not UTF-8: ${hex(event.reason)}`)
    }
  }
}

export function checkInflateRequests(o: FramesOutcome): void {
  check(!o.overlappingInflate, 'inflate-requests', 'a second inflate request before the first was answered')
  const limit = o.options.maxPayload > 0 ? o.options.maxPayload : Number.POSITIVE_INFINITY
  for (const event of o.events) {
    if (event.type !== 'inflate') continue
    check(o.options.deflate, 'inflate-requests', 'an inflate request without permessage-deflate')
    check(event.limit >= 0 && event.limit <= limit, 'inflate-requests', `inflate limit ${event.limit} outside [0, ${limit}]`)
  }
}

export function checkOutput(o: FramesOutcome): void {
  let frames
  try {
    frames = decodeFrames(o.output)
  } catch (error) {
    check(false, 'output', `the bytes queued are not whole frames: ${(error as Error).message}`)
  }
  const client = o.options.side === 'client'
  const pings = o.events.filter((e) => e.type === 'ping')
  const error = o.events.find((e) => e.type === 'error')
  const close = o.events.find((e) => e.type === 'close')
  const pongs = frames.filter((f) => f.opcode === 0xa)
  const closes = frames.filter((f) => f.opcode === 0x8)
  for (const frame of frames) {
    check(frame.masked === client, 'output', `a frame ${frame.masked ? 'masked' : 'unmasked'} by a ${o.options.side}`)
    check(frame.fin && frame.rsv === 0, 'output', 'an output frame with RSV bits or without FIN')
    check(frame.opcode === 0xa || frame.opcode === 0x8, 'output', `an unexpected output frame, opcode ${frame.opcode}`)
  }
  const expectedPongs = o.options.autoPong ? pings.length : 0
  check(pongs.length === expectedPongs, 'output', `${pongs.length} pongs for ${pings.length} pings (autoPong ${o.options.autoPong})`)
  pongs.forEach((pong, i) => {
    check(Buffer.from(pong.payload).equals(pings[i]!.data), 'output', `pong ${i} does not echo its ping`)
  })
  check(closes.length <= 1, 'output', `${closes.length} close frames sent`)
  if (closes.length === 1) check(frames.at(-1) === closes[0], 'output', 'a frame was sent after the close frame')
  if (error !== undefined) {
    check(closes.length === 1, 'output', 'a failure without a close frame (§7.1.7)')
    const payload = closes[0]!.payload
    const code = payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005
    check(payload.length === 2 && code === error.error.closeCode, 'output', `failed with ${error.error.code} (${error.error.closeCode}) but the close frame carries ${code}`)
    // §7.1.1: "when a server is instructed to _Close the WebSocket Connection_ it SHOULD initiate a TCP
    // Close immediately, and when a client is instructed to do the same, it SHOULD wait for a TCP Close
    // from the server" (failing or not).
    check(o.eofSent === !client, 'output', `after a failure eofToSend is ${o.eofSent} for a ${o.options.side}`)
  } else if (close !== undefined) {
    check(closes.length === 1, 'output', 'a close frame was not answered (§5.5.1)')
    const payload = closes[0]!.payload
    if (close.code === 1005) check(payload.length === 0, 'output', 'the echo of an empty close is not empty')
    else {
      const echoed = (payload[0]! << 8) | payload[1]!
      check(echoed === close.code && Buffer.from(payload.subarray(2)).equals(close.reason), 'output', `close ${close.code} echoed as ${echoed}`)
    }
    check(o.eofSent === !client, 'output', `after the closing handshake eofToSend is ${o.eofSent} for a ${o.options.side}`)
  } else {
    check(closes.length === 0, 'output', 'a close frame without a close or an error')
    check(!o.eofSent, 'output', 'EOF requested without a close or an error')
  }
  const closed = o.events.find((e) => e.type === 'closed')
  if (o.options.eof) {
    check(closed !== undefined && o.state === 'closed', 'output', `after receiveEof the state is ${o.state}`)
    const code = close?.code ?? 1006
    check(closed.code === code, 'output', `closed with ${closed.code}, expected ${code}`)
    check(closed.wasClean === (close !== undefined), 'output', `wasClean ${closed.wasClean}`)
  } else {
    const state = error !== undefined || close !== undefined ? 'closing' : 'open'
    check(o.state === state, 'output', `state ${o.state}, expected ${state}`)
  }
}

export function checkBuffers(o: FramesOutcome): void {
  const { messageLength, messageCapacity, control, pending } = o.buffers
  // MessageAssembler Rule 3: a buffer is sized from a claimed final size only up to RESERVE_FROM
  // (and counted whole by the receive budget); past it, only once that much data arrived.
  if (messageCapacity > RESERVE_FROM) {
    check(messageLength > RESERVE_FROM, 'memory', `a ${messageCapacity}-byte reservation for ${messageLength} bytes received`)
  }
  if (o.options.maxPayload > 0) check(messageLength <= o.options.maxPayload, 'memory', `${messageLength} message bytes buffered, maxPayload ${o.options.maxPayload}`)
  check(control <= 125, 'memory', `a ${control}-byte control buffer`)
  check(pending <= o.inputLength, 'memory', `${pending} bytes kept while stopped, ${o.inputLength} fed`)
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)
}

export function checkAgainstModel(o: FramesOutcome, model: ModelResult): void {
  const actual = o.events.filter((e) => e.type === 'message' || e.type === 'ping' || e.type === 'pong' || e.type === 'close')
  const describe = (e: ConnectionEvent | ModelResult['events'][number] | undefined): string => {
    if (e === undefined) return 'nothing'
    if (e.type === 'message') return `message(${e.binary ? 'binary' : 'text'}, ${e.data.length} bytes: ${hex(e.data, 16)})`
    if (e.type === 'close') return `close(${e.code}, ${hex(e.reason, 16)})`
    if (e.type === 'ping' || e.type === 'pong') return `${e.type}(${hex(e.data, 16)})`
    return e.type
  }
  // An open model (a peer beyond its window) fixes only the events before that point.
  const n = model.open ? model.events.length : Math.max(actual.length, model.events.length)
  for (let i = 0; i < n; i++) {
    const a = actual[i]
    const m = model.events[i]
    let same = a !== undefined && m !== undefined && a.type === m.type
    if (same && a!.type === 'message' && m!.type === 'message') same = a!.binary === m!.binary && sameBytes(a!.data, m!.data)
    if (same && (a!.type === 'ping' || a!.type === 'pong') && (m!.type === 'ping' || m!.type === 'pong')) same = sameBytes(a!.data, m!.data)
    if (same && a!.type === 'close' && m!.type === 'close') same = a!.code === m!.code && sameBytes(a!.reason, m!.reason)
    check(same, 'model', `event ${i}: the connection reported ${describe(a)}, the model expects ${describe(m)}`)
  }
  const error = o.events.find((e) => e.type === 'error')
  if (model.open) return
  if (model.failure === undefined) {
    check(error === undefined, 'model', () => `the connection failed with ${error!.error.code}, the model expects no failure`)
  } else {
    check(error !== undefined, 'model', `the connection did not fail, the model expects ${model.failure.join(' or ')}`)
    check(model.failure.includes(error.error.code), 'model', `the connection failed with ${error.error.code}, the model expects ${model.failure.join(' or ')}`)
  }
}

/** Every frames oracle, in order. */
export function checkFrames(o: FramesOutcome, model: ModelResult): void {
  checkEventOrder(o)
  checkErrorMapping(o)
  checkDeliveries(o)
  checkInflateRequests(o)
  checkOutput(o)
  checkBuffers(o)
  checkAgainstModel(o, model)
}

// ---------------------------------------------------------- generation

const TEXT_UNITS = ['a', 'Z', ' ', '0', '\u00e9', '\u00ff', '\u0800', '\u20ac', '\u65e5', '\ufffd', '\uffff', '\u{1f600}', '\u{10ffff}', '\u{10000}']

function randomText(rng: Rng, units: number): Uint8Array {
  let text = ''
  for (let i = 0; i < units; i++) text += rng.chance(0.7) ? String.fromCharCode(0x20 + rng.int(95)) : rng.pick(TEXT_UNITS)
  return new TextEncoder().encode(text)
}

function compress(rng: Rng, data: Uint8Array): Uint8Array {
  const windowBits = rng.chance(0.8) ? 15 : rng.range(9, 15)
  const level = rng.pick([0, 1, 6, 9])
  if (rng.chance(0.1)) {
    // RFC 7692 §7.2.3.4: a final block instead of a sync flush, then a 0x00 so the tail completes a stored block.
    const out = deflateRawSync(data, { level, windowBits })
    return concatBytes([out, rng.chance(0.5) ? Uint8Array.of(0) : new Uint8Array(0)])
  }
  const out = deflateRawSync(data, { level, windowBits, finishFlush: constants.Z_SYNC_FLUSH })
  return new Uint8Array(out.subarray(0, out.length - 4))
}

/** A stream of mostly valid frames with some faults, as the peer of `side` sends them. */
export function generateStream(rng: Rng, side: Side, deflate: boolean): Uint8Array {
  const frames: Uint8Array[] = []
  const masked = side === 'server'
  const mask = (): Uint8Array | undefined => {
    const wrong = rng.chance(0.03)
    if (masked === wrong) return undefined
    return rng.chance(0.1) ? new Uint8Array(4) : rng.bytes(4)
  }
  const encoding = (): BuildFrame['encoding'] => (rng.chance(0.9) ? 'min' : rng.pick(['16', '64'] as const))
  const control = (): Uint8Array => {
    const kind = rng.int(10)
    if (kind < 6) {
      const size = rng.chance(0.95) ? rng.size(125) : rng.range(126, 130)
      return buildFrame({ opcode: rng.chance(0.6) ? 0x9 : 0xa, payload: rng.bytes(size), mask: mask(), fin: rng.chance(0.97) })
    }
    const code = rng.pick([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1014, 1015, 1016, 2999, 3000, 4999, 5000, 0, 65535])
    const reason = rng.chance(0.8) ? randomText(rng, rng.size(40)) : rng.bytes(rng.size(10))
    const payload = rng.chance(0.1) ? new Uint8Array(0) : concatBytes([Uint8Array.of(code >> 8, code & 0xff), reason.subarray(0, 123)])
    return buildFrame({ opcode: 0x8, payload, mask: mask() })
  }
  const count = 1 + rng.size(8)
  for (let i = 0; i < count; i++) {
    const kind = rng.int(20)
    if (kind < 12) {
      // A data message, maybe fragmented, maybe compressed, maybe with controls in between.
      const binary = rng.chance(0.4)
      let data: Uint8Array
      if (deflate && rng.chance(0.1)) data = new Uint8Array(rng.pick([1000, 65535, 65536, 65537, 300_000])).fill(binary ? 0 : 0x61)
      else data = binary ? rng.bytes(rng.size(300)) : randomText(rng, rng.size(200))
      if (!binary && rng.chance(0.1)) {
        const at = rng.int(data.length + 1)
        data = concatBytes([data.subarray(0, at), rng.pick([[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90], [0xff], [0xe2, 0x82]].map((b) => Uint8Array.from(b))), data.subarray(at)])
      }
      const compressed = deflate && rng.chance(0.6)
      const payload = compressed ? compress(rng, data) : data
      if (compressed && rng.chance(0.05) && payload.length > 0) payload[rng.int(payload.length)]! ^= 1 << rng.int(8)
      const pieces = rng.chance(0.6) ? 1 : 2 + rng.size(6)
      const cuts = [0]
      for (let p = 1; p < pieces; p++) cuts.push(rng.int(payload.length + 1))
      cuts.push(payload.length)
      cuts.sort((a, b) => a - b)
      for (let p = 0; p < pieces; p++) {
        const first = p === 0
        const rsv = first && compressed ? 4 : rng.chance(0.02) ? 1 << rng.int(3) : 0
        const opcode = first ? (binary ? 0x2 : 0x1) : rng.chance(0.03) ? rng.pick([0x1, 0x2, 0x3]) : 0x0
        frames.push(buildFrame({ opcode, rsv, fin: p === pieces - 1, payload: payload.subarray(cuts[p]!, cuts[p + 1]!), mask: mask(), encoding: encoding() }))
        if (p < pieces - 1 && rng.chance(0.2)) frames.push(control())
      }
    } else if (kind < 17) {
      frames.push(control())
    } else if (kind < 18) {
      // A header that lies about its length.
      const announce = rng.pick([126n, 65535n, 65536n, 64n * 1024n + 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n])
      frames.push(buildFrame({ opcode: rng.pick([0x1, 0x2, 0x9, 0x8, 0x0, 0x3]), payload: rng.bytes(rng.size(64)), mask: mask(), announce, encoding: '64' }))
    } else {
      // A random header.
      frames.push(concatBytes([rng.bytes(2), rng.bytes(rng.size(16))]))
    }
  }
  let stream = concatBytes(frames)
  if (rng.chance(0.1)) stream = stream.subarray(0, rng.int(stream.length + 1))
  return stream
}

// --------------------------------------------------------------- seeds

interface SeedSpec {
  name: string
  frames: Array<BuildFrame | Uint8Array>
  /** Header bytes: [chunking, flags]. */
  chunking?: number
  flags?: number
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

const hexBytes = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'))

function plainSeeds(): SeedSpec[] {
  const many: BuildFrame[] = []
  for (let i = 0; i < 400; i++) many.push({ opcode: i === 0 ? 0x1 : 0x0, fin: i === 399, payload: utf8('x') })
  const cp4 = utf8('\u{1f600}')
  return [
    { name: 'text-hello', frames: [{ opcode: 0x1, payload: utf8('Hello') }] },
    { name: 'text-hello-bytewise', frames: [{ opcode: 0x1, payload: utf8('Hello') }], chunking: 1 },
    { name: 'text-empty', frames: [{ opcode: 0x1, payload: new Uint8Array(0) }] },
    { name: 'binary-empty', frames: [{ opcode: 0x2, payload: new Uint8Array(0) }] },
    { name: 'text-fragmented-rfc', frames: [{ opcode: 0x1, fin: false, payload: utf8('Hel') }, { opcode: 0x0, payload: utf8('lo') }] },
    { name: 'text-unicode', frames: [{ opcode: 0x1, payload: utf8('h\u00e9llo \u20ac \u65e5\u672c \u{1f600} \u{10ffff}') }], chunking: 5 },
    { name: 'text-codepoint-split-across-fragments', frames: [{ opcode: 0x1, fin: false, payload: cp4.subarray(0, 1) }, { opcode: 0x0, fin: false, payload: cp4.subarray(1, 3) }, { opcode: 0x0, payload: cp4.subarray(3) }] },
    { name: 'text-empty-fragments', frames: [{ opcode: 0x1, fin: false, payload: new Uint8Array(0) }, { opcode: 0x0, fin: false, payload: new Uint8Array(0) }, { opcode: 0x0, payload: utf8('end') }] },
    { name: 'binary-256-len16', frames: [{ opcode: 0x2, payload: Uint8Array.from({ length: 256 }, (_, i) => i) }] },
    { name: 'binary-len16-not-minimal', frames: [{ opcode: 0x2, payload: utf8('abc'), encoding: '16' }] },
    { name: 'binary-len64-not-minimal', frames: [{ opcode: 0x2, payload: utf8('abc'), encoding: '64' }] },
    { name: 'binary-len64-announced-70000-truncated', frames: [{ opcode: 0x2, payload: new Uint8Array(100), announce: 70000n }] },
    { name: 'binary-at-max-payload-1024', frames: [{ opcode: 0x2, payload: new Uint8Array(1024) }], flags: 0x02 },
    { name: 'binary-over-max-payload-1025', frames: [{ opcode: 0x2, payload: new Uint8Array(1025) }], flags: 0x02 },
    { name: 'fragments-over-max-payload-125', frames: [{ opcode: 0x2, fin: false, payload: new Uint8Array(100) }, { opcode: 0x0, payload: new Uint8Array(26) }], flags: 0x04 },
    { name: 'length-msb-set', frames: [{ opcode: 0x2, payload: new Uint8Array(4), announce: 2n ** 63n }] },
    { name: 'length-2-53', frames: [{ opcode: 0x2, payload: new Uint8Array(4), announce: 2n ** 53n }], flags: 0x06 },
    { name: 'length-2-53-minus-1-no-limit', frames: [{ opcode: 0x2, payload: new Uint8Array(40), announce: 2n ** 53n - 1n }], flags: 0x06 },
    { name: 'ping-huge-length', frames: [{ opcode: 0x9, payload: new Uint8Array(4), announce: 2n ** 60n }] },
    { name: 'ping-hello', frames: [{ opcode: 0x9, payload: utf8('Hello') }] },
    { name: 'ping-125', frames: [{ opcode: 0x9, payload: new Uint8Array(125).fill(0x70) }], chunking: 3 },
    { name: 'ping-126', frames: [{ opcode: 0x9, payload: new Uint8Array(126) }] },
    { name: 'ping-fragmented', frames: [{ opcode: 0x9, fin: false, payload: utf8('x') }] },
    { name: 'pong-unsolicited', frames: [{ opcode: 0xa, payload: utf8('pong') }] },
    { name: 'ping-no-autopong', frames: [{ opcode: 0x9, payload: utf8('p') }, { opcode: 0x1, payload: utf8('after') }], flags: 0x20 },
    { name: 'control-inside-fragmented', frames: [{ opcode: 0x1, fin: false, payload: utf8('a') }, { opcode: 0x9, payload: utf8('p') }, { opcode: 0xa, payload: utf8('q') }, { opcode: 0x0, payload: utf8('b') }] },
    { name: 'close-1000-bye', frames: [{ opcode: 0x8, payload: concatBytes([hexBytes('03e8'), utf8('bye')]) }] },
    { name: 'close-empty', frames: [{ opcode: 0x8, payload: new Uint8Array(0) }] },
    { name: 'close-then-data-ignored', frames: [{ opcode: 0x8, payload: hexBytes('03e8') }, { opcode: 0x1, payload: utf8('ignored') }] },
    { name: 'close-one-byte', frames: [{ opcode: 0x8, payload: hexBytes('03') }] },
    { name: 'close-1005-not-allowed', frames: [{ opcode: 0x8, payload: hexBytes('03ed') }] },
    { name: 'close-1014', frames: [{ opcode: 0x8, payload: hexBytes('03f6') }] },
    { name: 'close-1015-not-allowed', frames: [{ opcode: 0x8, payload: hexBytes('03f7') }] },
    { name: 'close-2999', frames: [{ opcode: 0x8, payload: hexBytes('0bb7') }] },
    { name: 'close-4999-reason', frames: [{ opcode: 0x8, payload: concatBytes([hexBytes('1387'), utf8('\u00e9t\u00e9')]) }] },
    { name: 'close-5000', frames: [{ opcode: 0x8, payload: hexBytes('1388') }] },
    { name: 'close-reason-invalid-utf8', frames: [{ opcode: 0x8, payload: hexBytes('03e8 cebae1bdb9cf83cebcceb5eda080656469746564') }] },
    { name: 'close-reason-invalid-utf8-skip', frames: [{ opcode: 0x8, payload: hexBytes('03e8 ff') }], flags: 0x01 },
    { name: 'close-eof', frames: [{ opcode: 0x8, payload: hexBytes('03e8') }], flags: 0x40 },
    { name: 'eof-mid-message', frames: [{ opcode: 0x1, fin: false, payload: utf8('half') }], flags: 0x40 },
    { name: 'text-invalid-utf8', frames: [{ opcode: 0x1, payload: hexBytes('cebae1bdb9cf83cebcceb5eda080656469746564') }] },
    { name: 'text-invalid-utf8-skip', frames: [{ opcode: 0x1, payload: hexBytes('ff fe') }], flags: 0x01 },
    { name: 'text-invalid-fail-fast-partial-frame', frames: [{ opcode: 0x1, payload: hexBytes('48 f4 90'), announce: 1000n }] },
    { name: 'text-truncated-codepoint-at-end', frames: [{ opcode: 0x1, payload: hexBytes('48 e2 82') }] },
    { name: 'text-overlong', frames: [{ opcode: 0x1, payload: hexBytes('c0 af') }] },
    { name: 'rsv1-without-extension', frames: [{ opcode: 0x1, rsv: 4, payload: utf8('x') }] },
    { name: 'rsv2', frames: [{ opcode: 0x1, rsv: 2, payload: utf8('x') }] },
    { name: 'rsv3', frames: [{ opcode: 0x2, rsv: 1, payload: utf8('x') }] },
    { name: 'opcode-3-reserved', frames: [{ opcode: 0x3, payload: utf8('x') }] },
    { name: 'opcode-b-reserved', frames: [{ opcode: 0xb, payload: new Uint8Array(0) }] },
    { name: 'continuation-without-start', frames: [{ opcode: 0x0, payload: utf8('x') }] },
    { name: 'text-inside-fragmented', frames: [{ opcode: 0x1, fin: false, payload: utf8('a') }, { opcode: 0x1, payload: utf8('b') }] },
    { name: 'many-one-byte-fragments', frames: many, chunking: 9 },
    { name: 'two-messages-split-chunks', frames: [{ opcode: 0x1, payload: utf8('one') }, { opcode: 0x2, payload: hexBytes('000102') }, { opcode: 0x1, payload: utf8('three') }], chunking: 7 },
    { name: 'header-split-everywhere', frames: [{ opcode: 0x2, payload: new Uint8Array(300), encoding: '64' }], chunking: 1 },
  ]
}

function deflateSeeds(): SeedSpec[] {
  const zeros = (n: number): Uint8Array => {
    const out = deflateRawSync(new Uint8Array(n), { finishFlush: constants.Z_SYNC_FLUSH, level: 9 })
    return new Uint8Array(out.subarray(0, out.length - 4))
  }
  const sync = (data: Uint8Array, windowBits = 15): Uint8Array => {
    const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH, windowBits })
    return new Uint8Array(out.subarray(0, out.length - 4))
  }
  const text = utf8('permessage-deflate \u00e9t\u00e9 \u2603 \u{1f600} '.repeat(20))
  const far = concatBytes([utf8('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(2)), new Uint8Array(1000).map((_, i) => (i * 7919) & 0xff), utf8('0123456789abcdefghijklmnopqrstuvwxyz')])
  const compressedText = sync(text)
  return [
    // RFC 7692 §7.2.3 examples.
    { name: 'rfc7692-hello', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700') }] },
    { name: 'rfc7692-hello-fragmented', frames: [{ opcode: 0x1, rsv: 4, fin: false, payload: hexBytes('f248cd') }, { opcode: 0x0, payload: hexBytes('c9c90700') }] },
    { name: 'rfc7692-hello-twice-takeover', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700') }, { opcode: 0x1, rsv: 4, payload: hexBytes('f200110000') }], flags: 0x08 },
    { name: 'rfc7692-hello-twice-no-takeover', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700') }, { opcode: 0x1, rsv: 4, payload: hexBytes('f200110000') }] },
    { name: 'rfc7692-stored-block', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('000500faff48656c6c6f00') }] },
    { name: 'rfc7692-bfinal', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f348cdc9c9070000') }] },
    { name: 'rfc7692-bfinal-then-more-takeover', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f348cdc9c9070000') }, { opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700') }], flags: 0x08 },
    { name: 'rfc7692-two-blocks', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f2480500000000ffffcac9c90700') }] },
    { name: 'compressed-empty-message', frames: [{ opcode: 0x2, rsv: 4, payload: hexBytes('00') }] },
    { name: 'compressed-zero-length-payload', frames: [{ opcode: 0x2, rsv: 4, payload: new Uint8Array(0) }] },
    { name: 'compressed-empty-last-fragment', frames: [{ opcode: 0x1, rsv: 4, fin: false, payload: hexBytes('f248cdc9c90700') }, { opcode: 0x0, payload: new Uint8Array(0) }] },
    { name: 'compressed-text', frames: [{ opcode: 0x1, rsv: 4, payload: compressedText }], chunking: 4 },
    { name: 'compressed-text-bytewise-late', frames: [{ opcode: 0x1, rsv: 4, payload: compressedText }], chunking: 1, flags: 0x80 },
    { name: 'compressed-fragmented-with-ping', frames: [{ opcode: 0x1, rsv: 4, fin: false, payload: compressedText.subarray(0, 10) }, { opcode: 0x9, payload: utf8('p') }, { opcode: 0x0, payload: compressedText.subarray(10) }], chunking: 6 },
    { name: 'compressed-then-plain', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700') }, { opcode: 0x1, payload: utf8('plain') }] },
    { name: 'compressed-bomb-70000', frames: [{ opcode: 0x2, rsv: 4, payload: zeros(70000) }] },
    { name: 'compressed-exactly-64k', frames: [{ opcode: 0x2, rsv: 4, payload: zeros(65536) }] },
    { name: 'compressed-bomb-1m-no-limit', frames: [{ opcode: 0x2, rsv: 4, payload: zeros(1 << 20) }], flags: 0x06 },
    { name: 'compressed-over-1024', frames: [{ opcode: 0x2, rsv: 4, payload: zeros(1025) }], flags: 0x02 },
    { name: 'compressed-wire-over-125', frames: [{ opcode: 0x2, rsv: 4, payload: new Uint8Array(126).map((_, i) => i) }], flags: 0x04 },
    { name: 'compressed-corrupt', frames: [{ opcode: 0x2, rsv: 4, payload: hexBytes('ffffffff') }] },
    { name: 'compressed-corrupt-second-fragment', frames: [{ opcode: 0x2, rsv: 4, fin: false, payload: hexBytes('f248cdc9c90700') }, { opcode: 0x0, payload: hexBytes('ff') }] },
    { name: 'compressed-invalid-utf8', frames: [{ opcode: 0x1, rsv: 4, payload: sync(hexBytes('48 65 ed a0 80 6c')) }] },
    { name: 'compressed-invalid-utf8-skip', frames: [{ opcode: 0x1, rsv: 4, payload: sync(hexBytes('ff ff')) }], flags: 0x01 },
    { name: 'compressed-far-reference-window-9', frames: [{ opcode: 0x2, rsv: 4, payload: sync(far) }], flags: 0x10 },
    { name: 'rsv1-on-continuation', frames: [{ opcode: 0x1, rsv: 4, fin: false, payload: hexBytes('f248') }, { opcode: 0x0, rsv: 4, payload: hexBytes('cdc9c90700') }] },
    { name: 'rsv1-on-ping', frames: [{ opcode: 0x9, rsv: 4, payload: utf8('p') }] },
    { name: 'rsv1-on-close', frames: [{ opcode: 0x8, rsv: 4, payload: hexBytes('03e8') }] },
    { name: 'compressed-then-close', frames: [{ opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700') }, { opcode: 0x8, payload: hexBytes('03e8') }], flags: 0x40 },
    { name: 'compressed-many-fragments-takeover', frames: [...Array.from({ length: 40 }, (_, i) => ({ opcode: i === 0 ? 0x1 : 0x0, rsv: i === 0 ? 4 : 0, fin: i === 39, payload: compressedText.subarray(Math.floor((i * compressedText.length) / 40), Math.floor(((i + 1) * compressedText.length) / 40)) }))], flags: 0x88, chunking: 2 },
  ]
}

function buildSeed(spec: SeedSpec, side: Side): Uint8Array {
  const frames = spec.frames.map((frame) => {
    if (frame instanceof Uint8Array) return frame
    return buildFrame({ ...frame, mask: side === 'server' ? (frame.mask ?? Uint8Array.of(0x37, 0xfa, 0x21, 0x3d)) : undefined })
  })
  return concatBytes([Uint8Array.of(spec.chunking ?? 0, spec.flags ?? 0), ...frames])
}

// ------------------------------------------------------------- targets

function frameDictionary(side: Side, deflate: boolean): Uint8Array[] {
  const mask = side === 'server' ? Uint8Array.of(1, 2, 3, 4) : undefined
  const words: Uint8Array[] = [
    buildFrame({ opcode: 0x1, payload: utf8('hi'), mask }),
    buildFrame({ opcode: 0x1, fin: false, payload: utf8('frag'), mask }),
    buildFrame({ opcode: 0x0, payload: utf8('end'), mask }),
    buildFrame({ opcode: 0x0, fin: false, payload: utf8('mid'), mask }),
    buildFrame({ opcode: 0x2, payload: Uint8Array.of(0, 1, 2), mask }),
    buildFrame({ opcode: 0x9, payload: utf8('ping'), mask }),
    buildFrame({ opcode: 0xa, payload: new Uint8Array(0), mask }),
    buildFrame({ opcode: 0x8, payload: hexBytes('03e8'), mask }),
    buildFrame({ opcode: 0x8, payload: new Uint8Array(0), mask }),
    hexBytes('81fe'), hexBytes('82ff'), hexBytes('007e'), hexBytes('ffff'), hexBytes('0000000000010000'),
    hexBytes('8000000000000000'), hexBytes('0020000000000000'), hexBytes('001fffffffffffff'),
    latin1('\u00c3\u00a9'), hexBytes('eda080'), hexBytes('f4908080'),
  ]
  if (deflate) {
    words.push(
      buildFrame({ opcode: 0x1, rsv: 4, payload: hexBytes('f248cdc9c90700'), mask }),
      buildFrame({ opcode: 0x2, rsv: 4, fin: false, payload: hexBytes('f248'), mask }),
      hexBytes('0000ffff'), hexBytes('000500faff'), hexBytes('f348cdc9c9070000'), hexBytes('c1'), hexBytes('41'), hexBytes('c2'),
    )
  }
  return words
}

function describeInput(input: Uint8Array, side: Side, deflate: boolean): string {
  const { options, stream } = decodeOptions(input, side, deflate)
  const flags = Object.entries(options).filter(([k]) => k !== 'side' && k !== 'deflate').map(([k, v]) => `${k}=${v}`).join(' ')
  return `${side}${deflate ? ' deflate' : ''} ${flags} stream=${hex(stream, 96)}`
}

function makeTarget(side: Side, deflate: boolean): Target {
  const name = `frames-${side}${deflate ? '-deflate' : ''}`
  return {
    name,
    corpus: name,
    maxLength: 16 * KiB,
    text: false,
    dictionary: frameDictionary(side, deflate),
    // Per batch, after a GC, nothing of a finished connection may remain: a few maxPayloads of slack.
    memoryBound: 16 * 64 * KiB,
    seeds: () => [...plainSeeds(), ...(deflate ? deflateSeeds() : [])].map((spec) => [`seed-${spec.name}.bin`, buildSeed(spec, side)]),
    generate(rng) {
      return concatBytes([Uint8Array.of(rng.int(256), rng.int(256)), generateStream(rng, side, deflate)])
    },
    execute(input) {
      const { options, stream } = decodeOptions(input, side, deflate)
      const reference = stream.slice()
      const pieces = chunk(stream, options.chunking)
      const outcome = measure(() => runFrames(pieces, options))
      const model = referenceReceive(reference, {
        side,
        maxPayload: options.maxPayload,
        skipUtf8: options.skipUtf8,
        deflate: deflate ? { takeover: options.takeover, windowBits: options.windowBits } : undefined,
      })
      checkFrames(outcome, model)
      const types = [...new Set(outcome.events.map((e) => e.type))].sort().join(',')
      const error = outcome.connectionError?.code ?? '-'
      return `${types}|${error}|${[...model.features].sort().join(',')}`
    },
    describe: (input) => describeInput(input, side, deflate),
  }
}

export const framesTargets: Target[] = [
  makeTarget('server', false),
  makeTarget('client', false),
  makeTarget('server', true),
  makeTarget('client', true),
]
