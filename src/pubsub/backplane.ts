/**
 * The backplane seam: how tether nodes on many machines share published
 * messages over a real broker (Redis, NATS), or inside one process (memory).
 *
 * Delivery semantics across nodes: at most once, in order per publisher per
 * topic. Every node publishes to one broker channel and receives every
 * message on it; each message carries its origin's instance id (so a node
 * drops its own echo instead of delivering twice) and a sequence number per
 * origin (so a receiver counts what it missed, e.g. during a broker outage,
 * as `lost`, and drops a repeat as a duplicate instead of delivering twice).
 *
 * Accounting (`counts`, per node). Every message given to `publish` is
 * numbered and ends in exactly one of three counts:
 * - `sent`: delivered to the broker, meaning the broker confirmed it has it.
 *   What confirms it is the subclass's business (redis.ts: the PUBLISH reply;
 *   nats.ts: the PONG to a PING written right behind it); a confirmed
 *   message may still miss a node that is away (that node counts it `lost`).
 * - `unsent`: not delivered to the broker: refused while disconnected,
 *   rejected by the client, not confirmed when the connection dropped, or
 *   not encodable. Each is reported in an `unsent` event. A message whose
 *   confirmation was lost with the connection may have reached the broker
 *   anyway (at most once, never twice).
 * - `pending`: handed to the broker client, confirmation outstanding.
 *   Bounded (`maxPending`: 10,000 messages or 64 MiB by default): a broker
 *   that stops answering without dropping the connection (stalled, or too
 *   slow) would otherwise have every publish wait in the client's memory.
 *   Past the bound a batch is not handed over: it is `unsent` at once, with
 *   an error event saying the broker is not keeping up.
 *
 * Rule 1: a backplane never throws into `publish`; failures and connection
 * changes go to the sink's `event` (the server re-emits them).
 * Rule 2: `published == sent + unsent + pending` at every moment.
 * Rule 3: `received + lost == Σ published` over the other nodes, once the
 * first and the last message of every other node arrived here (gaps are
 * seen between two messages that arrive; an unsent message keeps its number,
 * so the others count it as lost).
 */
import { fillRandom } from '../core/platform.js'

/** One published message as it crosses the broker. */
export interface BackplaneMessage {
  topic: string
  data: Uint8Array
  binary: boolean
  compress: boolean
  /** The conflation key (`latest` policy); the topic when absent. */
  key?: string | undefined
}

export type BackplaneEvent =
  | { type: 'error'; stage: 'connect' | 'publish' | 'subscribe' | 'decode'; error: Error }
  | { type: 'disconnected' }
  | { type: 'reconnected' }
  /** A gap in an origin's sequence: `count` messages from `origin` never arrived. */
  | { type: 'lost'; origin: string; count: number }
  /** Publishes the broker did not get, or did not confirm (counted, not retried). */
  | { type: 'unsent'; count: number }

/** How much may await the broker's confirmation (module comment, `pending`). */
export interface PendingLimit {
  /** Messages; default 10,000. */
  messages?: number
  /** Bytes; default 64 MiB. */
  bytes?: number
}

export const DEFAULT_MAX_PENDING: Required<PendingLimit> = { messages: 10_000, bytes: 64 * 1024 * 1024 }

/** One node's running totals (Rules 2 and 3 of the module comment). */
export interface BackplaneCounts {
  /** Messages given to `publish`, each with its own sequence number. */
  published: number
  /** Delivered to the broker: the broker confirmed it has them. */
  sent: number
  /** Not delivered to the broker (each reported in an `unsent` event). */
  unsent: number
  /** Handed to the broker client, confirmation outstanding. */
  pending: number
  /** Bytes of the pending messages. */
  pendingBytes: number
  /** Messages of other nodes delivered here. */
  received: number
  /** Messages of other nodes that never arrived here (sequence gaps). */
  lost: number
  /** Repeats dropped instead of delivered twice. */
  duplicates: number
}

export interface BackplaneSink {
  deliver(message: BackplaneMessage): void
  event(event: BackplaneEvent): void
}

export interface Backplane {
  /** This node's id; messages carrying it are this node's own and are not delivered again. */
  readonly instanceId: string
  /** Connects the backplane to the node that delivers what it receives; once. */
  attach(sink: BackplaneSink): void
  /** Hands a message to the broker; never throws (Rule 1). */
  publish(message: BackplaneMessage): void
  /** Stops receiving and releases broker connections the backplane opened. */
  close(): Promise<void>
  /** Running totals, if the backplane keeps them (every `EnvelopeBackplane` does). */
  readonly counts?: Readonly<BackplaneCounts>
}

const VERSION = 1
/** A batch: the envelopes one node published in one turn of the event loop, in order. */
const BATCH = 2
const BINARY = 1
const COMPRESS = 2
const HAS_KEY = 4
const ID_BYTES = 16
/** version, flags, origin id, sequence (u32 high, u32 low), topic length. */
const FIXED = 2 + ID_BYTES + 8 + 2
/**
 * A batch grows to about this many bytes, then leaves and a new one starts:
 * one oversized batch must not make the broker refuse many small messages
 * (NATS refuses a message over its max_payload, 1 MiB by default).
 */
const MAX_BATCH_BYTES = 256 * 1024

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** A message with its origin and sequence, as it travels. */
export interface Envelope extends BackplaneMessage {
  origin: string
  seq: number
}

/**
 * Envelope bytes: version, flags, 16-byte origin, 64-bit sequence, then the
 * topic and (optionally) the key as length-prefixed UTF-8, then the payload
 * as is. Binary, so a binary message is not inflated by base64 on the way.
 */
export function encodeEnvelope(origin: Uint8Array, seq: number, message: BackplaneMessage): Uint8Array {
  const topic = encoder.encode(message.topic)
  const key = message.key === undefined ? undefined : encoder.encode(message.key)
  if (topic.length > 0xffff || (key !== undefined && key.length > 0xffff)) {
    throw new RangeError('A topic or key longer than 65535 bytes cannot cross the backplane')
  }
  const size = FIXED + topic.length + (key === undefined ? 0 : 2 + key.length) + message.data.length
  const bytes = new Uint8Array(size)
  const view = new DataView(bytes.buffer)
  bytes[0] = VERSION
  bytes[1] = (message.binary ? BINARY : 0) | (message.compress ? COMPRESS : 0) | (key === undefined ? 0 : HAS_KEY)
  bytes.set(origin, 2)
  view.setUint32(2 + ID_BYTES, Math.floor(seq / 2 ** 32))
  view.setUint32(6 + ID_BYTES, seq >>> 0)
  view.setUint16(10 + ID_BYTES, topic.length)
  let offset = FIXED
  bytes.set(topic, offset)
  offset += topic.length
  if (key !== undefined) {
    view.setUint16(offset, key.length)
    bytes.set(key, offset + 2)
    offset += 2 + key.length
  }
  bytes.set(message.data, offset)
  return bytes
}

/** The inverse of `encodeEnvelope`; throws a RangeError on bytes it did not make. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length < FIXED || bytes[0] !== VERSION) throw new RangeError('Not a tether backplane envelope')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const flags = bytes[1]!
  const origin = hex(bytes.subarray(2, 2 + ID_BYTES))
  const seq = view.getUint32(2 + ID_BYTES) * 2 ** 32 + view.getUint32(6 + ID_BYTES)
  const topicLength = view.getUint16(10 + ID_BYTES)
  let offset = FIXED
  if (offset + topicLength > bytes.length) throw new RangeError('Truncated backplane envelope')
  const topic = decoder.decode(bytes.subarray(offset, offset + topicLength))
  offset += topicLength
  let key: string | undefined
  if ((flags & HAS_KEY) !== 0) {
    if (offset + 2 > bytes.length) throw new RangeError('Truncated backplane envelope')
    const keyLength = view.getUint16(offset)
    offset += 2
    if (offset + keyLength > bytes.length) throw new RangeError('Truncated backplane envelope')
    key = decoder.decode(bytes.subarray(offset, offset + keyLength))
    offset += keyLength
  }
  return {
    origin,
    seq,
    topic,
    key,
    binary: (flags & BINARY) !== 0,
    compress: (flags & COMPRESS) !== 0,
    data: bytes.subarray(offset),
  }
}

/** Several envelopes as one broker message: BATCH, then each as a u32 length and its bytes. */
export function encodeBatch(envelopes: readonly Uint8Array[]): Uint8Array {
  let size = 1
  for (const envelope of envelopes) size += 4 + envelope.length
  const bytes = new Uint8Array(size)
  const view = new DataView(bytes.buffer)
  bytes[0] = BATCH
  let offset = 1
  for (const envelope of envelopes) {
    view.setUint32(offset, envelope.length)
    bytes.set(envelope, offset + 4)
    offset += 4 + envelope.length
  }
  return bytes
}

/** The envelopes of a broker message: one, or those of a batch. Throws a RangeError on bytes it did not make. */
export function splitBatch(bytes: Uint8Array): Uint8Array[] {
  if (bytes[0] !== BATCH) return [bytes]
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const envelopes: Uint8Array[] = []
  let offset = 1
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new RangeError('Truncated backplane batch')
    const length = view.getUint32(offset)
    if (offset + 4 + length > bytes.length) throw new RangeError('Truncated backplane batch')
    envelopes.push(bytes.subarray(offset + 4, offset + 4 + length))
    offset += 4 + length
  }
  return envelopes
}

function hex(bytes: Uint8Array): string {
  let text = ''
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0')
  return text
}

/**
 * What every broker backplane shares: the instance id, sequence numbers, the
 * envelope, dropping its own echoes, counting gaps and duplicates, and the
 * accounting of Rule 2. A subclass moves bytes: `send` them, call `sent` or
 * `sendFailed` for each send, and call `received` with what the broker
 * delivers.
 *
 * Publishes of one turn of the event loop (a burst, or the messages of one
 * read) leave as one broker message of at most about MAX_BATCH_BYTES, in
 * order: a broker round trip and a client call per batch instead of per
 * message, which is where a cluster's time went before (the publishing
 * node's Redis client).
 */
export abstract class EnvelopeBackplane implements Backplane {
  readonly instanceId: string
  readonly #origin: Uint8Array
  #seq = 0
  /** The last sequence number seen from each other origin. */
  readonly #lastSeen = new Map<string, number>()
  #sink: BackplaneSink | undefined
  #batch: Uint8Array[] | undefined
  #batchBytes = 0
  #flushQueued = false
  /** Running totals; the server adds them to its topic stats. */
  readonly counts: BackplaneCounts = { published: 0, sent: 0, unsent: 0, pending: 0, pendingBytes: 0, received: 0, lost: 0, duplicates: 0 }
  readonly #maxPending: Required<PendingLimit>
  /** Whether the last batch was refused for `maxPending` (one error event per episode). */
  #overPending = false

  constructor(maxPending: PendingLimit = {}) {
    this.#origin = fillRandom(new Uint8Array(ID_BYTES))
    this.instanceId = hex(this.#origin)
    this.#maxPending = { ...DEFAULT_MAX_PENDING, ...maxPending }
  }

  attach(sink: BackplaneSink): void {
    if (this.#sink !== undefined) throw new Error('This backplane is already attached to a server; create one per server')
    this.#sink = sink
  }

  publish(message: BackplaneMessage): void {
    this.counts.published++
    const seq = ++this.#seq
    let bytes: Uint8Array
    try {
      bytes = encodeEnvelope(this.#origin, seq, message)
    } catch (error) {
      // Unsent; its number stays used, so the other nodes count it as lost (Rule 3).
      this.#countUnsent(1, error as Error)
      return
    }
    if (this.#batch !== undefined && this.#batchBytes + bytes.length > MAX_BATCH_BYTES) this.#flush()
    if (this.#batch !== undefined) {
      this.#batch.push(bytes)
      this.#batchBytes += bytes.length
      return
    }
    this.#batch = [bytes]
    this.#batchBytes = bytes.length
    if (this.#flushQueued) return
    this.#flushQueued = true
    queueMicrotask(() => {
      this.#flushQueued = false
      if (this.#batch !== undefined) this.#flush()
    })
  }

  #flush(): void {
    const batch = this.#batch!
    const size = this.#batchBytes
    this.#batch = undefined
    const limit = this.#maxPending
    if (this.counts.pending + batch.length > limit.messages || this.counts.pendingBytes + size > limit.bytes) {
      // The broker is not confirming what it has: hand it no more (module comment, `pending`).
      const error = this.#overPending
        ? undefined
        : new Error(`The broker is not keeping up: ${this.counts.pending} messages (${this.counts.pendingBytes} bytes) await its confirmation; publishes are unsent until it catches up`)
      this.#overPending = true
      this.#countUnsent(batch.length, error)
      return
    }
    this.#overPending = false
    this.counts.pending += batch.length
    this.counts.pendingBytes += size
    this.send(batch.length === 1 ? batch[0]! : encodeBatch(batch), batch.length, size)
  }

  abstract close(): Promise<void>

  /**
   * Hands bytes holding `count` messages to the broker; then (now or later)
   * calls `sent` or `sendFailed` once, with the same `count` and `size` (the
   * messages' bytes, for the pending bound).
   */
  protected abstract send(bytes: Uint8Array, count: number, size: number): void

  /** A subclass reports messages of one `send` the broker did not get, or did not confirm. */
  protected sendFailed(count: number, error: Error | undefined, size = 0): void {
    this.counts.pending -= count
    this.counts.pendingBytes -= size
    this.#countUnsent(count, error)
  }

  /** A subclass reports messages of one `send` the broker confirmed. */
  protected sent(count: number, size = 0): void {
    this.counts.pending -= count
    this.counts.pendingBytes -= size
    this.counts.sent += count
  }

  #countUnsent(count: number, error: Error | undefined): void {
    this.counts.unsent += count
    if (error !== undefined) this.report({ type: 'error', stage: 'publish', error })
    this.report({ type: 'unsent', count })
  }

  /** A subclass passes on every message the broker delivers. */
  protected received(bytes: Uint8Array): void {
    let envelopes: Uint8Array[]
    try {
      envelopes = splitBatch(bytes)
    } catch (error) {
      this.report({ type: 'error', stage: 'decode', error: error as Error })
      return
    }
    for (const envelope of envelopes) this.#receivedOne(envelope)
  }

  #receivedOne(bytes: Uint8Array): void {
    let envelope: Envelope
    try {
      envelope = decodeEnvelope(bytes)
    } catch (error) {
      this.report({ type: 'error', stage: 'decode', error: error as Error })
      return
    }
    if (envelope.origin === this.instanceId) return
    const last = this.#lastSeen.get(envelope.origin)
    if (last !== undefined && envelope.seq <= last) {
      this.counts.duplicates++
      return
    }
    this.#lastSeen.set(envelope.origin, envelope.seq)
    if (last !== undefined && envelope.seq > last + 1) {
      const count = envelope.seq - last - 1
      this.counts.lost += count
      this.report({ type: 'lost', origin: envelope.origin, count })
    }
    this.counts.received++
    this.#sink?.deliver(envelope)
  }

  protected report(event: BackplaneEvent): void {
    this.#sink?.event(event)
  }
}
