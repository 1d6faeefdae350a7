/**
 * The client's answers to answers that are not 101: redirects it follows
 * (followRedirects, maxRedirects, the 'redirect' event, credentials kept
 * from other hosts), unexpected responses, and close() while connecting.
 */
import assert from 'node:assert/strict'
import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import { WebSocket } from '../../src/index.js'
import { closed, closeServer, HOST, listen, opened, stopWss, tetherServer, waitFor } from '../helpers/net.js'

/** Resolves with [error, close code] once a failing client reported both. */
async function failure(ws: WebSocket): Promise<[Error, number]> {
  const error = waitFor<[Error]>(ws, 'error')
  const close = closed(ws)
  return [(await error)[0], (await close)[0]]
}

describe('redirects and unexpected responses', () => {
  /** An http server that answers every request with `status` and `headers`. */
  async function answering(status: number, headers: (req: IncomingMessage) => Record<string, string>) {
    const requests: IncomingMessage[] = []
    const server = http.createServer((req, res) => {
      requests.push(req)
      res.writeHead(status, headers(req)).end('not a websocket')
    })
    server.on('upgrade', (req, socket) => {
      requests.push(req)
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n${Object.entries(headers(req)).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Content-Length: 0\r\n\r\n`)
    })
    const port = await listen(server)
    return { server, port, requests }
  }

  it("followRedirects: 302 to the ws server, with a 'redirect' event", async () => {
    const { wss, url } = await tetherServer()
    const redirector = await answering(302, () => ({ Location: `${url}/target` }))
    try {
      const ws = new WebSocket(`ws://${HOST}:${redirector.port}/start`, { followRedirects: true })
      const redirect = waitFor<[string, ClientRequest]>(ws, 'redirect')
      const connection = waitFor<[WebSocket, IncomingMessage]>(wss, 'connection')
      await opened(ws)
      const [redirectUrl, request] = await redirect
      assert.equal(redirectUrl, `${url}/target`)
      assert.equal(typeof request.setHeader, 'function')
      assert.equal(ws.url, `${url}/target`)
      assert.equal((await connection)[1].url, '/target')
      ws.terminate()
    } finally {
      await stopWss(wss)
      await closeServer(redirector.server)
    }
  })

  it('credentials are not carried to another host on redirect (no redirect listener)', async () => {
    const { wss, port } = await tetherServer()
    const redirector = await answering(307, () => ({ Location: `ws://localhost:${port}/elsewhere` }))
    try {
      const connection = waitFor<[WebSocket, IncomingMessage]>(wss, 'connection')
      const ws = await opened(
        new WebSocket(`ws://${HOST}:${redirector.port}/`, { followRedirects: true, headers: { Authorization: 'Bearer secret', 'X-Other': 'kept' } }),
      )
      const [, request] = await connection
      assert.equal(redirector.requests[0]!.headers.authorization, 'Bearer secret')
      assert.equal(request.headers.authorization, undefined)
      assert.equal(request.headers['x-other'], 'kept')
      ws.terminate()
    } finally {
      await stopWss(wss)
      await closeServer(redirector.server)
    }
  })

  it("maxRedirects exceeded -> 'Maximum redirects exceeded'", async () => {
    const loop = await answering(302, (req) => ({ Location: `${req.url}x` }))
    try {
      const ws = new WebSocket(`ws://${HOST}:${loop.port}/`, { followRedirects: true, maxRedirects: 2 })
      let redirects = 0
      ws.on('redirect', () => redirects++)
      const [error, code] = await failure(ws)
      assert.equal(error.message, 'Maximum redirects exceeded')
      assert.equal(code, 1006)
      assert.equal(redirects, 2)
      assert.equal(loop.requests.length, 3)
    } finally {
      await closeServer(loop.server)
    }
  })

  it('a redirect without followRedirects is an unexpected response', async () => {
    const redirector = await answering(302, () => ({ Location: 'ws://127.0.0.1:1/' }))
    try {
      const [error] = await failure(new WebSocket(`ws://${HOST}:${redirector.port}/`))
      assert.equal(error.message, 'Unexpected server response: 302')
    } finally {
      await closeServer(redirector.server)
    }
  })

  it("a 404 with no 'unexpected-response' listener -> error 'Unexpected server response: 404', close 1006", async () => {
    const server = await answering(404, () => ({}))
    try {
      const [error, code] = await failure(new WebSocket(`ws://${HOST}:${server.port}/`))
      assert.equal(error.message, 'Unexpected server response: 404')
      assert.equal(code, 1006)
    } finally {
      await closeServer(server.server)
    }
  })

  it("a 404 with an 'unexpected-response' listener: no error, the listener gets the response", async () => {
    const server = await answering(404, () => ({ 'X-Reason': 'gone' }))
    const ws = new WebSocket(`ws://${HOST}:${server.port}/`)
    try {
      let errors = 0
      ws.on('error', () => errors++)
      const [request, response] = await waitFor<[ClientRequest, IncomingMessage]>(ws, 'unexpected-response')
      assert.equal(response.statusCode, 404)
      assert.equal(response.headers['x-reason'], 'gone')
      assert.equal(typeof request.destroy, 'function')
      assert.equal(ws.readyState, WebSocket.CONNECTING)
      assert.equal(errors, 0)
      request.destroy()
    } finally {
      ws.on('error', () => {})
      ws.terminate()
      await closeServer(server.server)
    }
  })

  it("close() while connecting: error 'WebSocket was closed before the connection was established', 1006", async () => {
    const { wss, url } = await tetherServer()
    try {
      const ws = new WebSocket(url)
      const outcome = failure(ws)
      ws.close()
      assert.equal(ws.readyState, WebSocket.CLOSING)
      const [error, code] = await outcome
      assert.equal(error.message, 'WebSocket was closed before the connection was established')
      assert.equal(code, 1006)
      assert.equal(ws.readyState, WebSocket.CLOSED)
    } finally {
      await stopWss(wss)
    }
  })
})
