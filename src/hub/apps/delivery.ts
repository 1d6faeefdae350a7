/**
 * `/v1`: reliable delivery (tether.v1) on the hub's topics that keep
 * history (history.ts): relay topics matching `history.topics`, and the
 * apps' own, read-only, as `$APP:NAME` (the chat's rooms `$chat:ROOM`, the
 * scores feed `$scores:feed`). A client subscribes, resumes from the
 * position it last saw after a reconnect (on any node of a cluster), and
 * publishes on relay topics with an acknowledgement once the history store
 * has the message.
 *
 * The token's permissions and the hub's publish limits apply per topic, as
 * on `/topics/NAME`. A client that negotiated `tether.v1` gets binary
 * messages; one that offered `tether.v1.json`, or no subprotocol (a person
 * with `tether connect`), gets JSON text.
 *
 * Rule 1: nothing reaches the store or another client unless the token
 * allows it and the client is within its limits (history.ts Rule 2).
 */
import type { App, AppServices, HubClient } from '../app.js'
import type { HubConfig } from '../config.js'
import type { DeliverySession } from 'tether-ws/pubsub'

// The configuration is read by the hub's history (history.ts); the parameter stays for callers that pass it.
export function deliveryApp(_config?: HubConfig): App {
  let services: AppServices | undefined
  const sessions = new Map<HubClient, DeliverySession>()
  return {
    name: 'delivery',
    route: { path: '/v1' },
    start(given) {
      services = given
    },
    open(client) {
      sessions.set(client, services!.history.serve(client))
    },
    message(client, data, isBinary) {
      sessions.get(client)?.receive(data, isBinary)
    },
    close(client) {
      sessions.get(client)?.close()
      sessions.delete(client)
    },
    summary() {
      return services?.history.stats() ?? {}
    },
  }
}
