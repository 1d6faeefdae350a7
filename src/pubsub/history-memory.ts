/**
 * Topic history in this process: the default for one node, no broker.
 *
 * Each topic has a log (history.ts): an epoch made when the log is created,
 * its newest offset, and its retained entries in order. Appends are
 * synchronous (the answer is ready when `append` returns its promise), and
 * every node attached to the same store hears them at once, so several
 * servers in one process (tests, demos) share history as a cluster would.
 *
 * Memory is bounded three times: per topic by its policy (trimmed at each
 * append and read), in number of topics (`maxTopics`, default 100,000), and
 * in bytes of all retained messages together (`maxBytes`, default no limit):
 * past either, the log appended to least recently is dropped, and a later use
 * of that topic starts a new epoch (its history was lost, which the epoch
 * says). A policy trims a topic only when it is used, so without `maxBytes`
 * a topic written once and never again keeps its messages until evicted.
 */
import {
  type AppendRequest,
  type AppendResult,
  type HistoryEntry,
  type HistoryFeed,
  type HistoryPolicy,
  type HistoryStore,
  type ReadResult,
  newEpoch,
} from './history.js'

interface Log {
  epoch: string
  top: number
  entries: HistoryEntry[]
  /** Index of the first retained entry in `entries` (trimmed lazily, in blocks). */
  start: number
  keys: Map<string, number>
  /** What the retained entries weigh (`entryBytes`). */
  bytes: number
}

/** What an entry weighs against `maxBytes`: its payload and key, and a fixed cost for the rest. */
function entryBytes(entry: HistoryEntry): number {
  return entry.data.length + (entry.key?.length ?? 0) * 2 + 64
}

export interface MemoryHistoryOptions {
  /** Topics kept at once (default 100,000); past it the least recently appended log is dropped. */
  maxTopics?: number
  /**
   * Bytes of retained messages kept at once, all topics together (payloads,
   * keys, and 64 bytes each for the rest; default no limit); past it the
   * least recently appended logs are dropped, never the one just appended to.
   */
  maxBytes?: number
  /** The clock, in ms since 1970 (tests). */
  now?: () => number
}

export class MemoryHistory implements HistoryStore {
  readonly kind = 'memory'
  readonly #logs = new Map<string, Log>()
  readonly #feeds: HistoryFeed[] = []
  readonly #maxTopics: number
  readonly #maxBytes: number
  readonly #now: () => number
  #online = true
  #bytes = 0

  constructor(options: MemoryHistoryOptions = {}) {
    this.#maxTopics = options.maxTopics ?? 100_000
    this.#maxBytes = options.maxBytes ?? Infinity
    this.#now = options.now ?? Date.now
  }

  /** Several nodes in one process may share one store, as a cluster shares a broker. */
  attach(feed: HistoryFeed): void {
    this.#feeds.push(feed)
  }

  /** Takes the store offline (appends and reads reject, as with a broker down) or back. */
  setOnline(online: boolean): void {
    if (online === this.#online) return
    this.#online = online
    for (const feed of this.#feeds) {
      feed.event({ type: online ? 'reconnected' : 'disconnected' })
      if (online) feed.resync()
    }
  }

  /** Forgets every topic, as a broker restarted without its data would (new epochs from now on). */
  clear(): void {
    this.#logs.clear()
    this.#bytes = 0
  }

  /** How many topics have a log. */
  get size(): number {
    return this.#logs.size
  }

  /** What the retained messages weigh, all topics together (`maxBytes`). */
  get bytes(): number {
    return this.#bytes
  }

  async append(topic: string, requests: AppendRequest[], policy: HistoryPolicy): Promise<AppendResult> {
    return this.appendNow(topic, requests, policy)
  }

  appendNow(topic: string, requests: AppendRequest[], policy: HistoryPolicy): AppendResult {
    if (!this.#online) throw new Error('The memory history store is offline')
    const log = this.#log(topic, true)!
    // Most recently appended last, so that the first is the one to drop (a Map keeps insertion order).
    if (this.#logs.size > 1) {
      this.#logs.delete(topic)
      this.#logs.set(topic, log)
    }
    const time = this.#now()
    const offsets: number[] = []
    const added: HistoryEntry[] = []
    for (const request of requests) {
      const known = request.key === undefined ? undefined : log.keys.get(request.key)
      if (known !== undefined) {
        offsets.push(known)
        continue
      }
      const entry: HistoryEntry = { offset: ++log.top, time, data: request.data, binary: request.binary, key: request.key }
      log.entries.push(entry)
      const weight = entryBytes(entry)
      log.bytes += weight
      this.#bytes += weight
      if (entry.key !== undefined) log.keys.set(entry.key, entry.offset)
      offsets.push(entry.offset)
      added.push(entry)
    }
    this.#trim(log, policy, time)
    this.#evict()
    if (added.length > 0) for (const feed of this.#feeds) feed.entries(topic, log.epoch, added)
    return { epoch: log.epoch, offsets }
  }

  async read(topic: string, after: number | undefined, policy: HistoryPolicy): Promise<ReadResult> {
    if (!this.#online) throw new Error('The memory history store is offline')
    const log = this.#log(topic, true)!
    this.#trim(log, policy, this.#now())
    let first = log.start
    if (after !== undefined) {
      // Offsets are contiguous: the entry after `after` is at a known index.
      const head = log.entries[log.start]
      first = head === undefined ? log.entries.length : Math.max(log.start, log.start + (after + 1 - head.offset))
    }
    return { epoch: log.epoch, top: log.top, entries: log.entries.slice(Math.min(first, log.entries.length)) }
  }

  async close(): Promise<void> {
    this.#feeds.length = 0
  }

  #log(topic: string, create: boolean): Log | undefined {
    let log = this.#logs.get(topic)
    if (log === undefined && create) {
      log = { epoch: newEpoch(), top: 0, entries: [], start: 0, keys: new Map(), bytes: 0 }
      this.#logs.set(topic, log)
      this.#evict()
    }
    return log
  }

  #trim(log: Log, policy: HistoryPolicy, now: number): void {
    const oldest = now - policy.maxAge
    while (log.start < log.entries.length) {
      const entry = log.entries[log.start]!
      if (log.entries.length - log.start <= policy.maxCount && entry.time >= oldest) break
      if (entry.key !== undefined && log.keys.get(entry.key) === entry.offset) log.keys.delete(entry.key)
      const weight = entryBytes(entry)
      log.bytes -= weight
      this.#bytes -= weight
      log.start++
    }
    // Compact once the trimmed part is as large as the rest.
    if (log.start > 32 && log.start * 2 >= log.entries.length) {
      log.entries = log.entries.slice(log.start)
      log.start = 0
    }
  }

  #evict(): void {
    // The first log is the least recently appended; the one just appended to is the last, and is kept.
    while (this.#logs.size > this.#maxTopics || (this.#bytes > this.#maxBytes && this.#logs.size > 1)) {
      const [oldest, log] = this.#logs.entries().next().value as [string, Log]
      this.#logs.delete(oldest)
      this.#bytes -= log.bytes
    }
  }
}
