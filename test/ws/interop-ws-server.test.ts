/**
 * The npm `ws` WebSocketServer against tether's client: every message size
 * class, text and binary, fragments, ping/pong and every closing path.
 */
import { WebSocket } from '../../src/index.js'
import { closeSuite, dataSuite, type Peer, type Side } from '../helpers/interop.js'
import { stopWss, wsServer } from '../helpers/net.js'

const side: Side = {
  async start() {
    const { wss, url } = await wsServer()
    return { url, connections: wss, stop: () => stopWss(wss) }
  },
  client: (url) => new WebSocket(url) as unknown as Peer,
}

dataSuite('ws server <- tether client: data', side)
closeSuite('ws server <- tether client: closing', side)
