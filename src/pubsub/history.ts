/**
 * Topic history: the seam between a node and where the history of its
 * topics is kept (this process, Redis Streams, NATS JetStream).
 *
 * Theory of operation: a message published on a topic with history is
 * appended to the topic's log in a store, which gives it a position: the
 * topic's epoch and the next offset. The store is the only one to assign
 * positions, so every node of a cluster sees the same position for the same
 * message. Every node hears every appended message through the store's feed
 * (in offset order per topic), and can read a topic's retained messages
 * after an offset, which is how a node fills a gap in its feed and how it
 * learns a topic's history when a first client subscribes to it there.
 *
 * Positions: offsets of a topic count up by one per message from 1 within
 * an epoch. The epoch is a short string the store creates with the topic's
 * log and replaces when the log was lost (a broker that restarted empty, a
 * deleted stream), so a position from before the loss can never be taken
 * for one after it.
 *
 * Retention (`HistoryPolicy`): a topic keeps its newest `maxCount` messages,
 * each for `maxAge` ms. Stores trim at least that much and may keep more for
 * a while; the node applies the policy exactly when it answers a client
 * (delivery.ts), so every backend has the same window.
 *
 * Rule 1: a store never assigns an offset twice in an epoch, and delivers a
 * topic's entries on its feed in offset order (a gap in the feed is allowed:
 * the node reads to fill it).
 * Rule 2: an append with a `key` already in the topic's retained window is
 * not appended again; its answer is the offset the key already has
 * (idempotent publishing, for retries after a lost answer).
 * Rule 3: `append` and `read` reject when the store cannot answer (broker
 * down); they never hang past the store's timeout.
 */
import { fillRandom } from '../core/platform.js'

/** A message's place in its topic. */
export interface Position {
  epoch: string
  offset: number
}

/** How much history a topic keeps: its newest `maxCount` messages, each for `maxAge` ms. */
export interface HistoryPolicy {
  maxCount: number
  maxAge: number
}

export const DEFAULT_HISTORY_POLICY: Readonly<HistoryPolicy> = { maxCount: 100, maxAge: 300_000 }

/** Largest window a topic may keep by count. */
export const MAX_HISTORY_COUNT = 1_000_000

/** The policy with defaults filled in, checked (a TypeError names the wrong field). */
export function resolveHistoryPolicy(policy: Partial<HistoryPolicy> = {}, base: HistoryPolicy = DEFAULT_HISTORY_POLICY): HistoryPolicy {
  const resolved = { ...base, ...policy }
  if (!Number.isInteger(resolved.maxCount) || resolved.maxCount < 1 || resolved.maxCount > MAX_HISTORY_COUNT) {
    throw new TypeError(`history maxCount must be a whole number from 1 to ${MAX_HISTORY_COUNT}, got ${String(resolved.maxCount)}`)
  }
  if (typeof resolved.maxAge !== 'number' || !(resolved.maxAge > 0) || resolved.maxAge > 2 ** 31 * 1000) {
    throw new TypeError(`history maxAge must be a number of milliseconds above 0, got ${String(resolved.maxAge)}`)
  }
  return resolved
}

/** What a publisher hands the store. */
export interface AppendRequest {
  data: Uint8Array
  binary: boolean
  /** Idempotency key (Rule 2). */
  key?: string | undefined
}

/** One retained message. */
export interface HistoryEntry {
  offset: number
  /** When the store appended it, in ms since 1970 (the store's clock where it has one). */
  time: number
  data: Uint8Array
  binary: boolean
  key?: string | undefined
}

export interface AppendResult {
  epoch: string
  /** The offset of each request, in order (a repeated key: the offset it already had). */
  offsets: number[]
}

export interface ReadResult {
  epoch: string
  /** The newest offset of the topic in `epoch` (0: none yet). */
  top: number
  /** Retained entries after the offset asked for (all retained ones without), in order, contiguous, ending at `top` when not empty. */
  entries: HistoryEntry[]
}

export type HistoryEvent =
  | { type: 'error'; stage: 'connect' | 'append' | 'read' | 'feed'; error: Error }
  | { type: 'disconnected' }
  | { type: 'reconnected' }

/** Where a store sends what it hears. */
export interface HistoryFeed {
  /** Entries appended to `topic` (by any node), in offset order (Rule 1). */
  entries(topic: string, epoch: string, entries: HistoryEntry[]): void
  /** The feed may have missed entries (it reconnected): the node re-reads the topics it follows. */
  resync(): void
  event(event: HistoryEvent): void
}

export interface HistoryStore {
  /** `memory`, `redis`, `jetstream`, or your own. */
  readonly kind: string
  /** Connects the store to the node that uses it; once. */
  attach(feed: HistoryFeed): void
  /** Appends, in order, atomically per call (Rules 1-3). */
  append(topic: string, requests: AppendRequest[], policy: HistoryPolicy): Promise<AppendResult>
  /** The same, answered at once, for stores in this process (no broker round trip to batch for); throws when it cannot. */
  appendNow?(topic: string, requests: AppendRequest[], policy: HistoryPolicy): AppendResult
  /** The retained entries after `after` (every retained entry when undefined) in the current epoch (Rule 3). */
  read(topic: string, after: number | undefined, policy: HistoryPolicy): Promise<ReadResult>
  close(): Promise<void>
}

const EPOCH_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz'

/** A new random epoch: 10 characters of base 36 (about 52 bits). */
export function newEpoch(): string {
  const bytes = fillRandom(new Uint8Array(10))
  let epoch = ''
  for (const byte of bytes) epoch += EPOCH_ALPHABET[byte % 36]
  return epoch
}

// ---------------------------------------------------------------------------
// Entries as bytes, for stores that keep or carry several in one record.

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const E_BINARY = 1
const E_KEY = 2

/**
 * Requests as one record: per request a flags octet, the key (u16 length,
 * UTF-8) when there is one, the payload length (u32) and the payload.
 */
export function encodeRequests(requests: readonly AppendRequest[]): Uint8Array {
  const keys = requests.map((request) => (request.key === undefined ? undefined : encoder.encode(request.key)))
  let size = 0
  for (let i = 0; i < requests.length; i++) size += 1 + (keys[i] === undefined ? 0 : 2 + keys[i]!.length) + 4 + requests[i]!.data.length
  const bytes = new Uint8Array(size)
  const view = new DataView(bytes.buffer)
  let offset = 0
  for (let i = 0; i < requests.length; i++) {
    const request = requests[i]!
    const key = keys[i]
    if (key !== undefined && key.length > 0xffff) throw new RangeError('An idempotency key longer than 65535 bytes')
    bytes[offset++] = (request.binary ? E_BINARY : 0) | (key === undefined ? 0 : E_KEY)
    if (key !== undefined) {
      view.setUint16(offset, key.length)
      bytes.set(key, offset + 2)
      offset += 2 + key.length
    }
    view.setUint32(offset, request.data.length)
    bytes.set(request.data, offset + 4)
    offset += 4 + request.data.length
  }
  return bytes
}

/** The inverse of `encodeRequests`; throws a RangeError on bytes it did not make. */
export function decodeRequests(bytes: Uint8Array): AppendRequest[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const requests: AppendRequest[] = []
  let offset = 0
  while (offset < bytes.length) {
    const flags = bytes[offset++]!
    let key: string | undefined
    if ((flags & E_KEY) !== 0) {
      if (offset + 2 > bytes.length) throw new RangeError('Truncated history record')
      const length = view.getUint16(offset)
      if (offset + 2 + length > bytes.length) throw new RangeError('Truncated history record')
      key = decoder.decode(bytes.subarray(offset + 2, offset + 2 + length))
      offset += 2 + length
    }
    if (offset + 4 > bytes.length) throw new RangeError('Truncated history record')
    const length = view.getUint32(offset)
    if (offset + 4 + length > bytes.length) throw new RangeError('Truncated history record')
    requests.push({ data: bytes.subarray(offset + 4, offset + 4 + length), binary: (flags & E_BINARY) !== 0, key })
    offset += 4 + length
  }
  return requests
}
