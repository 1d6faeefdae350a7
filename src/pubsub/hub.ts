/**
 * The topic hub: publish a message once to every local subscriber of a topic,
 * apply the slow-consumer policy per subscriber, and share messages with
 * other nodes through a backplane.
 *
 * Theory of operation: `publish` turns the payload into a message `M` once
 * (for WebSocket servers, a prepared frame: framed once, compressed at most
 * once per compression setting) and hands the same `M` to every subscriber
 * whose backlog is under the limit. The hub knows nothing of sockets: a
 * subscriber is anything with a backlog, a way to deliver, a way to close,
 * and a way to say when it can take more.
 *
 * Ordering: a subscriber gets messages in the order they were published on
 * this node, and a delivery goes behind everything the subscriber was sent
 * before (direct sends included). Messages from another node arrive in that
 * node's publish order (the backplane keeps per-publisher order).
 *
 * Rule 1: `publish` never throws because of a subscriber or the backplane;
 * drops, closes and backplane trouble are counted and reported as events.
 * Rule 2: the messages published to a topic in one turn of the event loop
 * travel as a run (`MessageRun`, when the hub was given `startRun`): the first
 * is handed to each subscriber, which joins the run; the next ones are added
 * to the run in one step for all of them, so a burst costs each subscriber
 * one write, not one step per message. A run grows only while nothing could
 * tell the difference: every subscriber joined it (none was slow, held or
 * unable to take it), every member would still be under the topic's
 * backpressure limit message by message, no subscriber anywhere had a message
 * held back, no subscription changed anywhere, the policy is the same, and
 * no subscriber was sent anything since (the subscriber's queue
 * seals the run then: src/core/writer.ts Rule 3). Otherwise the message
 * starts afresh, subscriber by subscriber. Runs end with the turn.
 */
import type { Backplane, BackplaneEvent, BackplaneMessage } from './backplane.js'
import { DEFAULT_TOPIC_POLICY, LatestPending, resolveTopicPolicy, type TopicPolicy } from './policy.js'
import { TopicRegistry } from './topics.js'

/** The hub's slot on a subscriber for messages held back under `latest`. */
export const kHeld = Symbol('tether.heldMessages')
export const kDeliver = Symbol('tether.deliver')
export const kCloseSlow = Symbol('tether.closeSlow')
export const kWatchWritable = Symbol('tether.watchWritable')
export const kJoinRun = Symbol('tether.joinRun')

/** Rule 2: messages of one topic in one turn, delivered to every subscriber that joined as one write. */
export interface MessageRun<M> {
  readonly sealed: boolean
  /**
   * A member joined with room for `headroom` more bytes under its topic's backpressure limit: the run may grow
   * only while every member would still get the next message one by one (its backlog, the run's bytes so far
   * included, at most the limit).
   */
  limit(headroom: number): void
  /** Adds a message for every member; false if the run cannot take it (sealed, over a member's headroom, full, or not for every member). */
  add(message: M): boolean
  /** Takes no more messages. */
  seal(): void
}

/** What the hub needs of a subscriber; symbol keys keep it off a socket's public API. */
export interface Subscriber<M> {
  /** Bytes accepted for this subscriber and not yet written out. */
  readonly bufferedAmount: number
  [kHeld]: LatestPending<M> | undefined
  /** Writes `message` behind everything sent before; false if it can no longer send. */
  [kDeliver](message: M): boolean
  /** Closes a subscriber that fell behind (the `close` policy). */
  [kCloseSlow](code: number, reason: string): void
  /** Asks to hear, through `hub.release(this)`, when it can take more. */
  [kWatchWritable](): void
  /** Rule 2: takes the run's messages, from its latest, behind everything sent before; false if it cannot. */
  [kJoinRun]?(run: MessageRun<M>): boolean
}

/** A topic's run while it may still grow (Rule 2). */
interface OpenRun<M> {
  readonly run: MessageRun<M>
  readonly members: number
  readonly version: number
  readonly policy: TopicPolicy
}

/** What one `publish` did on this node. */
export interface PublishResult {
  /** Local subscribers of the topic when it was published. */
  subscribers: number
  delivered: number
  /** Skipped under the `drop` policy. */
  dropped: number
  /** Held back (replacing an older message with the same key) under `latest`. */
  conflated: number
  /** Closed under the `close` policy. */
  closed: number
  /** Handed to the backplane for other nodes. */
  forwarded: boolean
}

/**
 * Running totals since the server started. With a backplane that keeps
 * counts (backplane.ts), two identities hold per node:
 * `forwarded == sent + unsent + pending`, and, once the first and last
 * message of every other node arrived, `received + lost` is the sum of the
 * other nodes' `forwarded`.
 */
export interface TopicStats {
  /** Every publish on this node, local ones included. */
  published: number
  delivered: number
  dropped: number
  conflated: number
  closed: number
  /** Publishes handed to the backplane for other nodes. */
  forwarded: number
  /** Forwarded and delivered to the broker: the broker confirmed it has them (0 if the backplane keeps no counts). */
  sent: number
  /** Forwarded but not delivered to the broker: refused, dropped or unconfirmed (`unsent` events). */
  unsent: number
  /** Forwarded, the broker's confirmation still outstanding (0 if the backplane keeps no counts). */
  pending: number
  /** Messages that came from other nodes through the backplane. */
  received: number
  /** Messages from other nodes that never arrived (sequence gaps). */
  lost: number
  /** `onPublish` listeners that threw (each reported as an `error` event on the server). */
  observerErrors: number
  /** Messages from other nodes refused by the `acceptRemote` check (counted in `received` too). */
  remoteRefused: number
}

export interface SlowConsumerInfo {
  topic: string
  action: 'drop' | 'close' | 'conflate'
  bufferedAmount: number
}

export interface TopicHubOptions<S, M = unknown> {
  policy?: Partial<TopicPolicy> | undefined
  backplane?: Backplane | undefined
  onSlowConsumer?: ((subscriber: S, info: SlowConsumerInfo) => void) | undefined
  onBackplaneEvent?: ((event: BackplaneEvent) => void) | undefined
  /** An `observe` listener threw: reported here (and counted), never rethrown. */
  onObserverError?: ((error: unknown, topic: string) => void) | undefined
  /**
   * Whether a message from another node (through the backplane) may be
   * delivered here: a broker, or a node, may be wrong or compromised. Refused
   * ones are counted (`remoteRefused`). Default: every message.
   */
  acceptRemote?: ((message: { topic: string; size: number; binary: boolean }) => boolean) | undefined
  /** Rule 2: a run that starts with `message`, or undefined where runs do not pay (a topic with one subscriber). */
  startRun?: ((message: M) => MessageRun<M> | undefined) | undefined
}

export class TopicHub<S extends Subscriber<M>, M> {
  readonly registry = new TopicRegistry<S>()
  readonly #stats = { published: 0, delivered: 0, dropped: 0, conflated: 0, closed: 0, forwarded: 0, received: 0, unsent: 0, lost: 0, observerErrors: 0, remoteRefused: 0 }
  readonly #prepare: (message: BackplaneMessage) => M
  readonly #defaultPolicy: TopicPolicy
  readonly #policies = new Map<string, TopicPolicy>()
  readonly #backplane: Backplane | undefined
  readonly #onSlowConsumer: ((subscriber: S, info: SlowConsumerInfo) => void) | undefined
  readonly #onBackplaneEvent: ((event: BackplaneEvent) => void) | undefined
  readonly #onObserverError: ((error: unknown, topic: string) => void) | undefined
  /** In-process listeners of a topic (`onPublish`): not subscribers, so not counted or throttled. */
  readonly #observers = new Map<string, Set<(message: BackplaneMessage) => void>>()
  readonly #startRun: ((message: M) => MessageRun<M> | undefined) | undefined
  /** Rule 2: runs opened in this turn, by topic; emptied when the turn ends. */
  readonly #openRuns = new Map<string, OpenRun<M>>()

  constructor(prepare: (message: BackplaneMessage) => M, options: TopicHubOptions<S, M> = {}) {
    this.#prepare = prepare
    this.#defaultPolicy = resolveTopicPolicy(options.policy, DEFAULT_TOPIC_POLICY)
    this.#onSlowConsumer = options.onSlowConsumer
    this.#onBackplaneEvent = options.onBackplaneEvent
    this.#onObserverError = options.onObserverError
    this.#backplane = options.backplane
    this.#startRun = options.startRun
    this.#backplane?.attach({
      deliver: (message) => {
        this.#stats.received++
        const accept = options.acceptRemote
        if (accept !== undefined && !accept({ topic: message.topic, size: message.data.length, binary: message.binary })) {
          this.#stats.remoteRefused++
          return
        }
        this.#deliverLocal(message)
      },
      event: (event) => {
        if (event.type === 'unsent') this.#stats.unsent += event.count
        else if (event.type === 'lost') this.#stats.lost += event.count
        this.#onBackplaneEvent?.(event)
      },
    })
  }

  get backplane(): Backplane | undefined {
    return this.#backplane
  }

  /** A snapshot of the running totals, with the backplane's `sent` and `pending`. */
  get stats(): TopicStats {
    const { published, delivered, dropped, conflated, closed, forwarded, unsent, received, lost, observerErrors, remoteRefused } = this.#stats
    const counts = this.#backplane?.counts
    return {
      published,
      delivered,
      dropped,
      conflated,
      closed,
      forwarded,
      sent: counts?.sent ?? 0,
      unsent,
      pending: counts?.pending ?? 0,
      received,
      lost,
      observerErrors,
      remoteRefused,
    }
  }

  /** Sets the slow-consumer policy of one topic (merged over the server's). */
  setPolicy(topic: string, options: Partial<TopicPolicy>): TopicPolicy {
    const policy = resolveTopicPolicy(options, this.#policies.get(topic) ?? this.#defaultPolicy)
    this.#policies.set(topic, policy)
    this.#openRuns.get(topic)?.run.seal()
    return policy
  }

  policyFor(topic: string): Readonly<TopicPolicy> {
    return this.#policies.get(topic) ?? this.#defaultPolicy
  }

  /** Calls `listener` with every message published on `topic` here or on another node; returns a function that stops it. */
  observe(topic: string, listener: (message: BackplaneMessage) => void): () => void {
    let listeners = this.#observers.get(topic)
    if (listeners === undefined) this.#observers.set(topic, (listeners = new Set()))
    listeners.add(listener)
    return () => {
      listeners.delete(listener)
      if (listeners.size === 0 && this.#observers.get(topic) === listeners) this.#observers.delete(topic)
    }
  }

  /** Delivers to local subscribers and, unless `local`, forwards to the backplane (Rule 1). */
  publish(message: BackplaneMessage, local = false): PublishResult {
    this.#stats.published++
    const result = this.#deliverLocal(message)
    if (this.#backplane !== undefined && !local) {
      this.#stats.forwarded++
      this.#backplane.publish(message)
      result.forwarded = true
    }
    return result
  }

  /** Sends what was held for `subscriber` (it drained), oldest first. */
  release(subscriber: S): void {
    const held = subscriber[kHeld]
    if (held === undefined) return
    subscriber[kHeld] = undefined
    for (const message of held.takeAll()) if (subscriber[kDeliver](message)) this.#stats.delivered++
  }

  /** Forgets a subscriber that closed, with what was held for it. */
  remove(subscriber: S): void {
    subscriber[kHeld] = undefined
    this.registry.unsubscribeAll(subscriber)
  }

  async close(): Promise<void> {
    await this.#backplane?.close()
  }

  #deliverLocal(message: BackplaneMessage): PublishResult {
    const topic = message.topic
    const observers = this.#observers.get(topic)
    if (observers !== undefined) {
      for (const observer of observers) {
        try {
          observer(message)
        } catch (error) {
          // An observer's bug must not stop delivery to subscribers (Rule 1), nor end the process
          // (it often runs on input from a client or another node): it is counted and reported.
          this.#stats.observerErrors++
          try {
            this.#onObserverError?.(error, topic)
          } catch {
            // A reporter that throws has nobody left to tell.
          }
        }
      }
    }
    const subscribers = this.registry.subscribersOf(topic)
    const result: PublishResult = { subscribers: subscribers?.size ?? 0, delivered: 0, dropped: 0, conflated: 0, closed: 0, forwarded: false }
    if (subscribers === undefined) return result
    const policy = this.#policies.get(topic) ?? this.#defaultPolicy
    const limit = policy.backpressureLimit
    // Framed (and compressed) once for every subscriber.
    const prepared = this.#prepare(message)
    const open = this.#openRuns.get(topic)
    if (open !== undefined) {
      // Rule 2: the same subscribers, all in the run: one step for all of them.
      if (open.version === this.registry.version && open.policy === policy && !open.run.sealed && open.run.add(prepared)) {
        result.delivered = open.members
        this.#stats.delivered += open.members
        return result
      }
      open.run.seal()
      this.#openRuns.delete(topic)
    }
    let run = subscribers.size > 1 ? this.#startRun?.(prepared) : undefined
    for (const subscriber of subscribers) {
      const held = subscriber[kHeld]
      // A subscriber with held messages gets new ones held too, so none overtakes another.
      const buffered = held === undefined ? subscriber.bufferedAmount : Infinity
      if (buffered <= limit) {
        if (run !== undefined && subscriber[kJoinRun]?.(run) === true) {
          run.limit(limit - buffered)
          result.delivered++
          continue
        }
        // Rule 2: a run grows only while every subscriber is in it.
        run = this.#endRun(run)
        if (subscriber[kDeliver](prepared)) result.delivered++
        continue
      }
      run = this.#endRun(run)
      this.#slow(subscriber, policy, message, prepared, result)
    }
    if (run !== undefined && !run.sealed) {
      if (this.#openRuns.size === 0) setImmediate(endRuns, this.#openRuns)
      this.#openRuns.set(topic, { run, members: result.delivered, version: this.registry.version, policy })
    }
    this.#stats.delivered += result.delivered
    this.#stats.dropped += result.dropped
    this.#stats.conflated += result.conflated
    this.#stats.closed += result.closed
    return result
  }

  /** Rule 2: no open run grows any more (a subscriber's messages are now held back). */
  #sealRuns(): void {
    endRuns(this.#openRuns)
  }

  /** Seals a run that may not grow; undefined, so the rest of the subscribers get the message one by one. */
  #endRun(run: MessageRun<M> | undefined): undefined {
    run?.seal()
    return undefined
  }

  #slow(subscriber: S, policy: TopicPolicy, message: BackplaneMessage, prepared: M, result: PublishResult): void {
    const bufferedAmount = subscriber.bufferedAmount
    let action: SlowConsumerInfo['action']
    if (policy.policy === 'latest') {
      let held = subscriber[kHeld]
      if (held === undefined) {
        held = subscriber[kHeld] = new LatestPending<M>()
        subscriber[kWatchWritable]()
      }
      held.hold(message.key ?? message.topic, prepared)
      // Rule 2: a run this subscriber is in must not carry a later message past the one held here.
      this.#sealRuns()
      result.conflated++
      action = 'conflate'
    } else if (policy.policy === 'drop') {
      result.dropped++
      action = 'drop'
    } else {
      result.closed++
      action = 'close'
      // Out of every topic at once, so that later publishes do not count it again.
      this.remove(subscriber)
      subscriber[kCloseSlow](policy.closeCode, 'Subscriber too slow: backpressure limit exceeded')
    }
    this.#onSlowConsumer?.(subscriber, { topic: message.topic, action, bufferedAmount })
  }
}

/** Rule 2: runs end with the turn of the event loop that opened them. */
function endRuns(runs: Map<string, OpenRun<unknown>>): void {
  for (const open of runs.values()) open.run.seal()
  runs.clear()
}
