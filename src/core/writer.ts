/**
 * Outgoing frames as bytes ready for the transport (RFC 6455 §5.2, §5.3).
 *
 * Theory of operation: small frames are written, header and payload
 * together, into a bump-allocated arena; consecutive small frames share it,
 * so one transport write carries many of them. A large payload is not copied
 * to prepend its header: the header goes to the arena and the payload is
 * queued as its own chunk (a server's frames are never masked, RFC 6455
 * §5.1). A client masks every frame with a fresh key from a pool of
 * cryptographically random bytes, which means copying the payload.
 *
 * Rule 1: bytes handed out by `take` are never written again; the arena only
 * moves forward and is replaced when full, because the transport may still
 * hold the handed-out views.
 * Rule 2: nothing is retained between batches except a size hint, so an idle
 * connection holds no buffer.
 * Rule 3: a shared run (`writeRun`) is the queue's open tail: the run may
 * still grow (a topic published to again in the same turn) while nothing is
 * queued behind it here. Queuing anything else, or taking the queue, closes
 * it: the run is sealed for every connection that holds it, and this
 * connection's part of it becomes an ordinary chunk. So a connection never
 * gets a run's later messages after something it was sent later.
 */
import { frameHeaderSize, writeFrameHeader } from './frame.js'
import { applyMask } from './mask.js'
import { fillRandom } from './platform.js'

export type Side = 'client' | 'server'

/** Allocates `size` bytes; the Node transport passes `Buffer.allocUnsafe`. */
export type Allocate = (size: number) => Uint8Array

/** Fills a 4-byte masking key (the `ws` option of the same name). */
export type GenerateMask = (mask: Uint8Array) => void

/** Payloads up to this size are copied next to their header; larger ones travel as their own chunk. */
const COPY_LIMIT = 4096
const MIN_ARENA = 256
const MAX_ARENA = 64 * 1024

/** Empty unmasked frames by first header byte: never written to once made, so shared by every writer. */
const emptyFrames: Uint8Array[] = []

function emptyFrame(firstByte: number): Uint8Array {
  return (emptyFrames[firstByte] ??= Uint8Array.of(firstByte, 0))
}

const maskPool = new Uint8Array(8192)
let maskPoolIndex = maskPool.length
/** Scratch for the current key; the send path is synchronous, so one suffices. */
const currentMask = new Uint8Array(4)

function defaultGenerateMask(mask: Uint8Array): void {
  if (maskPoolIndex === maskPool.length) {
    fillRandom(maskPool)
    maskPoolIndex = 0
  }
  mask[0] = maskPool[maskPoolIndex++]!
  mask[1] = maskPool[maskPoolIndex++]!
  mask[2] = maskPool[maskPoolIndex++]!
  mask[3] = maskPool[maskPoolIndex++]!
}

const defaultAllocate: Allocate = (size) => new Uint8Array(size)

/** What a writer needs to know that is the same for every connection of an endpoint. */
export interface WriterSettings {
  masked: boolean
  allocate: Allocate
  generateMask: GenerateMask
}

/** Settings by side, allocator and mask generator; weak, so per-connection functions cannot leak. */
const shared = { client: new WeakMap<Allocate, WeakMap<GenerateMask, WriterSettings>>(), server: new WeakMap<Allocate, WeakMap<GenerateMask, WriterSettings>>() }

/** Writer settings for a side and functions: one object for every connection that uses the same ones. */
export function writerSettings(side: Side, allocate: Allocate = defaultAllocate, generateMask: GenerateMask = defaultGenerateMask): WriterSettings {
  let byMask = shared[side].get(allocate)
  if (byMask === undefined) shared[side].set(allocate, (byMask = new WeakMap()))
  let settings = byMask.get(generateMask)
  if (settings === undefined) byMask.set(generateMask, (settings = { masked: side === 'client', allocate, generateMask }))
  return settings
}

/**
 * Frames shared by many connections' queues whose end is decided later: the
 * messages published to one topic in one turn of the event loop, framed once
 * and written to every subscriber as one buffer (src/node/published-run.ts).
 */
export interface SharedRun {
  /** Bytes in the run so far. */
  readonly bytes: number
  /** Where a connection that joins now begins: the start of the run's latest message. */
  readonly joinAt: number
  /** Stops the run from growing (Rule 3); may be called more than once. */
  seal(): void
  /** The run's bytes from offset `start` to `end`; only asked of a sealed run. */
  slice(start: number, end: number): Uint8Array
}

export class FrameWriter {
  /** Bytes queued and not yet taken. */
  bytes = 0
  /** Created when the first chunk is queued; an idle connection holds no array. */
  private chunks: Uint8Array[] | undefined
  private arena: Uint8Array | undefined
  private arenaStart = 0
  private arenaEnd = 0
  private arenaHint = MIN_ARENA
  /** Shared between connections (an idle connection should not carry three fields for it). */
  private readonly settings: WriterSettings
  /** Rule 3: the open tail, and where this connection's part of it begins. */
  private run: SharedRun | undefined
  private runStart = 0

  constructor(settings: WriterSettings | Side, allocate?: Allocate, generateMask?: GenerateMask) {
    this.settings = typeof settings === 'string' ? writerSettings(settings, allocate, generateMask) : settings
  }

  /** Queues one frame whose first header byte is `firstByte`. */
  writeFrame(firstByte: number, payload: Uint8Array): void {
    if (this.run !== undefined) this.closeRun()
    const length = payload.length
    // An empty unmasked frame with nothing queued before it (a server's heartbeat ping, sent to thousands of
    // sockets in one sweep) is two constant bytes: shared, it costs no arena per connection (issue 18).
    if (length === 0 && this.bytes === 0 && !this.settings.masked) return this.writeRaw(emptyFrame(firstByte))
    const headerSize = frameHeaderSize(length, this.settings.masked)
    let mask: Uint8Array | undefined
    if (this.settings.masked) {
      mask = currentMask
      this.settings.generateMask(mask)
    }
    if (length <= COPY_LIMIT) {
      const arena = this.reserve(headerSize + length)
      const at = writeFrameHeader(arena, this.arenaEnd - headerSize - length, firstByte, length, mask)
      arena.set(payload, at)
      if (mask) applyMask(arena.subarray(at, at + length), mask)
    } else {
      const arena = this.reserve(headerSize)
      writeFrameHeader(arena, this.arenaEnd - headerSize, firstByte, length, mask)
      this.seal()
      if (mask) {
        const copy = this.settings.allocate(length)
        copy.set(payload)
        applyMask(copy, mask)
        ;(this.chunks ??= []).push(copy)
      } else {
        ;(this.chunks ??= []).push(payload)
      }
    }
    this.bytes += headerSize + length
  }

  /** Queues bytes that are already a whole frame (a prepared broadcast frame). */
  writeRaw(bytes: Uint8Array): void {
    if (this.run !== undefined) this.closeRun()
    this.seal()
    ;(this.chunks ??= []).push(bytes)
    this.bytes += bytes.length
  }

  /** Everything queued since the last call, in order; the caller now owns it. */
  take(): Uint8Array[] {
    if (this.run !== undefined) this.closeRun()
    this.seal()
    const chunks = this.chunks
    // The caller owns what it gets, so the queue itself is never handed out.
    if (chunks === undefined) return []
    this.chunks = undefined
    this.bytes = 0
    if (this.arena !== undefined) {
      // Size the next arena for a batch like this one (Rule 2).
      this.arenaHint = Math.min(MAX_ARENA, Math.max(MIN_ARENA, this.arenaEnd))
      this.arena = undefined
    }
    return chunks
  }

  /**
   * Queues a shared run from its latest message as the open tail (Rule 3):
   * what the run gains until something else is queued here is this
   * connection's too.
   */
  writeRun(run: SharedRun): void {
    if (this.run !== undefined) this.closeRun()
    this.seal()
    this.run = run
    this.runStart = run.joinAt
  }

  /** Bytes queued and not yet taken, the open run's included. */
  get queuedBytes(): number {
    return this.run === undefined ? this.bytes : this.bytes + this.run.bytes - this.runStart
  }

  /** Nothing queued and nothing learnt: a writer made anew would be the same. */
  get resting(): boolean {
    return this.bytes === 0 && this.run === undefined && this.arena === undefined && this.arenaHint === MIN_ARENA
  }

  /** Rule 3: seals the open run, if any, and queues this connection's part of it. */
  closeRun(): void {
    const run = this.run
    if (run === undefined) return
    this.run = undefined
    run.seal()
    const end = run.bytes
    if (end === this.runStart) return
    ;(this.chunks ??= []).push(run.slice(this.runStart, end))
    this.bytes += end - this.runStart
  }

  /** Returns the arena with `size` bytes reserved at its end (`arenaEnd` moves past them). */
  private reserve(size: number): Uint8Array {
    let arena = this.arena
    if (arena === undefined || arena.length - this.arenaEnd < size) {
      this.seal()
      arena = this.arena = this.settings.allocate(Math.max(size, this.arenaHint))
      this.arenaStart = 0
      this.arenaEnd = 0
    }
    this.arenaEnd += size
    return arena
  }

  /** Moves the arena's unsealed bytes to the chunk list. */
  private seal(): void {
    if (this.arena !== undefined && this.arenaEnd > this.arenaStart) {
      ;(this.chunks ??= []).push(this.arena.subarray(this.arenaStart, this.arenaEnd))
      this.arenaStart = this.arenaEnd
    }
  }
}
