/**
 * permessage-deflate for Node connections: zlib contexts with a memory
 * budget the whole process shares.
 *
 * Theory of operation: compression is where WebSocket servers run out of
 * memory (ws#1202, ws#1617, socket.io#3477): a zlib deflate context with the
 * default 15-bit window and memLevel 8 holds about 262 KiB, an inflate
 * context about 20 KiB once used, and a naive server keeps one of each per
 * connection.
 * Here a connection holds a context only where the protocol makes it
 * necessary or the budget pays for it:
 *
 * - Sending. A sender may always start a message with a fresh context, even
 *   when context takeover is allowed. So a connection compresses with a
 *   shared, stateless context (one per configuration, reset after every
 *   message) unless it may take over context AND the budget has room for a
 *   dedicated one. Dedicated deflaters left idle are freed (`idleMs`); the
 *   next message simply starts fresh.
 * - Receiving. If the peer takes over context, its messages can only be
 *   inflated with a context that lives as long as the connection; its cost is
 *   reserved at the handshake, and when the budget has no room the server
 *   asks the client not to take over context (RFC 7692 §7.1.1.2) and the
 *   client asks the server (§7.1.1.1). Without context takeover, a message
 *   is inflated with a shared context (synchronously, so one suffices); a
 *   message arriving in several reads is kept compressed until its end.
 *
 * Rule 1: the budget bounds the dedicated contexts; the shared ones are a
 * fixed handful per process. Reaching the budget never stalls a message and
 * never sends one uncompressed that could be compressed: it only changes
 * which context compresses it.
 * Rule 2: everything a connection holds is released by `close()`.
 * Rule 3: a compressed message that would not be smaller goes out
 * uncompressed when that is safe (stateless compression only).
 */
import type { InflateOutcome, MessageCodec } from '../core/deflate/codec.js'
import type { DeflateParameters } from '../core/deflate/negotiate.js'
import type { Side } from '../core/writer.js'
import {
  AsyncZlib,
  type Emit,
  type EngineOptions,
  type EngineResult,
  SyncZlib,
  engineCost,
  inflateMessageStart,
  supportsSyncZlib,
} from './zlib-engine.js'

/** RFC 7692 §7.2.1: the four octets a sync flush ends with, removed on the wire and restored to inflate. */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

const EMPTY = Buffer.alloc(0)

/** Compression settings of one server or client (from the `perMessageDeflate` option). */
export interface CompressionSettings {
  /** Messages smaller than this many bytes are sent uncompressed. */
  threshold: number
  level: number | undefined
  memLevel: number | undefined
  strategy: number | undefined
  /** Force the asynchronous zlib path (tests; and Node versions without the synchronous handle). */
  forceAsync?: boolean
}

/** Process-wide accounting of zlib memory. */
export interface DeflateMemoryStats {
  /** Bytes dedicated contexts may hold (reserved or allocated). */
  budget: number
  /** Bytes reserved or allocated for dedicated contexts now. */
  used: number
  dedicatedDeflaters: number
  dedicatedInflaters: number
  sharedContexts: number
  /** Messages compressed with a shared context because the budget had no room for a dedicated one. */
  sharedBecauseOfBudget: number
  /** Handshakes where context takeover was declined because of the budget. */
  takeoverDeclined: number
  /** Dedicated deflaters freed after being idle. */
  idleFreed: number
  /** Contexts of closed connections kept for reuse (part of `used`). */
  pooledContexts: number
  pooledBytes: number
  /** Messages sent uncompressed because compressing did not make them smaller. */
  incompressible: number
}

const memory = {
  budget: 64 * 1024 * 1024,
  used: 0,
  idleMs: 30_000,
  dedicatedDeflaters: 0,
  dedicatedInflaters: 0,
  sharedBecauseOfBudget: 0,
  takeoverDeclined: 0,
  idleFreed: 0,
  incompressible: 0,
}

/**
 * Sets the process-wide zlib memory budget (bytes, default 64 MiB) and how
 * long a dedicated compressor may stay idle before it is freed (ms, default
 * 30 000).
 */
export function configureDeflateMemory(options: { budget?: number; idleMs?: number }): void {
  if (options.budget !== undefined) {
    if (!(options.budget >= 0)) throw new RangeError('budget must be a number of bytes >= 0')
    memory.budget = options.budget
  }
  if (options.idleMs !== undefined) {
    if (!(options.idleMs > 0)) throw new RangeError('idleMs must be > 0')
    memory.idleMs = options.idleMs
  }
}

/** What the process's compression holds now. */
export function deflateMemoryStats(): DeflateMemoryStats {
  return {
    budget: memory.budget,
    used: memory.used,
    dedicatedDeflaters: memory.dedicatedDeflaters,
    dedicatedInflaters: memory.dedicatedInflaters,
    sharedContexts: shared.size,
    sharedBecauseOfBudget: memory.sharedBecauseOfBudget,
    takeoverDeclined: memory.takeoverDeclined,
    idleFreed: memory.idleFreed,
    incompressible: memory.incompressible,
    pooledContexts: [...pool.values()].reduce((sum, list) => sum + list.length, 0),
    pooledBytes,
  }
}

/** Reserves `bytes` of the budget, making room by freeing pooled contexts; false (and nothing reserved) if there is none. */
export function reserveMemory(bytes: number): boolean {
  if (memory.used + bytes > memory.budget) evictPooled((entry) => memory.used + bytes > memory.budget && entry !== undefined)
  if (memory.used + bytes > memory.budget) return false
  memory.used += bytes
  return true
}

export function releaseMemory(bytes: number): void {
  memory.used = Math.max(0, memory.used - bytes)
}

/** Counts a handshake that gave up context takeover for lack of budget. */
export function countTakeoverDeclined(): void {
  memory.takeoverDeclined++
}

/** What a dedicated inflater for a peer window costs. */
export function inflaterCost(windowBits: number): number {
  return engineCost('inflate', { windowBits })
}

// ------------------------------------------------------------ shared contexts

type Engine = SyncZlib | AsyncZlib

/** Shared stateless contexts, one per configuration; used synchronously and reset after every message. */
const shared = new Map<string, SyncZlib>()

function sharedEngine(kind: 'deflate' | 'inflate', options: EngineOptions): SyncZlib {
  const key = `${kind}:${Math.max(9, options.windowBits)}:${options.level}:${options.memLevel}:${options.strategy}`
  let engine = shared.get(key)
  if (engine === undefined || engine.broken) {
    engine = new SyncZlib(kind, options)
    shared.set(key, engine)
  }
  return engine
}

/**
 * Compresses a whole message statelessly with the shared context for these
 * settings (the output of one call is independent of any other message, so
 * one result serves every receiver whose window allows it: see prepare).
 * Returns undefined when compressing would not make the message smaller.
 */
export function deflateStateless(data: Uint8Array, windowBits: number, settings: CompressionSettings): Buffer | undefined {
  const engine = sharedEngine('deflate', { windowBits, level: settings.level, memLevel: settings.memLevel, strategy: settings.strategy })
  const result = engine.process(data)
  engine.reset()
  if (!result.ok) return undefined
  const output = stripTail(result)
  if (output.length >= data.length) {
    memory.incompressible++
    return undefined
  }
  return output
}

/** RFC 7692 §7.2.3.6: "a single 0x00 octet" is an empty DEFLATE block once the tail is restored. */
const EMPTY_BLOCK = Buffer.from([0x00])

/**
 * The compressed message without the 00 00 FF FF its sync flush ended with
 * (RFC 7692 §7.2.1). A context with nothing left to flush produces no
 * output at all; the message then needs the empty block, since an empty
 * payload plus the restored tail would leave the peer's inflater inside an
 * unfinished stored block.
 */
function stripTail(result: Extract<EngineResult, { ok: true }>): Buffer {
  if (result.length <= TAIL.length) return EMPTY_BLOCK
  const whole = result.chunks.length === 1 ? result.chunks[0]! : Buffer.concat(result.chunks, result.length)
  return whole.subarray(0, whole.length - TAIL.length)
}

// ------------------------------------------------------------ reuse

/**
 * Dedicated contexts given back by closed connections (or idle ones), reset
 * and kept for the next connection that needs the same kind. A zlib context
 * is a few 64 KiB blocks, which the C allocator keeps inside the process once
 * freed (glibc gives back only the top of its heap), so freeing and
 * allocating them per connection grows the resident size with every round of
 * connections (ws#1202). Reusing them keeps it flat. Pooled contexts count in
 * `used`; they are freed when a reservation needs the room or after `idleMs`.
 */
interface Pooled {
  engine: SyncZlib
  since: number
}
const pool = new Map<string, Pooled[]>()
let pooledBytes = 0

function engineKey(kind: 'deflate' | 'inflate', options: EngineOptions): string {
  const windowBits = Math.max(9, options.windowBits)
  return kind === 'inflate' ? `inflate:${windowBits}` : `deflate:${windowBits}:${options.level}:${options.memLevel}:${options.strategy}`
}

/** A pooled context for these options, its cost taken out of `used` (the caller accounts for it). */
function takePooled(kind: 'deflate' | 'inflate', options: EngineOptions): SyncZlib | undefined {
  const key = engineKey(kind, options)
  const list = pool.get(key)
  const entry = list?.pop()
  if (entry === undefined) return undefined
  if (list!.length === 0) pool.delete(key)
  pooledBytes -= entry.engine.cost
  releaseMemory(entry.engine.cost)
  return entry.engine
}

/** Keeps a context the caller no longer accounts for; asynchronous or broken ones are closed. */
function givePooled(engine: Engine, options: EngineOptions): void {
  if (!(engine instanceof SyncZlib) || engine.broken) return engine.close()
  engine.reset()
  const key = engineKey(engine.kind, options)
  const list = pool.get(key) ?? []
  list.push({ engine, since: Date.now() })
  pool.set(key, list)
  pooledBytes += engine.cost
  memory.used += engine.cost
  ensureSweep()
}

/** Frees pooled contexts, oldest first, while `keepGoing` says so. */
function evictPooled(keepGoing: (entry: Pooled | undefined) => boolean): void {
  for (;;) {
    let oldest: { key: string; entry: Pooled } | undefined
    for (const [key, list] of pool) {
      const entry = list[0]
      if (entry !== undefined && (oldest === undefined || entry.since < oldest.entry.since)) oldest = { key, entry }
    }
    if (oldest === undefined || !keepGoing(oldest.entry)) return
    const list = pool.get(oldest.key)!
    list.shift()
    if (list.length === 0) pool.delete(oldest.key)
    pooledBytes -= oldest.entry.engine.cost
    releaseMemory(oldest.entry.engine.cost)
    oldest.entry.engine.close()
  }
}

// ------------------------------------------------------------ idle sweep

const withDedicatedDeflater = new Set<ZlibCodec>()
let sweepTimer: NodeJS.Timeout | undefined

function ensureSweep(): void {
  if (sweepTimer === undefined) {
    sweepTimer = setInterval(sweepIdle, Math.max(1000, Math.floor(memory.idleMs / 3)))
    sweepTimer.unref()
  }
}

function watchIdle(codec: ZlibCodec): void {
  withDedicatedDeflater.add(codec)
  ensureSweep()
}

function unwatchIdle(codec: ZlibCodec): void {
  withDedicatedDeflater.delete(codec)
}

/** Frees dedicated deflaters, and pooled contexts, idle for `idleMs` (exported for tests). */
export function sweepIdle(now = Date.now()): void {
  // Pool first: a deflater moved to the pool by this sweep waits a whole idleMs there.
  evictPooled((entry) => entry !== undefined && now - entry.since >= memory.idleMs)
  for (const codec of withDedicatedDeflater) codec.freeIdleDeflater(now)
  if (withDedicatedDeflater.size === 0 && pool.size === 0 && sweepTimer !== undefined) {
    clearInterval(sweepTimer)
    sweepTimer = undefined
  }
}

// ------------------------------------------------------------ the codec

/**
 * Tests only: `forceAsync` makes codecs created while it is set use the
 * asynchronous zlib path, as on a Node without the synchronous handle (the
 * `perMessageDeflate` option has no way to ask for it).
 */
export const zlibTestHooks = { forceAsync: false }

/** permessage-deflate for one connection; implements the core's MessageCodec. */
export class ZlibCodec implements MessageCodec {
  private readonly settings: CompressionSettings
  private readonly ownOptions: EngineOptions
  private readonly peerWindowBits: number
  private readonly ownTakeover: boolean
  private readonly peerTakeover: boolean
  /** Budget reserved at the handshake for the dedicated inflater (peer takes over context). */
  private inflaterReservation: number
  private inflater: Engine | undefined
  private deflater: Engine | undefined
  private deflaterLastUsed = 0
  /** Compressed pieces of a message that arrived in several reads (peer without context takeover). */
  private pending: Buffer[] | undefined
  private pendingLength = 0
  /** Bytes of the current incoming message went to the dedicated inflater (zlib-engine Rule 4). */
  private messageFed = false
  /** Compressing a fragmented message with the shared context. */
  private fragmentedShared = false
  private closed = false
  private readonly async: boolean

  /**
   * `inflaterReservation` is what the handshake reserved for a dedicated
   * inflater (0 when the peer does not take over context).
   */
  constructor(side: Side, parameters: DeflateParameters, settings: CompressionSettings, inflaterReservation: number) {
    this.settings = settings
    const server = side === 'server'
    this.ownTakeover = !(server ? parameters.serverNoContextTakeover : parameters.clientNoContextTakeover)
    this.peerTakeover = !(server ? parameters.clientNoContextTakeover : parameters.serverNoContextTakeover)
    this.ownOptions = {
      windowBits: server ? parameters.serverMaxWindowBits : parameters.clientMaxWindowBits,
      level: settings.level,
      memLevel: settings.memLevel,
      strategy: settings.strategy,
    }
    this.peerWindowBits = server ? parameters.clientMaxWindowBits : parameters.serverMaxWindowBits
    this.inflaterReservation = inflaterReservation
    this.async = settings.forceAsync === true || zlibTestHooks.forceAsync || !supportsSyncZlib
  }

  /** Whether a message of `size` bytes should be compressed at all. */
  shouldCompress(size: number): boolean {
    return size >= this.settings.threshold
  }

  /** Window bits this side compresses with (for prepared, compress-once frames). */
  get ownWindowBits(): number {
    return this.ownOptions.windowBits
  }

  /** The settings compressed output depends on, as a cache key (prepared messages). */
  get settingsKey(): string {
    const { windowBits, level, memLevel, strategy } = this.ownOptions
    return `${windowBits}:${level}:${memLevel}:${strategy}`
  }

  get compressionSettings(): CompressionSettings {
    return this.settings
  }

  /** Compressed bytes of the incoming message kept until its end (no context takeover), for the receive budget. */
  get bytesHeld(): number {
    return this.pendingLength
  }

  /** Forgets the incoming message in progress (the connection failed). */
  discardIncoming(): void {
    this.pending = undefined
    this.pendingLength = 0
  }

  inflate(data: Uint8Array, end: boolean, limit: number, done: (outcome: InflateOutcome) => void, output?: Emit): void {
    if (this.closed) return done({ ok: false, reason: 'corrupt', message: 'connection closed' })
    if (this.peerTakeover) {
      const engine = (this.inflater ??= this.newEngine('inflate', { windowBits: this.peerWindowBits }))
      const input = end ? joinTail(data) : data
      // zlib-engine Rule 4: the first bytes of a message go through a new stream if the
      // last message ended the old one (a final block).
      const start = !this.messageFed && input.length > 0
      if (input.length > 0) this.messageFed = !end
      if (engine instanceof SyncZlib) {
        return done(toOutcome(start ? inflateMessageStart(engine, input, limit, output) : engine.process(input, limit, output)))
      }
      return engine.process(
        input,
        limit,
        (result) => {
          if (start && engine.ended && result.ok && result.length === 0 && this.inflater === engine) {
            // A stream API context cannot be reset after its end: replace it.
            engine.close()
            const fresh = new AsyncZlib('inflate', { windowBits: this.peerWindowBits })
            this.inflater = fresh
            return fresh.process(input, limit, (retried) => done(toOutcome(retried)), output)
          }
          done(toOutcome(result))
        },
        output,
      )
    }
    // No context takeover: keep pieces until the message ends, then use a shared context.
    if (!end) {
      ;(this.pending ??= []).push(Buffer.from(data))
      this.pendingLength += data.length
      return done({ ok: true, data: [] })
    }
    const pieces = this.pending
    this.pending = undefined
    const input = pieces === undefined ? joinTail(data) : Buffer.concat([...pieces, data, TAIL], this.pendingLength + data.length + 4)
    this.pendingLength = 0
    if (this.async) {
      const engine = new AsyncZlib('inflate', { windowBits: this.peerWindowBits })
      return engine.process(
        input,
        limit,
        (result) => {
          engine.close()
          done(toOutcome(result))
        },
        output,
      )
    }
    const engine = sharedEngine('inflate', { windowBits: this.peerWindowBits })
    const result = engine.process(input, limit, output)
    // A shared context stopped midway (`output` refused more) is spent: replace it.
    if (engine.broken) engine.close()
    else engine.reset()
    done(toOutcome(result))
  }

  deflate(data: Uint8Array, end: boolean, done: (output: Uint8Array | undefined) => void): void {
    if (this.closed) return done(undefined)
    const engine = this.deflaterFor()
    if (engine === undefined) {
      // Stateless: one shared context, reset after each piece. A fragmented message is a
      // sequence of sync-flushed pieces, which is still one valid DEFLATE stream (§7.2.1).
      const wholeMessage = end && !this.fragmentedShared
      this.fragmentedShared = !end
      const sharedDeflater = sharedEngine('deflate', this.ownOptions)
      const result = sharedDeflater.process(data)
      sharedDeflater.reset()
      if (!result.ok) return done(undefined)
      const output = end ? stripTail(result) : joinAll(result)
      // Rule 3: a whole message that does not shrink goes out as it is.
      if (wholeMessage && output.length >= data.length) {
        memory.incompressible++
        return done(undefined)
      }
      return done(output)
    }
    this.deflaterLastUsed = Date.now()
    const finish = (result: EngineResult): void => {
      if (!result.ok) {
        this.dropDeflater()
        return done(undefined)
      }
      done(end ? stripTail(result) : joinAll(result))
    }
    if (engine instanceof SyncZlib) finish(engine.process(data))
    else engine.process(data, Number.POSITIVE_INFINITY, finish)
  }

  /**
   * A message compressed elsewhere (a prepared message) went out on this
   * connection: the peer's inflater now has it in its window but our
   * deflater's history does not, so a later message referring back would
   * be misread. The next message starts with a fresh history.
   */
  forgetHistory(): void {
    this.deflater?.reset()
  }

  /** Frees the dedicated deflater if it was idle long enough (called by the sweep). */
  freeIdleDeflater(now: number): void {
    if (this.deflater !== undefined && now - this.deflaterLastUsed >= memory.idleMs) {
      this.dropDeflater()
      memory.idleFreed++
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.dropDeflater()
    if (this.inflater !== undefined) {
      givePooled(this.inflater, { windowBits: this.peerWindowBits })
      this.inflater = undefined
      memory.dedicatedInflaters--
    }
    // Rule 2: the reservation made at the handshake goes back.
    releaseMemory(this.inflaterReservation)
    this.inflaterReservation = 0
    this.pending = undefined
  }

  /** The dedicated deflater, created if context takeover is allowed and the budget has room. */
  private deflaterFor(): Engine | undefined {
    if (this.deflater !== undefined) return this.deflater
    if (!this.ownTakeover || this.fragmentedShared) return undefined
    const cost = engineCost('deflate', this.ownOptions)
    const pooled = this.async ? undefined : takePooled('deflate', this.ownOptions)
    if (!reserveMemory(cost)) {
      if (pooled !== undefined) givePooled(pooled, this.ownOptions)
      memory.sharedBecauseOfBudget++
      return undefined
    }
    this.deflater = pooled ?? this.newEngine('deflate', this.ownOptions)
    memory.dedicatedDeflaters++
    watchIdle(this)
    return this.deflater
  }

  private dropDeflater(): void {
    const deflater = this.deflater
    if (deflater === undefined) return
    this.deflater = undefined
    releaseMemory(deflater.cost)
    givePooled(deflater, this.ownOptions)
    memory.dedicatedDeflaters--
    unwatchIdle(this)
  }

  /** A dedicated context: a pooled one if there is one (its cost then lives in the caller's reservation). */
  private newEngine(kind: 'deflate' | 'inflate', options: EngineOptions): Engine {
    if (kind === 'inflate') memory.dedicatedInflaters++
    if (this.async) return new AsyncZlib(kind, options)
    return (kind === 'inflate' ? takePooled(kind, options) : undefined) ?? new SyncZlib(kind, options)
  }
}

function joinTail(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + TAIL.length)
  out.set(data, 0)
  out.set(TAIL, data.length)
  return out
}

function joinAll(result: Extract<EngineResult, { ok: true }>): Buffer {
  if (result.chunks.length === 0) return EMPTY
  return result.chunks.length === 1 ? result.chunks[0]! : Buffer.concat(result.chunks, result.length)
}

function toOutcome(result: EngineResult): InflateOutcome {
  if (!result.ok) return result
  return { ok: true, data: result.chunks }
}
