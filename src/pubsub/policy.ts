/**
 * What happens to a published message when a subscriber is not keeping up:
 * its bytes waiting to be sent (`bufferedAmount`) are above the limit.
 *
 * - `drop`: this subscriber skips the message; the drop is counted.
 * - `close`: the subscriber is closed (1013 Try Again Later by default, or
 *   1008 Policy Violation), so it learns it missed messages and can resync.
 * - `latest`: conflation. The subscriber keeps, per key, only the newest
 *   message not yet sent; when it drains it gets those, in publish order.
 *   A live-scores client gets the current score, not a backlog.
 */

export type SlowConsumerPolicy = 'drop' | 'close' | 'latest'

export interface TopicPolicy {
  policy: SlowConsumerPolicy
  /** Bytes waiting to be sent to a subscriber above which `policy` applies. */
  backpressureLimit: number
  /** The close code of the `close` policy: 1013 or 1008. */
  closeCode: 1008 | 1013
}

/**
 * The defaults: close a subscriber with 1013 once 1 MiB waits for it. A
 * closed client knows it missed something and can reconnect and resync; a
 * dropped message would be lost without the client knowing.
 */
export const DEFAULT_TOPIC_POLICY: Readonly<TopicPolicy> = Object.freeze({
  policy: 'close',
  backpressureLimit: 1024 * 1024,
  closeCode: 1013,
})

const POLICIES: readonly string[] = ['drop', 'close', 'latest']

/** Merges `options` over `base`, throwing a TypeError that names the bad field. */
export function resolveTopicPolicy(options: Partial<TopicPolicy> | undefined, base: Readonly<TopicPolicy>): TopicPolicy {
  const policy = { ...base }
  if (options === undefined) return policy
  if (typeof options !== 'object' || options === null) throw new TypeError('The topic policy must be an object')
  if (options.policy !== undefined) {
    if (!POLICIES.includes(options.policy)) {
      throw new TypeError(`Unknown slow-consumer policy ${JSON.stringify(options.policy)}: use 'drop', 'close' or 'latest'`)
    }
    policy.policy = options.policy
  }
  if (options.backpressureLimit !== undefined) {
    if (typeof options.backpressureLimit !== 'number' || !(options.backpressureLimit >= 0)) {
      throw new TypeError('backpressureLimit must be a number of bytes, 0 or more')
    }
    policy.backpressureLimit = options.backpressureLimit
  }
  if (options.closeCode !== undefined) {
    if (options.closeCode !== 1008 && options.closeCode !== 1013) {
      throw new TypeError('closeCode must be 1013 (Try Again Later) or 1008 (Policy Violation)')
    }
    policy.closeCode = options.closeCode
  }
  return policy
}

/**
 * Messages held back for one slow subscriber under `latest`: one per key, the
 * newest. Replacing a key moves it to the end, so what is finally sent keeps
 * publish order (m1 on A, m2 on B, m3 on A gives m2 then m3, never m3 then m2).
 */
export class LatestPending<M> {
  readonly #byKey = new Map<string, M>()

  /** Holds `message` under `key`; returns true if it replaced an older one. */
  hold(key: string, message: M): boolean {
    const replaced = this.#byKey.delete(key)
    this.#byKey.set(key, message)
    return replaced
  }

  get size(): number {
    return this.#byKey.size
  }

  /** Everything held, oldest first, and empties the store. */
  takeAll(): M[] {
    const messages = [...this.#byKey.values()]
    this.#byKey.clear()
    return messages
  }
}
