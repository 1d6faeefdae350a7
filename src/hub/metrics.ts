/**
 * `/metrics`: the library's counters (`wss.metrics()`) and the hub's
 * (`hub.stats`) in the Prometheus text format, through prom-client, plus
 * prom-client's process metrics (event-loop lag, memory, CPU, GC).
 *
 * Rule 1: this file keeps no count of its own. Every metric reads a snapshot
 * when it is scraped (prom-client's `collect`), so the numbers are the ones
 * `/health` and the library report, and scraping twice changes nothing.
 * Rule 2: labels come from closed sets (reasons, policies, app names, limit
 * names), never from what a client sends (topic names, addresses), so a
 * client cannot grow the number of series.
 * Rule 3: a scrape costs at most one rendering per `cacheMs` (1 s by
 * default): the text is kept that long and scrapes meanwhile get it, and
 * scrapes during a rendering share it. A rendering costs about 0.65 ms of
 * CPU, so eight clients scraping in a loop took 80% of a core and the
 * WebSocket traffic's share with it (outsider finding 3); Prometheus scrapes
 * every 15 s or so and never sees the difference.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { ServerMetrics } from 'tether-ws'

/** What the metrics read, at each scrape. */
export interface MetricsSources {
  /** The library's snapshot (`wss.metrics()`). */
  server(): ServerMetrics
  /** Open connections by endpoint (app name), now. */
  openByEndpoint(): Record<string, number>
  /** Connections accepted by endpoint since the start. */
  acceptedByEndpoint(): Record<string, number>
  /** The hub's own counters (`hub.stats`). */
  hub(): { appErrors: number; observerErrors: number; publishNotAllowed: number; publishDropped: number; publishClosed: number; tokensExpired: number; tokensRefreshed: number }
  /** The backplane's kind (none, redis, nats, custom). */
  backplaneKind: string
  /** Whether the hub is ready (`/health/ready`). */
  ready(): boolean
}

type Labels = Record<string, string>
type Series = ReadonlyArray<readonly [Labels, number]>

/** One hub's metrics: `render()` takes a snapshot and returns the text, served as `contentType`. */
export interface HubMetrics {
  readonly registry: Registry
  readonly contentType: string
  render(): Promise<string>
}

/** How long a rendered scrape is served again (Rule 3), and the clock (tests give their own). */
export interface MetricsCacheOptions {
  cacheMs?: number
  now?: () => number
}

export function createMetrics(sources: MetricsSources, options: MetricsCacheOptions = {}): HubMetrics {
  const cacheMs = options.cacheMs ?? 1000
  const now = options.now ?? (() => performance.now())
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // One snapshot per scrape, taken by `render`, shared by every metric of that scrape (Rule 1).
  let snapshot: ServerMetrics | undefined
  const server = (): ServerMetrics => (snapshot ??= sources.server())
  const counter = (name: string, help: string, labelNames: string[], read: () => Series | number): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset()
        const values = read()
        if (typeof values === 'number') this.inc(values)
        else for (const [labels, value] of values) this.inc(labels, value)
      },
    })
  }
  const gauge = (name: string, help: string, labelNames: string[], read: () => Series | number): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset()
        const values = read()
        if (typeof values === 'number') this.set(values)
        else for (const [labels, value] of values) this.set(labels, value)
      },
    })
  }
  const byKey = (label: string, record: Record<string, number>): Series => Object.entries(record).map(([key, value]) => [{ [label]: key }, value] as const)

  gauge('tether_up', 'Whether the hub is ready (1) or not (0): listening, and with a backplane, connected.', [], () => (sources.ready() ? 1 : 0))
  gauge('tether_connections_open', 'WebSocket connections open now, by endpoint.', ['endpoint'], () => byKey('endpoint', sources.openByEndpoint()))
  counter('tether_connections_total', 'WebSocket connections accepted, by endpoint.', ['endpoint'], () => byKey('endpoint', sources.acceptedByEndpoint()))
  counter('tether_connections_closed_total', 'WebSocket connections closed.', [], () => server().connections.closed)
  counter('tether_handshakes_accepted_total', 'Opening handshakes accepted.', [], () => server().handshakes.accepted)
  counter('tether_handshakes_refused_total', 'Opening handshakes refused, by reason.', ['reason'], () => byKey('reason', server().handshakes.refused))
  gauge('tether_handshakes_pending', 'Opening handshakes in progress now.', [], () => server().handshakes.pending)
  counter('tether_messages_received_total', 'Messages received from clients.', [], () => server().messages.received)
  counter('tether_messages_sent_total', 'Messages sent to clients (direct sends and topic deliveries).', [], () => server().messages.sent)
  counter('tether_received_bytes_total', 'Bytes received on WebSocket connections (wire bytes, handshake included).', [], () => server().bytes.received)
  counter('tether_sent_bytes_total', 'Bytes sent on WebSocket connections (wire bytes, handshake included).', [], () => server().bytes.sent)
  counter('tether_send_buffer_overflows_total', 'Sends over the send-buffer limit, by the action taken (drop the send, close 1013).', ['action'], () => {
    const { dropped, closed } = server().sendBuffer
    return [[{ action: 'drop' }, dropped], [{ action: 'close' }, closed]]
  })
  counter('tether_slow_consumer_actions_total', 'Deliveries to subscribers over their backpressure limit, by topic policy (drop, latest: conflated, close).', ['policy'], () => {
    const { dropped, conflated, closed } = server().topics
    return [[{ policy: 'drop' }, dropped], [{ policy: 'latest' }, conflated], [{ policy: 'close' }, closed]]
  })
  counter('tether_publishes_total', 'Messages published on topics on this node.', [], () => server().topics.published)
  counter('tether_deliveries_total', 'Published messages delivered to subscribers.', [], () => server().topics.delivered)
  gauge('tether_topics_active', 'Topics with at least one subscriber on this node, now.', [], () => server().topics.active)
  gauge('tether_backplane_connected', 'Whether the backplane is connected (1) or not (0); without one (kind "none": topics stay in this process), 1.', ['kind'], () => [
    [{ kind: sources.backplaneKind }, server().backplane.state === 'disconnected' ? 0 : 1],
  ])
  counter(
    'tether_backplane_messages_total',
    'Backplane traffic: forwarded to it, sent (confirmed by the broker), unsent (never delivered to it), received from other nodes, lost (sequence gaps), refused (acceptRemote).',
    ['outcome'],
    () => {
      const topics = server().topics
      const series: Array<readonly [Labels, number]> = (['forwarded', 'sent', 'unsent', 'received', 'lost'] as const).map((outcome) => [{ outcome }, topics[outcome]] as const)
      series.push([{ outcome: 'refused' }, topics.remoteRefused])
      return series
    },
  )
  gauge('tether_backplane_pending_messages', 'Messages forwarded to the backplane whose confirmation is outstanding, now.', [], () => server().topics.pending)
  counter('tether_limit_trips_total', 'How often each limit of the library tripped (limitStats), by limit.', ['limit'], () => byKey('limit', { ...server().limits }))
  gauge('tether_memory_used_bytes', 'Bytes held now: receive and send budgets (process-wide), deflate contexts (those of open connections and the reuse pool, tether_deflate_pooled_bytes).', ['budget'], () => {
    const { receive, send, deflate } = server().memory
    return [[{ budget: 'receive' }, receive.held], [{ budget: 'send' }, send.held], [{ budget: 'deflate' }, deflate.used]]
  })
  // Deflate contexts outlive their connections for a while (zlib-codec.ts "reuse": freeing and allocating them per
  // connection grows the resident size), so `deflate` used is not 0 with no connection: this says how much is that pool.
  gauge('tether_deflate_pooled_bytes', 'Bytes of deflate contexts of closed connections kept for reuse (part of the deflate budget used; freed after 30 s unused).', [], () => server().memory.deflate.pooledBytes)
  gauge('tether_memory_limit_bytes', 'The ceiling of each memory budget (0: none).', ['budget'], () => {
    const { receive, send, deflate } = server().memory
    return [[{ budget: 'receive' }, receive.limit], [{ budget: 'send' }, send.limit], [{ budget: 'deflate' }, deflate.budget]]
  })
  counter('tether_memory_budget_failures_total', 'Connections failed because a memory budget was spent.', ['budget'], () => {
    const { receive, send } = server().memory
    return [[{ budget: 'receive' }, receive.failures], [{ budget: 'send' }, send.failures]]
  })
  counter('tether_hub_app_errors_total', 'Exceptions thrown by apps and topic listeners (the client closed with 1011).', [], () => {
    const hub = sources.hub()
    return hub.appErrors + hub.observerErrors
  })
  counter('tether_hub_publishes_refused_total', 'Client publishes refused: not allowed by the token, dropped or closed (1008) over the publish limits.', ['outcome'], () => {
    const hub = sources.hub()
    return [[{ outcome: 'not-allowed' }, hub.publishNotAllowed], [{ outcome: 'dropped' }, hub.publishDropped], [{ outcome: 'closed' }, hub.publishClosed]]
  })
  counter('tether_hub_tokens_total', 'Tokens that expired on an open connection (closed 4001), and tokens refreshed in time.', ['event'], () => {
    const hub = sources.hub()
    return [[{ event: 'expired' }, hub.tokensExpired], [{ event: 'refreshed' }, hub.tokensRefreshed]]
  })
  const renderNow = async (): Promise<string> => {
    snapshot = sources.server()
    try {
      return await registry.metrics()
    } finally {
      snapshot = undefined
    }
  }
  // Rule 3: the last rendering (or the one under way) and when it started.
  let last: { at: number; text: Promise<string> } | undefined
  return {
    registry,
    contentType: registry.contentType,
    render() {
      const at = now()
      if (last === undefined || at - last.at >= cacheMs) {
        const text = renderNow()
        last = { at, text }
        // A failed rendering is not kept.
        text.catch(() => {
          if (last?.text === text) last = undefined
        })
      }
      return last.text
    },
  }
}
