/**
 * A backplane over Redis pub/sub, with the `redis` package (node-redis).
 *
 * Every node PUBLISHes envelopes (backplane.ts) to one channel and SUBSCRIBEs
 * to it, so each node sees every message once and keeps those of topics it
 * has subscribers for. Redis delivers a channel's messages in the order one
 * connection published them, which gives order per publisher per topic.
 * Redis pub/sub keeps nothing for a subscriber that is away: what is
 * published while a node is disconnected is lost to it, and counted (`lost`).
 *
 * Delivered to the broker (`sent`) means Redis answered the batch's PUBLISH:
 * it has taken the message and passed it to the channel's subscribers then
 * connected. A PUBLISH the client rejects is `unsent`: refused at once while
 * disconnected, or failed with its connection before the reply came (Redis
 * may have published that one; the reply is what we can know).
 *
 * Rule 1: publishes do not wait in the client's offline queue during an
 * outage (they would be delivered late, out of any useful order); they are
 * counted as `unsent` at once, without a client call.
 * Rule 2: `connect()` gives up at the first failed attempt (refused, reset,
 * unknown host) or at `connectTimeout`, whichever comes first, and releases
 * both clients; from the first `ready` on, each client reconnects forever.
 */
import { EnvelopeBackplane, type PendingLimit } from './backplane.js'
import { reasonOf, redactUrl, resolveConnectTimeout, withConnectTimeout } from './connect-timeout.js'

type Listener = (...args: any[]) => void

/** The members of a node-redis client the backplane uses (v4 and later). */
export interface RedisClientLike {
  connect(): Promise<unknown>
  publish(channel: string, message: Buffer): Promise<unknown>
  subscribe(channel: string, listener: (message: Buffer) => void, bufferMode: true): Promise<unknown>
  duplicate(): RedisClientLike
  close?(): Promise<unknown>
  quit?(): Promise<unknown>
  destroy?(): void
  disconnect?(): Promise<unknown>
  readonly isReady: boolean
  on(event: string, listener: Listener): unknown
}

export interface RedisBackplaneOptions {
  /** Where Redis is, e.g. `redis://127.0.0.1:6379` (ignored with `client`). */
  url?: string
  /** Your own connected node-redis client; the backplane duplicates it for subscribing and leaves it open at close. */
  client?: RedisClientLike
  /** The channel all nodes share (default `tether:topics`); nodes on different channels are separate clusters. */
  channel?: string
  /**
   * How long `connect()` waits for Redis, in ms (default 5000): connected,
   * subscribed and answering. Also bounds how long `close()` waits for
   * answers still due.
   */
  connectTimeout?: number
  /** How much may await Redis's replies before publishes are counted unsent at once (default 10,000 messages or 64 MiB). */
  maxPending?: PendingLimit
}

/** Reconnect backoff: 50 ms doubling to at most 2 s, forever (an outage ends when Redis is back). */
function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** retries, 2_000)
}

export class RedisBackplane extends EnvelopeBackplane {
  readonly channel: string
  readonly #publisher: RedisClientLike
  readonly #subscriber: RedisClientLike
  readonly #ownsPublisher: boolean
  readonly #closeTimeout: number
  #down = false
  #closed = false

  /**
   * Connects to Redis and subscribes; resolves once messages from other nodes
   * can arrive, so nothing published after it is missed. Rejects, naming the
   * URL, when Redis refuses or does not answer within `connectTimeout`
   * (Rule 2), having closed what it opened.
   *
   * @example
   * ```ts
   * const backplane = await RedisBackplane.connect({ url: 'redis://127.0.0.1:6379' })
   * const wss = new WebSocketServer({ port: 8080, topics: { backplane } })
   * ```
   */
  static async connect(options: RedisBackplaneOptions = {}): Promise<RedisBackplane> {
    const timeout = resolveConnectTimeout(options.connectTimeout)
    const url = options.url ?? 'redis://127.0.0.1:6379'
    const where = options.client === undefined ? redactUrl(url) : 'the given client'
    const fail = (error: unknown): Error =>
      new Error(`Could not connect the Redis backplane to ${where}: ${reasonOf(error)}`, { cause: error })
    let publisher = options.client
    let subscriber: RedisClientLike
    const ownsPublisher = publisher === undefined
    if (publisher === undefined) {
      let redis: { createClient(options: object): RedisClientLike }
      try {
        redis = (await import('redis')) as unknown as typeof redis
      } catch {
        throw new Error("The Redis backplane needs the 'redis' package: npm install redis")
      }
      try {
        publisher = ownClient(redis, url, timeout)
        subscriber = ownClient(redis, url, timeout)
      } catch (error) {
        // A URL the client cannot parse.
        throw fail(error)
      }
    } else {
      subscriber = publisher.duplicate()
    }
    const backplane = new RedisBackplane(publisher, subscriber, options.channel ?? 'tether:topics', ownsPublisher, timeout, options.maxPending)
    const work = (async () => {
      if (ownsPublisher) await publisher.connect()
      await subscriber.connect()
      await subscriber.subscribe(backplane.channel, (message) => backplane.received(message), true)
    })()
    try {
      await withConnectTimeout(work, timeout, () => backplane.#destroy())
    } catch (error) {
      await backplane.close()
      throw fail(error)
    }
    return backplane
  }

  private constructor(
    publisher: RedisClientLike,
    subscriber: RedisClientLike,
    channel: string,
    ownsPublisher: boolean,
    closeTimeout: number,
    maxPending: PendingLimit | undefined,
  ) {
    super(maxPending)
    this.channel = channel
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#ownsPublisher = ownsPublisher
    this.#closeTimeout = closeTimeout
    for (const client of ownsPublisher ? [publisher, subscriber] : [subscriber]) {
      // node-redis emits 'error' for each failed attempt; without a listener that would crash the process.
      client.on('error', (error: Error) => {
        if (!this.#closed) this.report({ type: 'error', stage: 'connect', error })
      })
      client.on('reconnecting', () => this.#health())
      client.on('end', () => this.#health())
      client.on('ready', () => this.#health())
    }
  }

  /** One `disconnected` when either connection goes down, one `reconnected` when both are back. */
  #health(): void {
    if (this.#closed) return
    const up = this.#publisher.isReady && this.#subscriber.isReady
    if (!up && !this.#down) {
      this.#down = true
      this.report({ type: 'disconnected' })
    } else if (up && this.#down) {
      this.#down = false
      this.report({ type: 'reconnected' })
    }
  }

  protected send(bytes: Uint8Array, count: number, size: number): void {
    // Rule 1: the 'disconnected' event already said why; one error per batch would only repeat it.
    if (this.#closed || !this.#publisher.isReady) return this.sendFailed(count, undefined, size)
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    let sending: Promise<unknown>
    try {
      sending = this.#publisher.publish(this.channel, buffer)
    } catch (error) {
      this.sendFailed(count, error as Error, size)
      return
    }
    sending.then(
      () => this.sent(count, size),
      (error: Error) => this.sendFailed(count, this.#closed ? undefined : error, size),
    )
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const clients = this.#ownsPublisher ? [this.#publisher, this.#subscriber] : [this.#subscriber]
    await Promise.allSettled(clients.map((client) => closeClient(client, this.#closeTimeout)))
  }

  /** Drops both connections at once (a connect that ran out of time). */
  #destroy(): void {
    this.#closed = true
    for (const client of this.#ownsPublisher ? [this.#publisher, this.#subscriber] : [this.#subscriber]) destroyClient(client)
  }
}

/**
 * A client of ours: no offline queue (Rule 1), a TCP connect timeout, and a
 * reconnect strategy that gives up before the client was first ready
 * (Rule 2: `connect()` then rejects with the cause) and never after.
 */
export function ownClient(redis: { createClient(options: object): RedisClientLike }, url: string, timeout: number): RedisClientLike {
  let readyOnce = false
  const client = redis.createClient({
    url,
    disableOfflineQueue: true,
    // Its TCP connect timeout (for later reconnects) a little over ours, so that connect() fails on our deadline.
    socket: { connectTimeout: timeout + 1_000, reconnectStrategy: (retries: number) => (readyOnce ? reconnectDelay(retries) : false) },
  })
  client.on('ready', () => (readyOnce = true))
  return client
}

export function destroyClient(client: RedisClientLike): void {
  try {
    if (client.destroy) client.destroy()
    else void client.disconnect?.().catch(() => {})
  } catch {
    // Already closed.
  }
}

/**
 * Closes gracefully when connected (replies still due arrive, so their
 * publishes count as sent), at once when not or when Redis does not answer
 * within `timeout` ms.
 */
export async function closeClient(client: RedisClientLike, timeout: number): Promise<void> {
  if (!client.isReady) return destroyClient(client)
  const closing = client.close ? client.close() : client.quit?.()
  if (closing === undefined) return destroyClient(client)
  await withConnectTimeout(closing, timeout, () => destroyClient(client)).catch(() => destroyClient(client))
}
export { RedisHistory, type RedisHistoryClientLike, type RedisHistoryOptions } from './history-redis.js'
