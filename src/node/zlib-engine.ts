/**
 * One zlib context (raw DEFLATE or INFLATE) driven synchronously.
 *
 * Theory of operation: Node's public zlib API is either one-shot (a new
 * context per call, so no context takeover) or asynchronous through the
 * thread pool (a round trip per message, the cost ws pays: ws#1369). A zlib
 * stream's native handle also offers `writeSync`, which Node itself uses for
 * the one-shot calls; driving it directly keeps one persistent context and
 * answers in the same tick (node#35295 asks for this to be public). Output
 * goes into one shared scratch buffer and is copied out at its exact size,
 * so a small message costs no large allocation.
 *
 * Rule 1: output is capped: once more than `limit` bytes came out, work
 * stops at the next scratch-buffer boundary and the call answers 'too-big',
 * so a decompression bomb costs at most limit + one scratch buffer.
 * Rule 2: a zlib error (corrupt input) is returned, never thrown, and
 * leaves the engine unusable (`broken`).
 * Rule 3: where `writeSync` is missing (a future Node), `supportsSyncZlib`
 * is false and the codec falls back to the asynchronous stream API.
 * Rule 5: with an `emit` function, output is handed over as it comes out,
 * as views of the scratch buffer (valid during the call), instead of being
 * copied into chunks: the receiver copies it once, where the message is
 * assembled. `emit` returning false stops the work and spends the context.
 * Rule 4: an inflate stream can end: a peer may finish a message with a
 * block whose BFINAL bit is set (RFC 7692 §7.2.3.4). zlib then stops, leaves
 * the rest of the input unread, and would answer every later message with
 * nothing. So a message's first bytes that a context does not take at all
 * (`ended`, nothing consumed) are inflated again with a new stream
 * (`inflateMessageStart`): no message is dropped silently, and one that
 * refers back across the end fails as corrupt instead. The end is noticed
 * there, when the next message starts, because a final block may consume
 * all the input (even the restored tail) and leave no sign before.
 */
import zlib from 'node:zlib'

const { Z_SYNC_FLUSH } = zlib.constants

/** The fields of a zlib stream that the synchronous path uses. */
interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, output: Uint8Array, outOffset: number, outLength: number): void
  reset(): void
}
type ZlibStream = (zlib.DeflateRaw | zlib.InflateRaw) & { _handle?: ZlibHandle | null; _writeState?: Uint32Array }

const SCRATCH_SIZE = 64 * 1024
let scratch: Buffer | undefined

/** Receives output as it is produced (Rule 5); false stops the work. */
export type Emit = (piece: Uint8Array) => boolean

const STOPPED = { ok: false, reason: 'too-big', message: 'stopped by the receiver' } as const

/** Whether this Node offers the synchronous handle (Rule 3). */
export const supportsSyncZlib: boolean = (() => {
  try {
    const probe = zlib.createInflateRaw() as ZlibStream
    const ok = typeof probe._handle?.writeSync === 'function' && probe._writeState instanceof Uint32Array
    probe.close()
    return ok
  } catch {
    return false
  }
})()

export type EngineResult = { ok: true; chunks: Buffer[]; length: number } | { ok: false; reason: 'too-big' | 'corrupt'; message: string }

export interface EngineOptions {
  windowBits: number
  level?: number
  memLevel?: number
  strategy?: number
}

/** Per context: the zlib stream object, its native handle and zlib's state structs. */
const CONTEXT_OVERHEAD = 14 * 1024

/**
 * Bytes a context may hold, for the budget: zlib's own formulas (zconf.h),
 * window plus state, and one correction. Node bundles Chromium's zlib, whose
 * deflate uses a 15-bit hash table (64 KiB) whenever the CPU has SSE4.2,
 * whatever memLevel says; measured here, a 9-bit, memLevel 1 deflate context
 * holds about 82 KiB after one message, not the 9 KiB the formula gives.
 */
export function engineCost(kind: 'deflate' | 'inflate', options: EngineOptions): number {
  const windowBits = Math.max(9, options.windowBits)
  if (kind === 'inflate') return (1 << windowBits) + CONTEXT_OVERHEAD
  const memLevel = options.memLevel ?? 8
  return (1 << (windowBits + 2)) + Math.max(1 << (memLevel + 9), 1 << 16) + CONTEXT_OVERHEAD
}

export class SyncZlib {
  readonly kind: 'deflate' | 'inflate'
  readonly cost: number
  broken = false
  /** The inflate stream reached its end (Rule 4): input was left unread. */
  ended = false
  /** Input bytes the last `process` call consumed. */
  consumed = 0
  private readonly stream: ZlibStream
  private readonly handle: ZlibHandle
  private readonly state: Uint32Array

  constructor(kind: 'deflate' | 'inflate', options: EngineOptions) {
    this.kind = kind
    this.cost = engineCost(kind, options)
    // zlib refuses an 8-bit window for raw DEFLATE; with 9 bits it never reaches back more than
    // 2^9 - 262 = 250 bytes (MAX_DIST), so its output is still valid for a peer that agreed on 8.
    const windowBits = Math.max(9, options.windowBits)
    // chunkSize 64: the stream's own output buffer is never used on this path.
    const common = { windowBits, chunkSize: 64 }
    this.stream = (
      kind === 'deflate'
        ? zlib.createDeflateRaw({ ...common, level: options.level, memLevel: options.memLevel, strategy: options.strategy })
        : zlib.createInflateRaw(common)
    ) as ZlibStream
    // Errors are read after each call (Rule 2); this keeps the stream's 'error' event from throwing.
    this.stream.on('error', () => {})
    this.handle = this.stream._handle!
    this.state = this.stream._writeState!
  }

  /** Runs `input` through with a sync flush; stops once more than `limit` bytes came out (Rule 1). */
  process(input: Uint8Array, limit = Number.POSITIVE_INFINITY, emit?: Emit): EngineResult {
    if (this.broken) return { ok: false, reason: 'corrupt', message: 'zlib context is unusable after an earlier error' }
    const out = (scratch ??= Buffer.allocUnsafeSlow(SCRATCH_SIZE))
    const chunks: Buffer[] = []
    let length = 0
    let inOffset = 0
    let inLength = input.length
    for (;;) {
      this.handle.writeSync(Z_SYNC_FLUSH, input, inOffset, inLength, out, 0, SCRATCH_SIZE)
      const failure = this.stream.errored
      if (failure || this.stream.destroyed) {
        this.broken = true
        return { ok: false, reason: 'corrupt', message: failure?.message ?? 'zlib stream closed' }
      }
      const availableOut = this.state[0]!
      const availableIn = this.state[1]!
      const produced = SCRATCH_SIZE - availableOut
      if (produced > 0) {
        length += produced
        if (length > limit) return { ok: false, reason: 'too-big', message: 'output limit exceeded' }
        if (emit !== undefined) {
          if (!emit(out.subarray(0, produced))) {
            this.broken = true
            return STOPPED
          }
        } else {
          const chunk = Buffer.allocUnsafe(produced)
          out.copy(chunk, 0, 0, produced)
          chunks.push(chunk)
        }
      }
      inOffset += inLength - availableIn
      inLength = availableIn
      // A full output buffer means zlib may have more to give.
      if (availableOut !== 0) break
    }
    // Rule 4: input left unread although there was room for output: the stream ended.
    if (inLength > 0 && this.kind === 'inflate') this.ended = true
    this.consumed = inOffset
    return { ok: true, chunks, length }
  }

  /** Forgets the history (a new message without context takeover). */
  reset(): void {
    if (!this.broken) this.handle.reset()
    this.ended = false
  }

  close(): void {
    this.broken = true
    this.stream.close()
  }
}

/**
 * Inflates the first bytes of a message (Rule 4): if the context's stream had
 * ended and took none of them, they go through a new stream.
 */
export function inflateMessageStart(engine: SyncZlib, input: Uint8Array, limit: number, emit?: Emit): EngineResult {
  const result = engine.process(input, limit, emit)
  if (!result.ok || !engine.ended || engine.consumed > 0 || input.length === 0) return result
  engine.reset()
  return engine.process(input, limit, emit)
}

/** The same operations over the asynchronous stream API (Rule 3). */
export class AsyncZlib {
  readonly kind: 'deflate' | 'inflate'
  readonly cost: number
  broken = false
  /** The inflate stream reached its end (Rule 4); a stream API context cannot be reused after it. */
  ended = false
  private readonly stream: zlib.DeflateRaw | zlib.InflateRaw
  private collecting:
    | { chunks: Buffer[]; length: number; limit: number; emit: Emit | undefined; answer: (result: EngineResult) => void }
    | undefined

  constructor(kind: 'deflate' | 'inflate', options: EngineOptions) {
    this.kind = kind
    this.cost = engineCost(kind, options)
    const windowBits = Math.max(9, options.windowBits)
    this.stream =
      kind === 'deflate'
        ? zlib.createDeflateRaw({ windowBits, level: options.level, memLevel: options.memLevel, strategy: options.strategy })
        : zlib.createInflateRaw({ windowBits })
    this.stream.on('data', (chunk: Buffer) => {
      const target = this.collecting
      if (target === undefined) return
      target.length += chunk.length
      if (target.length > target.limit) {
        // Rule 1, as in SyncZlib: stop at once. Letting the stream run on would inflate a
        // whole bomb in the thread pool (a second per GiB) only to throw it away. The
        // context is in the middle of a message, so it cannot be used again.
        this.broken = true
        this.stream.close()
        target.answer({ ok: false, reason: 'too-big', message: 'output limit exceeded' })
      } else if (target.emit !== undefined) {
        if (!target.emit(chunk)) {
          this.broken = true
          this.stream.close()
          target.answer(STOPPED)
        }
      } else {
        target.chunks.push(chunk)
      }
    })
    this.stream.on('error', (error: Error) => {
      this.broken = true
      // Rule 2: after a zlib error the stream abandons the write in progress, so the flush
      // callback below never runs; without this answer the message would wait forever.
      this.collecting?.answer({ ok: false, reason: 'corrupt', message: error.message })
    })
  }

  process(input: Uint8Array, limit: number, done: (result: EngineResult) => void, emit?: Emit): void {
    if (this.broken) return done({ ok: false, reason: 'corrupt', message: 'zlib context is unusable after an earlier error' })
    let answered = false
    const target = {
      chunks: [] as Buffer[],
      length: 0,
      limit,
      emit,
      // Exactly one answer, whichever of flush, 'error' or the limit comes first.
      answer: (result: EngineResult): void => {
        if (answered) return
        answered = true
        if (this.collecting === target) this.collecting = undefined
        done(result)
      },
    }
    this.collecting = target
    this.stream.write(input)
    this.stream.flush(Z_SYNC_FLUSH, () => {
      const failure = this.stream.errored
      if (failure || this.broken) {
        this.broken = true
        return target.answer({ ok: false, reason: 'corrupt', message: failure?.message ?? 'zlib error' })
      }
      // Rule 4: Node ends the readable side at the end of the DEFLATE stream.
      if (this.stream.readableEnded) this.ended = true
      target.answer({ ok: true, chunks: target.chunks, length: target.length })
    })
  }

  reset(): void {
    if (!this.broken) (this.stream as unknown as { reset(): void }).reset()
  }

  close(): void {
    this.broken = true
    this.stream.close()
  }
}
