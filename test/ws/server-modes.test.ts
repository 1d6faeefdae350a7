/**
 * WebSocketServer modes over real sockets: standalone (`port`), attached to
 * an http or https server (`server`), `noServer` with `handleUpgrade`; and
 * the server's bookkeeping: `path`, `address()`, `clients`, `close()`.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import {
  closed,
  closeServer,
  delay,
  emitsWithin,
  HOST,
  Inbox,
  kill,
  listen,
  opened,
  selfSignedCertificate,
  stopWss,
  tetherServer,
  until,
  waitFor,
} from '../helpers/net.js'

/** Opens a tether client, sends `text`, and returns the echo. */
async function echo(url: string, text = 'ping', options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<string> {
  const ws = new WebSocket(url, options)
  try {
    await opened(ws)
    const inbox = new Inbox(ws)
    ws.send(text)
    return String((await inbox.one()).data)
  } finally {
    ws.terminate()
  }
}

function echoing(wss: WebSocketServer): WebSocketServer {
  wss.on('connection', (ws) => ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary })))
  return wss
}

describe('WebSocketServer modes', () => {
  it('standalone {port, host}: listens, emits listening, serves, address() is the bound address', async () => {
    const { wss, port, url } = await tetherServer()
    try {
      echoing(wss)
      assert.deepEqual(wss.address(), { address: HOST, family: 'IPv4', port })
      assert.equal(await echo(url, 'standalone'), 'standalone')
      // A plain HTTP request gets 426 from the internal server.
      const status = await new Promise<number>((resolve, reject) =>
        http.get(`http://${HOST}:${port}/`, (res) => (res.resume(), resolve(res.statusCode!))).on('error', reject))
      assert.equal(status, 426)
    } finally {
      await stopWss(wss)
    }
    assert.equal(wss.address(), null)
  })

  it('the listen callback runs once the port is bound', async () => {
    let wss: WebSocketServer | undefined
    await new Promise<void>((resolve) => {
      wss = new WebSocketServer({ port: 0, host: HOST }, resolve)
    })
    try {
      assert.ok((wss!.address() as AddressInfo).port > 0)
    } finally {
      await stopWss(wss!)
    }
  })

  it('{server}: shares an http.Server with ordinary requests', async () => {
    const server = http.createServer((_req, res) => res.end('plain http'))
    const wss = echoing(new WebSocketServer({ server }))
    try {
      const port = await listen(server)
      assert.deepEqual(wss.address(), server.address())
      assert.equal(await echo(`ws://${HOST}:${port}/any/path`, 'attached'), 'attached')
      const body = await new Promise<string>((resolve, reject) =>
        http.get(`http://${HOST}:${port}/`, (res) => {
          let text = ''
          res.on('data', (chunk) => (text += chunk))
          res.on('end', () => resolve(text))
        }).on('error', reject))
      assert.equal(body, 'plain http')
    } finally {
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('{server: https.Server}: wss:// with a self-signed certificate (ca, or rejectUnauthorized: false)', async () => {
    const { key, cert } = selfSignedCertificate()
    const server = https.createServer({ key, cert })
    const wss = echoing(new WebSocketServer({ server, verifyClient: (info: { secure: boolean }) => info.secure }))
    try {
      const port = await listen(server)
      assert.equal(await echo(`wss://${HOST}:${port}`, 'with ca', { ca: cert }), 'with ca')
      assert.equal(await echo(`wss://localhost:${port}`, 'by name', { ca: cert }), 'by name')
      assert.equal(await echo(`wss://${HOST}:${port}`, 'unchecked', { rejectUnauthorized: false }), 'unchecked')
      // The npm ws client agrees.
      const ws = new WsClient(`wss://${HOST}:${port}`, { ca: cert })
      try {
        await opened(ws)
        const inbox = new Inbox(ws)
        ws.send('ws client over TLS')
        assert.equal(String((await inbox.one()).data), 'ws client over TLS')
      } finally {
        ws.terminate()
      }
      // Without trust in the certificate the handshake fails.
      const untrusted = new WebSocket(`wss://${HOST}:${port}`)
      const failed = waitFor<[Error & { code?: string }]>(untrusted, 'error')
      const close = closed(untrusted)
      assert.equal((await failed)[0].code, 'DEPTH_ZERO_SELF_SIGNED_CERT')
      assert.deepEqual(await close, [1006, ''])
    } finally {
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('noServer + handleUpgrade: the application routes upgrades itself', async () => {
    const wss = echoing(new WebSocketServer({ noServer: true }))
    const server = http.createServer()
    server.on('upgrade', (request, socket, head) => {
      if (request.url === '/ws') wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
      else socket.destroy()
    })
    try {
      const port = await listen(server)
      assert.throws(() => wss.address(), { message: 'The server is operating in "noServer" mode' })
      assert.equal(await echo(`ws://${HOST}:${port}/ws`, 'routed'), 'routed')
      const refused = new WebSocket(`ws://${HOST}:${port}/other`)
      refused.on('error', () => {})
      assert.deepEqual(await closed(refused), [1006, ''])
      assert.equal(wss.clients.size, 0)
    } finally {
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('handleUpgrade twice with the same socket throws', async () => {
    const wss = new WebSocketServer({ noServer: true })
    const server = http.createServer()
    const thrown = new Promise<unknown>((resolve) => {
      server.on('upgrade', (request, socket, head) => {
        wss.handleUpgrade(request, socket, head, () => {})
        try {
          wss.handleUpgrade(request, socket, head, () => {})
          resolve(undefined)
        } catch (error) {
          resolve(error)
        }
      })
    })
    const port = await listen(server)
    const ws = new WebSocket(`ws://${HOST}:${port}`)
    ws.on('error', () => {})
    try {
      const error = (await thrown) as Error
      assert.match(error.message, /handleUpgrade\(\) was called more than once/)
    } finally {
      ws.terminate()
      await stopWss(wss)
      await closeServer(server)
    }
  })

  it('path: only that pathname is upgraded (query allowed); another path gets 400', async () => {
    const { wss, url } = await tetherServer({ path: '/chat' })
    try {
      echoing(wss)
      assert.equal(await echo(`${url}/chat?room=1`, 'on path'), 'on path')
      const wrong = new WebSocket(`${url}/other`)
      const [error] = await waitFor<[Error]>(wrong, 'error')
      assert.equal(error.message, 'Unexpected server response: 400')
      const wrongWs = new WsClient(`${url}/chat/sub`)
      wrongWs.on('error', () => {})
      const [, response] = await waitFor<[unknown, http.IncomingMessage]>(wrongWs, 'unexpected-response')
      assert.equal(response.statusCode, 400)
      wrongWs.terminate()
    } finally {
      await stopWss(wss)
    }
  })

  it('clients grows and shrinks with connections; clientTracking: false leaves it undefined', async () => {
    const { wss, url } = await tetherServer()
    const sockets: WebSocket[] = []
    try {
      assert.equal(wss.clients.size, 0)
      for (let i = 0; i < 3; i++) {
        const connection = waitFor<[WebSocket]>(wss, 'connection')
        sockets.push(await opened(new WebSocket(url)))
        const [serverSide] = await connection
        assert.ok(wss.clients.has(serverSide))
      }
      assert.equal(wss.clients.size, 3)
      sockets[0]!.close()
      await closed(sockets[0]!)
      await until(() => wss.clients.size === 2, 2000, 'clients to shrink')
      sockets[1]!.terminate()
      await until(() => wss.clients.size === 1, 2000, 'clients to shrink')
    } finally {
      kill(...sockets)
      await stopWss(wss)
    }
    const untracked = await tetherServer({ clientTracking: false })
    try {
      assert.equal(untracked.wss.clients, undefined)
      echoing(untracked.wss)
      assert.equal(await echo(untracked.url), 'ping')
    } finally {
      await new Promise((resolve) => untracked.wss.close(resolve))
    }
  })
})

describe('WebSocketServer.close (ws v8 semantics)', () => {
  it('with no clients: calls back promptly without an error; again: "The server is not running"', async () => {
    const { wss, port } = await tetherServer()
    const [error] = await withCallback((cb) => wss.close(cb))
    assert.equal(error, undefined)
    assert.equal(wss.address(), null)
    const refused = new WebSocket(`ws://${HOST}:${port}`)
    refused.on('error', () => {})
    assert.deepEqual(await closed(refused), [1006, ''])
    const [again] = await withCallback((cb) => wss.close(cb))
    assert.equal((again as Error | undefined)?.message, 'The server is not running')
  })

  it('standalone with open clients: stops accepting, leaves clients open, emits close once they are gone', async () => {
    const { wss, url } = await tetherServer()
    const client = await opened(new WebSocket(url))
    let called = false
    wss.close(() => {
      called = true
    })
    const closeEvent = waitFor(wss, 'close')
    try {
      await delay(100)
      assert.equal(called, false, 'close emitted while a client is connected')
      assert.equal(client.readyState, WebSocket.OPEN)
      const late = new WebSocket(url)
      late.on('error', () => {})
      assert.deepEqual(await closed(late), [1006, ''])
      client.close(1000)
      await closeEvent
      assert.equal(called, true)
    } finally {
      client.terminate()
    }
  })

  it('{server} with open clients: leaves the http server listening, emits close when clients are gone', async () => {
    const server = http.createServer()
    const wss = new WebSocketServer({ server })
    const port = await listen(server)
    const client = await opened(new WebSocket(`ws://${HOST}:${port}`))
    try {
      const closeEvent = waitFor(wss, 'close')
      wss.close()
      assert.equal(await emitsWithin(wss, 'close', 100), false)
      assert.equal(server.listening, true)
      const inbox = new Inbox(client)
      for (const ws of wss.clients) ws.send('still open')
      assert.equal(String((await inbox.one()).data), 'still open')
      client.terminate()
      await closeEvent
      assert.equal(server.listening, true)
    } finally {
      client.terminate()
      await closeServer(server)
    }
  })

  it('noServer without clients: emits close on the next tick', async () => {
    const wss = new WebSocketServer({ noServer: true })
    const [error] = await withCallback((cb) => wss.close(cb))
    assert.equal(error, undefined)
  })
})

function withCallback(start: (cb: (...args: unknown[]) => void) => void, ms = 5000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('callback not called')), ms)
    start((...args) => {
      clearTimeout(timer)
      resolve(args)
    })
  })
}
