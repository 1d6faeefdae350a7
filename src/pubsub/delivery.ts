/**
 * Reliable delivery on one node: topic logs over a history store
 * (history.ts), knowing nothing of sockets or of the wire protocol.
 *
 * Theory of operation: a node follows the topics its clients subscribe to.
 * For each followed topic it keeps a log: the epoch, the newest contiguous
 * offset (`top`), and a copy of the retained window (the policy's newest
 * `maxCount` messages, at most `maxAge` old), read from the store when the
 * topic is first followed and kept up to date from the store's feed. A
 * client that subscribes, or resumes after a reconnect, is answered from
 * that copy in one synchronous step (its replay, then live delivery), so
 * ten thousand clients resuming on a node cost no broker round trip each.
 *
 * A log is `syncing` while a read is in flight and `synced` otherwise. While
 * syncing, entries from the feed wait in `pending` and clients wait in
 * `waiting`; when the read lands, what is new is delivered to the subscribers
 * already there, then the pending entries, then the waiting clients get
 * their answers. A log re-reads (syncs) when its feed shows a hole (an
 * offset past `top + 1`), a new epoch, or after the feed reconnected.
 *
 * Rule 1 (no silent loss): every offset after a subscriber's position is
 * either delivered to it, in order, or counted in a gap it is told about
 * (`expired`, with the count); a history that was lost (`reset`) or a
 * position the store never reached (`ahead`) is said too, without a count.
 * Rule 2 (no repeats): an entry at or below `top` is never delivered again.
 * Rule 3 (the window is the policy): what a client can recover is exactly
 * the policy's window, whatever the store kept beyond it.
 */
import type { GapReason } from '../client/protocol.js'
import type { AppendRequest, HistoryEntry, HistoryEvent, HistoryPolicy, HistoryStore, Position, ReadResult } from './history.js'

/** An entry as a node keeps it, with room for the frames built for it once. */
export interface LogEntry extends HistoryEntry {
  /** Frames of this entry built by whoever delivers it (e.g. one per encoding). */
  frames?: Record<string, Uint8Array | string> | undefined
}

export interface Gap {
  reason: GapReason
  /** Messages lost; undefined when nobody can know (a reset, a position ahead). */
  count: number | undefined
  from: Position
  to: Position
}

/** What a subscriber gets when it joins a topic: a gap, a replay, and where it then stands. */
export interface JoinPlan {
  gap: Gap | undefined
  entries: readonly LogEntry[]
  /** The position after the replay: the topic's newest. */
  position: Position
}

export interface JoinStart {
  /** Resume after this position. */
  from?: Position | undefined
  /** Without `from`: replay up to this many of the newest retained messages. */
  recent?: number | undefined
}

export interface DeliveryHooks {
  /** New entries of a followed topic, contiguous, for the subscribers that already joined it. */
  deliver(topic: string, epoch: string, entries: readonly LogEntry[]): void
  /** A gap for the subscribers that already joined a topic. */
  gap(topic: string, gap: Gap): void
}

export interface DeliveryOptions {
  store: HistoryStore
  /** A topic's policy; undefined: the topic keeps no history (and cannot be followed). */
  policyFor(topic: string): HistoryPolicy | undefined
  hooks: DeliveryHooks
  /** How long a log stays after its last subscriber left, in ms (default 30 s): a client that comes back finds it. */
  linger?: number
  /** Store events (errors, disconnects); never thrown. */
  onEvent?: ((event: HistoryEvent) => void) | undefined
  /** The clock, in ms since 1970 (tests). */
  now?: () => number
}

/** Running totals of one node. */
export interface DeliveryStats {
  /** Messages handed to the store. */
  published: number
  /** Publishes the store refused or did not answer. */
  publishFailed: number
  /** Reads of the store (first follows, holes, resyncs). */
  reads: number
  readsFailed: number
  /** Entries the feed brought twice (dropped: Rule 2). */
  duplicates: number
  /** Gaps told to subscribers, live (to every joined subscriber at once) and at join. */
  gaps: number
  /** Topics followed now. */
  topics: number
}

type Waiter = { start: JoinStart; ready: (plan: JoinPlan | Error) => void; rechecked: boolean; cancelled: boolean }

class TopicLog {
  epoch = ''
  top = 0
  /** Retained entries from `start`, contiguous, ending at `top`. */
  entries: LogEntry[] = []
  start = 0
  state: 'syncing' | 'synced' = 'syncing'
  pending: Array<{ epoch: string; entries: HistoryEntry[] }> = []
  pendingCount = 0
  /** Pending entries overflowed: read again once the current read lands. */
  overflowed = false
  waiting: Waiter[] = []
  readonly retired = new Set<string>()
  users = 0
  generation = 0
  retryDelay = 0
  timer: ReturnType<typeof setTimeout> | undefined
  readonly topic: string
  policy: HistoryPolicy
  constructor(topic: string, policy: HistoryPolicy) {
    this.topic = topic
    this.policy = policy
  }
}

const MAX_RETRY_DELAY = 5_000

export class Delivery {
  readonly #store: HistoryStore
  readonly #policyFor: (topic: string) => HistoryPolicy | undefined
  readonly #hooks: DeliveryHooks
  readonly #linger: number
  readonly #onEvent: ((event: HistoryEvent) => void) | undefined
  readonly #now: () => number
  readonly #logs = new Map<string, TopicLog>()
  readonly #outbox = new Map<string, { requests: AppendRequest[]; settle: Array<{ resolve: (position: Position) => void; reject: (error: Error) => void }> }>()
  #flushQueued = false
  /** Topics with an append in flight (#append). */
  readonly #appending = new Set<string>()
  #closed = false
  readonly #stats = { published: 0, publishFailed: 0, reads: 0, readsFailed: 0, duplicates: 0, gaps: 0 }

  constructor(options: DeliveryOptions) {
    this.#store = options.store
    this.#policyFor = options.policyFor
    this.#hooks = options.hooks
    this.#linger = options.linger ?? 30_000
    this.#onEvent = options.onEvent
    this.#now = options.now ?? Date.now
    this.#store.attach({
      entries: (topic, epoch, entries) => {
        const log = this.#logs.get(topic)
        if (log !== undefined) this.#accept(log, epoch, entries)
      },
      resync: () => {
        for (const log of this.#logs.values()) if (log.state === 'synced') this.#sync(log, log.epoch === '' ? undefined : log.top)
      },
      event: (event) => this.#report(event),
    })
  }

  get store(): HistoryStore {
    return this.#store
  }

  get stats(): DeliveryStats {
    return { ...this.#stats, topics: this.#logs.size }
  }

  /** The policy of `topic`, or undefined when it keeps no history. */
  policyFor(topic: string): HistoryPolicy | undefined {
    return this.#policyFor(topic)
  }

  /**
   * Appends a message to `topic`'s history; resolves with its position once
   * the store has it. Publishes of one turn of the event loop on one topic
   * go to the store as one append, in order.
   */
  publish(topic: string, request: AppendRequest): Promise<Position> {
    if (this.#closed) return Promise.reject(new Error('The delivery node is closed'))
    const policy = this.#policyFor(topic)
    if (policy === undefined) return Promise.reject(new Error(`Topic ${topic} keeps no history`))
    this.#stats.published++
    if (this.#store.appendNow !== undefined) {
      // A store in this process answers at once: no batch to wait for.
      try {
        const { epoch, offsets } = this.#store.appendNow(topic, [request], policy)
        return Promise.resolve({ epoch, offset: offsets[0]! })
      } catch (error) {
        this.#stats.publishFailed++
        this.#report({ type: 'error', stage: 'append', error: error as Error })
        return Promise.reject(error)
      }
    }
    return new Promise<Position>((resolve, reject) => {
      let batch = this.#outbox.get(topic)
      if (batch === undefined) this.#outbox.set(topic, (batch = { requests: [], settle: [] }))
      batch.requests.push(request)
      batch.settle.push({ resolve, reject })
      if (this.#flushQueued) return
      this.#flushQueued = true
      queueMicrotask(() => this.#flush())
    })
  }

  #flush(): void {
    this.#flushQueued = false
    for (const topic of [...this.#outbox.keys()]) if (!this.#appending.has(topic)) this.#append(topic)
  }

  /**
   * Sends `topic`'s waiting publishes to the store as one append. One append
   * per topic is in flight at a time (the next batch gathers meanwhile), so
   * the store assigns offsets in the order the publishes came, whatever it
   * does on the way: two appends in flight could be reordered (Redis runs a
   * script sent by EVALSHA before an earlier one resent as EVAL after its
   * NOSCRIPT answer; found by the browser test, offsets 3 and 4 swapped).
   */
  #append(topic: string): void {
    const batch = this.#outbox.get(topic)
    if (batch === undefined) return
    this.#outbox.delete(topic)
    this.#appending.add(topic)
    const policy = this.#policyFor(topic)!
    let appending: Promise<{ epoch: string; offsets: number[] }>
    try {
      appending = this.#store.append(topic, batch.requests, policy)
    } catch (error) {
      appending = Promise.reject(error)
    }
    appending
      .then(
        ({ epoch, offsets }) => batch.settle.forEach((settle, i) => settle.resolve({ epoch, offset: offsets[i]! })),
        (error: Error) => {
          // What waits behind a failed append fails with it: appended later, it would take offsets before the
          // failed publishes, which their publishers will send again (an outsider saw a publisher's messages
          // stored out of order across a broker outage).
          const behind = this.#outbox.get(topic)
          this.#outbox.delete(topic)
          const failed = behind === undefined ? batch.settle : [...batch.settle, ...behind.settle]
          this.#stats.publishFailed += failed.length
          this.#report({ type: 'error', stage: 'append', error })
          for (const settle of failed) settle.reject(error)
        },
      )
      .finally(() => {
        this.#appending.delete(topic)
        if (!this.#closed) this.#append(topic)
      })
  }

  /**
   * One more local user of `topic` (a subscriber). `ready` is called once,
   * when the topic's log is synced, with what this subscriber gets; the
   * caller delivers the plan and starts live delivery in the same
   * synchronous step. An Error means the store could not be read. Returns a
   * function that cancels the wait (the caller still calls `leave`).
   */
  join(topic: string, start: JoinStart, ready: (plan: JoinPlan | Error) => void): () => void {
    const policy = this.#policyFor(topic)
    if (policy === undefined) {
      ready(new Error(`Topic ${topic} keeps no history`))
      return () => {}
    }
    let log = this.#logs.get(topic)
    if (log === undefined) {
      log = new TopicLog(topic, policy)
      this.#logs.set(topic, log)
      this.#sync(log, undefined)
    }
    log.policy = policy
    log.users++
    if (log.timer !== undefined && log.state === 'synced') {
      clearTimeout(log.timer)
      log.timer = undefined
    }
    const waiter: Waiter = { start, ready, rechecked: false, cancelled: false }
    if (log.state === 'synced') this.#answer(log, waiter)
    else log.waiting.push(waiter)
    return () => {
      waiter.cancelled = true
    }
  }

  /** One fewer local user of `topic`; the log is forgotten `linger` ms after the last. */
  leave(topic: string): void {
    const log = this.#logs.get(topic)
    if (log === undefined || log.users === 0) return
    if (--log.users > 0) return
    if (log.timer !== undefined) clearTimeout(log.timer)
    log.timer = setTimeout(() => {
      log.timer = undefined
      if (log.users === 0 && this.#logs.get(topic) === log) {
        this.#logs.delete(topic)
        log.generation++
      }
    }, this.#linger)
    log.timer.unref?.()
  }

  /** The position a topic's subscribers stand at on this node, if it is followed and synced. */
  positionOf(topic: string): Position | undefined {
    const log = this.#logs.get(topic)
    return log === undefined || log.state !== 'synced' ? undefined : { epoch: log.epoch, offset: log.top }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Publishes still waiting behind an append in flight will not be sent now.
    for (const batch of this.#outbox.values()) for (const settle of batch.settle) settle.reject(new Error('The delivery node is closed'))
    this.#outbox.clear()
    for (const log of this.#logs.values()) {
      if (log.timer !== undefined) clearTimeout(log.timer)
      log.generation++
      for (const waiter of log.waiting) if (!waiter.cancelled) waiter.ready(new Error('The delivery node is closed'))
    }
    this.#logs.clear()
    await this.#store.close()
  }

  #report(event: HistoryEvent): void {
    try {
      this.#onEvent?.(event)
    } catch {
      // A reporter that throws has nobody left to tell.
    }
  }

  // -------------------------------------------------------------------------
  // Syncing: reading the store

  #sync(log: TopicLog, after: number | undefined): void {
    log.state = 'syncing'
    const generation = ++log.generation
    if (log.timer !== undefined && log.users > 0) {
      clearTimeout(log.timer)
      log.timer = undefined
    }
    this.#stats.reads++
    let reading: Promise<ReadResult>
    try {
      reading = this.#store.read(log.topic, after, log.policy)
    } catch (error) {
      reading = Promise.reject(error)
    }
    reading.then(
      (result) => {
        if (generation === log.generation && this.#logs.get(log.topic) === log) this.#synced(log, result, after)
      },
      (error: Error) => {
        if (generation !== log.generation || this.#logs.get(log.topic) !== log) return
        this.#stats.readsFailed++
        this.#report({ type: 'error', stage: 'read', error })
        // Clients waiting are told (they retry); subscribers already there wait for the retry.
        const waiting = log.waiting
        log.waiting = []
        for (const waiter of waiting) if (!waiter.cancelled) waiter.ready(error)
        if (log.users === 0 && log.epoch === '') {
          this.#logs.delete(log.topic)
          return
        }
        log.retryDelay = Math.min(MAX_RETRY_DELAY, Math.max(100, log.retryDelay * 2))
        log.timer = setTimeout(() => {
          log.timer = undefined
          if (generation === log.generation && this.#logs.get(log.topic) === log) this.#sync(log, after)
        }, log.retryDelay)
        log.timer.unref?.()
      },
    )
  }

  #synced(log: TopicLog, result: ReadResult, after: number | undefined): void {
    log.retryDelay = 0
    const fresh = log.epoch === '' && log.top === 0
    if (result.epoch !== log.epoch && !fresh) {
      // A continuation read that found another epoch: the history was lost. Read all of the new one.
      if (after !== undefined) return this.#sync(log, undefined)
      const first = result.entries[0]?.offset ?? result.top + 1
      this.#tellGap(log, { reason: 'reset', count: undefined, from: { epoch: log.epoch, offset: log.top }, to: { epoch: result.epoch, offset: first - 1 } })
      log.retired.add(log.epoch)
      log.entries = []
      log.start = 0
      log.top = first - 1
    } else if (fresh) {
      const first = result.entries[0]?.offset ?? result.top + 1
      log.top = first - 1
    } else if (result.top < log.top) {
      // The store is behind what this node delivered in the same epoch (it lost its newest entries
      // without saying so): subscribers are told to take the store's positions from now on.
      this.#tellGap(log, { reason: 'reset', count: undefined, from: { epoch: log.epoch, offset: log.top }, to: { epoch: result.epoch, offset: result.top } })
      log.entries = log.entries.filter((entry) => entry.offset <= result.top)
      log.start = 0
      log.top = result.top
    }
    log.epoch = result.epoch
    const entries = result.entries.filter((entry) => entry.offset > log.top)
    const first = entries[0]?.offset ?? result.top + 1
    if (first > log.top + 1 && !fresh) {
      // What the feed missed is no longer retained (Rule 1).
      this.#tellGap(log, {
        reason: 'expired',
        count: first - log.top - 1,
        from: { epoch: log.epoch, offset: log.top },
        to: { epoch: log.epoch, offset: first - 1 },
      })
    }
    if (first > log.top + 1) {
      log.entries = []
      log.start = 0
      log.top = first - 1
    }
    this.#add(log, entries, fresh)
    log.state = 'synced'
    const pending = log.pending
    log.pending = []
    log.pendingCount = 0
    for (const batch of pending) this.#accept(log, batch.epoch, batch.entries)
    if (log.state !== 'synced') return
    if (log.overflowed) {
      log.overflowed = false
      return this.#sync(log, log.top)
    }
    const waiting = log.waiting
    log.waiting = []
    for (const waiter of waiting) this.#answer(log, waiter)
    if (log.users === 0 && log.timer === undefined) {
      // Everyone left while it was syncing.
      log.users = 1
      this.leave(log.topic)
    }
  }

  // -------------------------------------------------------------------------
  // The feed

  #accept(log: TopicLog, epoch: string, entries: HistoryEntry[]): void {
    if (entries.length === 0) return
    if (log.state === 'syncing') {
      log.pendingCount += entries.length
      if (log.pendingCount > 2 * log.policy.maxCount + 1024) log.overflowed = true
      else log.pending.push({ epoch, entries })
      return
    }
    if (epoch !== log.epoch) {
      if (log.retired.has(epoch)) return
      // The first entries of a topic that had none yet need no read.
      if (!(log.epoch === '' && log.top === 0 && entries[0]!.offset === 1)) {
        log.pending.push({ epoch, entries })
        log.pendingCount = entries.length
        return this.#sync(log, undefined)
      }
      log.epoch = epoch
    }
    let next = 0
    while (next < entries.length && entries[next]!.offset <= log.top) next++
    this.#stats.duplicates += next
    if (next === entries.length) return
    if (entries[next]!.offset > log.top + 1) {
      // A hole in the feed: read what is missing, keep the rest for after.
      log.pending.push({ epoch, entries: entries.slice(next) })
      log.pendingCount = entries.length - next
      return this.#sync(log, log.top)
    }
    this.#add(log, next === 0 ? entries : entries.slice(next), false)
  }

  /** Appends contiguous entries after `top` and delivers them to the subscribers there (not on a first read). */
  #add(log: TopicLog, entries: readonly HistoryEntry[], silent: boolean): void {
    if (entries.length === 0) return
    const added = entries as LogEntry[]
    for (const entry of added) log.entries.push(entry)
    log.top = added[added.length - 1]!.offset
    const excess = log.entries.length - log.start - log.policy.maxCount
    if (excess > 0) log.start += excess
    if (log.start > 64 && log.start * 2 >= log.entries.length) {
      log.entries = log.entries.slice(log.start)
      log.start = 0
    }
    if (!silent && log.users > 0) this.#hooks.deliver(log.topic, log.epoch, added)
  }

  #tellGap(log: TopicLog, gap: Gap): void {
    if (log.users === 0) return
    this.#stats.gaps++
    this.#hooks.gap(log.topic, gap)
  }

  // -------------------------------------------------------------------------
  // Answers

  /** The offset of the oldest entry a client may still recover (`top + 1` when none). */
  #firstRetained(log: TopicLog): number {
    const oldest = this.#now() - log.policy.maxAge
    let index = Math.max(log.start, log.entries.length - log.policy.maxCount)
    while (index < log.entries.length && log.entries[index]!.time < oldest) index++
    return index < log.entries.length ? log.entries[index]!.offset : log.top + 1
  }

  /** Retained entries after `offset`, oldest first. */
  #entriesAfter(log: TopicLog, offset: number): LogEntry[] {
    const head = log.entries[log.start]
    if (head === undefined) return []
    return log.entries.slice(Math.max(log.start, log.start + (offset + 1 - head.offset)))
  }

  #answer(log: TopicLog, waiter: Waiter): void {
    if (waiter.cancelled) return
    const plan = this.#plan(log, waiter)
    if (plan === undefined) return
    if (plan.gap !== undefined) this.#stats.gaps++
    waiter.ready(plan)
  }

  #plan(log: TopicLog, waiter: Waiter): JoinPlan | undefined {
    const position: Position = { epoch: log.epoch, offset: log.top }
    const first = this.#firstRetained(log)
    const { from, recent } = waiter.start
    if (from === undefined) {
      const count = Math.min(recent ?? 0, log.top + 1 - first)
      return { gap: undefined, entries: count > 0 ? this.#entriesAfter(log, log.top - count) : [], position }
    }
    const sameEpoch = from.epoch === log.epoch || (from.epoch === '' && from.offset === 0)
    if (!sameEpoch) {
      // Another epoch, or one this node never heard of: that history is gone; everything retained now is new to the client.
      return {
        gap: { reason: 'reset', count: undefined, from, to: { epoch: log.epoch, offset: first - 1 } },
        entries: this.#entriesAfter(log, first - 1),
        position,
      }
    }
    if (from.offset > log.top) {
      if (!waiter.rechecked) {
        // This node may only be behind the store: ask it before calling the position ahead.
        waiter.rechecked = true
        log.waiting.push(waiter)
        if (log.state === 'synced') this.#sync(log, log.top)
        return undefined
      }
      return { gap: { reason: 'ahead', count: undefined, from, to: position }, entries: [], position }
    }
    if (from.offset + 1 < first) {
      return {
        gap: { reason: 'expired', count: first - from.offset - 1, from, to: { epoch: log.epoch, offset: first - 1 } },
        entries: this.#entriesAfter(log, first - 1),
        position,
      }
    }
    return { gap: undefined, entries: this.#entriesAfter(log, from.offset), position }
  }
}
