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
 * Rule 1: publishes do not wait in the client's offline queue during an
 * outage (they would be delivered late, out of any useful order); they fail
 * at once and are counted as `unsent`.
 */
import { EnvelopeBackplane } from './backplane.js'

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
  #down = false
  #closed = false

  /**
   * Connects to Redis and subscribes; resolves once messages from other nodes
   * can arrive, so nothing published after it is missed.
   *
   * @example
   * ```ts
   * const backplane = await RedisBackplane.connect({ url: 'redis://127.0.0.1:6379' })
   * const wss = new WebSocketServer({ port: 8080, topics: { backplane } })
   * ```
   */
  static async connect(options: RedisBackplaneOptions = {}): Promise<RedisBackplane> {
    let publisher = options.client
    const ownsPublisher = publisher === undefined
    if (publisher === undefined) {
      let redis: { createClient(options: object): RedisClientLike }
      try {
        redis = (await import('redis')) as unknown as typeof redis
      } catch {
        throw new Error("The Redis backplane needs the 'redis' package: npm install redis")
      }
      publisher = redis.createClient({
        url: options.url ?? 'redis://127.0.0.1:6379',
        disableOfflineQueue: true,
        socket: { reconnectStrategy: reconnectDelay },
      })
    }
    const backplane = new RedisBackplane(publisher, publisher.duplicate(), options.channel ?? 'tether:topics', ownsPublisher)
    try {
      if (ownsPublisher) await publisher.connect()
      await backplane.#subscriber.connect()
      await backplane.#subscriber.subscribe(backplane.channel, (message) => backplane.received(message), true)
    } catch (error) {
      await backplane.close()
      throw new Error(`Could not connect the Redis backplane: ${(error as Error).message}`, { cause: error })
    }
    return backplane
  }

  private constructor(publisher: RedisClientLike, subscriber: RedisClientLike, channel: string, ownsPublisher: boolean) {
    super()
    this.channel = channel
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#ownsPublisher = ownsPublisher
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

  protected send(bytes: Uint8Array, count: number): void {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    let sending: Promise<unknown>
    try {
      sending = this.#publisher.publish(this.channel, buffer)
    } catch (error) {
      this.sendFailed(count, error as Error)
      return
    }
    sending.then(
      () => this.sent(count),
      (error: Error) => this.sendFailed(count, this.#closed ? undefined : error),
    )
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const clients = this.#ownsPublisher ? [this.#publisher, this.#subscriber] : [this.#subscriber]
    await Promise.allSettled(clients.map((client) => closeClient(client)))
  }
}

/** Closes gracefully when connected, at once when not (a graceful close would wait for Redis). */
async function closeClient(client: RedisClientLike): Promise<void> {
  if (!client.isReady) {
    if (client.destroy) return client.destroy()
    await client.disconnect?.()
    return
  }
  if (client.close) await client.close()
  else await client.quit?.()
}
