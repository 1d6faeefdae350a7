/**
 * `/v1`: reliable delivery (tether.v1) on relay topics that keep history.
 * A client subscribes to topics by their relay names, resumes from the
 * position it last saw after a reconnect (on any node of a cluster), and
 * publishes with an acknowledgement once the history store has the message.
 *
 * Topics are the relay's (`relay:NAME` inside, NAME for permissions and
 * limits); only those matching `history.topics` are served (others get
 * `no-history`). The token's permissions and the hub's publish limits apply
 * per topic, as on `/topics/NAME`. A client that negotiated `tether.v1` gets
 * binary messages; one that offered `tether.v1.json`, or no subprotocol (a
 * person with `tether connect`), gets JSON text.
 *
 * Rule 1: nothing reaches the store or another client unless the token
 * allows it and the client is within its limits (delivery-server.ts Rule 2).
 */
import type { App, AppServices, HubClient } from '../app.js'
import type { HubConfig } from '../config.js'
import { ClientPublishLimiter, PublishLimits } from '../rate-limit.js'
import { RELAY_PREFIX, matchesPattern } from '../topics.js'
import { DeliveryServer, type DeliverySession, type HistoryPolicy, type HistoryStore, MemoryHistory } from 'tether-ws/pubsub'

/** The store of `config.history`, connected. */
export async function connectHistory(config: HubConfig): Promise<HistoryStore> {
  const { backend, url } = config.history
  if (typeof backend === 'object') return backend.store
  // No topic keeps history: no broker to connect to (a NATS server without JetStream is fine then).
  if (backend === 'memory' || config.history.topics.length === 0) return new MemoryHistory()
  const connectTimeout = config.backplane !== undefined && 'connectTimeout' in config.backplane ? config.backplane.connectTimeout : undefined
  if (backend === 'redis') {
    const { RedisHistory } = await import('tether-ws/pubsub/redis')
    return RedisHistory.connect({ url: url!, connectTimeout })
  }
  const { JetStreamHistory } = await import('tether-ws/pubsub/nats')
  return JetStreamHistory.connect({ servers: url!, connectTimeout })
}

/** The policy of a relay topic (its public name), from `config.history.topics`: the first pattern that matches. */
export function historyPolicyOf(config: HubConfig): (name: string) => HistoryPolicy | undefined {
  return (name) => {
    for (const topic of config.history.topics) if (matchesPattern(topic.pattern, name)) return { maxCount: topic.maxCount, maxAge: topic.maxAge }
    return undefined
  }
}

export function deliveryApp(config: HubConfig): App {
  let store: HistoryStore | undefined
  let server: DeliveryServer | undefined
  const sessions = new Map<HubClient, DeliverySession>()
  const limits = new PublishLimits(config.publish.limit, config.publish.topics)
  const policyOf = historyPolicyOf(config)
  let storeEvents = 0

  return {
    name: 'delivery',
    route: { path: '/v1' },
    async prepare() {
      store = await connectHistory(config)
    },
    start(services: AppServices) {
      server = new DeliveryServer(
        { publish: (topic, data, options) => services.publish(topic, typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), options) },
        {
          store: store ?? new MemoryHistory(),
          prefix: RELAY_PREFIX,
          history: policyOf,
          onEvent: (event) => {
            storeEvents++
            if (event.type === 'error') services.log(`history ${event.stage} error: ${event.error.message}`)
            else services.log(`history ${event.type}`)
          },
        },
      )
    },
    open(client) {
      const limiter = new ClientPublishLimiter(limits)
      sessions.set(
        client,
        server!.accept(client.ws, {
          canSubscribe: (topic) => client.identity.can('subscribe', topic),
          canPublish: (topic) => client.identity.can('publish', topic),
          checkPublish: (topic, bytes) => limiter.check(topic, bytes, performance.now()),
        }),
      )
    },
    message(client, data, isBinary) {
      sessions.get(client)?.receive(data, isBinary)
    },
    close(client) {
      sessions.get(client)?.close()
      sessions.delete(client)
    },
    async stop() {
      await server?.close()
      if (server === undefined) await store?.close()
    },
    summary() {
      return { backend: store?.kind ?? 'none', ...server?.stats, storeEvents }
    },
  }
}
