/**
 * The hub's topic history: one store and one delivery node (tether-ws/pubsub's
 * DeliveryServer) for the whole hub, shared by the `/v1` door and by the
 * apps that keep a log (the chat's rooms, the scores feed).
 *
 * Theory of operation: on `/v1` a client names topics in two namespaces.
 * A relay topic by its name (`news`, kept in the store as `relay:news`),
 * served when `config.history.topics` gives it a policy; and an app's topic
 * as `$APP:NAME` (`$chat:lobby`, kept as `app:chat:lobby`), served when the
 * app declared history (`App.history`) and names NAME one of its topics.
 * The `$` marks the hub's own topics, as MQTT reserves `$` topics for the
 * server, so a relay topic can never be taken for an app's: on `/v1` a name
 * starting with `$` is never a relay topic.
 *
 * Rule 1: clients never publish on an app's topics; only the app appends,
 * through `AppServices.history`, after validating and stamping what it
 * appends, so what a page reads there is what the app wrote.
 * Rule 2: permissions and limits are the hub's: subscribing to `$APP:NAME`
 * needs the token's permission for the topic's public name (`chat:lobby`),
 * a relay topic its own name's; a publish on a relay topic meets the
 * client's publish limits, as on `/topics/NAME`.
 * Rule 3: every node of a cluster sees the same positions. History is kept
 * on the cluster's broker by default; with a Redis or NATS backplane, the
 * in-process store is refused when an app keeps history (its rooms would
 * split per node), and start fails saying so.
 * Rule 4: bounded: the in-process store keeps at most MEMORY_HISTORY_BYTES of
 * messages (then the least recently written topics go, and their clients get
 * a `reset` gap); a broker's store is bounded by each topic's policy.
 */
import {
  DeliveryServer,
  type DeliverySession,
  type DeliveryStats,
  type HistoryPolicy,
  type HistoryStore,
  MemoryHistory,
  type Position,
  type TopicNames,
  resolveHistoryPolicy,
} from 'tether-ws/pubsub'
import type { App, HubClient } from './app.js'
import type { HubConfig } from './config.js'
import { APP_PREFIX, RELAY_PREFIX, matchesPattern } from './topics.js'

/** What marks an app's topic on `/v1`: `$APP:NAME`. */
export const APP_TOPIC_MARK = '$'

/** Rule 4: what the in-process store may hold, all topics together. */
export const MEMORY_HISTORY_BYTES = 64 * 1024 * 1024

/** An app's history, as it declares it (`App.history`). */
export interface AppHistory {
  /** How much each of its topics keeps. */
  policy: HistoryPolicy
  /**
   * The public name of the app's topic NAME, for permissions (the chat:
   * `chat:ROOM`), or undefined when NAME is not one of its topics (refused
   * with `no-history`).
   */
  publicName(name: string): string | undefined
}

/** The name clients use on `/v1` for an app's topic. */
export function appHistoryTopic(app: string, name: string): string {
  return `${APP_TOPIC_MARK}${app}:${name}`
}

/** Store names: `$APP:NAME` is `app:APP:NAME`, anything else a relay topic `relay:NAME`. */
const NAMES: TopicNames = {
  toStore: (topic) => (topic.startsWith(APP_TOPIC_MARK) ? APP_PREFIX + topic.slice(APP_TOPIC_MARK.length) : RELAY_PREFIX + topic),
  toClient: (storeTopic) => (storeTopic.startsWith(APP_PREFIX) ? APP_TOPIC_MARK + storeTopic.slice(APP_PREFIX.length) : storeTopic.slice(RELAY_PREFIX.length)),
}

/** The app and name of `$APP:NAME`, or undefined for a relay topic. */
function splitAppTopic(topic: string): { app: string; name: string } | undefined {
  if (!topic.startsWith(APP_TOPIC_MARK)) return undefined
  const colon = topic.indexOf(':')
  if (colon === -1) return { app: topic.slice(1), name: '' }
  return { app: topic.slice(1, colon), name: topic.slice(colon + 1) }
}

/** The store of `config.history`, connected (only when some topic keeps history). */
async function connectStore(config: HubConfig, needed: boolean): Promise<HistoryStore> {
  const { backend, url } = config.history
  if (typeof backend === 'object') return backend.store
  // Nothing keeps history: no broker to connect to (a NATS server without JetStream is fine then).
  if (backend === 'memory' || !needed) return new MemoryHistory({ maxBytes: MEMORY_HISTORY_BYTES })
  const connectTimeout = config.backplane !== undefined && 'connectTimeout' in config.backplane ? config.backplane.connectTimeout : undefined
  if (backend === 'redis') {
    const { RedisHistory } = await import('tether-ws/pubsub/redis')
    return RedisHistory.connect({ url: url!, connectTimeout })
  }
  const { JetStreamHistory } = await import('tether-ws/pubsub/nats')
  return JetStreamHistory.connect({ servers: url!, connectTimeout })
}

export class HubHistory {
  readonly #config: HubConfig
  readonly #store: HistoryStore
  readonly #apps = new Map<string, AppHistory>()
  #server: DeliveryServer | undefined
  #storeEvents = 0

  private constructor(config: HubConfig, store: HistoryStore, apps: readonly App[]) {
    this.#config = config
    this.#store = store
    for (const app of apps) {
      if (app.history === undefined) continue
      this.#apps.set(app.name, { ...app.history, policy: resolveHistoryPolicy(app.history.policy) })
    }
  }

  /** Connects the store `config.history` names, for the relay topics it lists and the apps that keep history (Rule 3). */
  static async connect(config: HubConfig, apps: readonly App[]): Promise<HubHistory> {
    const keepers = apps.filter((app) => app.history !== undefined).map((app) => app.name)
    const broker = config.backplane?.kind
    if (keepers.length > 0 && config.history.backend === 'memory' && (broker === 'redis' || broker === 'nats')) {
      throw new TypeError(
        `history.backend memory with a ${broker === 'redis' ? 'Redis' : 'NATS'} backplane: the history of ${keepers.join(', ')} would be split per node; keep it on the broker (the default; --history-backend ${broker === 'redis' ? 'redis' : 'jetstream'})`,
      )
    }
    let store: HistoryStore
    try {
      store = await connectStore(config, keepers.length > 0 || config.history.topics.length > 0)
    } catch (error) {
      // Without --history, the operator may not know why a broker store is needed at all.
      if (keepers.length > 0 && error instanceof Error) error.message += ` (the broker keeps the history of ${keepers.join(', ')})`
      throw error
    }
    return new HubHistory(config, store, apps)
  }

  /** Starts serving, over the server's local publish (each entry is framed once for its subscribers on this node). */
  start(publishLocal: (topic: string, data: Buffer | string, options: { binary?: boolean; local?: boolean }) => void, log: (line: string) => void): void {
    this.#server = new DeliveryServer(
      { publish: (topic, data, options) => publishLocal(topic, typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), options ?? {}) },
      {
        store: this.#store,
        names: NAMES,
        history: (topic) => this.#policyOf(topic),
        onEvent: (event) => {
          this.#storeEvents++
          if (event.type === 'error') log(`history ${event.stage} error: ${event.error.message}`)
          else log(`history ${event.type}`)
        },
      },
    )
  }

  /** The policy of a topic as a client names it on /v1 (undefined: it keeps no history, `no-history`). */
  #policyOf(topic: string): HistoryPolicy | undefined {
    const owned = splitAppTopic(topic)
    if (owned !== undefined) {
      const app = this.#apps.get(owned.app)
      return app !== undefined && app.publicName(owned.name) !== undefined ? app.policy : undefined
    }
    for (const entry of this.#config.history.topics) if (matchesPattern(entry.pattern, topic)) return { maxCount: entry.maxCount, maxAge: entry.maxAge }
    return undefined
  }

  /** The public name of a /v1 topic, for permissions (Rule 2). */
  #publicName(topic: string): string | undefined {
    const owned = splitAppTopic(topic)
    if (owned === undefined) return topic
    return this.#apps.get(owned.app)?.publicName(owned.name)
  }

  /**
   * Appends to the app's topic NAME (`$APP:NAME` on /v1) as the app (Rule 1):
   * resolves with the position once the store has it. A `key` already
   * appended within the topic's window is not appended again: the answer is
   * the position it has.
   */
  append(app: string, name: string, data: string | Uint8Array, options: { key?: string } = {}): Promise<Position> {
    if (this.#server === undefined) return Promise.reject(new Error('The hub is not started'))
    const declared = this.#apps.get(app)
    if (declared === undefined || declared.publicName(name) === undefined) return Promise.reject(new Error(`${appHistoryTopic(app, name)} keeps no history`))
    return this.#server.publish(appHistoryTopic(app, name), data, { binary: typeof data !== 'string', key: options.key })
  }

  /** Serves tether.v1 to a client with its permissions and publish limits (Rule 2). */
  serve(client: HubClient): DeliverySession {
    if (this.#server === undefined) throw new Error('The hub is not started')
    return this.#server.accept(client.ws, {
      canSubscribe: (topic) => {
        const name = this.#publicName(topic)
        return name !== undefined && client.identity.can('subscribe', name)
      },
      // Rule 1: only the app writes its topics.
      canPublish: (topic) => !topic.startsWith(APP_TOPIC_MARK) && client.identity.can('publish', topic),
      checkPublish: (topic, bytes) => {
        // Over the limit, a publish is refused (`rate-limited`), not the connection closed: the client sends it
        // again after a backoff, in order. Closing made a client with a backlog (after a broker outage) send it
        // all again on every reconnect and be closed again: an outsider saw it never recover.
        const outcome = client.admit(topic, bytes, 'refuse')
        return outcome === 'ok' ? 'ok' : outcome === 'closed' ? 'close' : 'drop'
      },
    })
  }

  /** What /health shows: the store's kind and the delivery node's counters. */
  summary(): { backend: string; storeEvents: number } & Partial<DeliveryStats & { sessions: number }> {
    return { backend: this.#store.kind, ...this.#server?.stats, storeEvents: this.#storeEvents }
  }

  async close(): Promise<void> {
    if (this.#server !== undefined) await this.#server.close()
    else await this.#store.close()
  }
}
