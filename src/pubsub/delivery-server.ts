/**
 * The server side of `tether.v1` (src/client/protocol.ts): sessions of
 * sockets that negotiated it, over a `Delivery` node (delivery.ts) and the
 * server's topics, which frame each message once for all its subscribers.
 *
 * Theory of operation: a subscription is answered in one synchronous step
 * when the topic's log is synced and the replay fits the socket's window
 * (Rule 5): a gap if any, the replay (sent on the socket), `subscribed`,
 * then the socket joins a registry topic of the
 * server (`tether.v1:b:TOPIC`, or `tether.v1:j:TOPIC` for JSON sessions),
 * on which every later entry is published locally as a ready frame. So live
 * delivery is the server's own fan-out: one frame for every subscriber, sent
 * behind the replay, and the slow-consumer policy applies (it must be
 * `close`: a closed client resumes; a dropped message would be lost
 * silently).
 *
 * Rule 1: nothing a client sends crashes the process or is dropped without
 * an answer: a message that does not parse gets an `error` (bad-message)
 * and the connection closes with 1008; a refused request gets an `error`
 * with its code and id; a resume the history cannot satisfy gets a `gap`.
 * Rule 2: permissions and limits are the caller's, through `SessionHooks`
 * (the hub plugs its tokens and publish buckets in there).
 * Rule 3: the server and the sockets arrive as structural types
 * (`*Like`): this module imports no socket code.
 * Rule 4 (a publisher's order on a topic): once a keyed publish on a topic
 * failed (the broker did not take it, or it was over the publish limit:
 * both may be sent again), the session fails later ones on that
 * topic too, until the client sends one of the failed keys again (the
 * client resends what failed, in the order it published). Otherwise a
 * message sent after the failure, as the broker came back, would be stored
 * before the failed one's retry; the node fails what waited behind the
 * failed append for the same reason (delivery.ts).
 * Rule 5 (replays are paced): a connection has at most `maxReplayBuffer`
 * bytes of replay waiting to be written; the rest waits for the socket to
 * drain, so a client that subscribes to much history and stops reading
 * costs that window, not the history (an outsider held 67 MB per such
 * connection before).
 */
import {
  type ClientMessage,
  ErrorCode,
  PROTOCOL,
  PROTOCOL_JSON,
  type ServerMessage,
  parseClientMessage,
  serializeServerMessage,
  serializeServerMessageJson,
} from '../client/protocol.js'
import { Delivery, type DeliveryStats, type Gap, type JoinPlan, type LogEntry } from './delivery.js'
import { type HistoryEvent, type HistoryPolicy, type HistoryStore, type Position, resolveHistoryPolicy } from './history.js'
import { MemoryHistory } from './history-memory.js'

type Listener = (...args: any[]) => void

/** What a session needs of a socket (tether's and ws's WebSocket have it; `subscribe` is tether's). */
export interface DeliverySocketLike {
  readonly protocol: string
  readonly readyState: number
  send(data: Uint8Array | string): void
  close(code?: number, reason?: string): void
  subscribe(topic: string): boolean
  unsubscribe(topic: string): boolean
  on(event: string, listener: Listener): unknown
  /** Bytes waiting to be written; replays are paced by it (Rule 5). */
  readonly bufferedAmount: number
  once?(event: string, listener: Listener): unknown
}

/** What the server piece needs of a WebSocketServer (tether's): a local publish; `on` for `attachDelivery`. */
export interface DeliveryServerLike {
  publish(topic: string, data: Uint8Array | string, options?: { binary?: boolean; local?: boolean }): unknown
  on?(event: string, listener: Listener): unknown
  readonly options?: { topics?: { policy?: string } | undefined } | undefined
}

/** Per-session decisions: permissions and limits (Rule 2). Topics are as the client names them. */
export interface SessionHooks {
  canSubscribe?(topic: string): boolean
  canPublish?(topic: string): boolean
  /** `ok`; `drop`: this publish is refused (rate-limited); `close`: the connection is closed with 1008. */
  checkPublish?(topic: string, bytes: number): 'ok' | 'drop' | 'close'
}

/** How a client's topic is named in the store, and back (`DeliveryServerOptions.names`). */
export interface TopicNames {
  toStore(topic: string): string
  toClient(storeTopic: string): string
}

export interface DeliveryServerOptions {
  /** Where history is kept (default: in this process, `new MemoryHistory()`). */
  store?: HistoryStore | undefined
  /**
   * Which topics keep history, and how much: one policy for all, or a
   * function of the topic (undefined: that topic keeps none and is refused
   * with `no-history`). Default: every topic, 100 messages, 5 minutes.
   */
  history?: Partial<HistoryPolicy> | ((topic: string) => Partial<HistoryPolicy> | undefined) | undefined
  /** Prepended to a client's topic to name it in the store and the server (e.g. `relay:`). Default none. */
  prefix?: string | undefined
  /**
   * Instead of `prefix`: how a client's topic is named in the store and back,
   * for servers with several namespaces (the hub: relay topics, and its apps'
   * topics). `toClient(toStore(name))` must give `name` back.
   */
  names?: TopicNames | undefined
  /** Longest topic name, in UTF-16 units (default 200). */
  maxTopicLength?: number | undefined
  /** Subscriptions per connection (default 256). */
  maxSubscriptions?: number | undefined
  /** Publishes per connection waiting for the store (default 1024). */
  maxPendingPublishes?: number | undefined
  /**
   * Bytes of replay a connection may have waiting to be written before its
   * replay pauses until the socket drains (default 1 MiB): a client that
   * subscribes and stops reading costs about this much, however much history
   * it asked for (Rule 5).
   */
  maxReplayBuffer?: number | undefined
  /** How long a topic's log stays after its last subscriber on this node left, ms (default 30 s). */
  linger?: number | undefined
  onEvent?: ((event: HistoryEvent) => void) | undefined
  /** The clock that ages history, ms since 1970 (tests; give the store the same one). */
  now?: (() => number) | undefined
}

/**
 * Bytes to send as a Buffer view (no copy) where there is one: tether's `send` takes its fast path (no send
 * queue is built for the socket, so published frames keep theirs) only for a string or a Buffer.
 */
const sendable: (bytes: Uint8Array) => Uint8Array =
  typeof Buffer === 'function' ? (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : (bytes) => bytes

/** The registry topic a socket joins for live delivery of `topic` in an encoding. */
function registryTopic(json: boolean, topic: string): string {
  return (json ? 'tether.v1:j:' : 'tether.v1:b:') + topic
}

/** The subprotocol a server selects among those a client offers (`handleProtocols`), or false. */
export function selectDeliveryProtocol(protocols: ReadonlySet<string>): string | false {
  if (protocols.has(PROTOCOL)) return PROTOCOL
  if (protocols.has(PROTOCOL_JSON)) return PROTOCOL_JSON
  return false
}

export function isDeliveryProtocol(protocol: string): boolean {
  return protocol === PROTOCOL || protocol === PROTOCOL_JSON
}

export class DeliveryServer {
  readonly delivery: Delivery
  readonly #wss: DeliveryServerLike
  readonly #names: TopicNames
  readonly #limits: { maxTopicLength: number; maxSubscriptions: number; maxPendingPublishes: number; maxReplayBuffer: number }
  readonly #sessions = new Set<DeliverySession>()
  /** Sockets joined per registry topic: frames are built only for encodings someone reads. */
  readonly #joined = new Map<string, number>()

  constructor(wss: DeliveryServerLike, options: DeliveryServerOptions = {}) {
    const policy = wss.options?.topics?.policy
    if (policy !== undefined && policy !== 'close') {
      throw new TypeError(`tether.v1 needs the 'close' slow-consumer policy (a client closed resumes; with '${policy}' a message could be lost silently)`)
    }
    this.#wss = wss
    if (options.names !== undefined && options.prefix !== undefined) throw new TypeError('DeliveryServer: give prefix or names, not both')
    const prefix = options.prefix ?? ''
    this.#names = options.names ?? { toStore: (topic) => prefix + topic, toClient: (storeTopic) => storeTopic.slice(prefix.length) }
    this.#limits = {
      maxTopicLength: options.maxTopicLength ?? 200,
      maxSubscriptions: options.maxSubscriptions ?? 256,
      maxPendingPublishes: options.maxPendingPublishes ?? 1024,
      maxReplayBuffer: options.maxReplayBuffer ?? 1024 * 1024,
    }
    const history = options.history
    let policyFor: (topic: string) => HistoryPolicy | undefined
    if (typeof history === 'function') {
      const cache = new Map<string, HistoryPolicy | undefined>()
      policyFor = (topic) => {
        if (cache.has(topic)) return cache.get(topic)
        const given = history(this.#names.toClient(topic))
        const resolved = given === undefined ? undefined : resolveHistoryPolicy(given)
        if (cache.size > 10_000) cache.clear()
        cache.set(topic, resolved)
        return resolved
      }
    } else {
      const resolved = resolveHistoryPolicy(history)
      policyFor = () => resolved
    }
    this.delivery = new Delivery({
      store: options.store ?? new MemoryHistory(),
      policyFor,
      linger: options.linger,
      onEvent: options.onEvent,
      now: options.now,
      hooks: {
        deliver: (topic, epoch, entries) => this.#broadcast(topic, epoch, entries),
        gap: (topic, gap) => this.#broadcastGap(topic, gap),
      },
    })
  }

  get stats(): DeliveryStats & { sessions: number } {
    return { ...this.delivery.stats, sessions: this.#sessions.size }
  }

  /**
   * Serves `tether.v1` on a socket; feed it the socket's messages and its
   * close. Binary answers if the socket negotiated `tether.v1`, JSON text
   * otherwise (`tether.v1.json`, or no subprotocol: a person debugging),
   * unless `encoding` says.
   */
  accept(ws: DeliverySocketLike, hooks: SessionHooks = {}, encoding?: 'binary' | 'json'): DeliverySession {
    const session = new DeliverySession(this, ws, hooks, encoding === undefined ? ws.protocol !== PROTOCOL : encoding === 'json')
    this.#sessions.add(session)
    return session
  }

  /**
   * Publishes into a topic's history as the server (no session hooks apply);
   * resolves with the position once the store has it.
   */
  publish(topic: string, data: Uint8Array | string, options: { binary?: boolean; key?: string } = {}): Promise<Position> {
    const bytes = typeof data === 'string' ? encoder.encode(data) : data.slice()
    return this.delivery.publish(this.#names.toStore(topic), { data: bytes, binary: options.binary ?? typeof data !== 'string', key: options.key })
  }

  async close(): Promise<void> {
    for (const session of [...this.#sessions]) session.close()
    await this.delivery.close()
  }

  /** @internal */
  _forget(session: DeliverySession): void {
    this.#sessions.delete(session)
  }

  /** @internal */
  get _limits(): { maxTopicLength: number; maxSubscriptions: number; maxPendingPublishes: number; maxReplayBuffer: number } {
    return this.#limits
  }

  /** @internal The store's name of a client's topic. */
  _storeTopic(topic: string): string {
    return this.#names.toStore(topic)
  }

  /** @internal A frame of an entry, built once per encoding and kept with the entry. */
  _frame(topic: string, epoch: string, entry: LogEntry, json: boolean): Uint8Array | string {
    const key = json ? 'tether.v1.json' : 'tether.v1'
    const frames = (entry.frames ??= {})
    let frame = frames[key]
    if (frame === undefined) {
      const message: ServerMessage = {
        type: 'deliver',
        topic: this.#names.toClient(topic),
        position: { epoch, offset: entry.offset },
        data: entry.data,
        binary: entry.binary,
      }
      frame = frames[key] = json ? serializeServerMessageJson(message) : sendable(serializeServerMessage(message))
    }
    return frame
  }

  /** @internal */
  _gapMessage(topic: string, gap: Gap): ServerMessage {
    return { type: 'gap', topic: this.#names.toClient(topic), reason: gap.reason, count: gap.count, from: gap.from, to: gap.to }
  }

  /** @internal */
  _join(json: boolean, topic: string, ws: DeliverySocketLike): void {
    const registry = registryTopic(json, topic)
    if (ws.subscribe(registry)) this.#joined.set(registry, (this.#joined.get(registry) ?? 0) + 1)
  }

  /** @internal */
  _leave(json: boolean, topic: string, ws: DeliverySocketLike): void {
    const registry = registryTopic(json, topic)
    // A closed socket left its topics already; the count goes down all the same.
    ws.unsubscribe(registry)
    const count = (this.#joined.get(registry) ?? 1) - 1
    if (count > 0) this.#joined.set(registry, count)
    else this.#joined.delete(registry)
  }

  #broadcast(topic: string, epoch: string, entries: readonly LogEntry[]): void {
    for (const json of [false, true]) {
      const registry = registryTopic(json, topic)
      if (!this.#joined.has(registry)) continue
      for (const entry of entries) this.#wss.publish(registry, this._frame(topic, epoch, entry, json), { binary: !json, local: true })
    }
  }

  #broadcastGap(topic: string, gap: Gap): void {
    const message = this._gapMessage(topic, gap)
    for (const json of [false, true]) {
      const registry = registryTopic(json, topic)
      if (!this.#joined.has(registry)) continue
      this.#wss.publish(registry, json ? serializeServerMessageJson(message) : serializeServerMessage(message), { binary: !json, local: true })
    }
  }
}

const encoder = new TextEncoder()
const OPEN = 1
/**
 * What has no place in a topic name: control characters (C0 and C1), invisible format characters (zero-width
 * spaces and joiners, bidirectional overrides, the BOM), line and paragraph separators, noncharacters, and a
 * surrogate without its pair (which has no UTF-8 form).
 */
const NOT_A_NAME = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Noncharacter_Code_Point}]/u

/** Longest idempotency key, in UTF-16 units (the client's are about 20). */
const MAX_KEY_LENGTH = 256
/** Keys remembered per blocked topic, and blocked topics per session (Rule 4): bounds, not expected sizes. */
const MAX_FAILED_KEYS = 1024
const MAX_BLOCKED_TOPICS = 256

interface Subscription {
  id: number
  /** The store's name. */
  topic: string
  joined: boolean
  cancel: () => void
}

/** A subscription's replay being written (Rule 5). */
interface Replay {
  /** As the client names it. */
  topic: string
  subscription: Subscription
  entries: readonly LogEntry[]
  next: number
  epoch: string
  /** Where the plan left the subscriber: the topic's newest when it was made. */
  position: Position
  /** Entries replayed so far, over every round. */
  recovered: number
  /** The replay waited for the socket: entries may have come since the plan, so it asks again at the end. */
  stale: boolean
}

/** One connection speaking `tether.v1`. */
export class DeliverySession {
  readonly #server: DeliveryServer
  readonly #ws: DeliverySocketLike
  readonly #hooks: SessionHooks
  readonly #json: boolean
  readonly #subscriptions = new Map<string, Subscription>()
  /**
   * Rule 4: topics with a failed keyed publish, and the keys that failed there since. */
  readonly #failed = new Map<string, Set<string>>()
  #pendingPublishes = 0
  /** Replays waiting to be written, in the order their plans came (Rule 5). */
  #replays: Replay[] = []
  #pumping = false
  #waitingForRoom = false
  #closed = false

  constructor(server: DeliveryServer, ws: DeliverySocketLike, hooks: SessionHooks, json: boolean) {
    this.#server = server
    this.#ws = ws
    this.#hooks = hooks
    this.#json = json
  }

  /** The topics this session is subscribed to (as the client names them), joined or still being answered. */
  get topics(): string[] {
    return [...this.#subscriptions.keys()]
  }

  /** A message from the client (Rule 1). */
  receive(data: Uint8Array | string, isBinary: boolean): void {
    if (this.#closed) return
    const message = parseClientMessage(data, isBinary)
    if (message.type === 'invalid') {
      this.#send({ type: 'error', id: 0, code: ErrorCode.BadMessage, message: `Not a tether.v1 message: ${message.reason}`, topic: '' })
      if (this.#ws.readyState === OPEN) this.#ws.close(1008, 'malformed tether.v1 message')
      return
    }
    const problem = this.#checkTopic(message.topic)
    if (problem !== undefined) return this.#error(message.id, ErrorCode.BadRequest, problem, message.topic)
    if (message.type === 'subscribe') this.#subscribe(message)
    else if (message.type === 'unsubscribe') this.#unsubscribe(message.id, message.topic)
    else this.#publish(message)
  }

  /** The connection closed: leaves every topic. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#replays = []
    for (const subscription of this.#subscriptions.values()) this.#drop(subscription)
    this.#subscriptions.clear()
    this.#server._forget(this)
  }

  #checkTopic(topic: string): string | undefined {
    const max = this.#server._limits.maxTopicLength
    if (topic.length === 0 || topic.length > max) return `A topic is 1-${max} characters`
    // A lone surrogate (JSON can carry one) has no UTF-8 form: a store keeping names as UTF-8 would give two
    // such names one history (an outsider's finding). Invisible and control characters make look-alike names.
    if (NOT_A_NAME.test(topic)) return 'A topic is visible text: no control, format or separator characters, no lone surrogates'
    return undefined
  }

  #subscribe(message: Extract<ClientMessage, { type: 'subscribe' }>): void {
    const { id, topic, from, recent } = message
    if (this.#subscriptions.has(topic)) return this.#error(id, ErrorCode.BadRequest, `Already subscribed to ${topic}`, topic)
    if (this.#subscriptions.size >= this.#server._limits.maxSubscriptions) {
      return this.#error(id, ErrorCode.Limit, `At most ${this.#server._limits.maxSubscriptions} subscriptions per connection`, topic)
    }
    const storeTopic = this.#server._storeTopic(topic)
    if (this.#server.delivery.policyFor(storeTopic) === undefined) return this.#error(id, ErrorCode.NoHistory, `${topic} keeps no history`, topic)
    if (this.#hooks.canSubscribe?.(topic) === false) return this.#error(id, ErrorCode.NotAllowed, `Not allowed to subscribe to ${topic}`, topic)
    const subscription: Subscription = { id, topic: storeTopic, joined: false, cancel: () => {} }
    this.#subscriptions.set(topic, subscription)
    subscription.cancel = this.#server.delivery.join(storeTopic, { from, recent }, (plan) => this.#answer(topic, subscription, plan))
  }

  #answer(topic: string, subscription: Subscription, plan: JoinPlan | Error, recovered = 0): void {
    if (this.#closed || this.#subscriptions.get(topic) !== subscription) return
    if (plan instanceof Error) {
      this.#subscriptions.delete(topic)
      this.#server.delivery.leave(subscription.topic)
      return this.#error(subscription.id, ErrorCode.Unavailable, 'The history could not be read: subscribe again later', topic)
    }
    if (this.#ws.readyState !== OPEN) return
    if (plan.gap !== undefined) this.#send(this.#server._gapMessage(subscription.topic, plan.gap))
    this.#replays.push({ topic, subscription, entries: plan.entries, next: 0, epoch: plan.position.epoch, position: plan.position, recovered, stale: false })
    this.#pump()
  }

  /**
   * Writes the replays in order while the socket has room (Rule 5). A replay
   * written in the step its plan was made ends as before: `subscribed`, then
   * live delivery. One that had to wait asks the node again from where it
   * stopped (what came meanwhile, or a gap if the window moved past it).
   */
  #pump(): void {
    if (this.#pumping || this.#waitingForRoom) return
    this.#pumping = true
    try {
      const ws = this.#ws
      const window = this.#server._limits.maxReplayBuffer
      while (this.#replays.length > 0) {
        if (this.#closed || ws.readyState !== OPEN) {
          this.#replays = []
          return
        }
        const replay = this.#replays[0]!
        if (this.#subscriptions.get(replay.topic) !== replay.subscription) {
          this.#replays.shift()
          continue
        }
        const { subscription } = replay
        while (replay.next < replay.entries.length) {
          if (ws.bufferedAmount > window) return this.#waitForRoom()
          ws.send(this.#server._frame(subscription.topic, replay.epoch, replay.entries[replay.next++]!, this.#json))
          replay.recovered++
        }
        this.#replays.shift()
        if (!replay.stale) {
          this.#send({ type: 'subscribed', id: subscription.id, topic: replay.topic, position: replay.position, recovered: replay.recovered })
          subscription.joined = true
          this.#server._join(this.#json, subscription.topic, ws)
          continue
        }
        const last = replay.entries.length > 0 ? { epoch: replay.epoch, offset: replay.entries[replay.entries.length - 1]!.offset } : replay.position
        this.#server.delivery.leave(subscription.topic)
        subscription.cancel = this.#server.delivery.join(subscription.topic, { from: last }, (plan) => this.#answer(replay.topic, subscription, plan, replay.recovered))
      }
    } finally {
      this.#pumping = false
    }
  }

  /** Rule 5: the socket holds a window of replay; go on once it was written (this turn's frames leave at its end). */
  #waitForRoom(): void {
    for (const replay of this.#replays) replay.stale = true
    this.#waitingForRoom = true
    const resume = (): void => {
      this.#waitingForRoom = false
      if (!this.#closed) this.#pump()
    }
    setImmediate(() => {
      if (this.#closed) return
      if (this.#ws.bufferedAmount <= this.#server._limits.maxReplayBuffer) return resume()
      if (this.#ws.once !== undefined) this.#ws.once('drain', resume)
      else setTimeout(resume, 20)
    })
  }

  #unsubscribe(id: number, topic: string): void {
    const subscription = this.#subscriptions.get(topic)
    if (subscription !== undefined) {
      this.#subscriptions.delete(topic)
      this.#drop(subscription)
    }
    this.#send({ type: 'unsubscribed', id, topic })
  }

  #drop(subscription: Subscription): void {
    subscription.cancel()
    if (subscription.joined) this.#server._leave(this.#json, subscription.topic, this.#ws)
    this.#server.delivery.leave(subscription.topic)
  }

  #publish(message: Extract<ClientMessage, { type: 'publish' }>): void {
    const { id, topic } = message
    const storeTopic = this.#server._storeTopic(topic)
    if (this.#server.delivery.policyFor(storeTopic) === undefined) return this.#error(id, ErrorCode.NoHistory, `${topic} keeps no history`, topic)
    if (this.#hooks.canPublish?.(topic) === false) return this.#error(id, ErrorCode.NotAllowed, `Not allowed to publish on ${topic}`, topic)
    const failed = this.#failed.get(topic)
    if (failed !== undefined) {
      // Rule 4: the client resends from its earliest waiting message, which opens the topic again. (Before the
      // publish limits: what is refused here costs the client none of its allowance.)
      if (message.key !== undefined && failed.has(message.key)) this.#failed.delete(topic)
      else {
        this.#rememberFailure(topic, message.key)
        return this.#error(id, ErrorCode.Unavailable, 'An earlier message on this topic was not taken: publish again from it, in order', topic)
      }
    }
    const verdict = this.#hooks.checkPublish?.(topic, message.data.length) ?? 'ok'
    if (verdict === 'close') {
      if (this.#ws.readyState === OPEN) this.#ws.close(1008, 'publish rate limit exceeded')
      return
    }
    if (verdict === 'drop') {
      this.#rememberFailure(topic, message.key)
      return this.#error(id, ErrorCode.RateLimited, 'Slow down: that message was not published', topic)
    }
    if (message.key !== undefined && (message.key.length === 0 || message.key.length > MAX_KEY_LENGTH)) {
      return this.#error(id, ErrorCode.BadRequest, `An idempotency key is 1-${MAX_KEY_LENGTH} characters`, topic)
    }
    if (this.#pendingPublishes >= this.#server._limits.maxPendingPublishes) {
      return this.#error(id, ErrorCode.Limit, 'Too many publishes waiting for the broker', topic)
    }
    this.#pendingPublishes++
    // The payload may be a view of a receive buffer that is reused: the history keeps a copy.
    const data = message.data.slice()
    this.#server.delivery.publish(storeTopic, { data, binary: message.binary, key: message.key }).then(
      (position) => {
        this.#pendingPublishes--
        if (id !== 0) this.#send({ type: 'published', id, topic, position })
      },
      () => {
        this.#pendingPublishes--
        this.#rememberFailure(topic, message.key)
        this.#error(id, ErrorCode.Unavailable, 'The broker did not take the message: publish it again', topic)
      },
    )
  }

  /** Rule 4: a keyed publish on `topic` failed; a keyless one cannot be resent by name, so it blocks nothing. */
  #rememberFailure(topic: string, key: string | undefined): void {
    if (key === undefined || this.#closed) return
    let keys = this.#failed.get(topic)
    if (keys === undefined) {
      if (this.#failed.size >= MAX_BLOCKED_TOPICS) this.#failed.delete(this.#failed.keys().next().value!)
      this.#failed.set(topic, (keys = new Set()))
    }
    if (keys.size < MAX_FAILED_KEYS) keys.add(key)
  }

  #error(id: number, code: ErrorCode, message: string, topic: string): void {
    this.#send({ type: 'error', id, code, message, topic })
  }

  #send(message: ServerMessage): void {
    if (this.#ws.readyState !== OPEN) return
    this.#ws.send(this.#json ? serializeServerMessageJson(message) : sendable(serializeServerMessage(message)))
  }
}

/**
 * Serves `tether.v1` on every connection of `wss` that negotiated it. The
 * server must select the subprotocol: `handleProtocols:
 * selectDeliveryProtocol` (or your own that returns it).
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'tether-ws'
 * import { attachDelivery, selectDeliveryProtocol } from 'tether-ws/pubsub'
 *
 * const wss = new WebSocketServer({ port: 8080, handleProtocols: selectDeliveryProtocol })
 * const delivery = attachDelivery(wss, {
 *   history: { maxCount: 500, maxAge: 600_000 },
 *   hooks: (ws, request) => ({ canPublish: (topic) => topic.startsWith('chat:') }),
 * })
 * ```
 */
export function attachDelivery(
  wss: DeliveryServerLike,
  options: DeliveryServerOptions & { hooks?: (ws: DeliverySocketLike, request: unknown) => SessionHooks } = {},
): DeliveryServer {
  const server = new DeliveryServer(wss, options)
  if (wss.on === undefined) throw new TypeError('attachDelivery(): the server has no on()')
  wss.on('connection', (ws: DeliverySocketLike, request: unknown) => {
    if (!isDeliveryProtocol(ws.protocol)) return
    const session = server.accept(ws, options.hooks?.(ws, request) ?? {})
    ws.on('message', (data: Uint8Array, isBinary: boolean) => session.receive(data, isBinary))
    ws.on('close', () => session.close())
  })
  return server
}
