/**
 * Which subscriber is subscribed to which topic. The registry knows nothing of
 * sockets: a subscriber is any object, so the same registry serves a
 * WebSocket server, a test, or another transport.
 *
 * Both directions are indexed: publish needs the subscribers of a topic, and a
 * closing socket needs its own topics to leave them without scanning every
 * topic. A topic with no subscribers is removed, so `topics` lists live ones
 * and memory follows what is in use.
 */

/** Throws a TypeError unless `topic` is a non-empty string. */
export function checkTopic(topic: unknown, method: string): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0) {
    const got = typeof topic === 'string' ? 'an empty string' : topic === null ? 'null' : typeof topic
    throw new TypeError(`${method}: the topic must be a non-empty string, got ${got}`)
  }
}

export class TopicRegistry<S extends object> {
  readonly #subscribers = new Map<string, Set<S>>()
  readonly #topicsOf = new WeakMap<S, Set<string>>()
  /** Changes with every subscription and unsubscription: an open run (hub.ts Rule 2) holds only while it stays. */
  version = 0

  /** Subscribes; returns false if `subscriber` already was. */
  subscribe(subscriber: S, topic: string): boolean {
    let topics = this.#topicsOf.get(subscriber)
    if (topics?.has(topic)) return false
    if (topics === undefined) this.#topicsOf.set(subscriber, (topics = new Set()))
    topics.add(topic)
    let subscribers = this.#subscribers.get(topic)
    if (subscribers === undefined) this.#subscribers.set(topic, (subscribers = new Set()))
    subscribers.add(subscriber)
    this.version++
    return true
  }

  /** Unsubscribes; returns false if `subscriber` was not subscribed. */
  unsubscribe(subscriber: S, topic: string): boolean {
    const topics = this.#topicsOf.get(subscriber)
    if (topics === undefined || !topics.delete(topic)) return false
    if (topics.size === 0) this.#topicsOf.delete(subscriber)
    this.#leave(subscriber, topic)
    this.version++
    return true
  }

  /** Leaves every topic (a closed socket); returns how many it left. */
  unsubscribeAll(subscriber: S): number {
    const topics = this.#topicsOf.get(subscriber)
    if (topics === undefined) return 0
    this.#topicsOf.delete(subscriber)
    for (const topic of topics) this.#leave(subscriber, topic)
    this.version++
    return topics.size
  }

  isSubscribed(subscriber: S, topic: string): boolean {
    return this.#topicsOf.get(subscriber)?.has(topic) ?? false
  }

  /** The topics `subscriber` is subscribed to, in subscription order. */
  topicsOf(subscriber: S): string[] {
    const topics = this.#topicsOf.get(subscriber)
    return topics === undefined ? [] : [...topics]
  }

  /** The live set of a topic's subscribers (undefined when it has none); do not modify it. */
  subscribersOf(topic: string): ReadonlySet<S> | undefined {
    return this.#subscribers.get(topic)
  }

  subscriberCount(topic: string): number {
    return this.#subscribers.get(topic)?.size ?? 0
  }

  /** Topics with at least one subscriber. */
  get topics(): string[] {
    return [...this.#subscribers.keys()]
  }

  #leave(subscriber: S, topic: string): void {
    const subscribers = this.#subscribers.get(topic)
    if (subscribers === undefined) return
    subscribers.delete(subscriber)
    if (subscribers.size === 0) this.#subscribers.delete(topic)
  }
}
