/**
 * A backplane over NATS core pub/sub, with the official `nats` client.
 *
 * Every node publishes envelopes (backplane.ts) on one subject and
 * subscribes to it. NATS keeps the order of one connection's messages on a
 * subject, which gives order per publisher per topic. Core NATS stores
 * nothing for a subscriber that is away: what is published while a node is
 * disconnected is lost to it, and counted (`lost`). While its own connection
 * is down, the client buffers publishes and sends them on reconnect.
 */
import { EnvelopeBackplane } from './backplane.js'

/** The members of a `nats` connection the backplane uses. */
export interface NatsConnectionLike {
  publish(subject: string, data: Uint8Array): void
  subscribe(subject: string, options: { callback: (error: Error | null, message: { data: Uint8Array }) => void }): unknown
  flush(): Promise<void>
  status(): AsyncIterable<{ type: string; data?: unknown }>
  close(): Promise<void>
  isClosed(): boolean
}

export interface NatsBackplaneOptions {
  /** Where NATS is, e.g. `nats://127.0.0.1:4222` (ignored with `connection`). */
  servers?: string | string[]
  /** Your own connection; the backplane leaves it open at close. */
  connection?: NatsConnectionLike
  /** The subject all nodes share (default `tether.topics`); nodes on different subjects are separate clusters. */
  subject?: string
}

export class NatsBackplane extends EnvelopeBackplane {
  readonly subject: string
  readonly #connection: NatsConnectionLike
  readonly #ownsConnection: boolean
  #closed = false

  /**
   * Connects to NATS and subscribes; resolves once the server has the
   * subscription, so nothing published after it is missed.
   *
   * @example
   * ```ts
   * const backplane = await NatsBackplane.connect({ servers: 'nats://127.0.0.1:4222' })
   * const wss = new WebSocketServer({ port: 8080, topics: { backplane } })
   * ```
   */
  static async connect(options: NatsBackplaneOptions = {}): Promise<NatsBackplane> {
    let connection = options.connection
    const owns = connection === undefined
    if (connection === undefined) {
      let nats: { connect(options: object): Promise<NatsConnectionLike> }
      try {
        nats = (await import('nats')) as unknown as typeof nats
      } catch {
        throw new Error("The NATS backplane needs the 'nats' package: npm install nats")
      }
      try {
        connection = await nats.connect({
          servers: options.servers ?? 'nats://127.0.0.1:4222',
          reconnect: true,
          // An outage ends when NATS is back: keep trying.
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
        })
      } catch (error) {
        throw new Error(`Could not connect the NATS backplane: ${(error as Error).message}`, { cause: error })
      }
    }
    const backplane = new NatsBackplane(connection, options.subject ?? 'tether.topics', owns)
    await connection.flush()
    return backplane
  }

  private constructor(connection: NatsConnectionLike, subject: string, owns: boolean) {
    super()
    this.subject = subject
    this.#connection = connection
    this.#ownsConnection = owns
    connection.subscribe(subject, {
      callback: (error, message) => {
        if (error) this.report({ type: 'error', stage: 'subscribe', error })
        else this.received(message.data)
      },
    })
    void this.#watch()
  }

  async #watch(): Promise<void> {
    try {
      for await (const status of this.#connection.status()) {
        if (this.#closed) return
        if (status.type === 'disconnect') this.report({ type: 'disconnected' })
        else if (status.type === 'reconnect') this.report({ type: 'reconnected' })
        else if (status.type === 'error') {
          const error = status.data instanceof Error ? status.data : new Error(String(status.data))
          this.report({ type: 'error', stage: 'connect', error })
        }
      }
    } catch (error) {
      if (!this.#closed) this.report({ type: 'error', stage: 'connect', error: error as Error })
    }
  }

  protected send(bytes: Uint8Array, count: number): void {
    try {
      this.#connection.publish(this.subject, bytes)
      this.sent(count)
    } catch (error) {
      // A closed connection (or one whose reconnect buffer is full) refuses at once.
      this.sendFailed(count, error as Error)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#ownsConnection && !this.#connection.isClosed()) await this.#connection.close()
  }
}
