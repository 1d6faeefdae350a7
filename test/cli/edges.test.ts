/**
 * The rough edges a new user found (issue 16), each through a real pipe or a
 * pseudo-terminal: a closed stdout, one-line errors with the `tether:`
 * prefix, the interactive prompt, closing yourself, and `tether bench`'s
 * duration, Ctrl-C and warm-up.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { WebSocketServer } from '../../src/index.js'
import { CLI, type ServeProcess, assertOneLineError, inTerminal, runCli, startServe } from '../helpers/cli.js'
import { WebSocket as WsClient } from 'ws'
import { HOST, ROOT, delay, portOf, waitFor, withTimeout } from '../helpers/net.js'

let hub: ServeProcess
before(async () => {
  hub = await startServe()
})
after(async () => {
  await hub?.stop()
})

/** Runs `tether ARGS | reader` in bash; resolves with the reader's output, tether's stderr and tether's exit status. */
async function piped(args: string[], reader: string): Promise<{ stdout: string; stderr: string; status: number }> {
  const quoted = [process.execPath, CLI, ...args].map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ')
  const child = spawn('bash', ['-c', `${quoted} | ${reader}; echo "status=\${PIPESTATUS[0]}" >&2`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  await withTimeout(new Promise((resolve) => child.once('close', resolve)), 20_000, `tether ${args.join(' ')} | ${reader}`)
  const status = Number(/status=(\d+)\n$/.exec(stderr)?.[1])
  return { stdout, stderr: stderr.replace(/status=\d+\n$/, ''), status }
}

/** A WebSocket server of this process on a free port; `setup` gets each connection. */
async function server(setup: (ws: import('../../src/index.js').WebSocket) => void, options: ConstructorParameters<typeof WebSocketServer>[0] = {}) {
  const wss = new WebSocketServer({ port: 0, host: HOST, ...options })
  await waitFor(wss, 'listening')
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    setup(ws)
  })
  after(() => new Promise<void>((resolve) => wss.close(() => resolve())))
  return { wss, url: `ws://${HOST}:${portOf(wss)}` }
}

describe('a closed stdout ends the program quietly, exit 0', () => {
  test('tether connect ws://…/scores/ws | head -2', async () => {
    // -w: stdin is /dev/null here; a user's terminal stays open, so wait as it would.
    const result = await piped(['connect', `${hub.wsUrl}/scores/ws`, '-w', '10'], 'head -2')
    assert.equal(result.stdout.split('\n').length, 3, 'two lines, then head closed the pipe')
    assert.equal(result.status, 0, result.stderr)
    assert.doesNotMatch(result.stderr, /EPIPE|^\s+at /m)
  })

  test('tether bench --help | head -1, and | true (the reader gone before the first write)', async () => {
    const head = await piped(['bench', '--help'], 'head -1')
    assert.match(head.stdout, /^Usage: tether bench/)
    assert.deepEqual([head.status, head.stderr], [0, ''])
    for (let run = 0; run < 3; run++) {
      const gone = await piped(['bench', '--help'], 'true')
      assert.deepEqual([gone.status, gone.stderr], [0, ''], `run ${run}`)
    }
  })
})

describe('tether serve with a closed stdout keeps serving (outsider finding 2)', () => {
  test('the reader of its logs goes away: one line on stderr, then it serves as before, and SIGTERM still exits 0', async () => {
    const served = await startServe()
    try {
      // The pipe's reading end closes, as when `| head -1` or a log shipper ends.
      served.proc.stdout!.destroy()
      const echo = async (text: string): Promise<string> => {
        const ws = new WsClient(`${served.wsUrl}/echo`)
        await waitFor(ws, 'open')
        ws.send(text)
        const [data] = await waitFor<[Buffer]>(ws, 'message')
        ws.close()
        await waitFor(ws, 'close')
        return data.toString()
      }
      // Each connection writes log lines: the first write meets the closed pipe.
      assert.equal(await echo('first'), 'first')
      for (let poll = 0; !served.stderr().includes('stdout was closed') && poll < 100; poll++) await delay(50)
      for (let i = 0; i < 3; i++) assert.equal(await echo(`after ${i}`), `after ${i}`, 'still serving')
      assert.equal((await fetch(`${served.url}/health/ready`)).status, 200)
      assert.equal(served.proc.exitCode, null)
      assert.equal(served.stderr().match(/stdout was closed/g)?.length, 1, served.stderr())
      assertOneLineError(served.stderr(), /no more logs are written; still serving/)
    } finally {
      assert.equal(await served.stop('SIGTERM'), 0)
    }
  })
})

describe('tether serve with a stdout nobody reads (a stuck log shipper)', () => {
  test('past 1 MiB of logs waiting, lines are dropped and counted (said once stdout drains); it keeps serving', async () => {
    // An outsider's FIFO whose reader stopped reading took the hub from 70 to 577 MB: every line was buffered.
    const served = await startServe()
    try {
      served.proc.stdout!.pause()
      const churn = async (count: number): Promise<void> => {
        for (let i = 0; i < count; i++) {
          const ws = new WsClient(`${served.wsUrl}/echo`)
          ws.on('error', () => {})
          await waitFor(ws, 'open')
          ws.terminate()
        }
      }
      // Each connection writes two lines (open, close) of about 250 bytes: 4,000 connections are about 2 MB.
      await Promise.all(Array.from({ length: 20 }, () => churn(200)))
      served.proc.stdout!.resume()
      let dropped: { event: string; count: number } | undefined
      for (let poll = 0; dropped === undefined && poll < 200; poll++) {
        await delay(50)
        const line = served.logs().find((text) => text.includes('"event":"log.dropped"'))
        if (line !== undefined) dropped = JSON.parse(line) as { event: string; count: number }
      }
      assert.ok(dropped !== undefined, 'a log.dropped line once stdout drained')
      assert.ok(dropped.count > 0 && dropped.count < 8_000, `${dropped.count} dropped`)
      const lines = served.logs().filter((text) => text.includes('"event":"connection.')).length
      assert.ok(lines + dropped.count >= 7_900, `${lines} written + ${dropped.count} dropped of about 8,000`)
      assert.equal((await fetch(`${served.url}/health/ready`)).status, 200)
    } finally {
      assert.equal(await served.stop('SIGTERM'), 0)
    }
  })
})

describe('every error is one line with the tether: prefix and the documented status', () => {
  test('usage errors: exit 2', async () => {
    for (const args of [['serve', '--colour'], ['connect'], ['bench', 'ws://x', '--mode', 'sideways'], ['nonsense']]) {
      const result = await runCli(args)
      assert.equal(result.status, 2, args.join(' '))
      assertOneLineError(result.stderr, /--help\)$/m)
    }
  })

  test('wss:// to a plain port, and servers that are not WebSocket servers: exit 1', async () => {
    const tls = await runCli(['connect', `wss://${HOST}:${hub.port}/echo`, '-x', 'x'])
    assert.equal(tls.status, 1)
    assertOneLineError(tls.stderr, /^tether: TLS handshake with 127\.0\.0\.1:\d+ failed: the port does not speak TLS \(try ws:\/\/\)\n$/)
    // A TCP server that closes at once ("socket hang up" before), and one that answers something else than HTTP.
    for (const [answer, expected] of [
      [undefined, /closed the connection without answering the WebSocket handshake: is it a WebSocket server\?/],
      ['+OK redis\r\n', /did not answer with HTTP: is it a WebSocket server\?/],
    ] as const) {
      const sockets = new Set<net.Socket>()
      const tcp = net.createServer((socket) => {
        sockets.add(socket.on('error', () => {}))
        if (answer === undefined) socket.destroy()
        else socket.end(answer)
      })
      await new Promise<void>((resolve) => tcp.listen(0, HOST, resolve))
      try {
        const result = await runCli(['connect', `ws://${HOST}:${(tcp.address() as net.AddressInfo).port}/`, '-x', 'x'])
        assert.equal(result.status, 1)
        assertOneLineError(result.stderr, expected)
        const bench = await runCli(['bench', `ws://${HOST}:${(tcp.address() as net.AddressInfo).port}/`, '-c', '1', '-d', '0.2'])
        assert.equal(bench.status, 1)
        assertOneLineError(bench.stderr, expected)
      } finally {
        for (const socket of sockets) socket.destroy()
        await new Promise((resolve) => tcp.close(resolve))
      }
    }
  })

  test('a certificate or key that is not PEM names the file: exit 2 (a wrong setting)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-pem-'))
    writeFileSync(join(dir, 'cert.pem'), 'not a certificate\n')
    writeFileSync(join(dir, 'key.pem'), 'not a key\n')
    const result = await runCli(['serve', '--port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])
    assert.equal(result.status, 2)
    assertOneLineError(result.stderr, new RegExp(`^tether: --tls-cert ${join(dir, 'cert.pem').replace(/[.]/g, '\\.')} is not a PEM certificate`))
  })
})

describe('tether connect in a terminal', () => {
  test('a message arriving while the user types is printed above the prompt, which is drawn again with the typed text', async () => {
    // The server answers "push" 300 ms later, while the user has typed "abc" without Enter.
    const { url } = await server((ws) => ws.on('message', (data) => String(data) === 'push' && setTimeout(() => ws.send('pushed'), 300)))
    const { output, status } = await inTerminal(
      `
read_until(b'connected to', 10)
os.write(fd, b'push\\r')
read_for(0.05)
os.write(fd, b'abc')
read_until(b'< pushed', 5)
read_for(0.3)
os.write(fd, b'\\x15/close 4001 bye\\r')
read_until(b'closed:', 5)
finish()
`,
      ['connect', url],
    )
    const after = output.slice(output.indexOf('< pushed'))
    assert.match(output, /< pushed/)
    // The message's line starts clean (the cursor back to column 1, the prompt and "abc" erased), and "> abc" follows it.
    assert.match(output, /\x1b\[1G\x1b\[2K< pushed/)
    // Readline may redraw as "> " then a cursor move then "abc" (seen on a loaded machine): escapes allowed between.
    assert.match(after, /^< pushed\r?\n(\x1b\[[0-9;]*[A-Za-z])*> (\x1b\[[0-9;]*[A-Za-z])*abc/, JSON.stringify(after))
    assert.match(output, /closed: 4001 bye/)
    assert.equal(status, 0, 'closing yourself with /close 4001 is not an abnormal close')
  })

  test('the peer closing with 4001 is exit 3; the user closing with 4001 is exit 0 (through a pipe too)', async () => {
    const { url } = await server((ws) => ws.on('message', (data) => String(data) === 'go away' && ws.close(4001, 'as asked')))
    const peer = await runCli(['connect', url, '-w', '5'], { input: 'go away\n' })
    assert.match(peer.stderr, /closed: 4001 as asked/)
    assert.equal(peer.status, 3)
    const self = await runCli(['connect', url], { input: 'hello\n' })
    assert.match(self.stderr, /closed: 1000/)
    assert.equal(self.status, 0)
  })
})

describe('tether bench', () => {
  test('--mode ramp stops at -d: 0.5 s of a million connections is a partial count, exit 0', async () => {
    const { url } = await server(() => {})
    const result = await runCli(['bench', url, '--mode', 'ramp', '-c', '1000000', '-d', '0.5', '--json'], { ms: 30_000 })
    assert.equal(result.status, 0, result.stderr)
    const report = JSON.parse(result.stdout)
    assert.ok(report.count > 0 && report.count < 1_000_000, `${report.count} opened`)
  })

  test('--mode ramp into a per-address limit says why connections failed, by reason (outsider finding 14)', async () => {
    const limited = await startServe(['--max-connections-per-address', '5'])
    try {
      const json = await runCli(['bench', `${limited.wsUrl}/echo`, '--mode', 'ramp', '-c', '20', '--json'], { ms: 30_000 })
      assert.equal(json.status, 0, json.stderr)
      const report = JSON.parse(json.stdout)
      assert.deepEqual([report.count, report.errors], [5, 15])
      assert.deepEqual(report.errorReasons, { 'HTTP 503: Too many connections from this address': 15 })
      const text = await runCli(['bench', `${limited.wsUrl}/echo`, '--mode', 'ramp', '-c', '20'], { ms: 30_000 })
      // The first run's connections may still be closing on the server: the count may differ, the reason not.
      assert.match(text.stdout, /^errors +\d+\n +\d+ × HTTP 503: Too many connections from this address \(the server limits connections per client address: tether serve --max-connections-per-address\)$/m)
    } finally {
      await limited.stop()
    }
  })

  test('a warm-up round trip keeps the first message of each connection out of the latency', async () => {
    // Each connection's first answer takes 400 ms (the server setting it up); the rest come at once.
    const { url } = await server((ws) => {
      let first = true
      ws.on('message', (data) => {
        if (first) setTimeout(() => ws.send(data), 400)
        else ws.send(data)
        first = false
      })
    })
    const result = await runCli(['bench', url, '-c', '2', '-d', '0.5', '--json'])
    assert.equal(result.status, 0, result.stderr)
    const report = JSON.parse(result.stdout)
    assert.ok(report.count > 0)
    assert.ok(report.latencyMs.max < 400, `max ${report.latencyMs.max} ms includes the first message`)
  })

  test('Ctrl-C clears the progress bar and prints the partial result, exit 130', async () => {
    const { url } = await server((ws) => ws.on('message', (data) => ws.send(data)))
    const { output, status } = await inTerminal(
      `
read_until(b'msg/s', 10)
read_for(0.5)
os.write(fd, b'\\x03')
read_until(b'client CPU', 10)
finish()
`,
      ['bench', url, '-c', '2', '-d', '60'],
    )
    assert.equal(status, 130, output)
    const bar = output.lastIndexOf('msg/s')
    const result = output.indexOf('rate', bar)
    assert.ok(bar >= 0 && result > bar, output)
    assert.match(output.slice(bar, result), /\r\x1b\[K/, 'the bar was cleared before the result')
    assert.match(output, /rate +[\d,]+ messages\/s/)
    assert.match(output, /interrupted +yes/)
  })
})
