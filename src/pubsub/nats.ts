/**
 * A backplane over NATS core pub/sub, with the official `nats` client (v2).
 *
 * Every node publishes envelopes (backplane.ts) on one subject and
 * subscribes to it. NATS keeps the order of one connection's messages on a
 * subject, which gives order per publisher per topic. Core NATS stores
 * nothing for a subscriber that is away: what is published while a node is
 * disconnected is lost to it, and counted (`lost`).
 *
 * Delivered to the broker (`sent`). Core NATS has no acknowledgement per
 * publish, and the client does not keep what it buffered: while
 * disconnected it queues publishes in its outbound buffer, but each dial
 * attempt starts by discarding that buffer and rejecting the pending PONGs
 * (nats.js 2.x `ProtocolHandler.prepare` → `resetOutbound`), so publishes
 * made during an outage vanish without an error. Hence:
 * Rule 1: while the connection is down (from the `disconnect` status to the
 * `reconnect` status), publishes are not handed to the client; they are
 * counted as `unsent` at once.
 * Rule 2: each batch is followed, in the same synchronous step, by a
 * `flush()`: a PING behind it in the same buffer and stream. The server
 * answers PINGs in order after processing what came before, so the PONG
 * means the server has the batch (`sent`); a rejected flush means the buffer
 * or the connection went away with the batch (`unsent`; if it died after the
 * server read the batch, the batch may have been published anyway). No
 * round trip per message: one PING per batch, batches being one turn of the
 * event loop. Calling `flush()` later, for several batches at once, would be
 * wrong: a reset between the publish and the PING would drop the batch and
 * still confirm the PING.
 * Rule 3: `connect()` rejects, naming the servers, when the server refuses,
 * or does not greet and answer within `connectTimeout`; every socket it
 * opened is closed. From then on the client reconnects forever.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import diagnostics from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import { EnvelopeBackplane, type PendingLimit } from './backplane.js'
import { reasonOf, redactUrl, resolveConnectTimeout, withConnectTimeout } from './connect-timeout.js'

/** The members of a `nats` connection the backplane uses. */
export interface NatsConnectionLike {
  publish(subject: string, data: Uint8Array): void
  subscribe(subject: string, options: { callback: (error: Error | null, message: { data: Uint8Array }) => void }): unknown
  flush(): Promise<void>
  status(): AsyncIterable<{ type: string; data?: unknown }>
  close(): Promise<void>
  isClosed(): boolean
  /** Settles when the connection closed for good (nats.js); its pending flushes never settle then. */
  closed?(): Promise<void | Error>
}

export interface NatsBackplaneOptions {
  /** Where NATS is, e.g. `nats://127.0.0.1:4222` (ignored with `connection`). */
  servers?: string | string[]
  /** Your own connection; the backplane leaves it open at close. */
  connection?: NatsConnectionLike
  /** The subject all nodes share (default `tether.topics`); nodes on different subjects are separate clusters. */
  subject?: string
  /**
   * How long `connect()` waits for NATS, in ms (default 5000): connected,
   * greeted, subscribed and answering. Also bounds how long `close()` waits
   * for confirmations still due.
   */
  connectTimeout?: number
  /** How much may await NATS's confirmation before publishes are counted unsent at once (default 10,000 messages or 64 MiB). */
  maxPending?: PendingLimit
}

export class NatsBackplane extends EnvelopeBackplane {
  readonly subject: string
  readonly #connection: NatsConnectionLike
  readonly #ownsConnection: boolean
  readonly #closeTimeout: number
  /** Between a `disconnect` status and the `reconnect` (Rule 1), or for good once the connection closed. */
  #down = false
  #closed = false
  /** Batches handed to the client whose confirmation is due (Rule 2): the flush, and how many messages it covers. */
  readonly #unconfirmed = new Map<Promise<void>, { count: number; size: number }>()

  /**
   * Connects to NATS and subscribes; resolves once the server has the
   * subscription, so nothing published after it is missed. Rejects, naming
   * the servers, when NATS refuses or does not answer within
   * `connectTimeout` (Rule 3), having closed what it opened.
   *
   * @example
   * ```ts
   * const backplane = await NatsBackplane.connect({ servers: 'nats://127.0.0.1:4222' })
   * const wss = new WebSocketServer({ port: 8080, topics: { backplane } })
   * ```
   */
  static async connect(options: NatsBackplaneOptions = {}): Promise<NatsBackplane> {
    const timeout = resolveConnectTimeout(options.connectTimeout)
    const servers = options.servers ?? 'nats://127.0.0.1:4222'
    const where = options.connection === undefined ? [servers].flat().map((server) => redactUrl(String(server))).join(', ') : 'the given connection'
    const fail = (error: unknown): Error =>
      new Error(`Could not connect the NATS backplane to ${where}: ${reasonOf(error)}`, { cause: error })
    const owns = options.connection === undefined
    let attempt: SocketsOfAttempt | undefined
    let connecting: Promise<NatsConnectionLike>
    if (options.connection === undefined) {
      let nats: { connect(options: object): Promise<NatsConnectionLike> }
      try {
        nats = (await import('nats')) as unknown as typeof nats
      } catch {
        throw new Error("The NATS backplane needs the 'nats' package: npm install nats")
      }
      const sockets = (attempt = new SocketsOfAttempt())
      connecting = sockets.run(() =>
        nats.connect({
          servers,
          reconnect: true,
          // An outage ends when NATS is back: keep trying (Rule 3).
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          // Bounds each later reconnect attempt; a little over ours, so that connect() fails on our deadline.
          timeout: timeout + 1_000,
        }),
      )
    } else {
      connecting = Promise.resolve(options.connection)
    }
    let expired = false
    let backplane: NatsBackplane | undefined
    const work = (async () => {
      const connection = await connecting
      // From here its sockets belong to the connection.
      attempt?.end()
      if (expired) throw new Error('connected after the deadline')
      backplane = new NatsBackplane(connection, options.subject ?? 'tether.topics', owns, timeout, options.maxPending)
      // The server answers the PING after the SUB: the subscription is in place.
      await connection.flush()
      return backplane
    })()
    try {
      return await withConnectTimeout(work, timeout, () => {
        expired = true
        attempt?.fail()
      })
    } catch (error) {
      expired = true
      attempt?.fail()
      if (backplane !== undefined) await backplane.#closeNow()
      // Sockets the attempt still opens are closed, and a connection that completes after all is closed, not leaked.
      else if (owns) {
        void connecting
          .then((late) => late.close())
          .catch(() => {})
          .finally(() => attempt?.end())
      }
      throw fail(error)
    }
  }

  private constructor(connection: NatsConnectionLike, subject: string, owns: boolean, closeTimeout: number, maxPending: PendingLimit | undefined) {
    super(maxPending)
    this.subject = subject
    this.#connection = connection
    this.#ownsConnection = owns
    this.#closeTimeout = closeTimeout
    connection.subscribe(subject, {
      callback: (error, message) => {
        if (error) this.report({ type: 'error', stage: 'subscribe', error })
        else this.received(message.data)
      },
    })
    void this.#watch()
    void connection.closed?.().then((error) => {
      if (this.#closed) return
      this.#down = true
      this.#failUnconfirmed()
      this.report({ type: 'error', stage: 'connect', error: error instanceof Error ? error : new Error('The NATS connection closed') })
    })
  }

  async #watch(): Promise<void> {
    try {
      for await (const status of this.#connection.status()) {
        if (this.#closed) return
        if (status.type === 'disconnect') {
          this.#down = true
          this.report({ type: 'disconnected' })
        } else if (status.type === 'reconnect') {
          this.#down = false
          this.report({ type: 'reconnected' })
        } else if (status.type === 'error') {
          const error = status.data instanceof Error ? status.data : new Error(String(status.data))
          this.report({ type: 'error', stage: 'connect', error })
        }
      }
    } catch (error) {
      if (!this.#closed) this.report({ type: 'error', stage: 'connect', error: error as Error })
    }
    // A status stream that ends means a connection closed for good, which settles no flush.
    this.#down = true
    this.#failUnconfirmed()
  }

  protected send(bytes: Uint8Array, count: number, size: number): void {
    // Rule 1: the 'disconnected' event already said why; one error per batch would only repeat it.
    if (this.#closed || this.#down) return this.sendFailed(count, undefined, size)
    let confirmation: Promise<void>
    try {
      this.#connection.publish(this.subject, bytes)
      // Rule 2: the PING goes right behind the batch, in the same step.
      confirmation = this.#connection.flush()
    } catch (error) {
      // A closed or draining connection, or a batch over the server's max_payload.
      this.sendFailed(count, error as Error, size)
      return
    }
    this.#unconfirmed.set(confirmation, { count, size })
    confirmation.then(
      () => {
        if (this.#unconfirmed.delete(confirmation)) this.sent(count, size)
      },
      () => {
        if (this.#unconfirmed.delete(confirmation)) this.sendFailed(count, undefined, size)
      },
    )
  }

  /** Counts every batch still waiting for its PONG as unsent (the connection will not answer). */
  #failUnconfirmed(): void {
    const batches = [...this.#unconfirmed.values()]
    this.#unconfirmed.clear()
    for (const { count, size } of batches) this.sendFailed(count, undefined, size)
  }

  /** Waits (at most the connect timeout) for confirmations still due, then closes. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#unconfirmed.size > 0 && !this.#down) {
      await withConnectTimeout(Promise.allSettled(this.#unconfirmed.keys()), this.#closeTimeout, () => {}).catch(() => {})
    }
    await this.#closeNow()
  }

  async #closeNow(): Promise<void> {
    this.#closed = true
    this.#failUnconfirmed()
    if (this.#ownsConnection && !this.#connection.isClosed()) await this.#connection.close().catch(() => {})
  }
}

/**
 * The TCP sockets one `nats.connect()` call opens, so that a failed attempt
 * can close them. Workaround: nats.js 2.x closes a transport only once it
 * has connected (`NodeTransport._closed` returns early otherwise), so when a
 * server accepts TCP but never sends INFO, the dial times out and leaves the
 * socket open, keeping the process alive (the same race as
 * https://github.com/nats-io/nats.js/issues/64). Sockets are attributed to
 * the attempt through the async context of the `net.client.socket`
 * diagnostics channel, so concurrent connects elsewhere are left alone.
 * Not covered: reconnect attempts after a successful start, where a server
 * that accepts and stays silent holds one socket per attempt until it
 * closes them (the client's own `timeout` still bounds each attempt).
 */
class SocketsOfAttempt {
  static readonly #context = new AsyncLocalStorage<SocketsOfAttempt>()
  static #listening = 0
  static readonly #onSocket = (message: unknown): void => {
    const attempt = SocketsOfAttempt.#context.getStore()
    const socket = (message as { socket?: Socket }).socket
    if (attempt === undefined || socket === undefined || attempt.#state === 'ended') return
    if (attempt.#state === 'failed') socket.destroy()
    else attempt.#sockets.add(socket)
  }

  readonly #sockets = new Set<Socket>()
  #state: 'connecting' | 'failed' | 'ended' = 'connecting'

  /** Runs `connect` in this attempt's context, recording the sockets it opens until `end`. */
  run<T>(connect: () => Promise<T>): Promise<T> {
    if (SocketsOfAttempt.#listening++ === 0) diagnostics.subscribe('net.client.socket', SocketsOfAttempt.#onSocket)
    try {
      return SocketsOfAttempt.#context.run(this, connect)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Closes what the attempt opened, and (until `end`) whatever it opens next. */
  fail(): void {
    if (this.#state !== 'connecting') return
    this.#state = 'failed'
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }

  /** Stops recording: after success the sockets belong to the connection; after failure, once the attempt settled. */
  end(): void {
    if (this.#state === 'ended') return
    this.#state = 'ended'
    this.#sockets.clear()
    if (--SocketsOfAttempt.#listening === 0) diagnostics.unsubscribe('net.client.socket', SocketsOfAttempt.#onSocket)
  }
}
export { JetStreamHistory, type JetStreamHistoryOptions } from './history-jetstream.js'
