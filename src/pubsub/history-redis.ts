/**
 * Topic history in Redis Streams, with the `redis` package (node-redis).
 *
 * Per topic (`{TOPIC}` is a hash tag, so one topic's keys share a cluster slot):
 *   PREFIX{TOPIC}         a stream; entry id `OFFSET-0`, fields r (the record: flags,
 *                         key, payload) and t (Redis's clock, ms)
 *   PREFIX{TOPIC}:m       a hash: e (the epoch), o (the newest offset)
 *   PREFIX{TOPIC}:k:KEY   an idempotency key's offset, for `maxAge` ms
 *
 * Theory of operation: one Lua script appends (history.ts Rules 1 and 2):
 * it reads the epoch (creating it, with a random value the node passes, when
 * the hash is missing: a new topic, or one whose history Redis lost), counts
 * offsets up in the hash, XADDs each entry with its offset as the id
 * (MAXLEN ~ maxCount), trims by age at the head, and PUBLISHes the new
 * entries on one channel with their epoch, first offset and time. Being one
 * script, the PUBLISH order is the offset order for every topic, whichever
 * node appended. Every node SUBSCRIBEs to the channel: that is the feed. A
 * second script reads a topic's epoch, newest offset and its newest
 * `maxCount` entries after an offset (XREVRANGE), creating the epoch too, so
 * a client that subscribes before anything was published already has a
 * position to resume from.
 *
 * Epochs: a Redis that restarts without its data (no AOF/RDB), a FLUSHALL, or
 * an evicted or expired hash loses the epoch, and the next append or read
 * makes a new one: positions of the old epoch get a `reset` gap, never a
 * wrong message. The hash expires `metaTtl` after the topic was last used
 * (default 30 days). For history to survive a Redis restart, run Redis with
 * AOF (`appendonly yes`).
 *
 * Rule 1: after the subscriber connection comes back, the node knows the
 * feed is live again only when a sentinel it publishes arrives on it; then
 * it asks the node to re-read every followed topic (`resync`), so nothing
 * appended while the feed was down is missed, not even the last message.
 * Rule 2: appends and reads fail fast while disconnected (no offline queue)
 * and time out after `commandTimeout`; an append whose answer is lost may
 * have happened, which the idempotency key makes safe to repeat.
 */
import { createHash } from 'node:crypto'
import { reasonOf, redactUrl, resolveConnectTimeout, withConnectTimeout } from './connect-timeout.js'
import {
  type AppendRequest,
  type AppendResult,
  type HistoryEntry,
  type HistoryFeed,
  type HistoryPolicy,
  type HistoryStore,
  type ReadResult,
  decodeRequests,
  encodeRequests,
  newEpoch,
} from './history.js'
import { type RedisClientLike, closeClient, destroyClient, ownClient } from './redis.js'

/** The members of a node-redis client the store uses (v5 and later). */
export interface RedisHistoryClientLike extends RedisClientLike {
  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>, options?: { typeMapping?: object; timeout?: number }): Promise<T>
  duplicate(): RedisHistoryClientLike
}

export interface RedisHistoryOptions {
  /** Where Redis is, e.g. `redis://127.0.0.1:6379` (ignored with `client`). */
  url?: string
  /** Your own connected node-redis client; the store duplicates it for the feed and leaves it open at close. */
  client?: RedisHistoryClientLike
  /** The prefix of every key (default `tether:h:`); stores with different prefixes and channels are separate clusters. */
  prefix?: string
  /** The feed's channel (default `tether:history`). */
  channel?: string
  /** How long `connect()` waits for Redis, in ms (default 5000). */
  connectTimeout?: number
  /** How long an append or a read may take, in ms (default 5000), before it is failed. */
  commandTimeout?: number
  /** How long a topic's epoch and newest offset are kept after its last use, in ms (default 30 days). */
  metaTtl?: number
}

/**
 * The start of both scripts: the topic's epoch, a new one (ARGV[1]) with an empty stream when it has none, and
 * its metadata kept for the TTL in ARGV[ttlArg]. One text, so appends and reads agree on when history begins.
 */
function openTopic(ttlArg: number): string {
  return `
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
end
redis.call('PEXPIRE', meta, ARGV[${ttlArg}])
`
}

const APPEND = `${openTopic(6)}local top = tonumber(redis.call('HGET', meta, 'o'))
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local maxAge = tonumber(ARGV[3])
local first = top + 1
local offsets, added = {}, {}
for i = 7, #ARGV, 2 do
  local key, record = ARGV[i], ARGV[i + 1]
  local known = false
  if key ~= '' then known = redis.call('GET', stream .. ':k:' .. key) end
  if known then
    offsets[#offsets + 1] = tonumber(known)
  else
    top = top + 1
    local id = string.format('%.0f', top)
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], id .. '-0', 'r', record, 't', now)
    if key ~= '' then redis.call('SET', stream .. ':k:' .. key, id, 'PX', maxAge) end
    offsets[#offsets + 1] = top
    added[#added + 1] = record
  end
end
if #added > 0 then
  redis.call('HSET', meta, 'o', string.format('%.0f', top))
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
  local keep = false
  local last = false
  for _, entry in ipairs(head) do
    if tonumber(entry[2][4]) >= now - maxAge then keep = entry[1] break end
    last = entry[1]
  end
  if keep then
    redis.call('XTRIM', stream, 'MINID', keep)
  elseif last then
    redis.call('XTRIM', stream, 'MINID', string.format('%.0f', tonumber(string.match(last, '^(%d+)')) + 1) .. '-0')
  end
  redis.call('PEXPIRE', stream, maxAge)
  redis.call('PUBLISH', ARGV[4], 'v1|' .. epoch .. '|' .. string.format('%.0f', first) .. '|' .. string.format('%.0f', now) .. '|' .. string.len(ARGV[5]) .. '|' .. ARGV[5] .. table.concat(added))
end
table.insert(offsets, 1, epoch)
return offsets
`

const READ = `${openTopic(4)}local stop = '-'
if ARGV[2] ~= '' then stop = '(' .. ARGV[2] .. '-0' end
return {epoch, redis.call('HGET', meta, 'o'), redis.call('XREVRANGE', stream, '+', stop, 'COUNT', ARGV[3])}
`

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex')
const SCRIPTS = { append: { source: APPEND, sha: sha1(APPEND) }, read: { source: READ, sha: sha1(READ) } }
/** node-redis: blob strings as Buffers (RESP_TYPES.BLOB_STRING). */
const BUFFERS = { 36: Buffer }

/** Where the pieces of a feed message are: `v1|EPOCH|FIRST|TIME|TOPICLENGTH|TOPIC` then the records. */
export function parseFeedMessage(message: Buffer): { topic: string; epoch: string; entries: HistoryEntry[] } | undefined {
  const fields: string[] = []
  let start = 0
  for (let i = 0; i < 5; i++) {
    const bar = message.indexOf(0x7c, start)
    if (bar === -1) return undefined
    fields.push(message.toString('latin1', start, bar))
    start = bar + 1
  }
  if (fields[0] !== 'v1') return undefined
  const first = Number(fields[2])
  const time = Number(fields[3])
  const topicLength = Number(fields[4])
  if (!Number.isSafeInteger(first) || !Number.isFinite(time) || !Number.isSafeInteger(topicLength) || start + topicLength > message.length) return undefined
  const topic = message.toString('utf8', start, start + topicLength)
  const records = decodeRequests(message.subarray(start + topicLength))
  return { topic, epoch: fields[1]!, entries: records.map((record, i) => ({ ...record, offset: first + i, time })) }
}

export class RedisHistory implements HistoryStore {
  readonly kind = 'redis'
  readonly prefix: string
  readonly channel: string
  readonly #client: RedisHistoryClientLike
  readonly #subscriber: RedisHistoryClientLike
  readonly #ownsClient: boolean
  readonly #timeout: number
  readonly #commandTimeout: number
  readonly #metaTtl: number
  readonly #sentinel = `s|${newEpoch()}|`
  #feed: HistoryFeed | undefined
  #down = false
  #closed = false
  #awaitingSentinel: ReturnType<typeof setInterval> | undefined

  /**
   * Connects to Redis and subscribes to the feed; resolves once appends from
   * every node can arrive. Rejects, naming the URL, when Redis refuses or does
   * not answer within `connectTimeout`, having closed what it opened.
   *
   * @example
   * ```ts
   * const store = await RedisHistory.connect({ url: 'redis://127.0.0.1:6379' })
   * attachDelivery(wss, { store, history: { maxCount: 100, maxAge: 300_000 } })
   * ```
   */
  static async connect(options: RedisHistoryOptions = {}): Promise<RedisHistory> {
    const timeout = resolveConnectTimeout(options.connectTimeout)
    const url = options.url ?? 'redis://127.0.0.1:6379'
    const where = options.client === undefined ? redactUrl(url) : 'the given client'
    const fail = (error: unknown): Error => new Error(`Could not connect the Redis history to ${where}: ${reasonOf(error)}`, { cause: error })
    let client = options.client
    let subscriber: RedisHistoryClientLike
    const owns = client === undefined
    if (client === undefined) {
      let redis: { createClient(options: object): RedisHistoryClientLike }
      try {
        redis = (await import('redis')) as unknown as typeof redis
      } catch {
        throw new Error("The Redis history needs the 'redis' package: npm install redis")
      }
      try {
        client = ownClient(redis as never, url, timeout) as RedisHistoryClientLike
        subscriber = ownClient(redis as never, url, timeout) as RedisHistoryClientLike
      } catch (error) {
        throw fail(error)
      }
    } else {
      subscriber = client.duplicate()
    }
    const store = new RedisHistory(client, subscriber, owns, timeout, options)
    const work = (async () => {
      if (owns) await client.connect()
      await subscriber.connect()
      await subscriber.subscribe(store.channel, (message) => store.#received(message), true)
    })()
    try {
      await withConnectTimeout(work, timeout, () => store.#destroy())
    } catch (error) {
      await store.close()
      throw fail(error)
    }
    return store
  }

  private constructor(client: RedisHistoryClientLike, subscriber: RedisHistoryClientLike, owns: boolean, timeout: number, options: RedisHistoryOptions) {
    this.#client = client
    this.#subscriber = subscriber
    this.#ownsClient = owns
    this.#timeout = timeout
    this.prefix = options.prefix ?? 'tether:h:'
    this.channel = options.channel ?? 'tether:history'
    this.#commandTimeout = options.commandTimeout ?? 5_000
    this.#metaTtl = options.metaTtl ?? 30 * 24 * 3600 * 1000
    for (const each of owns ? [client, subscriber] : [subscriber]) {
      each.on('error', (error: Error) => {
        if (!this.#closed) this.#feed?.event({ type: 'error', stage: 'connect', error })
      })
      each.on('reconnecting', () => this.#health())
      each.on('end', () => this.#health())
      each.on('ready', () => this.#health())
    }
  }

  attach(feed: HistoryFeed): void {
    if (this.#feed !== undefined) throw new Error('This history store is already attached to a node; connect one per node')
    this.#feed = feed
  }

  async append(topic: string, requests: AppendRequest[], policy: HistoryPolicy): Promise<AppendResult> {
    if (this.#closed || !this.#client.isReady) throw new Error('Redis is not connected')
    const [stream, meta] = this.#keys(topic)
    const args: Array<string | Buffer> = [
      newEpoch(),
      String(policy.maxCount),
      String(Math.ceil(policy.maxAge)),
      this.channel,
      topic,
      String(this.#metaTtl),
    ]
    for (const request of requests) {
      const record = encodeRequests([request])
      args.push(request.key ?? '', Buffer.from(record.buffer, record.byteOffset, record.byteLength))
    }
    const reply = await this.#script<Array<Buffer | number>>('append', [stream, meta], args)
    return { epoch: reply[0]!.toString(), offsets: reply.slice(1).map(Number) }
  }

  async read(topic: string, after: number | undefined, policy: HistoryPolicy): Promise<ReadResult> {
    if (this.#closed || !this.#client.isReady) throw new Error('Redis is not connected')
    const [stream, meta] = this.#keys(topic)
    const reply = await this.#script<[Buffer, Buffer, Array<[Buffer, Buffer[]]>]>('read', [stream, meta], [
      newEpoch(),
      after === undefined ? '' : String(after),
      String(policy.maxCount),
      String(this.#metaTtl),
    ])
    const entries: HistoryEntry[] = []
    for (let i = reply[2].length - 1; i >= 0; i--) {
      const [id, fields] = reply[2][i]!
      const offset = Number(id.toString().split('-')[0])
      let record: Buffer | undefined
      let time = 0
      for (let f = 0; f + 1 < fields.length; f += 2) {
        const name = fields[f]!.toString()
        if (name === 'r') record = fields[f + 1]
        else if (name === 't') time = Number(fields[f + 1]!.toString())
      }
      if (record === undefined) continue
      const [request] = decodeRequests(record)
      if (request !== undefined) entries.push({ ...request, offset, time })
    }
    return { epoch: reply[0].toString(), top: Number(reply[1].toString()), entries }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#awaitingSentinel)
    const clients = this.#ownsClient ? [this.#client, this.#subscriber] : [this.#subscriber]
    await Promise.allSettled(clients.map((client) => closeClient(client, this.#timeout)))
  }

  #keys(topic: string): [string, string] {
    const stream = `${this.prefix}{${topic}}`
    return [stream, `${stream}:m`]
  }

  async #script<T>(name: keyof typeof SCRIPTS, keys: string[], args: Array<string | Buffer>): Promise<T> {
    const script = SCRIPTS[name]
    const options = { typeMapping: BUFFERS, timeout: this.#commandTimeout }
    try {
      return await this.#client.sendCommand<T>(['EVALSHA', script.sha, String(keys.length), ...keys, ...args], options)
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
      return this.#client.sendCommand<T>(['EVAL', script.source, String(keys.length), ...keys, ...args], options)
    }
  }

  #received(message: Buffer): void {
    if (message[0] === 0x73 /* s */) {
      // A sentinel (Rule 1): ours means the feed is live again.
      if (this.#awaitingSentinel !== undefined && message.toString().startsWith(this.#sentinel)) {
        clearInterval(this.#awaitingSentinel)
        this.#awaitingSentinel = undefined
        this.#feed?.resync()
      }
      return
    }
    let parsed: ReturnType<typeof parseFeedMessage>
    try {
      parsed = parseFeedMessage(message)
    } catch (error) {
      this.#feed?.event({ type: 'error', stage: 'feed', error: error as Error })
      return
    }
    if (parsed === undefined) {
      this.#feed?.event({ type: 'error', stage: 'feed', error: new Error('A message on the history channel that is not a tether history entry') })
      return
    }
    this.#feed?.entries(parsed.topic, parsed.epoch, parsed.entries)
  }

  /** One `disconnected` when either connection goes down; `reconnected`, then a resync once the feed is live (Rule 1). */
  #health(): void {
    if (this.#closed) return
    const up = this.#client.isReady && this.#subscriber.isReady
    if (!up && !this.#down) {
      this.#down = true
      this.#feed?.event({ type: 'disconnected' })
    } else if (up && this.#down) {
      this.#down = false
      this.#feed?.event({ type: 'reconnected' })
      this.#awaitSentinel()
    }
  }

  #awaitSentinel(): void {
    clearInterval(this.#awaitingSentinel)
    let count = 0
    const send = (): void => {
      if (this.#closed || !this.#client.isReady) return
      this.#client.sendCommand(['PUBLISH', this.channel, `${this.#sentinel}${++count}`], { timeout: this.#commandTimeout }).catch(() => {})
    }
    this.#awaitingSentinel = setInterval(send, 250)
    this.#awaitingSentinel.unref?.()
    send()
  }

  #destroy(): void {
    this.#closed = true
    for (const client of this.#ownsClient ? [this.#client, this.#subscriber] : [this.#subscriber]) destroyClient(client)
  }
}
