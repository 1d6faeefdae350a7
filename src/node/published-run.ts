/**
 * A run of published messages as bytes (src/pubsub/hub.ts Rule 2): the
 * prepared, uncompressed frames of the messages one topic got in one turn of
 * the event loop. Every subscriber's queue holds the run as its open tail
 * (src/core/writer.ts Rule 3), and the first to write it concatenates the
 * frames once for all of them: a burst of N messages to S subscribers costs
 * S writes of one shared buffer, not N x S frames gathered S times.
 */
import type { SharedRun } from '../core/writer.js'
import type { MessageRun } from '../pubsub/hub.js'
import type { PreparedMessage } from './prepared.js'

/**
 * A run stops growing at this size, whatever room its members have: the bound of one shared buffer, and of
 * what a run adds to a member's backlog between two looks at the member (below its limit, see `limit`).
 */
export const RUN_LIMIT = 64 * 1024

export class PublishedRun implements MessageRun<PreparedMessage>, SharedRun {
  bytes = 0
  joinAt = 0
  sealed = false
  readonly #frames: Uint8Array[] = []
  /** Some message in the run asked to be compressed: a member with permessage-deflate would get it compressed, so cannot join. */
  #compressible = false
  /** A member has permessage-deflate: the run takes only messages sent uncompressed. */
  #deflateMember = false
  #joined: Uint8Array | undefined
  /** The least room a member had under its backpressure limit when it joined (hub.ts Rule 2). */
  #headroom = Infinity

  constructor(first: PreparedMessage) {
    this.#push(first, first.frameFor(undefined, false))
  }

  /** Whether a subscriber may join; one with permessage-deflate only gets uncompressed messages from now on. */
  admit(deflate: boolean): boolean {
    if (this.sealed) return false
    if (deflate) {
      if (this.#compressible) return false
      this.#deflateMember = true
    }
    return true
  }

  limit(headroom: number): void {
    if (headroom < this.#headroom) this.#headroom = headroom
  }

  add(message: PreparedMessage): boolean {
    if (this.sealed || (message.compress && this.#deflateMember)) return false
    // Message by message, a member gets this one only if its backlog, the run so far included, is within its limit.
    if (this.bytes > this.#headroom) return false
    const frame = message.frameFor(undefined, false)
    if (this.bytes + frame.length > RUN_LIMIT) return false
    this.#push(message, frame)
    return true
  }

  seal(): void {
    this.sealed = true
  }

  slice(start: number, end: number): Uint8Array {
    const frames = this.#frames
    if (frames.length === 1) return start === 0 && end === frames[0]!.length ? frames[0]! : frames[0]!.subarray(start, end)
    // Sealed: its bytes no longer change, so one concatenation serves every member.
    this.#joined ??= Buffer.concat(frames, this.bytes)
    return this.#joined.subarray(start, end)
  }

  #push(message: PreparedMessage, frame: Uint8Array): void {
    this.#frames.push(frame)
    this.joinAt = this.bytes
    this.bytes += frame.length
    if (message.compress) this.#compressible = true
  }
}
