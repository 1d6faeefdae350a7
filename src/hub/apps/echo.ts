/** `/echo`: every message comes back as it was sent. */
import type { App } from '../app.js'

export function echoApp(): App {
  return {
    name: 'echo',
    route: { path: '/echo' },
    open() {},
    message(client, data, isBinary) {
      client.ws.send(data, { binary: isBinary })
    },
  }
}
