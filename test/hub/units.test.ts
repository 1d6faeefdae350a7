/**
 * The hub's pure parts: token buckets and publish limits, topic namespaces
 * and patterns, the configuration's checks, and the wire schemas.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { resolveHubConfig } from '../../src/hub/config.js'
import { ClientPublishLimiter, PublishLimits, TokenBucket } from '../../src/hub/rate-limit.js'
import { appTopic, matchesAny, matchesPattern, relayTopic } from '../../src/hub/topics.js'
import { ChatClientMessage, ChatEvent, parseWith, validate } from '../../src/hub/wire.js'

describe('token buckets and publish limits', () => {
  test('a bucket gives its burst at once, then its rate, and never more than its burst', () => {
    const bucket = new TokenBucket(10, 20, 0)
    let taken = 0
    while (bucket.take(1, 0)) taken++
    assert.equal(taken, 20)
    assert.equal(bucket.take(1, 50), false, '50 ms refill half a token')
    assert.equal(bucket.take(1, 100), true, '100 ms: one token')
    assert.equal(bucket.available(100_000), 20, 'capped at the burst')
    assert.equal(bucket.take(21, 100_000), false, 'more than the burst never passes, and takes nothing')
    assert.equal(bucket.available(100_000), 20)
  })

  test('a client is held to messages and bytes per second; a refusal takes from neither bucket', () => {
    const limits = new PublishLimits({ messagesPerSecond: 2, bytesPerSecond: 1000, burstMessages: 2, burstBytes: 1000, action: 'close' })
    const limiter = new ClientPublishLimiter(limits)
    assert.equal(limiter.check('t', 600, 0), 'ok')
    assert.equal(limiter.check('t', 600, 0), 'close', 'bytes')
    assert.equal(limiter.check('t', 400, 0), 'ok', 'the refused 600 bytes were not taken')
    assert.equal(limiter.check('t', 1, 0), 'close', 'messages')
    assert.equal(limiter.check('t', 1, 500), 'ok', 'half a second: one message back')
  })

  test('per-topic overrides: the first matching pattern, its own buckets, its own action', () => {
    const limits = new PublishLimits({ messagesPerSecond: 1, bytesPerSecond: 1e6, burstMessages: 1, burstBytes: 1e6, action: 'close' }, [
      { pattern: 'ticker.*', limit: { messagesPerSecond: 100, burstMessages: 100, action: 'drop' } },
    ])
    const limiter = new ClientPublishLimiter(limits)
    for (let i = 0; i < 100; i++) assert.equal(limiter.check('ticker.eu', 10, 0), 'ok')
    assert.equal(limiter.check('ticker.eu', 10, 0), 'drop')
    assert.equal(limiter.check('news', 10, 0), 'ok', 'the default has its own buckets')
    assert.equal(limiter.check('news', 10, 0), 'close')
  })
})

describe('topic namespaces and patterns', () => {
  test('relay and app topics live apart, whatever a client names', () => {
    assert.equal(relayTopic('chat:lobby'), 'relay:chat:lobby')
    assert.equal(appTopic('chat', 'lobby'), 'app:chat:lobby')
    assert.notEqual(relayTopic('app:chat:lobby'), appTopic('chat', 'lobby'))
  })

  test('* stands for any run of characters; everything else is literal (regex characters too)', () => {
    assert.equal(matchesPattern('chat:*', 'chat:lobby'), true)
    assert.equal(matchesPattern('chat:*', 'chatter'), false)
    assert.equal(matchesPattern('news.*', 'news.eu'), true)
    assert.equal(matchesPattern('news.*', 'newsXeu'), false, 'the dot is literal')
    assert.equal(matchesPattern('a+b', 'aab'), false)
    assert.equal(matchesPattern('*', 'anything at all'), true)
    assert.equal(matchesPattern('exact', 'exact'), true)
    assert.equal(matchesAny([], 'x'), false)
    assert.equal(matchesAny(['y', 'x*'], 'xz'), true)
  })
})

describe('hub configuration', () => {
  test('defaults, and every wrong value named by its key', () => {
    const config = resolveHubConfig()
    assert.equal(config.port, 8080)
    assert.equal(config.http.headersTimeout, 10_000)
    assert.equal(config.publish.limit.action, 'close')
    assert.throws(() => resolveHubConfig({ port: 70_000 }), /port/)
    assert.throws(() => resolveHubConfig({ maxPayload: 0 }), /maxPayload/)
    assert.throws(() => resolveHubConfig({ publish: { limit: { action: 'explode' } as never, topics: [] } }), /publish\.limit\.action/)
    assert.throws(() => resolveHubConfig({ auth: { kind: 'jwt' } }), /secret, a publicKey or a jwks/)
    assert.throws(() => resolveHubConfig({ http: { headersTimeout: -1 } as never }), /http\.headersTimeout/)
  })

  test('the byte bucket holds at least one largest message', () => {
    const config = resolveHubConfig({ maxPayload: 8 * 1024 * 1024, publish: { limit: { burstBytes: 1024 } as never, topics: [] } })
    assert.equal(config.publish.limit.burstBytes, 8 * 1024 * 1024)
  })
})

describe('wire schemas (every path, the same limits)', () => {
  test('chat messages from clients', () => {
    assert.deepEqual(parseWith(ChatClientMessage, '{"type":"join","room":"lobby","nick":" ada "}'), { type: 'join', room: 'lobby', nick: 'ada' })
    assert.equal(parseWith(ChatClientMessage, 'this is not json'), undefined)
    assert.equal(parseWith(ChatClientMessage, '{"type":"join","room":"bad room!","nick":"ada"}'), undefined)
    assert.deepEqual(validate(ChatClientMessage, '{"type":"join","room":"lobby","nick":""}'), { ok: false, field: 'nick' })
    assert.deepEqual(validate(ChatClientMessage, '{"type":"say","text":"' + 'x'.repeat(2001) + '"}'), { ok: false, field: 'text' })
    assert.deepEqual(validate(ChatClientMessage, '{"type":"shout"}'), { ok: false, field: undefined })
    assert.equal(parseWith(ChatClientMessage, '[1,2]'), undefined)
    assert.equal(parseWith(ChatClientMessage, 'null'), undefined)
    // Issue 17: a join's session and a say's id, each a bounded run of letters, digits, '-' and '_'.
    const session = 'a'.repeat(32)
    assert.deepEqual(parseWith(ChatClientMessage, JSON.stringify({ type: 'join', room: 'r', nick: 'ada', session })), { type: 'join', room: 'r', nick: 'ada', session })
    assert.deepEqual(validate(ChatClientMessage, JSON.stringify({ type: 'join', room: 'r', nick: 'ada', session: 'short' })), { ok: false, field: 'session' })
    assert.deepEqual(validate(ChatClientMessage, JSON.stringify({ type: 'join', room: 'r', nick: 'ada', session: 'x'.repeat(129) })), { ok: false, field: 'session' })
    assert.deepEqual(parseWith(ChatClientMessage, '{"type":"say","text":"hi","id":"m-1_a"}'), { type: 'say', text: 'hi', id: 'm-1_a' })
    for (const id of ['', 'x'.repeat(65), 'a:b', 'a b', 7]) assert.deepEqual(validate(ChatClientMessage, JSON.stringify({ type: 'say', text: 'hi', id })), { ok: false, field: 'id' })
  })

  test('chat events from other nodes: the wrong shape, or past the limits, is refused', () => {
    const good = { type: 'join', room: 'lobby', nick: 'ada', at: 1, node: 'n', claim: 'c'.repeat(43) }
    assert.deepEqual(parseWith(ChatEvent, JSON.stringify(good)), good)
    assert.equal(parseWith(ChatEvent, JSON.stringify({ type: 'here', room: 'lobby', nicks: 12345, node: 'n' })), undefined)
    assert.equal(parseWith(ChatEvent, JSON.stringify({ ...good, nick: 'admin'.repeat(24) })), undefined)
    assert.equal(parseWith(ChatEvent, JSON.stringify({ ...good, claim: 'c'.repeat(65) })), undefined)
    assert.equal(parseWith(ChatEvent, JSON.stringify({ type: 'here', room: 'lobby', nicks: Array(1001).fill('a'), node: 'n' })), undefined)
    assert.equal(parseWith(ChatEvent, JSON.stringify({ type: 'here', room: 'lobby', nicks: ['a'], claims: [7], node: 'n' })), undefined)
    // Issue 17: a room's messages are its history topic, written by the chat app; one on the backplane is refused.
    assert.equal(parseWith(ChatEvent, JSON.stringify({ type: 'message', room: 'lobby', nick: 'ada', text: 'hi', at: 1, node: 'n' })), undefined)
  })
})

describe('the hub is built on the public API only', () => {
  test('src/hub imports nothing but package entry points, its own modules, node:*, jose, zod, pino and prom-client', async () => {
    const { readdirSync, readFileSync } = await import('node:fs')
    const { join, relative } = await import('node:path')
    const { ROOT } = await import('../helpers/net.js')
    const hubDir = join(ROOT, 'src', 'hub')
    const files = readdirSync(hubDir, { recursive: true }).map(String).filter((file) => file.endsWith('.ts'))
    assert.ok(files.length >= 8, `${files.length} files`)
    // The package's public entry points (package.json "exports"), as seen from src/hub and src/hub/apps.
    const publicEntries = new Set(['index.js', 'pubsub/index.js', 'pubsub/redis.js', 'pubsub/nats.js'])
    const offending: string[] = []
    for (const file of files) {
      const text = readFileSync(join(hubDir, file), 'utf8')
      for (const [, specifier] of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)) {
        if (specifier!.startsWith('node:') || ['jose', 'zod/mini', 'pino', 'prom-client'].includes(specifier!)) continue
        // The package by its name (issue 15: the hub is built apart from the library, on its entry points).
        if (specifier === 'tether-ws' || specifier!.startsWith('tether-ws/')) continue
        // Any other package is a new dependency (issue 16: a bare name is not a path under src/hub).
        if (!specifier!.startsWith('.')) {
          offending.push(`${file}: ${specifier}`)
          continue
        }
        const resolved = relative(join(ROOT, 'src'), join(hubDir, file, '..', specifier!)).replaceAll('\\', '/')
        if (resolved.startsWith('hub/') || publicEntries.has(resolved)) continue
        offending.push(`${file}: ${specifier}`)
      }
    }
    assert.deepEqual(offending, [])
  })
})
