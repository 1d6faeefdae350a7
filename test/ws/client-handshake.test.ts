import type { EventEmitter } from 'node:events'
/**
 * The client's checks of the server's answer (RFC 6455 §4.1), against
 * hand-written servers: each bad 101 fails the tether client the way it
 * fails the ws client (same message, 1006). Plus timers of the handshake
 * that must not outlive it.
 */
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import net from 'node:net'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket } from '../../src/index.js'
import { acceptHead, closeServer, delay, HOST, Inbox, listen, opened, stopWss, tetherServer, withTimeout, wsServer } from '../helpers/net.js'

/** A server that answers every upgrade request with `answer(key)`. */
async function answering(answer: (key: string) => string): Promise<{ url: string; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('data', (request: Buffer) => {
      const key = /^sec-websocket-key:\s*(\S+)/im.exec(String(request))?.[1] ?? ''
      socket.write(answer(key))
    })
  })
  const port = await listen(server)
  return {
    url: `ws://${HOST}:${port}`,
    async stop() {
      for (const socket of sockets) socket.destroy()
      await closeServer(server)
    },
  }
}

/** What a client reports: the events in order (error messages, 'open', the close code). */
function outcome(client: WebSocket | WsClient): Promise<string[]> {
  const ws = client as unknown as EventEmitter
  const events: string[] = []
  ws.on('error', (error: Error) => events.push(`error: ${error.message}`))
  ws.on('open', () => events.push('open'))
  return withTimeout(new Promise((resolve) => ws.on('close', (code: number) => resolve([...events, `close ${code}`]))), 5000, "'close'")
}

const cases: Array<[string, (key: string) => string, string[]]> = [
  ['a wrong Sec-WebSocket-Accept', () => acceptHead('not the key'), []],
  ['a subprotocol although none was offered', (key) => acceptHead(key, ['Sec-WebSocket-Protocol: chat']), []],
  ['a subprotocol that was not offered', (key) => acceptHead(key, ['Sec-WebSocket-Protocol: evil']), ['good']],
  ['a 101 without Upgrade: websocket', (key) => acceptHead(key).replace('Upgrade: websocket\r\n', ''), []],
  ['a 200 instead of 101', () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', []],
]

describe('the client verifies the server answer like ws', () => {
  for (const [title, answer, protocols] of cases) {
    it(`${title}: same error, close 1006`, async () => {
      const server = await answering(answer)
      try {
        const mine = await outcome(new WebSocket(server.url, protocols))
        const theirs = await outcome(new WsClient(server.url, protocols))
        assert.equal(mine.length, 2, JSON.stringify(mine))
        assert.equal(mine[1], 'close 1006')
        assert.deepEqual(mine, theirs)
      } finally {
        await server.stop()
      }
    })
  }

  it('an extension that was not offered fails the handshake (1006)', async () => {
    const server = await answering((key) => acceptHead(key, ['Sec-WebSocket-Extensions: permessage-deflate']))
    try {
      // Without perMessageDeflate the client offers nothing, so any extension in the answer is foreign.
      const mine = await outcome(new WebSocket(server.url, { perMessageDeflate: false }))
      // ws words this case "Server sent a Sec-WebSocket-Extensions header but no extension was
      // requested"; the core has its own wording, so only the outcome is compared.
      assert.equal(mine.length, 2)
      assert.match(mine[0]!, /^error: .*extension/i)
      assert.equal(mine[1], 'close 1006')
    } finally {
      await server.stop()
    }
  })

  it('an extension other than the one offered fails the handshake (1006)', async () => {
    const server = await answering((key) => acceptHead(key, ['Sec-WebSocket-Extensions: x-webkit-deflate-frame']))
    try {
      const mine = await outcome(new WebSocket(server.url))
      assert.equal(mine.length, 2)
      assert.match(mine[0]!, /^error: .*extension/i)
      assert.equal(mine[1], 'close 1006')
    } finally {
      await server.stop()
    }
  })

  it('permessage-deflate answered with a parameter the client cannot accept fails the handshake (RFC 7692 §7.1)', async () => {
    // client_max_window_bits in an answer needs a value; server_max_window_bits=7 is out of range.
    for (const answer of ['permessage-deflate; client_max_window_bits', 'permessage-deflate; server_max_window_bits=7', 'permessage-deflate; x=1']) {
      const server = await answering((key) => acceptHead(key, [`Sec-WebSocket-Extensions: ${answer}`]))
      try {
        const mine = await outcome(new WebSocket(server.url))
        assert.equal(mine.length, 2, answer)
        assert.match(mine[0]!, /^error: Invalid Sec-WebSocket-Extensions header/, answer)
        assert.equal(mine[1], 'close 1006', answer)
      } finally {
        await server.stop()
      }
    }
  })
})

describe('extensions', () => {
  it('a ws server with perMessageDeflate enabled negotiates permessage-deflate with tether', async () => {
    const { wss, url } = await wsServer({ perMessageDeflate: true })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    try {
      const client = new WebSocket(url)
      const upgrade = new Promise<IncomingMessage>((resolve) => client.once('upgrade', resolve))
      const inbox = new Inbox(client)
      await opened(client)
      assert.match(String((await upgrade).headers['sec-websocket-extensions']), /^permessage-deflate/)
      assert.equal(client.extensions, 'permessage-deflate')
      const text = 'compressible '.repeat(1000)
      client.send(text)
      assert.equal(String((await inbox.one()).data), text)
      client.terminate()
    } finally {
      await stopWss(wss)
    }
  })
})

describe('handshake timers', () => {
  it('handshakeTimeout does not fire once the connection is open', async () => {
    const { wss, url } = await tetherServer()
    try {
      const ws = await opened(new WebSocket(url, { handshakeTimeout: 50 }))
      const events: string[] = []
      ws.on('error', (error: Error) => events.push(error.message))
      ws.on('close', (code: number) => events.push(`close ${code}`))
      await delay(200)
      assert.deepEqual(events, [])
      assert.equal(ws.readyState, WebSocket.OPEN)
      ws.terminate()
    } finally {
      await stopWss(wss)
    }
  })
})
