/**
 * The `tether` command, run as a user runs it: `tether serve` as a child
 * process, `tether connect` and `tether bench` through pipes and a
 * pseudo-terminal, against it. Bad input must end in one line and a non-zero
 * exit status, never a stack trace.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { startTinyproxy } from '../helpers/brokers.js'
import { CLI, type ServeProcess, assertOneLineError, inTerminal, runCli, startServe } from '../helpers/cli.js'
import { HOST, Inbox, closed, delay, opened, selfSignedCertificate, until, withTimeout } from '../helpers/net.js'

let hub: ServeProcess
before(async () => {
  hub = await startServe()
})
after(async () => {
  await hub?.stop()
})

describe('tether serve', () => {
  test('serves the index, both apps, their scripts and /health', async () => {
    for (const [path, type, text] of [
      ['/', 'text/html', '/topics/NAME'],
      ['/chat', 'text/html', 'id="log"'],
      ['/scores', 'text/html', 'id="board"'],
      ['/js/chat.js', 'text/javascript', 'reconnecting'],
      ['/style.css', 'text/css', '#board'],
    ] as const) {
      const response = await fetch(hub.url + path)
      assert.equal(response.status, 200, path)
      assert.match(response.headers.get('content-type')!, new RegExp(type))
      assert.match(await response.text(), new RegExp(text.replace(/[/]/g, '\\/')))
    }
    const health = (await (await fetch(`${hub.url}/health`)).json()) as { status: string; backplane: unknown }
    assert.equal(health.status, 'ok')
    assert.deepEqual(health.backplane, { kind: 'none', state: 'none' })
    assert.equal((await fetch(`${hub.url}/nope`)).status, 404)
    assert.equal((await fetch(`${hub.url}/`, { method: 'POST' })).status, 405)
  })

  test('an unknown WebSocket path gets 404 with the endpoints listed, a bad topic 400', async () => {
    for (const [path, status] of [['/nope', 404], ['/topics/', 400], ['/topics/%E0%A4%A', 400]] as const) {
      const ws = new WsClient(hub.wsUrl + path)
      const [, response] = await new Promise<[unknown, import('node:http').IncomingMessage]>((resolve) => ws.once('unexpected-response', (...args) => resolve(args as never)))
      assert.equal(response.statusCode, status, path)
      ws.on('error', () => {})
      ws.terminate()
    }
  })

  test('the topic relay: what one client sends, every client on that topic receives', async () => {
    const a = await opened(new WsClient(`${hub.wsUrl}/topics/news`))
    const b = await opened(new WsClient(`${hub.wsUrl}/topics/news`))
    const other = await opened(new WsClient(`${hub.wsUrl}/topics/sport`))
    const [inboxA, inboxB, inboxOther] = [new Inbox(a), new Inbox(b), new Inbox(other)]
    a.send('first')
    // Order is promised per publisher: let the first publish land before the second client publishes.
    await until(() => inboxB.messages.length === 1)
    b.send(Buffer.from([1, 2]))
    for (const inbox of [inboxA, inboxB]) {
      const [text, binary] = await inbox.next(2)
      assert.deepEqual([String(text!.data), text!.isBinary, [...binary!.data], binary!.isBinary], ['first', false, [1, 2], true])
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(inboxOther.messages.length, 0)
    for (const ws of [a, b, other]) ws.terminate()
  })

  test('the live-scores endpoint sends a snapshot, then updates every second', async () => {
    // The snapshot can arrive with the 101 response: listen before 'open'.
    const ws = new WsClient(`${hub.wsUrl}/scores/ws`)
    const inbox = new Inbox(ws)
    await opened(ws)
    const snapshot = JSON.parse(String((await inbox.one()).data))
    assert.equal(snapshot.type, 'snapshot')
    assert.equal(snapshot.matches.length, 6)
    const update = JSON.parse(String((await inbox.one(3000)).data))
    assert.equal(update.type, 'match')
    assert.match(update.match.id, /^m\d$/)
    ws.terminate()
  })

  // The room's messages moved to its history topic (issue 17): /chat/ws answers a say with `said` and its position,
  // and the messages are read on /v1, here as a person with `tether connect` reads them (JSON, no subprotocol).
  test('chat: welcome with who is online and the room\'s topic, said with positions, join and leave notices, clear errors; the messages on /v1', async () => {
    const ada = await opened(new WsClient(`${hub.wsUrl}/chat/ws`))
    const adaInbox = new Inbox(ada)
    const json = async (inbox: Inbox) => JSON.parse(String((await inbox.one()).data))
    ada.send(JSON.stringify({ type: 'say', text: 'too early' }))
    assert.match((await json(adaInbox)).message, /Join a room first/)
    ada.send(JSON.stringify({ type: 'join', room: 'bad room!', nick: 'ada' }))
    assert.match((await json(adaInbox)).message, /room name/)
    ada.send(JSON.stringify({ type: 'join', room: 'lab', nick: 'ada' }))
    const welcome = await json(adaInbox)
    assert.deepEqual([welcome.online, welcome.topic], [['ada'], '$chat:lab'])
    assert.equal((await json(adaInbox)).type, 'join')
    ada.send(JSON.stringify({ type: 'say', text: 'hello lab', id: 'first' }))
    const said = await json(adaInbox)
    assert.deepEqual([said.type, said.id, said.position.offset], ['said', 'first', 1])
    const reader = await opened(new WsClient(`${hub.wsUrl}/v1`))
    const readerInbox = new Inbox(reader)
    reader.send(JSON.stringify({ type: 'subscribe', id: 1, topic: welcome.topic, recent: 10 }))
    const delivered = await json(readerInbox)
    assert.deepEqual([delivered.type, delivered.topic, delivered.position], ['deliver', '$chat:lab', said.position])
    assert.deepEqual(
      (({ type, room, nick, text }) => ({ type, room, nick, text }))(JSON.parse(delivered.data)),
      { type: 'message', room: 'lab', nick: 'ada', text: 'hello lab' },
    )
    assert.equal((await json(readerInbox)).type, 'subscribed')
    const bob = await opened(new WsClient(`${hub.wsUrl}/chat/ws`))
    const bobInbox = new Inbox(bob)
    bob.send(JSON.stringify({ type: 'join', room: 'lab', nick: 'bob' }))
    assert.deepEqual((await json(bobInbox)).online, ['ada', 'bob'])
    assert.equal((await json(adaInbox)).nick, 'bob')
    bob.send(JSON.stringify({ type: 'say', text: 'hi ada' }))
    assert.equal(JSON.parse((await json(readerInbox)).data).nick, 'bob')
    bob.close()
    const leave = await json(adaInbox)
    assert.deepEqual([leave.type, leave.nick], ['leave', 'bob'])
    ada.terminate()
    reader.terminate()
  })

  test('a port in use, an unreadable certificate, an unknown option: one line, non-zero exit', async () => {
    const busy = await runCli(['serve', '--port', String(hub.port)])
    assert.equal(busy.status, 1)
    assertOneLineError(busy.stderr, /port \d+ is already in use/)
    const cert = await runCli(['serve', '--port', '0', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'])
    assert.equal(cert.status, 2, 'a setting naming a file it cannot read is a wrong setting')
    assertOneLineError(cert.stderr, /cannot read --tls-cert \/nonexistent\/cert.pem: ENOENT/)
    const unknown = await runCli(['serve', '--colour'])
    assert.equal(unknown.status, 2)
    assertOneLineError(unknown.stderr, /unknown option '--colour'/)
    const badPort = await runCli(['serve', '--port', 'eighty'])
    assert.equal(badPort.status, 2)
    assertOneLineError(badPort.stderr, /--port must be a whole number/)
  })

  test('wss with --tls-cert and --tls-key; SIGTERM closes clients with 1001 and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-tls-'))
    const { key, cert } = selfSignedCertificate()
    writeFileSync(join(dir, 'key.pem'), key)
    writeFileSync(join(dir, 'cert.pem'), cert)
    const secure = await startServe(['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])
    try {
      assert.match(secure.url, /^https:/)
      const trusted = await runCli(['connect', `${secure.wsUrl}/echo`, '-k', '-x', 'over tls'])
      assert.equal(trusted.status, 0, trusted.stderr)
      assert.equal(trusted.stdout, 'over tls\n')
      const untrusted = await runCli(['connect', `${secure.wsUrl}/echo`, '-x', 'x'])
      assert.equal(untrusted.status, 1)
      assertOneLineError(untrusted.stderr, /certificate/)
      const client = await opened(new WsClient(`${secure.wsUrl}/echo`, { rejectUnauthorized: false }))
      const closing = closed(client)
      assert.equal(await secure.stop('SIGTERM'), 0)
      assert.deepEqual(await closing, [1001, 'server shutting down'])
    } finally {
      await secure.stop('SIGKILL')
    }
  })
})

describe('tether connect', () => {
  test('--execute sends, waits for the replies, prints them and exits 0', async () => {
    const result = await runCli(['connect', `${hub.wsUrl}/echo`, '-x', 'hello', '-x', 'world'])
    assert.equal(result.status, 0, result.stderr)
    assert.equal(result.stdout, 'hello\nworld\n')
    assert.match(result.stderr, /closed: 1000/)
  })

  test('pipe mode: a line per message in, a line per message out (binary as hex)', async () => {
    const result = await runCli(['connect', `${hub.wsUrl}/echo`], { input: 'one\ntwo\nthree\n' })
    assert.equal(result.status, 0, result.stderr)
    assert.equal(result.stdout, 'one\ntwo\nthree\n')
    // A listener that sends nothing: it prints what the topic carries until --wait ends it.
    const sub = await opened(new WsClient(`${hub.wsUrl}/topics/pipe`))
    const listening = runCli(['connect', `${hub.wsUrl}/topics/pipe`, '-w', '2'], { input: '' })
    let done = false
    void listening.finally(() => (done = true))
    // Until the listener has subscribed, a publish reaches only `sub`: keep publishing until it exits.
    while (!done) {
      sub.send(Buffer.from([0xde, 0xad]))
      await delay(100)
    }
    const heard = await listening
    const lines = heard.stdout.trim().split('\n')
    assert.ok(lines.length >= 1 && lines.every((line) => line === 'dead'), heard.stdout)
    sub.terminate()
  })

  test('headers and subprotocols reach the server', async () => {
    const { WebSocketServer } = await import('../../src/index.js')
    const wss = new WebSocketServer({ port: 0, host: HOST, handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false) })
    await new Promise((resolve) => wss.once('listening', resolve))
    const port = (wss.address() as net.AddressInfo).port
    wss.on('connection', (ws, request) => ws.send(`${request.headers['x-token']} ${ws.protocol}`))
    const result = await runCli(['connect', `ws://${HOST}:${port}/`, '-H', 'X-Token: abc', '-s', 'chat.v1', '-s', 'chat.v2', '-x', 'hi'])
    assert.equal(result.stdout.split('\n')[0], 'abc chat.v2')
    await new Promise((resolve) => wss.close(resolve))
  })

  test('--proxy tunnels through a real forward proxy (tinyproxy), with basic auth; a refusal is one line', async () => {
    const open = await startTinyproxy()
    const guarded = await startTinyproxy({ user: 'ada', password: 's3cret' })
    try {
      const through = await runCli(['connect', `${hub.wsUrl}/echo`, '--proxy', open.url, '-x', 'via proxy'])
      assert.equal(through.status, 0, through.stderr)
      assert.equal(through.stdout, 'via proxy\n')
      const authed = await runCli(['connect', `${hub.wsUrl}/echo`, '--proxy', guarded.url, '-x', 'with auth'])
      assert.equal(authed.status, 0, authed.stderr)
      assert.equal(authed.stdout, 'with auth\n')
      const denied = await runCli(['connect', `${hub.wsUrl}/echo`, '--proxy', `http://127.0.0.1:${guarded.port}`, '-x', 'x'])
      assert.equal(denied.status, 1)
      assertOneLineError(denied.stderr, /proxy refused the tunnel to .*: HTTP 407/)
    } finally {
      await open.stop()
      await guarded.stop()
    }
  })

  test('a refused handshake shows the HTTP status; a bad URL or a closed port is one line; exit 1', async () => {
    const refused = await runCli(['connect', `${hub.wsUrl}/nowhere`, '-x', 'x'])
    assert.equal(refused.status, 1)
    assertOneLineError(refused.stderr, /refused the WebSocket handshake: HTTP 404 Not Found/)
    const badUrl = await runCli(['connect', 'not a url'])
    assert.equal(badUrl.status, 1)
    assertOneLineError(badUrl.stderr, /invalid URL "not a url"/)
    const ftp = await runCli(['connect', 'ftp://example.test/'])
    assertOneLineError(ftp.stderr, /scheme must be ws: or wss:/)
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
    const port = (server.address() as net.AddressInfo).port
    await new Promise((resolve) => server.close(resolve))
    const closedPort = await runCli(['connect', `ws://${HOST}:${port}/`])
    assert.equal(closedPort.status, 1)
    assertOneLineError(closedPort.stderr, /connection refused/)
  })

  test('a peer closing with an error code gives exit status 3 and prints the code and reason', async () => {
    const { WebSocketServer } = await import('../../src/index.js')
    const wss = new WebSocketServer({ port: 0, host: HOST })
    await new Promise((resolve) => wss.once('listening', resolve))
    wss.on('connection', (ws) => ws.close(4001, 'go away'))
    const result = await runCli(['connect', `ws://${HOST}:${(wss.address() as net.AddressInfo).port}/`], { input: '' })
    assert.equal(result.status, 3)
    assert.match(result.stderr, /closed: 4001 go away/)
    await new Promise((resolve) => wss.close(resolve))
  })

  test('interactive, in a pseudo-terminal: directions and types shown, /ping, /binary, /close CODE REASON', async () => {
    // Python's pty module gives the CLI a real terminal on both stdin and stdout.
    const { output, status } = await inTerminal(
      `
read_until(b'connected to', 10)
for line, marker in [(b'hello\\r', b'< hello'), (b'/binary 01ff\\r', b'01 ff'), (b'/ping\\r', b'< pong'), (b'/close 4000 done\\r', b'closed:')]:
    os.write(fd, line)
    read_until(marker, 5)
finish()
`,
      ['connect', `${hub.wsUrl}/echo`],
      20_000,
    )
    assert.match(output, /connected to ws:\/\//)
    assert.match(output, /< hello/)
    assert.match(output, /< \[binary 2 B\] 01 ff/)
    assert.match(output, /< pong/)
    assert.match(output, /closed: 4000/)
    // Issue 16: a close the user asked for is not the peer closing abnormally (3).
    assert.equal(status, 0, 'the user closed with /close 4000')
  })
})

describe('tether bench and help', () => {
  test('echo and fan-out runs report rates, latency percentiles and the client CPU as JSON', async () => {
    const echo = await runCli(['bench', `${hub.wsUrl}/echo`, '-c', '4', '-d', '1', '--json'])
    assert.equal(echo.status, 0, echo.stderr)
    const report = JSON.parse(echo.stdout)
    assert.equal(report.mode, 'echo')
    assert.ok(report.count > 0 && report.rate > 0)
    assert.ok(report.latencyMs.p50 > 0 && report.latencyMs.p99 >= report.latencyMs.p50)
    assert.ok(report.clientCpu > 0)
    const fanout = JSON.parse((await runCli(['bench', `${hub.wsUrl}/topics/bench`, '-m', 'fanout', '-c', '20', '-d', '1', '--json'])).stdout)
    assert.ok(fanout.count > 0, 'deliveries counted')
    const ramp = JSON.parse((await runCli(['bench', `${hub.wsUrl}/echo`, '-m', 'ramp', '-c', '50', '--json'])).stdout)
    assert.equal(ramp.count, 50)
    const table = await runCli(['bench', `${hub.wsUrl}/echo`, '-c', '2', '-d', '0.5'])
    assert.match(table.stdout, /rate +[\d,]+ messages\/s/)
    assert.match(table.stdout, /client CPU/)
    const refused = await runCli(['bench', `${hub.wsUrl}/nowhere`, '-d', '0.5'])
    assert.equal(refused.status, 1)
    assertOneLineError(refused.stderr, /HTTP 404/)
  })

  test('bad broker options end in one line, never a hang or a stack trace', async () => {
    const zero = await runCli(['serve', '--port', '0', '--redis', 'redis://127.0.0.1:1', '--broker-timeout', '0'])
    assert.equal(zero.status, 2)
    assertOneLineError(zero.stderr, /--broker-timeout must be a number of seconds above 0/)
    // Issue 16: `--redis notaurl` said only "Invalid URL"; now a usage error naming the option and an example.
    for (const [flag, url, expected] of [
      ['--redis', 'notaurl', /^tether: --redis "notaurl" is not a URL: use redis:\/\/127\.0\.0\.1:6379/],
      ['--redis', 'http://127.0.0.1:6379', /^tether: --redis "http:\/\/127\.0\.0\.1:6379" must start with redis:\/\/ or rediss:\/\//],
      ['--nats', 'nats://[::1', /^tether: --nats "nats:\/\/\[::1" is not a URL/],
    ] as const) {
      const bad = await runCli(['serve', '--port', '0', flag, url, '--broker-timeout', '2'])
      assert.equal(bad.status, 2, `${flag} ${url}: ${bad.stderr}`)
      assert.equal(bad.stdout, '')
      assertOneLineError(bad.stderr, expected)
    }
  })

  test('--help reads well for the program and each command', async () => {
    const main = await runCli(['--help'])
    assert.equal(main.status, 0)
    for (const command of ['serve', 'connect', 'bench']) assert.match(main.stdout, new RegExp(`^  ${command}`, 'm'))
    const serve = await runCli(['serve', '--help'])
    assert.match(serve.stdout, /--redis <url>/)
    assert.match(serve.stdout, /\/topics\/NAME/)
    // Each default once, in the option's own units (outsider finding 15: "(default 300) (default: 300000)").
    const options = serve.stdout.slice(0, serve.stdout.indexOf('\nEndpoints:')).split(/\n(?=  -)/)
    for (const option of options) assert.ok((option.match(/\(default/g) ?? []).length <= 1, option)
    const flat = serve.stdout.replace(/\s+/g, ' ')
    assert.match(flat, /--history-age <seconds> how long a message stays in history \(default: 300\)/)
    assert.match(flat, /--history-size <n> messages each of those topics keeps \(default: 100\)/)
    assert.match(flat, /--broker-timeout <seconds> [^(]+\(default: 5\)/)
    const connect = await runCli(['connect', '--help'])
    assert.match(connect.stdout, /Exit status/)
    const version = await runCli(['--version'])
    assert.match(version.stdout, /^\d+\.\d+\.\d+/)
  })
})

describe('tether serve clusters: the topic relay over a real broker', { timeout: 60_000 }, () => {
  for (const kind of ['redis', 'nats'] as const) {
    test(`--${kind} with the broker unreachable at start: one line naming the URL, exit 1 (refused, and silent)`, async () => {
      // Issue 13, part 5: `tether serve --redis redis://127.0.0.1:1` used to wait forever, printing nothing.
      const { freePort, startSilentServer } = await import('../helpers/brokers.js')
      const refused = `${kind}://${HOST}:${await freePort()}`
      const result = await runCli(['serve', '--port', '0', `--${kind}`, refused])
      assert.equal(result.status, 1)
      assert.equal(result.stdout, '', 'the server never started')
      const name = kind === 'redis' ? 'Redis' : 'NATS'
      assertOneLineError(result.stderr, new RegExp(`^tether: Could not connect the ${name} backplane to ${refused.replace(/[.]/g, '\\.')}: .*(ECONNREFUSED|CONNECTION_REFUSED)`))
      const silent = await startSilentServer()
      try {
        const quiet = `${kind}://${HOST}:${silent.port}`
        const waited = await runCli(['serve', '--port', '0', `--${kind}`, quiet, '--broker-timeout', '0.3'])
        assert.equal(waited.status, 1)
        assert.equal(waited.stdout, '')
        assert.equal(waited.stderr, `tether: Could not connect the ${name} backplane to ${quiet}: no answer within 300 ms (connectTimeout)\n`)
        assert.ok(silent.accepted > 0, 'it did reach the silent address')
      } finally {
        await silent.stop()
      }
    })

    test(`two nodes over ${kind}: plain clients on either node receive what is sent on the other`, async () => {
      const { startBroker } = await import('../helpers/brokers.js')
      // With --nats, the hub keeps the chat's and the scores' history in JetStream (issue 17).
      const broker = await startBroker(kind, { jetstream: kind === 'nats' })
      const nodes: ServeProcess[] = []
      try {
        for (let i = 0; i < 2; i++) nodes.push(await startServe([`--${kind}`, broker.url]))
        const health = (await (await fetch(`${nodes[1]!.url}/health`)).json()) as { backplane: unknown }
        assert.deepEqual(health.backplane, { kind, state: 'connected' })
        const onA = await opened(new WsClient(`${nodes[0]!.wsUrl}/topics/alerts`))
        const onB = await opened(new WsClient(`${nodes[1]!.wsUrl}/topics/alerts`))
        const [inboxA, inboxB] = [new Inbox(onA), new Inbox(onB)]
        for (let i = 0; i < 20; i++) (i % 2 === 0 ? onA : onB).send(`alert ${i}`)
        for (const inbox of [inboxA, inboxB]) {
          const received = (await inbox.next(20)).map((m) => String(m.data))
          assert.deepEqual(received.filter((m) => Number(m.split(' ')[1]) % 2 === 0), Array.from({ length: 10 }, (_, i) => `alert ${2 * i}`))
          assert.deepEqual(received.filter((m) => Number(m.split(' ')[1]) % 2 === 1), Array.from({ length: 10 }, (_, i) => `alert ${2 * i + 1}`))
        }
        await delay(100)
        assert.equal(inboxA.messages.length, 20, 'each exactly once')
        // An operator reads the backplane accounting in /health.
        type Stats = { forwarded: number; sent: number; unsent: number; pending: number; received: number; lost: number }
        const stats = async (node: ServeProcess): Promise<Stats> => ((await (await fetch(`${node.url}/health`)).json()) as { stats: Stats }).stats
        for (const node of nodes) {
          let current = await stats(node)
          for (let poll = 0; current.pending > 0 && poll < 100; poll++) current = await delay(20).then(() => stats(node))
          assert.deepEqual(
            [current.forwarded, current.sent, current.unsent, current.pending, current.received, current.lost],
            [10, 10, 0, 0, 10, 0],
          )
        }
        onA.terminate()
        onB.terminate()
      } finally {
        for (const node of nodes) await node.stop()
        await broker.stop()
      }
    })
  }
})
