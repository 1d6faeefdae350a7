/**
 * The logs of `tether serve` (issue 16): JSON lines on stdout when it is a
 * pipe, one per connection opened and closed (endpoint, close code,
 * duration, bytes) and per refused handshake (reason, status); never a
 * message's contents or a token, wherever the token travelled; a readable
 * line each on a terminal; `--log-level`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SignJWT } from 'jose'
import { WebSocket as WsClient } from 'ws'
import { lineLogger, prettyLine } from '../../src/hub/index.js'
import { assertOneLineError, inTerminal, runCli, startServe } from '../helpers/cli.js'
import { Inbox, closed, opened, rawExchange, until, upgradeRequest, waitFor } from '../helpers/net.js'
import { REFUSAL_LOG_BUDGET } from '../../src/hub/log-budget.js'

const SECRET = 'a log test secret, long enough for HS256'

async function token(subject: string, expiresIn = '1h'): Promise<string> {
  return new SignJWT({ sub: subject, tether: { subscribe: ['*'], publish: ['*'] } })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(SECRET))
}

async function refusedStatus(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<number> {
  const ws = new WsClient(url, options.protocols ?? [], { headers: options.headers ?? {} })
  ws.on('error', () => {})
  const [, response] = await waitFor<[unknown, import('node:http').IncomingMessage]>(ws, 'unexpected-response')
  ws.terminate()
  return response.statusCode!
}

type LogRecord = { level: string; time: string; msg: string; event?: string; [key: string]: unknown }

describe('tether serve logs', () => {
  test('a JSON line per connection and refusal, with codes, durations and bytes; no contents, no tokens', async () => {
    // The secret from the environment (TETHER_JWT_SECRET), as an operator should pass it.
    const hub = await startServe(['--auth', 'jwt'], 0, { env: { TETHER_JWT_SECRET: SECRET } })
    const tokens = await Promise.all(['ada', 'bob', 'cy'].map((subject) => token(subject)))
    const expired = await token('old', '-1s')
    const contents = 'the-private-message-text-7d1f'
    try {
      const url = `${hub.wsUrl}/topics/news`
      const viaProtocol = await opened(new WsClient(url, ['tether', `tether.bearer.${tokens[0]}`]))
      const viaCookie = await opened(new WsClient(url, { headers: { Cookie: `tether_token=${tokens[1]}` } }))
      const viaQuery = await opened(new WsClient(`${url}?token=${tokens[2]}`))
      const inbox = new Inbox(viaCookie)
      viaProtocol.send(`${contents} and the token ${tokens[0]}`)
      await inbox.one()
      viaProtocol.send(JSON.stringify({ type: 'tether.auth', token: 'not.a.valid-token' }))
      assert.equal((await closed(viaProtocol))[0], 1008, 'a bad refreshed token closes')
      viaCookie.close(4000, contents)
      await closed(viaCookie)
      viaQuery.terminate()
      assert.equal(await refusedStatus(url, { protocols: ['tether', `tether.bearer.${expired}`] }), 401)
      assert.equal(await refusedStatus(`${url}?token=${expired}`), 401)
      await until(() => hub.logs().filter((line) => line.includes('connection.close')).length === 3 && hub.logs().filter((line) => line.includes('handshake.refused')).length === 2)
    } finally {
      assert.equal(await hub.stop(), 0)
    }
    const lines = hub.logs()
    const records = lines.map((line) => JSON.parse(line) as LogRecord)
    for (const record of records) {
      assert.match(record.level, /^(debug|info|warn|error)$/)
      assert.ok(!Number.isNaN(Date.parse(record.time)))
    }
    const opens = records.filter((record) => record.event === 'connection.open')
    assert.deepEqual(opens.map((record) => [record.endpoint, record.subject]), [['relay', 'ada'], ['relay', 'bob'], ['relay', 'cy']])
    assert.ok(opens.every((record) => record.address === '127.0.0.1'))
    const closes = records.filter((record) => record.event === 'connection.close')
    assert.deepEqual(closes.map((record) => [record.id, record.code]).sort(), [[1, 1008], [2, 4000], [3, 1006]])
    for (const close of closes) {
      assert.equal(typeof close.durationMs, 'number')
      assert.ok((close.bytesReceived as number) > 0 && (close.bytesSent as number) > 0, JSON.stringify(close))
    }
    const refusals = records.filter((record) => record.event === 'handshake.refused')
    assert.deepEqual(refusals.map((record) => [record.reason, record.status]), [['authenticate', 401], ['authenticate', 401]])
    assert.ok(records.some((record) => record.event === 'hub.stopping' && record.signal === 'SIGTERM'))
    assert.ok(records.some((record) => record.event === 'hub.stopped'))
    // Rule 1 of log.ts: neither the message, nor the close reason, nor any token, nor the secret.
    const all = lines.join('\n') + hub.stderr()
    for (const secret of [contents, SECRET, expired, 'not.a.valid-token', ...tokens]) assert.ok(!all.includes(secret), `leaked: ${secret.slice(0, 20)}...`)
    for (const secret of [...tokens, expired]) assert.ok(!all.includes(secret.split('.')[2]!), 'not even a token signature')
  })

  test('a flood of refusals writes a bounded number of short lines, without the values the client sent (outsider finding 1)', async () => {
    const hub = await startServe()
    const started = performance.now()
    const host = `127.0.0.1:${hub.port}`
    // A client's own values: a long Origin, a foreign Host, a path. None may reach the log (log.ts Rule 1).
    const requests = [
      upgradeRequest({ path: '/echo', headers: { Host: host, Origin: `https://${'a'.repeat(4000)}.origin-marker.example` } }),
      upgradeRequest({ path: '/echo', headers: { Host: 'host-marker.example' } }),
      upgradeRequest({ path: '/path-marker', headers: { Host: host } }),
    ]
    const total = 600
    let sent = 0
    const worker = async (): Promise<void> => {
      while (sent < total) {
        const answer = await rawExchange(hub.port, requests[sent++ % requests.length]!)
        assert.match(answer, /^HTTP\/1.1 40[34]/)
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
    assert.equal(await hub.stop(), 0)
    const seconds = (performance.now() - started) / 1000
    const all = hub.logs().join('\n') + hub.stderr()
    for (const marker of ['aaaaaaaaaaaaaaaaaaaa', 'origin-marker', 'host-marker', 'path-marker']) assert.ok(!all.includes(marker), `the log holds ${marker}`)
    const records = hub.logs().map((line) => JSON.parse(line) as LogRecord)
    const logged = records.filter((record) => record.event === 'handshake.refused')
    const summaries = records.filter((record) => record.event === 'handshake.refused.summary')
    // The budget's ceiling for the time the flood took (generous: the whole run), however long that was.
    const ceiling = REFUSAL_LOG_BUDGET.burst + REFUSAL_LOG_BUDGET.perSecond * (seconds + 1)
    assert.ok(logged.length <= ceiling, `${logged.length} refusal lines in ${seconds.toFixed(1)} s (ceiling ${ceiling})`)
    assert.ok(summaries.length >= 1, 'the lines left out are told')
    // Every refusal is either a line or counted in a summary, by its reason.
    assert.equal(logged.length + summaries.reduce((sum, record) => sum + (record.count as number), 0), total)
    const byReason: Record<string, number> = {}
    for (const record of logged) byReason[record.reason as string] = (byReason[record.reason as string] ?? 0) + 1
    for (const record of summaries) for (const [reason, count] of Object.entries(record.byReason as object)) byReason[reason] = (byReason[reason] ?? 0) + (count as number)
    assert.deepEqual(byReason, { origin: total / 3, host: total / 3, path: total / 3 })
    for (const line of hub.logs()) assert.ok(Buffer.byteLength(line) < 400, `a long line: ${line.slice(0, 200)}`)
  })

  test('--log-level warn keeps connections out; TETHER_LOG_LEVEL=error too; a bad level is a usage error', async () => {
    for (const [args, env] of [[['--log-level', 'warn'], {}], [[], { TETHER_LOG_LEVEL: 'error' }]] as const) {
      const hub = await startServe([...args], 0, { env })
      const ws = await opened(new WsClient(`${hub.wsUrl}/echo`))
      ws.close()
      await closed(ws)
      await hub.stop()
      assert.deepEqual(hub.logs().filter((line) => line.includes('connection.')), [])
      // The start is an info record: not in these logs, but its URL is said on stderr (outsider finding 9).
      assert.ok(!hub.logs().some((line) => line.includes('hub.listening')))
      assert.match(hub.stderr(), /^tether serve on http:\/\/127\.0\.0\.1:\d+\n/)
    }
    const silent = await startServe(['--log-level', 'silent'])
    await silent.stop()
    assert.deepEqual(silent.logs(), [])
    assert.match(silent.stderr(), /^tether serve on http:\/\/127\.0\.0\.1:\d+\n$/)
    const bad = await runCli(['serve', '--port', '0', '--log-level', 'loud'])
    assert.equal(bad.status, 2)
    assertOneLineError(bad.stderr, /^tether: --log-level must be one of debug, info, warn, error, silent, not "loud"/)
  })

  test('on a terminal: a banner, then one readable line per record', async () => {
    const { output, status } = await inTerminal(
      `
read_until(b'tether serve on', 10)
read_for(0.3)
os.kill(pid, 15)
read_until(b'stopped', 10)
finish()
`,
      ['serve', '--port', '0'],
    )
    assert.equal(status, 0, output)
    assert.match(output, /^tether serve on http:\/\/127\.0\.0\.1:\d+/m)
    assert.match(output, /^\d\d:\d\d:\d\d INFO  SIGTERM: closing connections \(1001\), at most 5 s  event=hub\.stopping signal=SIGTERM\r?$/m)
    assert.doesNotMatch(output, /"level"/)
  })

  test('the readable form escapes control characters, so a value cannot forge a line', () => {
    const line = prettyLine(JSON.stringify({ level: 'info', time: '2026-12-01T10:11:12.000Z', msg: 'handshake refused', detail: 'Host evil\n12:00:00 INFO  fake' }))
    assert.equal(line, '10:11:12 INFO  handshake refused  detail="Host evil\\\\u000a12:00:00 INFO  fake"\n')
    const heard: string[] = []
    const logger = lineLogger((text) => heard.push(text), 'warn')
    logger.info({ a: 1 }, 'quiet')
    logger.warn({ code: 1006, reason: undefined }, 'loud')
    assert.deepEqual(heard, ['WARN  loud  code=1006'])
  })
})
