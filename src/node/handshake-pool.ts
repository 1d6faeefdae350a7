/**
 * The pool of pending handshakes (`maxPendingHandshakes`), shared fairly
 * between client addresses so that slow or stalled request heads from some
 * addresses cannot keep others out (slow loris; issue 13).
 *
 * Theory of operation: a pending handshake is either still *reading* its
 * request head, or *deciding* (the head is complete; `verifyClient` or
 * `authenticate` may be asynchronous). Both count against the pool; only
 * connections still reading are in the list below, oldest first, and only
 * they can time out or be displaced. The server tells the pool when a head
 * is complete (`headDone`) and when a handshake is over (`settle`).
 *
 * Rule 1 (deciding is safe): a connection whose upgrade is being decided sent
 * a complete, well-formed request and waits on the application; it is never
 * displaced or timed out here. When the pool is full of such connections a
 * newcomer gets 503, as before.
 * Rule 2 (grace): a connection becomes displaceable once it has been reading
 * its head for `grace` ms (1 s, or a tenth of the head timeout if that is
 * shorter). Younger ones may simply not have been read yet (accepts come in
 * batches before reads), so a burst of fast clients is never displaced.
 * Rule 3 (per-address share): when an address other than a trusted proxy
 * already has `perAddress` connections reading their heads, a newcomer from it
 * displaces that address's own oldest one if that one is past its grace, and
 * is admitted over the share otherwise. The slow pay, not the fast: a client
 * behind the same NAT as an attacker still gets in.
 * Rule 4 (full pool): when `maxPending` handshakes are pending, a newcomer
 * from elsewhere displaces the oldest connection still reading of the address
 * most over its share (a burst admitted by Rule 2), whatever its age;
 * failing that, the oldest connection still reading; failing that, it is
 * refused (503). For the oldest, the grace is FULL_POOL_GRACE (50 ms), not
 * Rule 2's second: a full pool is already an attack, and attackers that
 * reconnect fast enough to keep every place younger than a second (about
 * 1,000 connections a second, spread over many addresses so none is over its
 * share) would otherwise lock everyone out; to keep every place younger than
 * 50 ms they would need 20,000 a second, a volumetric flood.
 * Rule 5 (pressure): while at least half of `maxPending` are pending, the head
 * timeout is a quarter of `timeout`, for connections already reading as well
 * as new ones. One timer serves the whole list: entries are in accept order,
 * so the first one is always the next to expire.
 * Rule 6 (cost): nothing is looked up per connection until `perAddress`
 * connections are reading at once; only then are peer addresses asked for
 * (each at most once). Entries exist only while a head is read, so an open
 * connection carries nothing of this.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import type { LimitStats } from './limits.js'

/** Why the pool ended a connection's wait for its head. */
export type PoolExit = 'timeout' | 'displaced'
/** What a connection displaced, or timed out, while sending its request head is told (with 408). */
export const EXIT_MESSAGES: Record<PoolExit, string> = {
  timeout: 'Request Timeout',
  displaced: 'The request head was too slow while other clients were waiting',
}

/** How the pool reaches the connections it holds (one per server, not per connection). */
export interface PoolHooks<M> {
  /** The peer's address, or undefined if it is gone. */
  addressOf(member: M): string | undefined
  /** Ends the wait: answer 408 and close. The pool has already unlinked the entry; the server settles it. */
  expire(member: M, exit: PoolExit): void
  /** A monotonic clock in ms (`monotonicNow`; tests pass their own). */
  now(): number
}

/** The clock of the pool: monotonic, so a change of the system time does not expire or spare anyone. */
export function monotonicNow(): number {
  return performance.now()
}

export interface HandshakePoolOptions {
  /** Most handshakes pending at once (reading or deciding). */
  maxPending: number
  /** Most connections one address may have reading their heads before Rule 3 applies; 0: no share. */
  perAddress: number
  /** The head timeout in ms (Rule 5 shortens it); 0: none. */
  timeout: number
  /** Addresses exempt from the per-address share. */
  trusted: BlockList | undefined
}

/** A connection reading its request head. */
export class PendingHead<M> {
  readonly member: M
  /** `hooks.now()` at admission. */
  readonly since: number
  /** Older and newer neighbours in accept order. */
  previous: PendingHead<M> | undefined = undefined
  next: PendingHead<M> | undefined = undefined
  /** The same, among connections from the same address (once looked up, Rule 6). */
  previousSame: PendingHead<M> | undefined = undefined
  nextSame: PendingHead<M> | undefined = undefined
  bucket: AddressBucket<M> | undefined = undefined
  linked = true

  constructor(member: M, since: number) {
    this.member = member
    this.since = since
  }
}

interface AddressBucket<M> {
  readonly key: string
  readonly trusted: boolean
  count: number
  first: PendingHead<M> | undefined
  last: PendingHead<M> | undefined
}

/** Pressure (Rule 5) divides the head timeout by this. */
const PRESSURE_DIVISOR = 4
/** The longest grace (Rule 2). */
const MAX_GRACE = 1000
/** The grace of Rule 4: time for the batch of accepts a head arrived in to be read. */
const FULL_POOL_GRACE = 50

export class HandshakePool<M> {
  /** Handshakes pending: reading their heads, or being decided. */
  pending = 0
  /** Connections reading their heads (the list's length). */
  reading = 0
  readonly #options: HandshakePoolOptions
  readonly #hooks: PoolHooks<M>
  readonly #stats: LimitStats
  readonly #grace: number
  #first: PendingHead<M> | undefined
  #last: PendingHead<M> | undefined
  /** Entries not yet given an address (Rule 6). */
  #unaddressed = 0
  readonly #buckets = new Map<string, AddressBucket<M>>()
  /** Addresses with more than their share reading (Rule 4's second choice). */
  readonly #overShare = new Set<AddressBucket<M>>()
  #timer: NodeJS.Timeout | undefined
  #timerAt = 0

  constructor(options: HandshakePoolOptions, hooks: PoolHooks<M>, stats: LimitStats) {
    this.#options = options
    this.#hooks = hooks
    this.#stats = stats
    this.#grace = options.timeout > 0 ? Math.min(MAX_GRACE, options.timeout / 10) : MAX_GRACE
  }

  /**
   * Admits a connection that is about to read its head, displacing another
   * if the rules say so; undefined when there is no room (answer 503).
   */
  admit(member: M): PendingHead<M> | undefined {
    const now = this.#hooks.now()
    const options = this.#options
    let bucket: AddressBucket<M> | undefined
    let victim: PendingHead<M> | undefined
    if (options.perAddress > 0 && this.reading >= options.perAddress) {
      // Rule 6: only now can an address hold its share; give every entry its address.
      if (this.#unaddressed > 0) this.#addressAll()
      bucket = this.#bucketOf(member)
      // Rule 3: the address's own oldest, once past its grace.
      if (!bucket.trusted && bucket.count >= options.perAddress && now - bucket.first!.since >= this.#grace) {
        victim = bucket.first
        this.#stats.addressShareDisplaced++
      }
    }
    if (victim === undefined && this.pending >= options.maxPending) {
      // Rule 4: the oldest of the address most over its share; else the oldest still reading; else no room.
      let most: AddressBucket<M> | undefined
      for (const over of this.#overShare) if (most === undefined || over.count > most.count) most = over
      if (most !== undefined && (bucket === undefined || bucket !== most)) victim = most.first
      else if (this.#first !== undefined && now - this.#first.since >= FULL_POOL_GRACE) victim = this.#first
      if (victim === undefined) return undefined
      this.#stats.handshakesDisplaced++
    }
    if (victim !== undefined) {
      this.headDone(victim)
      this.#hooks.expire(victim.member, 'displaced')
    }
    const entry = new PendingHead(member, now)
    const last = this.#last
    entry.previous = last
    if (last === undefined) this.#first = entry
    else last.next = entry
    this.#last = entry
    this.reading++
    this.pending++
    if (bucket !== undefined) this.#join(entry, bucket)
    else this.#unaddressed++
    if (options.timeout > 0) {
      const deadline = this.#first!.since + this.#timeout()
      if (this.#timer === undefined || deadline < this.#timerAt) this.#arm(deadline, now)
    }
    return entry
  }

  /** A complete upgrade request read by someone else (`handleUpgrade`): a place for its decision, or false (503). */
  reserve(): boolean {
    if (this.pending >= this.#options.maxPending) {
      const oldest = this.#first
      if (oldest === undefined || this.#hooks.now() - oldest.since < FULL_POOL_GRACE) return false
      this.#stats.handshakesDisplaced++
      this.headDone(oldest)
      this.#hooks.expire(oldest.member, 'displaced')
    }
    this.pending++
    return true
  }

  /** The connection stopped reading its head (complete, refused, gone or expired); it may still be pending. */
  headDone(entry: PendingHead<M>): void {
    if (!entry.linked) return
    entry.linked = false
    const { previous, next } = entry
    if (previous === undefined) this.#first = next
    else previous.next = next
    if (next === undefined) this.#last = previous
    else next.previous = previous
    entry.previous = entry.next = undefined
    this.reading--
    const bucket = entry.bucket
    if (bucket === undefined) {
      this.#unaddressed--
      return
    }
    entry.bucket = undefined
    const before = entry.previousSame
    const after = entry.nextSame
    if (before === undefined) bucket.first = after
    else before.nextSame = after
    if (after === undefined) bucket.last = before
    else after.previousSame = before
    entry.previousSame = entry.nextSame = undefined
    bucket.count--
    if (bucket.count === this.#options.perAddress) this.#overShare.delete(bucket)
    if (bucket.count === 0) this.#buckets.delete(bucket.key)
  }

  /** A pending handshake is over (upgraded, refused, or gone). */
  settle(): void {
    this.pending--
  }

  /** Stops the timer; entries left expire no more (for tests: a closed server still times out the heads it holds). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** The head timeout now (Rule 5). */
  #timeout(): number {
    return this.#underPressure() ? this.#options.timeout / PRESSURE_DIVISOR : this.#options.timeout
  }

  #underPressure(): boolean {
    return this.pending * 2 >= this.#options.maxPending
  }

  #arm(deadline: number, now: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timerAt = deadline
    this.#timer = setTimeout(onPoolTimer, Math.max(1, Math.ceil(deadline - now)), this)
    this.#timer.unref()
  }

  /** @internal The timer fired: expire every head past its deadline, oldest first, then wait for the next. */
  expireDue(): void {
    this.#timer = undefined
    const now = this.#hooks.now()
    let first = this.#first
    while (first !== undefined) {
      const pressure = this.#underPressure()
      if (now - first.since < (pressure ? this.#options.timeout / PRESSURE_DIVISOR : this.#options.timeout)) break
      this.#stats.handshakeTimeouts++
      if (pressure) this.#stats.pressureTimeouts++
      this.headDone(first)
      this.#hooks.expire(first.member, 'timeout')
      first = this.#first
    }
    if (first !== undefined && this.#timer === undefined) this.#arm(first.since + this.#timeout(), now)
  }

  /** The bucket of the member's address; a peer already gone has none, and shares the bucket '' with no share limit. */
  #bucketOf(member: M): AddressBucket<M> {
    const address = this.#hooks.addressOf(member) ?? ''
    // An IPv4 client of a dual-stack socket is "::ffff:a.b.c.d": the same client as "a.b.c.d".
    const key = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
    let bucket = this.#buckets.get(key)
    if (bucket === undefined) {
      const trusted = key === '' || (this.#options.trusted?.check(key, isIPv4(key) ? 'ipv4' : 'ipv6') ?? false)
      bucket = { key, trusted, count: 0, first: undefined, last: undefined }
      this.#buckets.set(key, bucket)
    }
    return bucket
  }

  #join(entry: PendingHead<M>, bucket: AddressBucket<M>): void {
    // Displacing its last entry may have just dropped the bucket from the map.
    if (bucket.count === 0) this.#buckets.set(bucket.key, bucket)
    entry.bucket = bucket
    const last = bucket.last
    entry.previousSame = last
    if (last === undefined) bucket.first = entry
    else last.nextSame = entry
    bucket.last = entry
    bucket.count++
    if (bucket.count === this.#options.perAddress + 1 && !bucket.trusted) this.#overShare.add(bucket)
  }

  /**
   * Rule 6: addresses for the entries admitted while few were reading. They
   * are all newer than every entry that has one (all are addressed at once),
   * so walking in accept order and appending keeps each bucket in accept order.
   */
  #addressAll(): void {
    for (let entry = this.#first; entry !== undefined; entry = entry.next) {
      if (entry.bucket !== undefined) continue
      this.#unaddressed--
      this.#join(entry, this.#bucketOf(entry.member))
    }
  }
}

function onPoolTimer(pool: HandshakePool<unknown>): void {
  pool.expireDue()
}

/**
 * The `trustedProxies` option as a BlockList: addresses (`'127.0.0.1'`,
 * `'::1'`) and CIDR ranges (`'10.0.0.0/8'`, `'fd00::/8'`). Throws a TypeError
 * for anything else.
 */
export function trustedProxyList(entries: readonly string[] | undefined): BlockList | undefined {
  if (entries === undefined) return undefined
  if (!Array.isArray(entries)) throw new TypeError('trustedProxies must be an array of addresses or CIDR ranges')
  const list = new BlockList()
  for (const entry of entries) {
    const [address = '', prefix, extra] = typeof entry === 'string' ? entry.split('/') : []
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
    const bits = prefix === undefined ? undefined : Number(prefix)
    const valid =
      family !== undefined &&
      extra === undefined &&
      (bits === undefined || (prefix !== '' && Number.isInteger(bits) && bits >= 0 && bits <= (family === 'ipv4' ? 32 : 128)))
    if (!valid) throw new TypeError(`trustedProxies: ${JSON.stringify(entry)} is not an IP address or CIDR range`)
    if (bits === undefined) list.addAddress(address, family)
    else list.addSubnet(address, bits, family)
  }
  return list
}
