/**
 * What a WebSocket server counts about itself, for `wss.metrics()`, and the
 * diagnostics channel on which it reports each refused handshake: the
 * numbers and events an operator watches, in plain objects, so that any
 * application can export them (Prometheus, OpenTelemetry, logs) without the
 * library depending on an exporter.
 *
 * Rule 1: nothing here costs a connection anything. The counters live on the
 * server and are shared by its sockets through the context they already hold;
 * the bytes of open connections are read from their sockets (which count them
 * anyway, as `net.Socket` does) only when a snapshot is taken.
 * Rule 2: a refused handshake is counted once, by one reason, wherever it is
 * refused (`countRefusal`); the diagnostics message is built only when the
 * channel has subscribers.
 */
import diagnostics from 'node:diagnostics_channel'
import type { DeflateMemoryStats } from './zlib-codec.js'
import type { LimitStats } from './limits.js'
import type { MemoryBudgetStats } from './memory-budget.js'
import type { TopicStats } from '../pubsub/hub.js'

/** Why a server refused an opening handshake (the label `reason` in metrics and logs). */
export const HANDSHAKE_REFUSAL_REASONS = [
  /** The request broke RFC 6455 §4.2.1 (400, 405, 426 with Upgrade, 505...) or its head could not be parsed. */
  'invalid-request',
  /** A plain HTTP request on a port that only speaks WebSocket (426). */
  'not-upgrade',
  /** The `path` option did not match (400), or `authenticate` found no endpoint there (its `reason: 'path'`, e.g. 404). */
  'path',
  /** `authenticate` refused the Host (its `reason: 'host'`, e.g. 403 against DNS rebinding). */
  'host',
  /** The Origin is not allowed (403). */
  'origin',
  /** `verifyClient` said no. */
  'verify-client',
  /** `authenticate` refused (401, 403, or its own status). */
  'authenticate',
  /** `verifyClient` or `authenticate` threw (500). */
  'callback-error',
  /** The server was closing (503). */
  'shutting-down',
  /** `maxConnections` were open (503). */
  'too-many-connections',
  /** `maxConnectionsPerAddress` were open from the client's address (503). */
  'too-many-from-address',
  /** `maxPendingHandshakes` were in progress (503). */
  'too-many-pending',
  /** The request head did not arrive within the handshake timeout (408). */
  'timeout',
  /** A slow request head made room for a newer connection (408). */
  'displaced',
  /** The request head was over `maxHeaderSize` or `maxHeaders` (431). */
  'headers-too-large',
] as const
export type HandshakeRefusalReason = (typeof HANDSHAKE_REFUSAL_REASONS)[number]

/** The counters a server and its sockets share (Rule 1). */
export interface ServerCounters {
  accepted: number
  closed: number
  messagesReceived: number
  /** Messages given to `send` (topic deliveries are counted by the topic hub). */
  messagesSent: number
  /** Wire bytes of connections that have closed (open ones are read from their sockets). */
  closedBytesReceived: number
  closedBytesSent: number
  /** Sends over the send-buffer limit, by the `sendBuffer.policy` that applied. */
  sendBufferDropped: number
  sendBufferClosed: number
  refused: Record<HandshakeRefusalReason, number>
}

export function emptyServerCounters(): ServerCounters {
  return {
    accepted: 0,
    closed: 0,
    messagesReceived: 0,
    messagesSent: 0,
    closedBytesReceived: 0,
    closedBytesSent: 0,
    sendBufferDropped: 0,
    sendBufferClosed: 0,
    refused: Object.fromEntries(HANDSHAKE_REFUSAL_REASONS.map((reason) => [reason, 0])) as Record<HandshakeRefusalReason, number>,
  }
}

/** A snapshot of a server (`wss.metrics()`): every count is a running total since it started, unless it says "now". */
export interface ServerMetrics {
  connections: {
    /** Open now. */
    open: number
    /** Accepted since the start (each one a completed opening handshake). */
    accepted: number
    closed: number
  }
  handshakes: {
    /** In progress now: request head being read, or the upgrade being decided. */
    pending: number
    accepted: number
    /** Refused, by reason; their sum is the total. */
    refused: Record<HandshakeRefusalReason, number>
  }
  /** Whole messages received from clients, and sent to them (`send` and topic deliveries). */
  messages: { received: number; sent: number }
  /**
   * Bytes on the wire of this server's WebSocket connections, the opening
   * handshake and framing included, after compression. Open connections
   * count only while tracked (`clientTracking`, the default, or a heartbeat).
   */
  bytes: { received: number; sent: number }
  /** Sends over the send-buffer limit: refused (`drop` policy) or the connection closed with 1013 (`close`). */
  sendBuffer: { dropped: number; closed: number }
  /** Topics with subscribers now, and the topic hub's totals (slow-consumer actions by policy: `dropped`, `conflated`, `closed`). */
  topics: TopicStats & { active: number }
  /** The backplane: `none` without one; `connected` or `disconnected` as its last event said. */
  backplane: { state: 'none' | 'connected' | 'disconnected' }
  /** How often each limit tripped (`limitStats`). */
  limits: LimitStats
  /** The process-wide memory budgets (receive, send) and the deflate contexts' memory, now. */
  memory: { receive: MemoryBudgetStats; send: MemoryBudgetStats; deflate: DeflateMemoryStats }
}

/**
 * The diagnostics channel (`node:diagnostics_channel`) on which every server
 * publishes each handshake it refuses.
 *
 * @example
 * ```ts
 * import diagnostics from 'node:diagnostics_channel'
 * import { HANDSHAKE_REFUSED_CHANNEL, type HandshakeRefusedMessage } from 'tether-ws'
 * diagnostics.subscribe(HANDSHAKE_REFUSED_CHANNEL, (message) => {
 *   const { reason, status, remoteAddress } = message as HandshakeRefusedMessage
 *   console.log(`refused ${remoteAddress}: ${status} ${reason}`)
 * })
 * ```
 */
export const HANDSHAKE_REFUSED_CHANNEL = 'tether:server:handshake-refused'

/** What the handshake-refused channel carries. Never the request's headers: they may hold tokens. */
export interface HandshakeRefusedMessage {
  /** The WebSocketServer that refused it. */
  server: object
  reason: HandshakeRefusalReason
  /** The HTTP status answered (0: the connection was closed without an answer, as over TLS). */
  status: number
  /**
   * The one-line explanation sent with the status, if any: the library's own
   * never quotes a header's value; an `authenticate` hook's is its own text.
   */
  message: string | undefined
  /** The client's address, as the socket has it. */
  remoteAddress: string | undefined
}

const refusedChannel = diagnostics.channel(HANDSHAKE_REFUSED_CHANNEL)

/** Counts a refusal (Rule 2) and tells the channel's subscribers. */
export function countRefusal(
  server: object,
  counters: ServerCounters,
  reason: HandshakeRefusalReason,
  status: number,
  message: string | undefined,
  remoteAddress: () => string | undefined,
): void {
  counters.refused[reason]++
  if (refusedChannel.hasSubscribers) {
    const refusal: HandshakeRefusedMessage = { server, reason, status, message, remoteAddress: remoteAddress() }
    refusedChannel.publish(refusal)
  }
}
