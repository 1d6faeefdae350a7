/**
 * Connections wired to each other in memory, and event collectors, for core
 * tests: what one side sends is fed to the other side when `pump` is called.
 */
import { Connection, type ConnectionEvent, type ConnectionOptions } from '../../src/core/connection.js'
import { concat } from './bytes.js'

/** Everything queued for sending, as one byte array (copies). */
export function sent(connection: Connection): Uint8Array {
  return concat(connection.dataToSend())
}

/** Feeds `pieces` one by one and returns all events, in order. */
export function feed(connection: Connection, pieces: readonly Uint8Array[]): ConnectionEvent[] {
  const events: ConnectionEvent[] = []
  for (const piece of pieces) {
    // Copy: the connection unmasks in place and tests reuse fixtures.
    connection.receiveData(piece.slice())
    events.push(...connection.eventsReceived())
  }
  return events
}

export function server(options: Partial<ConnectionOptions> = {}): Connection {
  return new Connection({ side: 'server', ...options })
}

export function client(options: Partial<ConnectionOptions> = {}): Connection {
  return new Connection({ side: 'client', ...options })
}

/** A client and a server joined in memory. */
export function pair(options: Partial<ConnectionOptions> = {}): {
  client: Connection
  server: Connection
  /** Moves queued bytes both ways until quiet; returns the events each side saw. */
  pump(): { client: ConnectionEvent[]; server: ConnectionEvent[] }
} {
  const c = client(options)
  const s = server(options)
  return {
    client: c,
    server: s,
    pump() {
      const seen = { client: [] as ConnectionEvent[], server: [] as ConnectionEvent[] }
      for (let round = 0; round < 16; round++) {
        const toServer = sent(c)
        const toClient = sent(s)
        if (toServer.length === 0 && toClient.length === 0) break
        if (toServer.length > 0) seen.server.push(...feed(s, [toServer]))
        if (toClient.length > 0) seen.client.push(...feed(c, [toClient]))
      }
      return seen
    },
  }
}
