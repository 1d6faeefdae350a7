/**
 * tether/testing: open WebSocket pairs over an in-memory link with fault
 * injection, to exercise reconnect, backpressure and heartbeat logic without
 * a network, the same way on every run.
 *
 * @example
 * ```ts
 * import { createLinkedPair } from 'tether-ws/testing'
 * const { client, server, link } = createLinkedPair({ client: { heartbeat: { interval: 100, timeout: 100 } } })
 * link.halfOpen()                       // the server vanished
 * client.on('close', (code, reason) => console.log(code, String(reason)))   // 1006 heartbeat timeout
 * ```
 */
import { WebSocket, type WebSocketOptions } from '../ws/websocket.js'
import { FaultyLink, type LinkFaults } from './link.js'

export { FaultyLink, type LinkFaults } from './link.js'

export interface LinkedPair {
  /** Open, in the client role (masks its frames). */
  client: WebSocket
  /** Open, in the server role. */
  server: WebSocket
  link: FaultyLink
}

/** Two open WebSockets joined by a `FaultyLink` (no HTTP handshake, no compression). */
export function createLinkedPair(options: { client?: WebSocketOptions; server?: WebSocketOptions; faults?: LinkFaults } = {}): LinkedPair {
  const link = new FaultyLink(options.faults)
  const server = WebSocket._overTransport(link.server, 'server', options.server ?? {})
  const client = WebSocket._overTransport(link.client, 'client', options.client ?? {})
  return { client, server, link }
}
