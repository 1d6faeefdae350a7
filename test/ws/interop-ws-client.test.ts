/**
 * tether's WebSocketServer against the npm `ws` client: every message size
 * class, text and binary, fragments, ping/pong and every closing path.
 */
import { WebSocket as WsClient } from 'ws'
import { closeSuite, dataSuite, type Peer, type Side } from '../helpers/interop.js'
import { stopWss, tetherServer } from '../helpers/net.js'

const side: Side = {
  async start() {
    const { wss, url } = await tetherServer()
    return { url, connections: wss, stop: () => stopWss(wss) }
  },
  client: (url) => new WsClient(url) as unknown as Peer,
}

dataSuite('tether server <- ws client: data', side)
closeSuite('tether server <- ws client: closing', side)
