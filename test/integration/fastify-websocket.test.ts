/**
 * @fastify/websocket on tether (issue 15). The plugin requires 'ws' itself,
 * so it runs here with 'ws' resolved to tether-ws, as it would for an
 * application that maps the one to the other (npm `overrides`). Routes and
 * hooks, `injectWS` (a request built by hand: no Host header, the version as
 * a number, and a client WebSocket attached to a stream with `setSocket`),
 * broadcasting over `fastify.websocketServer.clients`, refusals by a hook and
 * by the router, and ping/pong keep-alive.
 */
import assert from 'node:assert/strict'
import Module, { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { dirname, sep } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'tether-ws'
import { HOST, Inbox, closed, withTimeout } from '../helpers/net.js'

/** The client, once open (the package's WebSocket, not the sources' one the shared helper takes). */
function opened(ws: WebSocket): Promise<WebSocket> {
  return withTimeout(
    new Promise<WebSocket>((resolve, reject) => {
      ws.once('open', () => resolve(ws))
      ws.once('error', reject)
    }),
    10_000,
    'the connection',
  )
}

const require = createRequire(import.meta.url)

/** Makes `require('ws')` from @fastify/websocket's own files load tether-ws (an application's `overrides` would). */
function resolveWsToTether(): void {
  const plugin = dirname(require.resolve('@fastify/websocket')) + sep
  const tether = require.resolve('tether-ws')
  const modules = Module as unknown as { _resolveFilename: (request: string, parent: { filename?: string } | undefined, ...rest: unknown[]) => string }
  const resolve = modules._resolveFilename
  modules._resolveFilename = function (request, parent, ...rest) {
    if (request === 'ws' && parent?.filename?.startsWith(plugin)) return tether
    return resolve.call(this, request, parent, ...rest)
  }
}

type Fastify = FastifyInstance & {
  injectWS(path?: string, upgradeContext?: object): Promise<WebSocket>
  websocketServer: { clients: Set<WebSocket> }
}

let app: Fastify
let base: string

before(async () => {
  resolveWsToTether()
  const fastify = require('fastify') as (options?: object) => FastifyInstance
  const plugin = require('@fastify/websocket') as Parameters<FastifyInstance['register']>[0]
  app = fastify() as Fastify
  await app.register(plugin)
  app.addHook('preValidation', async (request, reply) => {
    if (request.url.startsWith('/private') && request.headers.authorization !== 'Bearer good') await reply.code(401).send('not you')
  })
  await app.register(async (scoped: FastifyInstance) => {
    const route = scoped as unknown as { get(path: string, options: { websocket: true }, handler: (socket: WebSocket, request: { url: string }) => void): void }
    route.get('/echo', { websocket: true }, (socket) => {
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : `echo ${String(data)}`, { binary: isBinary }))
    })
    route.get('/private', { websocket: true }, (socket) => socket.send('secret'))
    route.get('/room', { websocket: true }, (socket) => {
      socket.on('message', (data) => {
        for (const client of app.websocketServer.clients) if (client.readyState === WebSocket.OPEN) client.send(String(data))
      })
    })
    route.get('/heartbeat', { websocket: true }, (socket) => {
      socket.on('pong', (payload) => socket.send(`pong ${String(payload)}`))
      socket.ping('beat')
    })
  })
  await app.listen({ port: 0, host: HOST })
  base = `ws://${HOST}:${(app.server.address() as AddressInfo).port}`
})

after(() => app.close())

describe('@fastify/websocket with ws resolved to tether-ws', () => {
  it('the plugin runs on tether: its server is a tether WebSocketServer', () => {
    assert.equal(app.websocketServer.constructor, WebSocket.Server)
  })

  it('a route echoes text and binary over a real connection', async () => {
    const client = await opened(new WebSocket(`${base}/echo`))
    try {
      const inbox = new Inbox(client)
      client.send('hi')
      client.send(Buffer.from([1, 2, 3]))
      const [text, binary] = await inbox.next(2)
      assert.deepEqual([String(text!.data), [...(binary!.data as Buffer)], binary!.isBinary], ['echo hi', [1, 2, 3], true])
      const done = closed(client)
      client.close(1000)
      assert.equal((await done)[0], 1000)
    } finally {
      client.terminate()
    }
  })

  it('injectWS (no Host header, the version as a number, a client attached to a stream) talks to the route', async () => {
    const client = await withTimeout(app.injectWS('/echo'), 10_000, 'injectWS')
    try {
      const inbox = new Inbox(client)
      client.send('injected')
      const [reply] = await inbox.next(1)
      assert.equal(String(reply!.data), 'echo injected')
    } finally {
      client.terminate()
    }
  })

  it('a hook refuses with 401 and the router with 404: the client sees the status; the right token gets in', async () => {
    const statusOf = (url: string, headers: Record<string, string> = {}) =>
      withTimeout(
        new Promise<number | 'open'>((resolve) => {
          const client = new WebSocket(url, { headers })
          client.once('unexpected-response', (_request, response) => {
            resolve(response.statusCode ?? 0)
            client.terminate()
          })
          client.once('open', () => {
            resolve('open')
            client.terminate()
          })
          client.once('error', () => {})
        }),
        10_000,
        url,
      )
    assert.equal(await statusOf(`${base}/private`), 401)
    assert.equal(await statusOf(`${base}/nowhere`), 404)
    const admitted = new WebSocket(`${base}/private`, { headers: { authorization: 'Bearer good' } })
    const inbox = new Inbox(admitted)
    await opened(admitted)
    const [secret] = await inbox.next(1)
    assert.equal(String(secret!.data), 'secret')
    admitted.terminate()
  })

  it('broadcasts over fastify.websocketServer.clients reach every client', async () => {
    const clients = await Promise.all([1, 2, 3].map(() => opened(new WebSocket(`${base}/room`))))
    try {
      const inboxes = clients.map((client) => new Inbox(client))
      clients[0]!.send('to everyone')
      for (const inbox of inboxes) assert.equal(String((await inbox.next(1))[0]!.data), 'to everyone')
    } finally {
      for (const client of clients) client.terminate()
    }
  })

  it('keep-alive: the server pings, the client answers, the server hears the pong', async () => {
    const client = new WebSocket(`${base}/heartbeat`)
    const inbox = new Inbox(client)
    await opened(client)
    try {
      const [reply] = await inbox.next(1)
      assert.equal(String(reply!.data), 'pong beat')
    } finally {
      client.terminate()
    }
  })
})
