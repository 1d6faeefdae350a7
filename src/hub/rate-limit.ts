/**
 * Publish limits: what one client may publish, as token buckets (messages
 * and bytes), so that a fast publisher meets its own limit before it can
 * make the server close slow subscribers.
 *
 * Theory of operation: a bucket holds up to `burst` tokens and refills at
 * `rate` tokens per second; a message takes one message token and as many
 * byte tokens as it has bytes. A client has one pair of buckets for the
 * default limit, and one pair per topic override it has used (created on
 * first use). Time is a monotonic clock in milliseconds, read by the caller.
 */
import type { PublishLimit } from './config.js'
import { matchesPattern } from './topics.js'

/** A token bucket. */
export class TokenBucket {
  #tokens: number
  #updated: number
  readonly rate: number
  readonly burst: number

  constructor(rate: number, burst: number, now: number) {
    this.rate = rate
    this.burst = Math.max(burst, rate > 0 ? 1 : 0)
    this.#tokens = this.burst
    this.#updated = now
  }

  /** Takes `count` tokens if there are that many; false (and none taken) otherwise. */
  take(count: number, now: number): boolean {
    this.#refill(now)
    if (count > this.#tokens) return false
    this.#tokens -= count
    return true
  }

  /** Tokens available now. */
  available(now: number): number {
    this.#refill(now)
    return this.#tokens
  }

  #refill(now: number): void {
    const elapsed = now - this.#updated
    if (elapsed <= 0) return
    this.#updated = now
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed / 1000) * this.rate)
  }
}

/** The limits of one hub: the default and overrides by topic pattern (public topic names). */
export class PublishLimits {
  readonly defaultLimit: PublishLimit
  readonly overrides: ReadonlyArray<{ pattern: string; limit: PublishLimit }>

  constructor(defaultLimit: PublishLimit, overrides: ReadonlyArray<{ pattern: string; limit: Partial<PublishLimit> }> = []) {
    this.defaultLimit = defaultLimit
    this.overrides = overrides.map(({ pattern, limit }) => ({ pattern, limit: { ...defaultLimit, ...limit } }))
  }

  /** The limit of `topic` and its index (-1: the default). */
  limitFor(topic: string): { index: number; limit: PublishLimit } {
    for (let i = 0; i < this.overrides.length; i++) {
      const override = this.overrides[i]!
      if (matchesPattern(override.pattern, topic)) return { index: i, limit: override.limit }
    }
    return { index: -1, limit: this.defaultLimit }
  }
}

/** What a publish may do. */
export type PublishVerdict = 'ok' | 'drop' | 'close'

/** One client's buckets. */
export class ClientPublishLimiter {
  readonly #limits: PublishLimits
  readonly #buckets = new Map<number, { messages: TokenBucket; bytes: TokenBucket }>()

  constructor(limits: PublishLimits) {
    this.#limits = limits
  }

  /** Whether a message of `bytes` bytes on `topic` (its public name) may be published now. */
  check(topic: string, bytes: number, now: number): PublishVerdict {
    const { index, limit } = this.#limits.limitFor(topic)
    let pair = this.#buckets.get(index)
    if (pair === undefined) {
      pair = { messages: new TokenBucket(limit.messagesPerSecond, limit.burstMessages, now), bytes: new TokenBucket(limit.bytesPerSecond, limit.burstBytes, now) }
      this.#buckets.set(index, pair)
    }
    // Both or neither: a refused message takes nothing from either bucket.
    if (pair.messages.available(now) >= 1 && pair.bytes.available(now) >= bytes) {
      pair.messages.take(1, now)
      pair.bytes.take(bytes, now)
      return 'ok'
    }
    return limit.action
  }
}
