/**
 * tether-ws/client: a reconnecting client of `tether.v1` (protocol.ts), one
 * module for browsers and Node (ESM, no Node or DOM imports). In a browser
 * it uses the page's WebSocket; in Node give it one (`WebSocket` from
 * 'tether-ws', or Node 22's global).
 *
 * Theory of operation: the client keeps, per subscription, the position of
 * the last message it handed to the application. It connects, and after
 * every reconnect (exponential backoff with jitter) subscribes again from
 * those positions, so the server replays what was missed; a message at or
 * before a subscription's position is a duplicate and is dropped; what the
 * server's history no longer covers arrives as one `gap` event with the
 * count. Publishes carry an idempotency key; those not acknowledged when a
 * connection drops are sent again, with the same key, on the next one (the
 * server publishes a key once), and while offline they wait in a bounded
 * queue.
 *
 * Rule 1: the application sees each message of a subscription at most once,
 * in position order, and is told of every message it will not see (a gap).
 * Rule 2: a publish's promise settles once: resolved with the position the
 * broker gave it, or rejected with a `ClientError` naming why.
 * Rule 3: an exception thrown by the application's listener is reported
 * (`reportError`) and does not break the client's bookkeeping.
 * Rule 4: one client's publishes on a topic are stored in the order it made
 * them. When the server refuses one for now (`unavailable`: the broker did
 * not take it; `rate-limited`: over the publish limit), the topic's publishes
 * wait (backoff with jitter, longer after each refusal in a row; other
 * topics go on), then everything unacknowledged on it is sent again in
 * order; the server refuses what followed a refusal until then
 * (delivery-server.ts, Rule 4).
 *
 * @example
 * ```ts
 * import { TetherClient } from 'tether-ws/client'
 * const client = new TetherClient('wss://example.com/v1')
 * client.subscribe('news').on('message', (data, { position }) => console.log(data, position))
 * await client.publish('news', 'hello')
 * ```
 */
import {
  type ClientMessage,
  ErrorCode,
  GapReason,
  PROTOCOL,
  PROTOCOL_JSON,
  type Position,
  type ServerMessage,
  parseServerMessage,
  serializeClientMessage,
  serializeClientMessageJson,
} from './protocol.js'

export {
  type ClientMessage,
  ErrorCode,
  GapReason,
  PROTOCOL,
  PROTOCOL_JSON,
  type ParseFailure,
  type Position,
  type ServerMessage,
  parseClientMessage,
  parseServerMessage,
  serializeClientMessage,
  serializeClientMessageJson,
  serializeServerMessage,
  serializeServerMessageJson,
} from './protocol.js'

/** The members of a WebSocket the client uses (the WHATWG API: browsers, Node 22, tether's and ws's `WebSocket`). */
export interface WebSocketLike {
  readonly readyState: number
  readonly protocol: string
  binaryType: string
  onopen: ((event: any) => void) | null
  // Events as `any`: each implementation has its own event classes; the client reads `data`, `code` and `reason`.
  onmessage: ((event: any) => void) | null
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
}

export type WebSocketConstructorLike = new (url: string, protocols?: string | string[]) => WebSocketLike

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface StateChange {
  state: ClientState
  /** Reconnect attempts since the last stable connection. */
  attempt: number
  /** When reconnecting: the wait before the next attempt, in ms. */
  delay?: number | undefined
  /** When a connection closed: its close code and reason. */
  code?: number | undefined
  reason?: string | undefined
}

export interface BackoffOptions {
  /** The first delay, in ms (default 250). */
  initial?: number
  /** The longest delay, in ms (default 10,000). */
  max?: number
  /** Growth per attempt (default 2). */
  factor?: number
  /** Each delay is multiplied by a random factor in [1 - jitter, 1] (default 0.5), so that clients do not all come back at once. */
  jitter?: number
}

export interface TetherClientOptions {
  /** The WebSocket class (default: `globalThis.WebSocket`). In Node 20: `import { WebSocket } from 'tether-ws'`. */
  WebSocket?: WebSocketConstructorLike
  /** JSON text messages (`tether.v1.json`) instead of binary ones, for reading traffic while debugging. */
  json?: boolean
  /** More subprotocols to offer, e.g. `tether.bearer.TOKEN` for a hub with tokens; or a function asked at each connect. */
  protocols?: string[] | (() => string[])
  backoff?: BackoffOptions
  /** How long an attempt may take to open, in ms (default 10,000). */
  connectTimeout?: number
  /** Publishes not yet acknowledged (queued while offline, or in flight) at most (default 1,000). */
  maxQueued?: number
  /** When `maxQueued` is reached: reject the new publish (`reject-new`, default) or the oldest queued one (`drop-oldest`). */
  whenFull?: 'reject-new' | 'drop-oldest'
  /** Reject a publish not acknowledged within this many ms (default 0: wait as long as it takes). */
  publishTimeout?: number
}

export interface SubscribeOptions {
  /** Resume after this position (e.g. one saved across page loads). */
  from?: Position
  /** On the first subscribe without `from`: also deliver up to this many of the newest retained messages. */
  recent?: number
}

export interface MessageInfo {
  topic: string
  position: Position
}

export interface GapInfo {
  topic: string
  reason: GapReason
  /** Messages that will not be delivered; undefined when unknown (`reset`, `ahead`). */
  count: number | undefined
  from: Position
  to: Position
}

/** A problem with a code: from the server (`not-allowed`, …) or the client's own (`queue-full`, `timeout`, `closed`). */
export class ClientError extends Error {
  readonly code: string
  readonly topic: string | undefined
  constructor(code: string, message: string, topic?: string) {
    super(message)
    this.name = 'ClientError'
    this.code = code
    this.topic = topic
  }
}

type Listener = (...args: any[]) => void

/** A small typed event emitter (Rule 3: a throwing listener is reported, not propagated). */
class Emitter<Events extends Record<string, Listener>> {
  readonly #listeners = new Map<keyof Events, Set<Listener>>()

  on<K extends keyof Events>(event: K, listener: Events[K]): this {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    set.add(listener)
    return this
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): this {
    this.#listeners.get(event)?.delete(listener)
    return this
  }

  once<K extends keyof Events>(event: K, listener: Events[K]): this {
    const once = ((...args: unknown[]) => {
      this.off(event, once)
      listener(...args)
    }) as Events[K]
    return this.on(event, once)
  }

  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): boolean {
    const set = this.#listeners.get(event)
    if (set === undefined || set.size === 0) return false
    for (const listener of [...set]) {
      try {
        listener(...args)
      } catch (error) {
        report(error)
      }
    }
    return true
  }
}

function report(error: unknown): void {
  const global = globalThis as { reportError?: (error: unknown) => void }
  if (typeof global.reportError === 'function') global.reportError(error)
  else setTimeout(() => {
    throw error
  })
}

const textDecoder = new TextDecoder()
const textEncoder = new TextEncoder()
const OPEN = 1

/** Codes the server answers a subscribe with that will not change by trying again. */
const FINAL_SUBSCRIBE_ERRORS = new Set<string>([ErrorCode.NotAllowed, ErrorCode.NoHistory, ErrorCode.BadRequest, ErrorCode.Limit])

type SubscriptionEvents = {
  /** A message, once, in position order. Text arrives as a string, binary as a Uint8Array. */
  message: (data: string | Uint8Array, info: MessageInfo) => void
  /** Messages that will not arrive (Rule 1). */
  gap: (gap: GapInfo) => void
  /** The server answered a subscribe (after every reconnect too); `recovered` messages were replayed before it. */
  subscribed: (info: { position: Position; recovered: number }) => void
  /** The server refused the subscription for good (`not-allowed`, `no-history`, …); it is over. */
  error: (error: ClientError) => void
}

/** One topic of a client. */
export class Subscription extends Emitter<SubscriptionEvents> {
  readonly topic: string
  /** The position of the last message delivered to the application (or where delivery stands). */
  position: Position | undefined
  /** `subscribing` until the server answers, `subscribed`, then `unsubscribed` (yours or a refusal). */
  state: 'subscribing' | 'subscribed' | 'unsubscribed' = 'subscribing'
  /** Messages dropped as duplicates, messages delivered, and gaps. */
  readonly stats = { delivered: 0, duplicates: 0, gaps: 0, lost: 0 }
  readonly #client: TetherClient
  /** @internal */
  _recent: number | undefined
  /** @internal the id of the subscribe in flight. */
  _requestId = 0
  /** @internal */
  _retry: ReturnType<typeof setTimeout> | undefined

  /** @internal */
  constructor(client: TetherClient, topic: string, options: SubscribeOptions) {
    super()
    this.#client = client
    this.topic = topic
    this.position = options.from === undefined ? undefined : { epoch: options.from.epoch, offset: options.from.offset }
    this._recent = options.recent
  }

  /** Stops the subscription (the server is told when connected). */
  unsubscribe(): void {
    this.#client._unsubscribe(this)
  }

  /** @internal */
  _emit<K extends keyof SubscriptionEvents>(event: K, ...args: Parameters<SubscriptionEvents[K]>): boolean {
    return this.emit(event, ...args)
  }
}

interface QueuedPublish {
  topic: string
  data: Uint8Array
  binary: boolean
  key: string
  /** The id of the attempt in flight on the current connection (0: not sent on it). */
  id: number
  resolve: (position: Position) => void
  reject: (error: Error) => void
  timer: ReturnType<typeof setTimeout> | undefined
}

/** A topic whose publishes wait after the broker refused one (Rule 4). */
interface HeldTopic {
  /** Consecutive refusals: the backoff's attempt. */
  attempt: number
  /** Until it fires, the topic's publishes are queued, not sent. */
  timer: ReturnType<typeof setTimeout> | undefined
}

type ClientEvents = {
  state: (change: StateChange) => void
  /** Problems that concern no single subscription or publish (a server that does not speak tether.v1, a bad message). */
  error: (error: ClientError) => void
}

/** Random characters for this client's idempotency keys. */
function randomId(): string {
  const bytes = new Uint8Array(12)
  globalThis.crypto.getRandomValues(bytes)
  let id = ''
  for (const byte of bytes) id += 'abcdefghijklmnopqrstuvwxyz0123456789'[byte % 36]
  return id
}

export class TetherClient extends Emitter<ClientEvents> {
  /** This client's id: the prefix of its idempotency keys. */
  readonly id = randomId()
  /** Reconnects, and what the server replayed after them. */
  readonly stats = { connects: 0, reconnects: 0 }
  readonly #url: string | (() => string)
  readonly #WebSocket: WebSocketConstructorLike
  readonly #json: boolean
  readonly #protocols: string[] | (() => string[])
  readonly #backoff: Required<BackoffOptions>
  readonly #connectTimeout: number
  readonly #maxQueued: number
  readonly #whenFull: 'reject-new' | 'drop-oldest'
  readonly #publishTimeout: number
  readonly #subscriptions = new Map<string, Subscription>()
  readonly #byRequest = new Map<number, Subscription>()
  /** Publishes not acknowledged yet, oldest first. */
  readonly #queue: QueuedPublish[] = []
  readonly #inFlight = new Map<number, QueuedPublish>()
  readonly #held = new Map<string, HeldTopic>()
  #ws: WebSocketLike | undefined
  #state: ClientState = 'connecting'
  #attempt = 0
  #openedAt = 0
  #nextId = 1
  #keys = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(url: string | (() => string), options: TetherClientOptions = {}) {
    super()
    const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket
    if (WebSocketClass === undefined) {
      throw new TypeError("No WebSocket here: pass one, e.g. new TetherClient(url, { WebSocket }) with import { WebSocket } from 'tether-ws'")
    }
    this.#url = url
    this.#WebSocket = WebSocketClass
    this.#json = options.json ?? false
    this.#protocols = options.protocols ?? []
    this.#backoff = { initial: 250, max: 10_000, factor: 2, jitter: 0.5, ...options.backoff }
    this.#connectTimeout = options.connectTimeout ?? 10_000
    this.#maxQueued = options.maxQueued ?? 1000
    this.#whenFull = options.whenFull ?? 'reject-new'
    this.#publishTimeout = options.publishTimeout ?? 0
    this.#connect()
    // The first state, told once the caller could attach a listener (the outsider's saw 'open' first).
    queueMicrotask(() => {
      if (this.#state === 'connecting' && this.#attempt === 0) this.emit('state', { state: 'connecting', attempt: 0 })
    })
  }

  get state(): ClientState {
    return this.#state
  }

  /** Publishes waiting for an acknowledgement (queued or in flight). */
  get queued(): number {
    return this.#queue.length
  }

  /** The subscription of `topic`, if any. */
  subscription(topic: string): Subscription | undefined {
    return this.#subscriptions.get(topic)
  }

  /**
   * Subscribes to `topic`: from now, from a saved position (`from`), or with
   * the newest retained messages first (`recent`). Kept across reconnects
   * until `unsubscribe()`.
   */
  subscribe(topic: string, options: SubscribeOptions = {}): Subscription {
    if (this.#state === 'closed') throw new ClientError('closed', 'The client is closed')
    if (typeof topic !== 'string' || topic.length === 0) throw new TypeError('subscribe(): the topic must be a non-empty string')
    if (this.#subscriptions.has(topic)) throw new ClientError('bad-request', `Already subscribed to ${topic}: use client.subscription(topic)`, topic)
    const subscription = new Subscription(this, topic, options)
    this.#subscriptions.set(topic, subscription)
    if (this.#ws?.readyState === OPEN && this.#state === 'open') this.#sendSubscribe(subscription)
    return subscription
  }

  /**
   * Publishes `data` on `topic`; resolves with its position once the broker
   * has it. Offline, it waits in the queue (bounded: `maxQueued`,
   * `whenFull`); a connection that drops before the answer sends it again
   * with the same key, so it is published once (Rule 2).
   */
  publish(topic: string, data: string | Uint8Array | ArrayBuffer | ArrayBufferView, options: { key?: string } = {}): Promise<Position> {
    if (this.#state === 'closed') return Promise.reject(new ClientError('closed', 'The client is closed', topic))
    if (typeof topic !== 'string' || topic.length === 0) return Promise.reject(new TypeError('publish(): the topic must be a non-empty string'))
    let bytes: Uint8Array
    if (typeof data === 'string') bytes = textEncoder.encode(data)
    else if (data instanceof Uint8Array) bytes = data
    else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data)
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    else return Promise.reject(new TypeError('publish(): data must be a string, an ArrayBuffer or a typed array'))
    if (this.#queue.length >= this.#maxQueued) {
      if (this.#whenFull === 'reject-new') {
        return Promise.reject(new ClientError('queue-full', `${this.#queue.length} publishes are waiting already (maxQueued)`, topic))
      }
      const oldest = this.#queue.find((item) => item.id === 0) ?? this.#queue[0]!
      this.#settle(oldest, new ClientError('queue-full', 'Dropped from a full publish queue (whenFull: drop-oldest)', oldest.topic))
    }
    return new Promise<Position>((resolve, reject) => {
      const item: QueuedPublish = {
        topic,
        data: bytes,
        binary: typeof data !== 'string',
        key: options.key ?? `${this.id}.${++this.#keys}`,
        id: 0,
        resolve,
        reject,
        timer: undefined,
      }
      if (this.#publishTimeout > 0) {
        item.timer = setTimeout(() => this.#settle(item, new ClientError('timeout', `Not acknowledged within ${this.#publishTimeout} ms`, topic)), this.#publishTimeout)
      }
      this.#queue.push(item)
      if (this.#ws?.readyState === OPEN && this.#state === 'open' && !this.#isHeld(topic)) this.#sendPublish(item)
    })
  }

  /** Closes for good: no reconnect; waiting publishes are rejected (`closed`). */
  close(): void {
    if (this.#state === 'closed') return
    clearTimeout(this.#timer)
    const ws = this.#ws
    this.#ws = undefined
    if (ws !== undefined) {
      this.#detach(ws)
      try {
        ws.close(1000, 'client closed')
      } catch {
        // Not open yet, in some implementations.
      }
    }
    for (const held of this.#held.values()) clearTimeout(held.timer)
    this.#held.clear()
    for (const item of [...this.#queue]) this.#settle(item, new ClientError('closed', 'The client was closed before the broker acknowledged it', item.topic))
    for (const subscription of this.#subscriptions.values()) {
      clearTimeout(subscription._retry)
      subscription.state = 'unsubscribed'
    }
    this.#setState({ state: 'closed', attempt: this.#attempt })
  }

  /** @internal */
  _unsubscribe(subscription: Subscription): void {
    if (this.#subscriptions.get(subscription.topic) !== subscription) return
    this.#subscriptions.delete(subscription.topic)
    clearTimeout(subscription._retry)
    subscription.state = 'unsubscribed'
    if (this.#ws?.readyState === OPEN && this.#state === 'open') {
      this.#send({ type: 'unsubscribe', id: this.#nextId++, topic: subscription.topic })
    }
  }

  // -------------------------------------------------------------------------
  // Connection

  #setState(change: StateChange): void {
    this.#state = change.state
    this.emit('state', change)
  }

  #connect(): void {
    const protocols = [this.#json ? PROTOCOL_JSON : PROTOCOL, ...(typeof this.#protocols === 'function' ? this.#protocols() : this.#protocols)]
    let ws: WebSocketLike
    try {
      ws = new this.#WebSocket(typeof this.#url === 'function' ? this.#url() : this.#url, protocols)
    } catch (error) {
      // A URL the WebSocket refuses: trying again will not help, but the caller may change it (a function).
      this.emit('error', new ClientError('connect', `Cannot connect: ${(error as Error)?.message ?? String(error)}`))
      return this.#scheduleReconnect(undefined, undefined)
    }
    this.#ws = ws
    ws.binaryType = 'arraybuffer'
    const timeout = setTimeout(() => {
      if (this.#ws === ws && ws.readyState !== OPEN) this.#lost(ws, 4000, 'connect timeout')
    }, this.#connectTimeout)
    ws.onopen = () => {
      clearTimeout(timeout)
      if (this.#ws !== ws) return
      if (ws.protocol !== protocols[0]) {
        this.emit('error', new ClientError('protocol', `The server did not select ${protocols[0]} (got "${ws.protocol}"): is this a tether.v1 endpoint?`))
        return this.#lost(ws, 1002, 'no tether.v1')
      }
      this.#openedAt = Date.now()
      this.stats.connects++
      if (this.stats.connects > 1) this.stats.reconnects++
      this.#setState({ state: 'open', attempt: this.#attempt })
      for (const subscription of this.#subscriptions.values()) this.#sendSubscribe(subscription)
      for (const item of this.#queue) if (!this.#isHeld(item.topic)) this.#sendPublish(item)
    }
    ws.onmessage = (event: { data: unknown }) => {
      if (this.#ws === ws) this.#receive(event.data)
    }
    ws.onclose = (event: { code: number; reason: string }) => {
      clearTimeout(timeout)
      if (this.#ws === ws) this.#lost(ws, event.code, event.reason)
    }
    ws.onerror = () => {
      // The close event follows with the code.
    }
  }

  #detach(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null
  }

  /** The connection is gone: everything in flight waits for the next one. */
  #lost(ws: WebSocketLike, code: number | undefined, reason: string | undefined): void {
    this.#detach(ws)
    if (ws.readyState <= OPEN) {
      try {
        ws.close()
      } catch {
        // Already closing.
      }
    }
    this.#ws = undefined
    // A connection that stayed up a while was a success: the next failure starts the backoff again.
    if (this.#openedAt !== 0 && Date.now() - this.#openedAt > 5_000) this.#attempt = 0
    this.#openedAt = 0
    this.#inFlight.clear()
    this.#byRequest.clear()
    for (const item of this.#queue) item.id = 0
    for (const subscription of this.#subscriptions.values()) {
      clearTimeout(subscription._retry)
      subscription._retry = undefined
      subscription._requestId = 0
      if (subscription.state === 'subscribed') subscription.state = 'subscribing'
    }
    if (this.#state === 'closed') return
    this.#scheduleReconnect(code, reason)
  }

  #delay(): number {
    const { initial, max, factor, jitter } = this.#backoff
    const base = Math.min(max, initial * factor ** this.#attempt)
    return Math.round(base * (1 - jitter * Math.random()))
  }

  #scheduleReconnect(code: number | undefined, reason: string | undefined): void {
    const delay = this.#delay()
    this.#attempt++
    this.#setState({ state: 'reconnecting', attempt: this.#attempt, delay, code, reason })
    this.#timer = setTimeout(() => {
      if (this.#state === 'closed') return
      this.#setState({ state: 'connecting', attempt: this.#attempt })
      this.#connect()
    }, delay)
  }

  // -------------------------------------------------------------------------
  // Sending

  #send(message: ClientMessage): void {
    this.#ws!.send(this.#json ? serializeClientMessageJson(message) : serializeClientMessage(message))
  }

  #sendSubscribe(subscription: Subscription): void {
    const id = this.#nextId++
    subscription._requestId = id
    subscription.state = 'subscribing'
    this.#byRequest.set(id, subscription)
    this.#send({
      type: 'subscribe',
      id,
      topic: subscription.topic,
      from: subscription.position,
      recent: subscription.position === undefined ? subscription._recent : undefined,
    })
  }

  #sendPublish(item: QueuedPublish): void {
    item.id = this.#nextId++
    this.#inFlight.set(item.id, item)
    this.#send({ type: 'publish', id: item.id, topic: item.topic, data: item.data, binary: item.binary, key: item.key })
  }

  #settle(item: QueuedPublish, outcome: Position | Error): void {
    const index = this.#queue.indexOf(item)
    if (index === -1) return
    this.#queue.splice(index, 1)
    if (item.id !== 0) this.#inFlight.delete(item.id)
    clearTimeout(item.timer)
    if (outcome instanceof Error) item.reject(outcome)
    else item.resolve(outcome)
  }

  // -------------------------------------------------------------------------
  // Receiving

  #receive(data: unknown): void {
    const message = parseServerMessage(typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer))
    if (message.type === 'invalid') {
      this.emit('error', new ClientError('bad-message', `The server sent a message that is not tether.v1: ${message.reason}`))
      return
    }
    this.#handle(message)
  }

  #handle(message: ServerMessage): void {
    switch (message.type) {
      case 'deliver': {
        const subscription = this.#subscriptions.get(message.topic)
        if (subscription === undefined) return
        const position = subscription.position
        if (position !== undefined && position.epoch === message.position.epoch && message.position.offset <= position.offset) {
          subscription.stats.duplicates++
          return
        }
        if (position !== undefined && position.epoch !== '' && position.epoch !== message.position.epoch) {
          // A new epoch without a gap first: the history before it is lost (the server normally says so).
          this.#gap(subscription, { topic: message.topic, reason: GapReason.Reset, count: undefined, from: position, to: { epoch: message.position.epoch, offset: message.position.offset - 1 } })
        }
        subscription.position = message.position
        subscription.stats.delivered++
        subscription._emit('message', message.binary ? message.data : textDecoder.decode(message.data), { topic: message.topic, position: message.position })
        return
      }
      case 'gap': {
        const subscription = this.#subscriptions.get(message.topic)
        if (subscription !== undefined) this.#gap(subscription, { topic: message.topic, reason: message.reason, count: message.count, from: message.from, to: message.to })
        return
      }
      case 'subscribed': {
        const subscription = this.#byRequest.get(message.id)
        this.#byRequest.delete(message.id)
        if (subscription === undefined || this.#subscriptions.get(subscription.topic) !== subscription) return
        subscription.position = message.position
        subscription.state = 'subscribed'
        subscription._emit('subscribed', { position: message.position, recovered: message.recovered })
        return
      }
      case 'unsubscribed':
        return
      case 'published': {
        const item = this.#inFlight.get(message.id)
        if (item === undefined) return
        // The broker takes this topic's messages again: the next refusal starts the backoff anew.
        const held = this.#held.get(item.topic)
        if (held !== undefined && held.timer === undefined) this.#held.delete(item.topic)
        this.#settle(item, message.position)
        return
      }
      case 'error':
        return this.#error(message)
    }
  }

  #isHeld(topic: string): boolean {
    return this.#held.get(topic)?.timer !== undefined
  }

  /** Rule 4: the topic's publishes wait a backoff delay (longer after each refusal in a row), then go again. */
  #hold(topic: string): void {
    let held = this.#held.get(topic)
    if (held === undefined) this.#held.set(topic, (held = { attempt: 0, timer: undefined }))
    if (held.timer !== undefined) return
    const { initial, max, factor, jitter } = this.#backoff
    const delay = Math.round(Math.min(max, initial * factor ** held.attempt) * (1 - jitter * Math.random()))
    held.attempt++
    held.timer = setTimeout(() => this.#resend(topic, held), delay)
  }

  #resend(topic: string, held: HeldTopic): void {
    held.timer = undefined
    if (this.#held.get(topic) !== held || this.#ws?.readyState !== OPEN || this.#state !== 'open') return
    // Answers still on their way (refusals of what followed the first): wait for them, so that what is sent
    // again goes out in publish order.
    if (this.#queue.some((item) => item.topic === topic && item.id !== 0)) {
      held.timer = setTimeout(() => this.#resend(topic, held), 50)
      return
    }
    for (const item of this.#queue) if (item.topic === topic) this.#sendPublish(item)
  }

  #gap(subscription: Subscription, gap: GapInfo): void {
    subscription.position = gap.to
    subscription.stats.gaps++
    if (gap.count !== undefined) subscription.stats.lost += gap.count
    subscription._emit('gap', gap)
  }

  #error(message: Extract<ServerMessage, { type: 'error' }>): void {
    const error = new ClientError(message.code, message.message, message.topic === '' ? undefined : message.topic)
    const item = this.#inFlight.get(message.id)
    if (item !== undefined) {
      this.#inFlight.delete(message.id)
      item.id = 0
      if (message.code !== ErrorCode.Unavailable && message.code !== ErrorCode.RateLimited) return this.#settle(item, error)
      // The broker did not take it, or it came over the server's publish limit: the topic waits, then sends
      // again (same keys), in order (Rule 4).
      this.#hold(item.topic)
      return
    }
    const subscription = this.#byRequest.get(message.id)
    if (subscription !== undefined) {
      this.#byRequest.delete(message.id)
      if (FINAL_SUBSCRIBE_ERRORS.has(message.code)) {
        this.#subscriptions.delete(subscription.topic)
        subscription.state = 'unsubscribed'
        subscription._emit('error', error)
        return
      }
      // `unavailable`: ask again after a pause.
      subscription._retry = setTimeout(() => {
        subscription._retry = undefined
        if (this.#subscriptions.get(subscription.topic) === subscription && this.#ws?.readyState === OPEN && this.#state === 'open') this.#sendSubscribe(subscription)
      }, this.#delay())
      return
    }
    this.emit('error', error)
  }
}
