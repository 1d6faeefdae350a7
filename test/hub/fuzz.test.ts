/**
 * Fuzzing every endpoint of a real `tether serve` process (issue 14): random
 * and adversarial messages on /chat/ws, /scores/ws, /topics/NAME (including
 * names like the apps' topics) and /echo, and random HTTP requests. Bounded
 * by count; the seed is printed so a failure can be replayed
 * (TETHER_FUZZ_SEED). Afterwards the process must be alive, /health must
 * answer, and the chat must still work.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import { WebSocket as WsClient } from 'ws'
import { type ServeProcess, startServe } from '../helpers/cli.js'
import { HOST, Inbox, delay, opened, until } from '../helpers/net.js'

const SEED = Number(process.env.TETHER_FUZZ_SEED ?? Date.now() % 2 ** 31)
const MESSAGES_PER_ENDPOINT = 400

let hub: ServeProcess
/** Someone in the rooms the fuzz aims at, so that the chat's room logic is live while it runs. */
const residents: WsClient[] = []
before(async () => {
  console.log(`# fuzz seed ${SEED} (TETHER_FUZZ_SEED=${SEED} replays it)`)
  hub = await startServe(['--publish-rate', '10000', '--publish-bytes', String(64 * 1024 * 1024)])
  for (const room of ['lobby', 'fuzz']) {
    const ws = await opened(new WsClient(`${hub.wsUrl}/chat/ws`))
    ws.send(JSON.stringify({ type: 'join', room, nick: 'resident' }))
    residents.push(ws)
  }
})
after(async () => {
  for (const ws of residents) ws.terminate()
  await hub?.stop()
})

/** JSON that looks like what the apps expect, with every field possibly wrong. */
const anyField = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
  fc.constant('x'.repeat(3000)),
  fc.constant('__proto__'),
)
const shaped = fc.record(
  {
    type: fc.oneof(fc.constantFrom('join', 'say', 'leave', 'here', 'message', 'tether.auth', 'welcome', 'error'), anyField),
    room: anyField,
    nick: anyField,
    nicks: anyField,
    text: anyField,
    token: anyField,
    node: anyField,
    at: anyField,
    // Issue 17: a join's session, a say's id, and the fields of presence that carry claims.
    session: fc.oneof(anyField, fc.constantFrom('s'.repeat(16), 's'.repeat(128), 's'.repeat(129))),
    id: fc.oneof(anyField, fc.constantFrom('m1', 'x'.repeat(64), 'x'.repeat(65))),
    claim: anyField,
    claims: anyField,
  },
  { requiredKeys: [] },
)
const deep = fc.integer({ min: 1, max: 2000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth))
const message = fc.oneof(
  shaped.map((value) => ({ text: JSON.stringify(value) })),
  fc.jsonValue().map((value) => ({ text: JSON.stringify(value) })),
  fc.string({ maxLength: 200 }).map((text) => ({ text })),
  deep.map((text) => ({ text })),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ binary: Buffer.from(bytes) })),
  fc.constant({ text: JSON.stringify({ type: 'say', text: 'y'.repeat(500_000) }) }),
)

function sample<T>(arbitrary: fc.Arbitrary<T>, count: number, offset: number): T[] {
  return fc.sample(arbitrary, { seed: SEED + offset, numRuns: count })
}

/** Sends `messages` on a fresh connection to `path`, reconnecting whenever the server closes it. */
async function hammer(path: string, messages: Array<{ text?: string; binary?: Buffer }>): Promise<{ closes: number[] }> {
  const closes: number[] = []
  let ws: WsClient | undefined
  for (const item of messages) {
    if (ws === undefined || ws.readyState !== WsClient.OPEN) {
      ws = await opened(new WsClient(hub.wsUrl + path))
      ws.on('error', () => {})
      ws.on('close', (code) => closes.push(code))
    }
    ws.send(item.binary ?? item.text!, { binary: item.binary !== undefined })
    if (ws.bufferedAmount > 1024 * 1024) await delay(5)
  }
  await delay(100)
  ws?.terminate()
  return { closes }
}

describe('fuzzing tether serve: the process stays up', { concurrency: false }, () => {
  const endpoints = ['/chat/ws', '/scores/ws', '/echo', `/topics/${encodeURIComponent('chat:lobby')}`, '/topics/app:chat:fuzz', '/topics/app:scores:feed', '/topics/fuzz']
  for (const [index, path] of endpoints.entries()) {
    test(`random and adversarial messages on ${path}`, { timeout: 120_000 }, async () => {
      await hammer(path, sample(message, MESSAGES_PER_ENDPOINT, index))
      assert.equal(hub.proc.exitCode, null, `the process is alive (seed ${SEED}); its stderr:\n${hub.stderr()}`)
      assert.equal((await fetch(`${hub.url}/health`)).status, 200)
    })
  }

  test('protocol-level junk on every endpoint: invalid UTF-8 text, bad opcodes, unmasked frames', async () => {
    const junk = [
      Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0xff ^ 1, 0xfe ^ 2]), // invalid UTF-8 text
      Buffer.from([0x83, 0x80, 0, 0, 0, 0]), // reserved opcode
      Buffer.from([0x81, 0x02, 0x68, 0x69]), // unmasked
      Buffer.from([0x89, 0xfe, 0, 200, 0, 0, 0, 0]), // oversized ping
    ]
    for (const path of endpoints) {
      for (const frame of junk) {
        const socket = net.connect(hub.port, HOST)
        socket.on('error', () => {})
        await new Promise((resolve) => socket.once('connect', resolve))
        socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
        socket.write(frame)
        await delay(20)
        socket.destroy()
      }
    }
    assert.equal(hub.proc.exitCode, null)
  })

  test('random HTTP requests: methods, paths, headers', async () => {
    const requests = sample(
      fc.record({
        method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'BREW'),
        path: fc.oneof(fc.constantFrom('/', '/health', '/chat', '/echo', '/topics/x', '/js/chat.js', '/js/../../package.json', '/%', '/style.css?x=1'), fc.webPath()),
        header: fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
      }),
      200,
      100,
    )
    for (const { method, path, header } of requests) {
      const socket = net.connect(hub.port, HOST)
      socket.on('error', () => {})
      await new Promise((resolve) => socket.once('connect', resolve))
      const target = path.startsWith('/') ? path : `/${path}`
      socket.write(`${method} ${target.replace(/\s/g, '')} HTTP/1.1\r\nHost: x\r\nX-Fuzz: ${header.replace(/[\r\n]/g, '')}\r\nConnection: close\r\n\r\n`)
      let answer = ''
      socket.on('data', (chunk) => (answer += chunk))
      await until(() => answer.length > 0 || socket.destroyed, 5_000).catch(() => {})
      assert.doesNotMatch(answer, /"name":\s*"tether"/, 'nothing outside the pages is served (package.json)')
      socket.destroy()
    }
    assert.equal(hub.proc.exitCode, null)
  })

  test('after all that: /health answers and a chat exchange works', async () => {
    const health = (await (await fetch(`${hub.url}/health`)).json()) as { status: string }
    assert.equal(health.status, 'ok')
    const ws = await opened(new WsClient(`${hub.wsUrl}/chat/ws`))
    const inbox = new Inbox(ws)
    ws.send(JSON.stringify({ type: 'join', room: 'after-fuzz', nick: 'ada' }))
    ws.send(JSON.stringify({ type: 'say', text: 'still working' }))
    await until(() => inbox.messages.some((m) => JSON.parse(String(m.data)).type === 'said'))
    // The room's messages are its history topic on /v1 (issue 17).
    const reader = await opened(new WsClient(`${hub.wsUrl}/v1`))
    const readerInbox = new Inbox(reader)
    reader.send(JSON.stringify({ type: 'subscribe', id: 1, topic: '$chat:after-fuzz', recent: 10 }))
    await until(() => readerInbox.messages.some((m) => JSON.parse(String(m.data)).type === 'deliver'))
    assert.equal(JSON.parse(JSON.parse(String(readerInbox.messages[0]!.data)).data).text, 'still working')
    reader.terminate()
    ws.terminate()
  })
})
