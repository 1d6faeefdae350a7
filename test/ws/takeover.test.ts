/**
 * `{ server }` and `noServer`: once an upgrade over plain TCP is accepted,
 * tether moves the connection off Node's `net.Socket` onto its own transport
 * (server.ts SocketChannel, tcp.ts TcpTransport.takeOver; issue 18). What the
 * application sees must not change: every byte the client sent reaches the
 * WebSocket in order (those Node read with the request, those the socket read
 * while the upgrade was decided, those that come later), the request's socket
 * still tells its addresses, and where the connection cannot be taken (TLS,
 * `useNodeHttp`, no bindings: TETHER_TCP_HANDLES=0) it stays on `net`.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { describe, it } from 'node:test'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import {
  HOST,
  Inbox,
  RawPeer,
  TCP_HANDLES,
  closeServer,
  delay,
  listen,
  maskedFrame,
  opened,
  readFrame,
  selfSignedCertificate,
  stopWss,
  until,
  upgradeRequest,
  waitFor,
} from '../helpers/net.js'

/** An http.Server handing upgrades to a noServer WebSocketServer, after `wait` ms (as an application that authenticates first). */
async function attached(options: { wait?: number; useNodeHttp?: boolean } = {}) {
  const wss = new WebSocketServer({ noServer: true, useNodeHttp: options.useNodeHttp })
  const server = http.createServer()
  const requests: http.IncomingMessage[] = []
  server.on('upgrade', (request, socket, head) => {
    const upgrade = (): void => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
    if (options.wait) setTimeout(upgrade, options.wait)
    else upgrade()
  })
  wss.on('connection', (ws, request) => {
    requests.push(request)
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  const port = await listen(server)
  return { wss, server, port, requests }
}

describe('taking an upgraded connection off net.Socket ({ server }, noServer)', () => {
  it('the WebSocket runs on tether\'s transport where the bindings are there, on net.Socket otherwise; the request keeps its addresses', async () => {
    const { wss, server, port, requests } = await attached()
    const client = await opened(new WebSocket(`ws://${HOST}:${port}/`))
    try {
      const inbox = new Inbox(client)
      client.send('one')
      assert.equal(String((await inbox.one()).data), 'one')
      const [ws] = [...wss.clients]
      assert.equal(ws!._socket instanceof net.Socket, !TCP_HANDLES)
      assert.equal(ws!._socket!.remoteAddress, client._socket!.localAddress)
      assert.equal(ws!._socket!.remotePort, client._socket!.localPort)
      const request = requests[0]!
      assert.equal(request.socket.remoteAddress, client._socket!.localAddress)
      assert.equal(request.socket.remotePort, client._socket!.localPort)
      assert.equal(request.socket.localPort, port)
      if (TCP_HANDLES) {
        // Node's server let the socket go: it no longer counts the connection.
        const count = await new Promise<number>((resolve, reject) => server.getConnections((error, n) => (error ? reject(error) : resolve(n))))
        assert.equal(count, 0)
      }
      client.send('two')
      assert.equal(String((await inbox.one()).data), 'two')
    } finally {
      client.terminate()
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('bytes sent with the request, while the upgrade is decided, and after it reach the WebSocket in order', async () => {
    const { wss, server, port } = await attached({ wait: 150 })
    const peer = await RawPeer.connect(port)
    try {
      // One write: the request head and a first frame (Node's server hands it over as `head`).
      peer.write(Buffer.concat([Buffer.from(upgradeRequest()), maskedFrame(0x1, 'with the request')]))
      // While the application waits: the socket reads these itself, before handleUpgrade.
      await delay(50)
      peer.write(maskedFrame(0x1, 'while deciding 1'))
      await delay(20)
      peer.write(maskedFrame(0x1, 'while deciding 2'))
      const head = await peer.readHead()
      assert.match(head, /^HTTP\/1\.1 101/)
      peer.write(maskedFrame(0x1, 'after'))
      const texts: string[] = []
      for (let i = 0; i < 4; i++) texts.push(String((await readFrame(peer)).payload))
      assert.deepEqual(texts, ['with the request', 'while deciding 1', 'while deciding 2', 'after'])
    } finally {
      peer.destroy()
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('a client that leaves while the upgrade is decided is not taken over, and nothing throws', async () => {
    const { wss, server, port } = await attached({ wait: 100 })
    const peer = await RawPeer.connect(port)
    try {
      peer.write(upgradeRequest())
      await delay(20)
      peer.destroy()
      await delay(200)
      assert.equal(wss.clients.size, 0)
    } finally {
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('useNodeHttp: true keeps every WebSocket on its net.Socket', async () => {
    const { wss, server, port } = await attached({ useNodeHttp: true })
    const client = await opened(new WebSocket(`ws://${HOST}:${port}/`))
    try {
      const inbox = new Inbox(client)
      client.send('kept')
      assert.equal(String((await inbox.one()).data), 'kept')
      assert.ok([...wss.clients][0]!._socket instanceof net.Socket)
    } finally {
      client.terminate()
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('an https server\'s connections stay on their TLS sockets', async () => {
    const { key, cert } = selfSignedCertificate()
    const server = https.createServer({ key, cert })
    const wss = new WebSocketServer({ server })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    const port = await listen(server)
    const client = await opened(new WebSocket(`wss://${HOST}:${port}/`, { rejectUnauthorized: false }))
    try {
      const inbox = new Inbox(client)
      client.send('secure')
      assert.equal(String((await inbox.one()).data), 'secure')
      const socket = [...wss.clients][0]!._socket as net.Socket & { encrypted?: boolean }
      assert.equal(socket.encrypted, true)
    } finally {
      client.terminate()
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('closing from either side ends the connection; the server emits close once its clients are gone', async () => {
    const { wss, server, port } = await attached()
    const first = await opened(new WebSocket(`ws://${HOST}:${port}/`))
    const second = await opened(new WebSocket(`ws://${HOST}:${port}/`))
    await until(() => wss.clients.size === 2)
    const [, serverSide] = [...wss.clients]
    const closedByServer = waitFor<[number, Buffer]>(second, 'close')
    serverSide!.close(4001, 'bye')
    const [code, reason] = await closedByServer
    assert.equal(code, 4001)
    assert.equal(String(reason), 'bye')
    const closedByClient = waitFor(first, 'close')
    first.close(1000)
    await closedByClient
    await until(() => wss.clients.size === 0)
    await stopWss(wss)
    await closeServer(server)
  })
})
