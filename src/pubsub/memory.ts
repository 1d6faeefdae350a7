/**
 * An in-process broker: several servers in one process (tests, or one
 * server per port) share topics as if they were nodes behind Redis. Delivery is asynchronous and ordered, like a
 * real broker's, and the broker can be taken offline to exercise outages.
 *
 * Delivered to the broker (`sent`, backplane.ts) means the broker was
 * online when the batch was handed to it; offline, the batch is `unsent`.
 *
 * One server alone needs no backplane at all: local topics are the default.
 */
import { EnvelopeBackplane } from './backplane.js'

export class MemoryBroker {
  readonly #members = new Set<MemoryBackplane>()
  #online = true

  /** A backplane for one server, joined to this broker. */
  backplane(): MemoryBackplane {
    const backplane = new MemoryBackplane(this)
    this.#members.add(backplane)
    return backplane
  }

  /** Takes the broker down (publishes fail and are counted) or brings it back. */
  setOnline(online: boolean): void {
    if (online === this.#online) return
    this.#online = online
    for (const member of this.#members) member._connection(online)
  }

  get online(): boolean {
    return this.#online
  }

  /** @internal */
  _fanOut(bytes: Uint8Array): boolean {
    if (!this.#online) return false
    const members = [...this.#members]
    // Asynchronous, like a broker round trip; one task keeps the order.
    setImmediate(() => {
      for (const member of members) if (this.#members.has(member)) member._deliver(bytes)
    })
    return true
  }

  /** @internal */
  _leave(member: MemoryBackplane): void {
    this.#members.delete(member)
  }
}

export class MemoryBackplane extends EnvelopeBackplane {
  readonly #broker: MemoryBroker

  constructor(broker: MemoryBroker) {
    super()
    this.#broker = broker
  }

  protected send(bytes: Uint8Array, count: number): void {
    if (this.#broker._fanOut(bytes)) this.sent(count)
    else this.sendFailed(count, new Error('The memory broker is offline'))
  }

  async close(): Promise<void> {
    this.#broker._leave(this)
  }

  /** @internal */
  _deliver(bytes: Uint8Array): void {
    this.received(bytes)
  }

  /** @internal */
  _connection(online: boolean): void {
    this.report({ type: online ? 'reconnected' : 'disconnected' })
  }
}
