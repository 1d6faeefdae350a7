/**
 * Topic history in NATS JetStream, with the official `nats` client (v2).
 *
 * One stream per cluster (`TETHER_HISTORY`) holds every topic, one subject
 * per topic (`tether.history.<topic in base64url>`); each tether message is
 * one JetStream message with the headers `Tether-Epoch` and `Tether-Offset`
 * and the record (flags, key, payload) as its body.
 *
 * Offsets: a topic's offsets must count up by one, but JetStream's sequence
 * numbers are the stream's, shared by every topic. So a node appends with a
 * compare-and-set: it knows the sequence of the topic's last message and the
 * offset it carried, writes the next offset, and asks JetStream to store the
 * message only if the subject's last sequence is still that one
 * (`Nats-Expected-Last-Subject-Sequence`). When another node appended first,
 * JetStream refuses (`wrong last sequence`), the node learns the new last
 * message and tries again. Stream order and offset order therefore agree for
 * every topic, whichever node appends. The cost is one broker round trip per
 * message per topic in turn (different topics go in parallel): the limit of
 * this backend, for a topic's publish rate, is the round trip to JetStream.
 *
 * Epochs: the first message of a subject that has none (never published,
 * or every message aged out) starts a run with a new random epoch and offset
 * 1, under the same compare-and-set (expected last sequence 0), so two nodes
 * cannot both start one. A deleted or wiped stream also starts new runs: a
 * position from before gets a `reset` gap.
 *
 * Idempotency: the key is the JetStream message id (`Nats-Msg-Id`), which
 * JetStream checks before the compare-and-set, within its duplicate window
 * (default 2 minutes): a repeated key is answered with the stored message's
 * position.
 *
 * The feed is an ordered consumer of the whole stream from the time the node
 * connected: it resumes from its last sequence after a reconnect, so the feed
 * misses nothing JetStream kept.
 *
 * Rule 1: appends and reads fail fast while disconnected and time out after
 * `commandTimeout`.
 * Rule 2: after a reconnect the node re-reads the topics it follows, and if
 * the stream was created anew (a wiped server), the feed restarts on it.
 */
import { reasonOf, redactUrl, resolveConnectTimeout, withConnectTimeout } from './connect-timeout.js'
import {
  type AppendRequest,
  type AppendResult,
  type HistoryEntry,
  type HistoryFeed,
  type HistoryPolicy,
  type HistoryStore,
  type Position,
  type ReadResult,
  decodeRequests,
  encodeRequests,
  newEpoch,
} from './history.js'

export interface JetStreamHistoryOptions {
  /** Where NATS is, e.g. `nats://127.0.0.1:4222` (ignored with `connection`); the server runs with JetStream (`-js`). */
  servers?: string | string[]
  /** Your own `nats` connection; the store leaves it open at close. */
  connection?: unknown
  /** The stream (default `TETHER_HISTORY`), created if missing; stores on different streams are separate clusters. */
  stream?: string
  /** The subjects' prefix (default `tether.history`). */
  subjectPrefix?: string
  /** `file` (default: history survives a restart of the server) or `memory`. */
  storage?: 'file' | 'memory'
  /** Messages JetStream keeps per topic at most (default 10,000; a topic's count window cannot be larger). */
  maxMessagesPerSubject?: number
  /** How long JetStream keeps any message, in ms (default 24 hours; a topic's age window cannot be longer). */
  maxAge?: number
  /** How long a key is remembered for idempotent publishing, in ms (default 2 minutes). */
  duplicateWindow?: number
  /** How long `connect()` waits, in ms (default 5000). */
  connectTimeout?: number
  /** How long an append or a read may take, in ms (default 5000). */
  commandTimeout?: number
}

const EPOCH_HEADER = 'Tether-Epoch'
const OFFSET_HEADER = 'Tether-Offset'
/** Tries of one append against other nodes' appends before giving up. */
const MAX_ATTEMPTS = 50

type Nats = any

interface TopicState {
  /** The stream sequence of the topic's last message (0: none). */
  seq: number
  epoch: string
  /** Its offset. */
  top: number
}

interface Queued {
  request: AppendRequest
  resolve: (position: Position) => void
  reject: (error: Error) => void
}

const nanos = (ms: number): number => Math.round(ms * 1_000_000)

/**
 * The stream sequence, time (ms) and pending count of a message a push
 * consumer delivered, from its reply subject: `$JS.ACK.<stream>.<consumer>.
 * <delivered>.<stream seq>.<consumer seq>.<nanos>.<pending>`, or the longer
 * form with a domain and an account hash first (and a random token last).
 */
function replyInfo(reply: string | undefined): { seq: number; time: number; pending: number } | undefined {
  if (reply === undefined || !reply.startsWith('$JS.ACK.')) return undefined
  const tokens = reply.split('.')
  const base = tokens.length === 9 ? 5 : tokens.length >= 11 ? 7 : -1
  if (base === -1) return undefined
  const seq = Number(tokens[base])
  const nanosTime = Number(tokens[base + 2])
  const pending = Number(tokens[base + 3])
  if (!Number.isSafeInteger(seq)) return undefined
  return { seq, time: Math.floor(nanosTime / 1_000_000), pending }
}

function apiCode(error: unknown): number | undefined {
  return (error as { api_error?: { err_code?: number } })?.api_error?.err_code
}

export class JetStreamHistory implements HistoryStore {
  readonly kind = 'jetstream'
  readonly stream: string
  readonly subjectPrefix: string
  readonly #nats: Nats
  readonly #connection: Nats
  readonly #js: Nats
  readonly #jsm: Nats
  readonly #owns: boolean
  readonly #options: Required<Pick<JetStreamHistoryOptions, 'storage' | 'maxMessagesPerSubject' | 'maxAge' | 'duplicateWindow' | 'commandTimeout'>>
  readonly #state = new Map<string, TopicState>()
  readonly #queues = new Map<string, Queued[]>()
  readonly #instance = newEpoch()
  #keys = 0
  #feed: HistoryFeed | undefined
  #feedSubscription: Nats | undefined
  #feedConsumer: string | undefined
  /** The last stream sequence the feed delivered. */
  #feedSeq = 0
  /** The stream is a new one (a wiped server): the feed starts at its first message. */
  #feedFromStart = false
  #created: string | undefined
  #down = false
  #closed = false

  /**
   * Connects to NATS, creates the stream if it is missing, and starts the
   * feed. Rejects, naming the servers, when NATS refuses, has no JetStream,
   * or does not answer within `connectTimeout`.
   *
   * @example
   * ```ts
   * const store = await JetStreamHistory.connect({ servers: 'nats://127.0.0.1:4222' })
   * attachDelivery(wss, { store, history: { maxCount: 100, maxAge: 300_000 } })
   * ```
   */
  static async connect(options: JetStreamHistoryOptions = {}): Promise<JetStreamHistory> {
    const timeout = resolveConnectTimeout(options.connectTimeout)
    const servers = options.servers ?? 'nats://127.0.0.1:4222'
    const where = options.connection === undefined ? [servers].flat().map((server) => redactUrl(String(server))).join(', ') : 'the given connection'
    const fail = (error: unknown): Error => {
      // No responders on the JetStream API: the server runs without JetStream.
      const reason = (error as { code?: string })?.code === '503' ? 'JetStream is not enabled on that server (run nats-server -js)' : reasonOf(error)
      return new Error(`Could not connect the JetStream history to ${where}: ${reason}`, { cause: error })
    }
    let nats: Nats
    try {
      nats = await import('nats')
    } catch {
      throw new Error("The JetStream history needs the 'nats' package: npm install nats")
    }
    let connection: Nats = options.connection
    let store: JetStreamHistory | undefined
    const work = (async () => {
      if (connection === undefined) {
        connection = await nats.connect({ servers, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: timeout + 1_000 })
      }
      store = new JetStreamHistory(nats, connection, options.connection === undefined, options, await connection.jetstreamManager({ timeout }))
      await store.#ensureStream()
      await store.#startFeed()
      return store
    })()
    try {
      return await withConnectTimeout(work, timeout, () => {
        if (options.connection === undefined) void connection?.close().catch(() => {})
      })
    } catch (error) {
      await store?.close()
      if (store === undefined && options.connection === undefined) void work.then((late) => late.close(), () => connection?.close().catch(() => {}))
      throw fail(error)
    }
  }

  private constructor(nats: Nats, connection: Nats, owns: boolean, options: JetStreamHistoryOptions, jsm: Nats) {
    this.#nats = nats
    this.#connection = connection
    this.#owns = owns
    this.#jsm = jsm
    this.#js = connection.jetstream({ timeout: options.commandTimeout ?? 5_000 })
    this.stream = options.stream ?? 'TETHER_HISTORY'
    this.subjectPrefix = options.subjectPrefix ?? 'tether.history'
    this.#options = {
      storage: options.storage ?? 'file',
      maxMessagesPerSubject: options.maxMessagesPerSubject ?? 10_000,
      maxAge: options.maxAge ?? 24 * 3600 * 1000,
      duplicateWindow: options.duplicateWindow ?? 120_000,
      commandTimeout: options.commandTimeout ?? 5_000,
    }
    void this.#watch()
  }

  attach(feed: HistoryFeed): void {
    if (this.#feed !== undefined) throw new Error('This history store is already attached to a node; connect one per node')
    this.#feed = feed
  }

  append(topic: string, requests: AppendRequest[], _policy: HistoryPolicy): Promise<AppendResult> {
    const settled = requests.map(
      (request) =>
        new Promise<Position>((resolve, reject) => {
          let queue = this.#queues.get(topic)
          const start = queue === undefined
          if (queue === undefined) this.#queues.set(topic, (queue = []))
          queue.push({ request, resolve, reject })
          if (start) void this.#drain(topic, queue)
        }),
    )
    return Promise.all(settled).then((positions) => ({ epoch: positions[positions.length - 1]!.epoch, offsets: positions.map((position) => position.offset) }))
  }

  async read(topic: string, after: number | undefined, policy: HistoryPolicy): Promise<ReadResult> {
    this.#checkUp()
    const last = await this.#last(topic)
    if (last.seq === 0 || last.time < Date.now() - policy.maxAge) return { epoch: last.epoch, top: last.top, entries: [] }
    const firstWanted = Math.max((after ?? 0) + 1, last.top - policy.maxCount + 1)
    if (firstWanted > last.top) return { epoch: last.epoch, top: last.top, entries: [] }
    // A push consumer of the topic's subject from the start of the age window, read until the last message.
    const entries: HistoryEntry[] = []
    await this.#consume(
      { filter_subject: this.#subject(topic), deliver_policy: this.#nats.DeliverPolicy.StartTime, opt_start_time: new Date(Date.now() - policy.maxAge).toISOString() },
      (message, seq) => {
        const entry = this.#entryOf(message)
        if (entry !== undefined && entry.epoch === last.epoch && entry.entry.offset >= firstWanted && entry.entry.offset <= last.top) entries.push(entry.entry)
        return seq >= last.seq
      },
    )
    return { epoch: last.epoch, top: last.top, entries }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const queue of this.#queues.values()) for (const item of queue.splice(0)) item.reject(new Error('The JetStream history is closed'))
    this.#stopFeed()
    if (this.#owns && !this.#connection.isClosed()) await this.#connection.close().catch(() => {})
  }

  #subject(topic: string): string {
    return `${this.subjectPrefix}.${Buffer.from(topic, 'utf8').toString('base64url')}`
  }

  #topicOf(subject: string): string | undefined {
    if (!subject.startsWith(`${this.subjectPrefix}.`)) return undefined
    return Buffer.from(subject.slice(this.subjectPrefix.length + 1), 'base64url').toString('utf8')
  }

  #checkUp(): void {
    if (this.#closed) throw new Error('The JetStream history is closed')
    if (this.#down) throw new Error('NATS is not connected')
  }

  /** A JetStream message as an entry, with the epoch it belongs to. */
  #entryOf(message: { headers?: Nats; data: Uint8Array; time?: Date; header?: Nats; reply?: string }, time?: number): { epoch: string; entry: HistoryEntry } | undefined {
    const headers = message.headers ?? message.header
    const epoch = headers?.get(EPOCH_HEADER)
    const offset = Number(headers?.get(OFFSET_HEADER))
    if (!epoch || !Number.isSafeInteger(offset)) return undefined
    const [record] = decodeRequests(message.data)
    if (record === undefined) return undefined
    const at = time ?? replyInfo(message.reply)?.time ?? message.time?.getTime() ?? Date.now()
    return { epoch, entry: { ...record, offset, time: at } }
  }

  /** The topic's last message: its sequence, epoch, offset and time (sequence 0: none). */
  async #last(topic: string): Promise<TopicState & { time: number }> {
    try {
      const stored = await this.#jsm.streams.getMessage(this.stream, { last_by_subj: this.#subject(topic) })
      const entry = this.#entryOf(stored)
      if (entry === undefined) throw new Error(`The last message of ${topic} in ${this.stream} is not a tether history entry`)
      return { seq: stored.seq, epoch: entry.epoch, top: entry.entry.offset, time: entry.entry.time }
    } catch (error) {
      const code = apiCode(error)
      // 10037: no message found. 10059: stream not found (a wiped server): recreated, and empty.
      if (code === 10037) return { seq: 0, epoch: '', top: 0, time: 0 }
      if (code === 10059) {
        await this.#ensureStream()
        return { seq: 0, epoch: '', top: 0, time: 0 }
      }
      throw error
    }
  }

  async #drain(topic: string, queue: Queued[]): Promise<void> {
    while (queue.length > 0) {
      const item = queue[0]!
      try {
        item.resolve(await this.#appendOne(topic, item.request))
      } catch (error) {
        item.reject(error as Error)
      }
      queue.shift()
    }
    if (this.#queues.get(topic) === queue) this.#queues.delete(topic)
  }

  async #appendOne(topic: string, request: AppendRequest): Promise<Position> {
    const key = request.key ?? `${this.#instance}.${++this.#keys}`
    const record = encodeRequests([{ ...request, key }])
    const subject = this.#subject(topic)
    let lastError: unknown
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      this.#checkUp()
      let state = this.#state.get(topic)
      if (state === undefined) {
        const last = await this.#last(topic)
        state = { seq: last.seq, epoch: last.epoch, top: last.top }
      }
      const run = state.seq === 0
      const epoch = run ? newEpoch() : state.epoch
      const offset = run ? 1 : state.top + 1
      const headers = this.#nats.headers()
      headers.set(EPOCH_HEADER, epoch)
      headers.set(OFFSET_HEADER, String(offset))
      let ack: { seq: number; duplicate: boolean }
      try {
        ack = await this.#js.publish(subject, record, {
          headers,
          msgID: key,
          expect: { lastSubjectSequence: state.seq },
          timeout: this.#options.commandTimeout,
        })
      } catch (error) {
        this.#state.delete(topic)
        lastError = error
        const code = apiCode(error)
        // 10071: wrong last sequence: another node appended first; learn its message and try again.
        if (code === 10071) continue
        // 503: no stream answers the subject (a wiped server): create it again.
        if ((error as { code?: string })?.code === '503') {
          await this.#ensureStream()
          continue
        }
        throw error
      }
      if (ack.duplicate) {
        // The key was published before (a retry after a lost answer): its position is in the stored message.
        const stored = await this.#jsm.streams.getMessage(this.stream, { seq: ack.seq })
        const entry = this.#entryOf(stored)
        if (entry === undefined) throw new Error(`The message with key ${key} is no longer in ${this.stream}`)
        return { epoch: entry.epoch, offset: entry.entry.offset }
      }
      this.#remember(topic, { seq: ack.seq, epoch, top: offset })
      return { epoch, offset }
    }
    throw new Error(`Could not append to ${topic} after ${MAX_ATTEMPTS} tries against other nodes: ${reasonOf(lastError)}`, { cause: lastError })
  }

  #remember(topic: string, state: TopicState): void {
    const known = this.#state.get(topic)
    if (known !== undefined && known.seq >= state.seq) return
    this.#state.delete(topic)
    this.#state.set(topic, state)
    if (this.#state.size > 10_000) this.#state.delete(this.#state.keys().next().value as string)
  }

  async #ensureStream(): Promise<void> {
    let info: Nats
    try {
      info = await this.#jsm.streams.info(this.stream)
    } catch (error) {
      if (apiCode(error) !== 10059) throw error
      try {
        info = await this.#jsm.streams.add({
          name: this.stream,
          subjects: [`${this.subjectPrefix}.>`],
          storage: this.#options.storage === 'memory' ? this.#nats.StorageType.Memory : this.#nats.StorageType.File,
          max_msgs_per_subject: this.#options.maxMessagesPerSubject,
          max_age: nanos(this.#options.maxAge),
          duplicate_window: nanos(this.#options.duplicateWindow),
          discard: this.#nats.DiscardPolicy.Old,
          num_replicas: 1,
        })
      } catch (addError) {
        // Another node created it at the same moment.
        if (apiCode(addError) !== 10058) throw addError
        info = await this.#jsm.streams.info(this.stream)
      }
    }
    const created = String(info.created)
    if (this.#created !== undefined && this.#created !== created) {
      // A new stream: positions of the old one are gone (new runs, new epochs); the feed follows the new one.
      this.#state.clear()
      this.#created = created
      this.#feedSeq = 0
      this.#feedFromStart = true
      return
    }
    this.#created = created
  }

  /**
   * Reads messages through an ephemeral push consumer (no acknowledgements)
   * until `each` returns true, nothing is pending, or the command timeout.
   */
  async #consume(config: object, each: (message: Nats, seq: number) => boolean): Promise<void> {
    const inbox = this.#nats.createInbox()
    let finish: () => void = () => {}
    const finished = new Promise<void>((resolve) => (finish = resolve))
    const subscription = this.#connection.subscribe(inbox, {
      callback: (error: Error | null, message: Nats) => {
        if (error !== null) return finish()
        const info = replyInfo(message.reply)
        if (info === undefined) return
        if (each(message, info.seq) || info.pending === 0) finish()
      },
    })
    let name: string | undefined
    const timer = setTimeout(finish, this.#options.commandTimeout)
    try {
      const created = await this.#jsm.consumers.add(this.stream, {
        ...config,
        deliver_subject: inbox,
        ack_policy: this.#nats.AckPolicy.None,
        mem_storage: true,
        num_replicas: 1,
        inactive_threshold: nanos(10_000),
      })
      name = created.name
      if (created.num_pending === 0) finish()
      await finished
    } finally {
      clearTimeout(timer)
      subscription.unsubscribe()
      if (name !== undefined) void this.#jsm.consumers.delete(this.stream, name).catch(() => {})
    }
  }

  /** The feed: an ephemeral push consumer of every topic, from after the last sequence it delivered (Rule 2). */
  async #startFeed(): Promise<void> {
    this.#stopFeed()
    const inbox = this.#nats.createInbox()
    const subscription = this.#connection.subscribe(inbox, {
      callback: (error: Error | null, message: Nats) => {
        if (error !== null || this.#feedSubscription !== subscription) return
        const info = replyInfo(message.reply)
        if (info === undefined || info.seq <= this.#feedSeq) return
        this.#feedSeq = info.seq
        const topic = this.#topicOf(message.subject)
        const entry = topic === undefined ? undefined : this.#entryOf(message, info.time)
        if (topic === undefined || entry === undefined) {
          this.#feed?.event({ type: 'error', stage: 'feed', error: new Error(`A message on ${message.subject} that is not a tether history entry`) })
          return
        }
        this.#remember(topic, { seq: info.seq, epoch: entry.epoch, top: entry.entry.offset })
        this.#feed?.entries(topic, entry.epoch, [entry.entry])
      },
    })
    this.#feedSubscription = subscription
    const from = this.#feedSeq
    const created = await this.#jsm.consumers.add(this.stream, {
      deliver_subject: inbox,
      filter_subject: `${this.subjectPrefix}.>`,
      ack_policy: this.#nats.AckPolicy.None,
      ...(from > 0 ? { deliver_policy: this.#nats.DeliverPolicy.StartSequence, opt_start_seq: from + 1 } : { deliver_policy: this.#feedFromStart ? this.#nats.DeliverPolicy.All : this.#nats.DeliverPolicy.New }),
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(60_000),
    })
    if (this.#feedSubscription !== subscription) {
      void this.#jsm.consumers.delete(this.stream, created.name).catch(() => {})
      return
    }
    this.#feedConsumer = created.name
  }

  #stopFeed(): void {
    this.#feedSubscription?.unsubscribe()
    this.#feedSubscription = undefined
    const name = this.#feedConsumer
    this.#feedConsumer = undefined
    if (name !== undefined && !this.#connection.isClosed()) void this.#jsm.consumers.delete(this.stream, name).catch(() => {})
  }

  async #restartFeed(): Promise<void> {
    if (this.#closed || this.#down) return
    try {
      await this.#ensureStream()
      await this.#startFeed()
      this.#feed?.resync()
    } catch (error) {
      if (this.#closed) return
      this.#feed?.event({ type: 'error', stage: 'feed', error: error as Error })
      setTimeout(() => void this.#restartFeed(), 1_000).unref?.()
    }
  }

  async #watch(): Promise<void> {
    try {
      for await (const status of this.#connection.status()) {
        if (this.#closed) return
        if (status.type === 'disconnect') {
          this.#down = true
          this.#feed?.event({ type: 'disconnected' })
        } else if (status.type === 'reconnect') {
          this.#down = false
          this.#state.clear()
          this.#feed?.event({ type: 'reconnected' })
          // Rule 2: the feed goes on after its last sequence (on the stream, or on a new one), and the topics followed are read again.
          void this.#restartFeed()
        }
      }
    } catch (error) {
      if (!this.#closed) this.#feed?.event({ type: 'error', stage: 'connect', error: error as Error })
    }
    this.#down = true
  }
}
