/**
 * `tether serve --http2` as a user runs it (a child process of the built
 * command): HTTP/2 and HTTP/1.1 on one TLS port, WebSockets over both, and
 * the flag refused without TLS. The browser side is in browser.test.ts.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { WebSocket } from '../../src/index.js'
import { createHub } from '../../src/hub/index.js'
import { runCli, startServe } from '../helpers/cli.js'
import { Inbox, closed, opened, selfSignedCertificate, waitFor } from '../helpers/net.js'
import { openStream, rawSession, destroySession } from '../helpers/http2.js'

const dir = mkdtempSync(join(tmpdir(), 'tether-h2-serve-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const { key, cert } = selfSignedCertificate()
writeFileSync(join(dir, 'key.pem'), key)
writeFileSync(join(dir, 'cert.pem'), cert)

describe('tether serve --http2', () => {
  test('serves pages over HTTP/2 and WebSockets over HTTP/2 and HTTP/1.1 on one port; SIGTERM closes them with 1001', async () => {
    const serve = await startServe(['--http2', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])
    const session = await rawSession(serve.url)
    try {
      assert.match(serve.url, /^https:/)
      assert.equal(session.remoteSettings.enableConnectProtocol, true)
      const page = await openStream(session, { ':method': 'GET', ':path': '/health', ':authority': new URL(serve.url).host })
      assert.equal(page.status, 200)
      assert.equal(typeof JSON.parse(await page.body()).connections, 'number')
      const overH2 = await opened(new WebSocket(`${serve.wsUrl}/echo`, { http2: true, ca: cert }))
      assert.equal((overH2._socket as unknown as { alpnProtocol: string }).alpnProtocol, 'h2')
      const overH1 = await opened(new WebSocket(`${serve.wsUrl}/echo`, { ca: cert }))
      for (const ws of [overH2, overH1]) {
        const inbox = new Inbox(ws)
        ws.send('echo me')
        assert.equal(String((await inbox.one()).data), 'echo me')
      }
      const closing = [closed(overH2), closed(overH1)]
      assert.equal(await serve.stop('SIGTERM'), 0)
      assert.deepEqual((await Promise.all(closing)).map(([code]) => code), [1001, 1001])
    } finally {
      await destroySession(session)
      await serve.stop('SIGKILL')
    }
  })

  test('refuses --http2 (or TETHER_HTTP2=true) without --tls-cert/--tls-key, in one line', async () => {
    const result = await runCli(['serve', '--port', '0', '--http2'])
    // A wrong setting: exit 2, naming where it came from (issue 16).
    assert.equal(result.status, 2)
    assert.doesNotMatch(result.stderr, /^\s+at /m)
    assert.match(result.stderr, /--http2 needs --tls-cert and --tls-key/)
    const fromEnv = await runCli(['serve', '--port', '0'], { env: { TETHER_HTTP2: 'true' } })
    assert.equal(fromEnv.status, 2)
    assert.match(fromEnv.stderr, /^tether: TETHER_HTTP2 needs --tls-cert and --tls-key/)
  })

  test('lists --http2 in its help', async () => {
    const result = await runCli(['serve', '--help'])
    assert.equal(result.status, 0)
    assert.match(result.stdout, /--http2\s+with --tls-cert: HTTP\/2 beside HTTP\/1\.1/)
  })
})

describe('the hub over HTTP/2 (createHub with http2)', () => {
  test('pages answer over HTTP/2 (the Host rule reads :authority); after 100 requests the connection gets a GOAWAY; a WebSocket path asked for with a GET is a 400', async () => {
    const hub = await createHub({ port: 0, tls: selfSignedCertificate(), http2: true, log: () => {} })
    const session = await rawSession(hub.url)
    try {
      const authority = new URL(hub.url).host
      const page = await openStream(session, { ':method': 'GET', ':path': '/', ':authority': authority })
      assert.equal(page.status, 200)
      const echo = await openStream(session, { ':method': 'GET', ':path': '/echo', ':authority': authority })
      assert.equal(echo.status, 400)
      assert.match(await echo.body(), /extended CONNECT/)
      const foreign = await openStream(session, { ':method': 'GET', ':path': '/', ':authority': 'evil.example' })
      assert.equal(foreign.status, 403)
      const goaway = waitFor(session, 'goaway', 20_000)
      for (let i = 3; i < 100; i++) {
        const answer = await openStream(session, { ':method': 'GET', ':path': '/health', ':authority': authority })
        assert.equal(answer.status, 200)
        await answer.body()
      }
      await goaway
    } finally {
      await destroySession(session)
      await hub.close()
    }
  })
})
