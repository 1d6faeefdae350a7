/**
 * Migration in practice: a typical ws example app (test/fixtures/ws-example-app.mjs)
 * runs as a child process once with 'ws' and once with only its import
 * specifier changed to 'tether-ws' (the package's self-reference, served from
 * dist/). The same scripted session drives both; the transcripts must match
 * each other and the expected one.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { closed, Inbox, opened, ROOT, until, withTimeout } from '../helpers/net.js'

/** Writes the fixture, with `specifier` as its import specifier, inside the package (so 'tether-ws' resolves). */
function variant(specifier: 'ws' | 'tether-ws'): string {
  const source = readFileSync(join(ROOT, 'test', 'fixtures', 'ws-example-app.mjs'), 'utf8')
  const imports = source.match(/from 'ws'/g) ?? []
  assert.equal(imports.length, 1, 'the fixture imports ws exactly once')
  const text = source.replace("from 'ws'", `from '${specifier}'`)
  const dir = join(ROOT, 'build', 'example-app')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `chat-${specifier}.mjs`)
  writeFileSync(file, text)
  return file
}

/** Starts an app, resolves with the child and the port it printed. */
async function start(file: string): Promise<{ child: ChildProcess; port: number; output: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    await until(() => stdout.includes('\n') || child.exitCode !== null, 15_000, `${file} to print its port`)
  } catch (error) {
    child.kill()
    throw error
  }
  assert.equal(child.exitCode, null, `the app exited early: ${stderr}`)
  const { port } = JSON.parse(stdout.slice(0, stdout.indexOf('\n'))) as { port: number }
  return { child, port, exited, output: () => stdout + stderr }
}

/** The scripted chat session; returns everything the clients observed, in order. */
async function session(port: number): Promise<string[]> {
  const url = `ws://127.0.0.1:${port}`
  const transcript: string[] = []
  const note = (who: string, message: { data: Buffer; isBinary: boolean }) =>
    transcript.push(`${who} <- ${message.isBinary ? `binary ${[...message.data]}` : `text ${message.data}`}`)

  const alice = new WsClient(url)
  const aliceInbox = new Inbox(alice)
  await opened(alice)
  note('alice', await aliceInbox.one())

  const bob = new WsClient(url)
  const bobInbox = new Inbox(bob)
  await opened(bob)
  note('bob', await bobInbox.one())
  note('alice', await aliceInbox.one())

  alice.send('hello bob')
  note('bob', await bobInbox.one())
  bob.send(Buffer.from([1, 2, 3]))
  note('alice', await aliceInbox.one())
  alice.send('/count')
  note('alice', await aliceInbox.one())

  const bobClosed = closed(bob)
  bob.close(1000, 'bye')
  transcript.push(`bob closed ${JSON.stringify(await bobClosed)}`)
  note('alice', await aliceInbox.one())

  const aliceClosed = closed(alice)
  alice.send('/shutdown')
  transcript.push(`alice closed ${JSON.stringify(await aliceClosed)}`)
  transcript.push(`unread: alice ${aliceInbox.messages.length - 5}, bob ${bobInbox.messages.length - 2}`)
  return transcript
}

const EXPECTED = [
  'alice <- text welcome 1 from 127.0.0.1',
  'bob <- text welcome 2 from 127.0.0.1',
  'alice <- text joined (2 online)',
  'bob <- text hello bob',
  'alice <- binary 1,2,3',
  'alice <- text clients: 2',
  'bob closed [1000,"bye"]',
  'alice <- text left with 1000 (1 online)',
  'alice closed [1001,"server shutting down"]',
  'unread: alice 0, bob 0',
]

describe('a ws example app, migrated by changing its import', () => {
  it("behaves identically on 'ws' and on 'tether-ws', and exits cleanly after shutdown", async () => {
    const results: Record<string, { transcript: string[]; exitCode: number | null; output: string }> = {}
    for (const specifier of ['ws', 'tether-ws'] as const) {
      const app = await start(variant(specifier))
      try {
        const transcript = await session(app.port)
        // No handle may keep the process alive once the server and its clients are closed.
        const exitCode = await withTimeout(app.exited, 10_000, `the ${specifier} app to exit`)
        results[specifier] = { transcript, exitCode, output: app.output().replace(/^\{"port":\d+\}\n/, '') }
      } finally {
        if (app.child.exitCode === null) app.child.kill()
      }
    }
    assert.deepEqual(results['tether-ws']!.transcript, EXPECTED, results['tether-ws']!.output)
    assert.deepEqual(results['tether-ws'], results.ws)
    assert.equal(results['tether-ws']!.exitCode, 0)
    assert.match(results['tether-ws']!.output, /server closed/)
  })

  it('the tether variant differs from the fixture only in the import specifier', () => {
    const original = readFileSync(join(ROOT, 'test', 'fixtures', 'ws-example-app.mjs'), 'utf8')
    const migrated = readFileSync(variant('tether-ws'), 'utf8')
    assert.equal(migrated.replace("from 'tether-ws'", "from 'ws'"), original)
    assert.match(migrated, /^import WebSocket, \{ WebSocketServer \} from 'tether-ws'$/m)
  })
})
