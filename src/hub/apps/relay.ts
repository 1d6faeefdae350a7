/**
 * `/topics/NAME`: a relay. What a client sends there is published on relay
 * topic NAME, and every client there, on any node, receives it. Binary-safe;
 * the hub applies the client's permissions and publish limits. The topics
 * live in the relay's namespace (topics.ts), so a relay client cannot reach
 * an app's topics whatever NAME it picks.
 */
import type { App } from '../app.js'
import { relayTopic } from '../topics.js'

/** Longest relay topic name, in characters. */
export const MAX_RELAY_TOPIC = 200

export function relayApp(): App {
  return {
    name: 'relay',
    route: { prefix: '/topics/' },
    check(name, identity) {
      if (name.length === 0 || name.length > MAX_RELAY_TOPIC) return { status: 400, message: `A topic is 1-${MAX_RELAY_TOPIC} characters: /topics/NAME` }
      if (!identity.can('subscribe', name)) return { status: 403, message: `Not allowed to subscribe to ${name}` }
      return undefined
    },
    open(client) {
      client.subscribe(relayTopic(client.param), client.param)
    },
    message(client, data, isBinary) {
      const outcome = client.publish(relayTopic(client.param), client.param, data, { binary: isBinary })
      // A relay speaks no protocol of its own to tell a client off in: it closes instead.
      if (outcome === 'not-allowed') client.ws.close(1008, `not allowed to publish on ${client.param}`.slice(0, 123))
    },
  }
}
