/**
 * TypeScript users migrating from ws (+ @types/ws): the usual snippets must
 * compile under `strict` without annotations, and run. The compile-time half
 * of this test is `npm test` itself: tsc builds this file with
 * noImplicitAny, so if 'connection' listeners lose their types again the
 * build fails (TS7006 on `data`/`isBinary` below).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { WebSocket, WebSocketServer } from '../../src/index.js'
import { closed, Inbox, opened, stopWss, waitFor } from '../helpers/net.js'

describe('typed usage, as with @types/ws', () => {
  it("wss.on('connection', (ws, req) => ws.on('message', (data, isBinary) => ...)) compiles and echoes", async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    const addresses: Array<string | undefined> = []
    wss.on('connection', (ws, req) => {
      addresses.push(req.socket.remoteAddress)
      // `ws` is a WebSocket here, not `any`: these calls are type-checked.
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
      ws.on('close', (code, reason) => addresses.push(`${code} ${reason}`))
    })
    wss.once('headers', (headers, req) => headers.push(`X-Path: ${req.url}`))
    wss.on('wsClientError', (error, socket) => socket.destroy(error))
    await waitFor(wss, 'listening')
    const address = wss.address()
    assert.ok(address !== null && typeof address === 'object')
    const client = await opened(new WebSocket(`ws://127.0.0.1:${address.port}`))
    try {
      const inbox = new Inbox(client)
      client.send('typed')
      client.send(Buffer.from([7]))
      const [text, binary] = await inbox.next(2)
      assert.deepEqual([String(text!.data), text!.isBinary, [...binary!.data], binary!.isBinary], ['typed', false, [7], true])
      const done = closed(client)
      client.close(1000, 'done')
      await done
      assert.equal(addresses[0], '127.0.0.1')
    } finally {
      client.terminate()
      await stopWss(wss)
    }
  })
})
