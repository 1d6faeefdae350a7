/**
 * Process-wide memory budgets: one for the bytes held for messages being
 * received, one for the bytes waiting to be written to peers that do not
 * read. Every connection (server or client side) counts what it holds in
 * both.
 *
 * Theory of operation: per-connection limits (`maxPayload`, `sendBuffer`)
 * bound one connection, not how many can be at their limit at once: thirty
 * connections each sending the first fragment of a compressed 90 MiB message
 * hold 2.7 GiB for 2.6 MiB on the wire, and twenty clients that never read an
 * echo hold 64 MiB each. So the bytes held across all connections have one
 * ceiling per direction; when a connection's holding would pass it, the
 * connection holding the most is failed and what it held is released at once.
 * The largest holder is the likeliest attacker, and failing it frees the most.
 *
 * Receiving (`maxReceiveMemory`, 256 MiB): the holder is failed with 1013
 * (Try Again Later: the budget, not its message, is too big). A stalled holder
 * goes first: among connections whose holding has not grown for a second, the
 * largest is failed before any that is still receiving, so many stalled
 * half-messages cannot fill the budget and make every real large message the
 * largest holder (found by an outsider: 256 stalled 1 MB fragments made every
 * 2 MB message fail). Only a stalled holder that frees enough on its own goes
 * first: failing several small ones, each freeing a few KiB (connections the
 * application paused hold what their last read brought), would fail them for
 * next to nothing (an outsider saw connections of 200-byte messages failed so);
 * when none is that large, the largest holder goes.
 * Sending (`maxSendMemory`, 512 MiB): only connections whose socket buffer is
 * full count (a peer that reads holds at most that buffer); the holder is
 * terminated, since a close frame would wait behind what it does not read.
 *
 * Rule 1: a connection reports its holding when it changes (after each read
 * and each piece of inflated output; after each send while its socket is
 * full), so a budget is exceeded by at most one read, one inflate piece or
 * one send before it acts.
 * Rule 2: a connection holding nothing is not in the holder map; the map is
 * scanned only when the budget is exceeded.
 */

/** What a budget holds now. */
export interface MemoryBudgetStats {
  /** The ceiling, in bytes (0: none). */
  limit: number
  /** Bytes held now, across all connections. */
  held: number
  /** The most ever held at once. */
  peak: number
  /** Connections holding something now. */
  holders: number
  /** Connections failed because the budget was spent. */
  failures: number
}

/** A holding is stalled once it has not grown for this long, in tenths of a second. */
const STALLED = 10
const START = Date.now()
/** Tenths of a second since this module loaded: a small integer. */
function clock(): number {
  return Math.floor((Date.now() - START) / 100)
}

interface Holding {
  held: number
  grewAt: number
}

export class MemoryBudget<H> {
  limit: number
  held = 0
  peak = 0
  failures = 0
  readonly #holders = new Map<H, Holding>()
  readonly #fail: (holder: H) => void
  readonly #stalledFirst: boolean
  readonly #name: string

  constructor(name: string, limit: number, fail: (holder: H) => void, options: { stalledFirst: boolean }) {
    this.#name = name
    this.limit = limit
    this.#fail = fail
    this.#stalledFirst = options.stalledFirst
  }

  /** Sets the ceiling (0: none). */
  configure(limit: number): void {
    if (typeof limit !== 'number' || !(limit >= 0)) throw new TypeError(`${this.#name} must be a number of bytes, 0 or more`)
    this.limit = limit
  }

  stats(): MemoryBudgetStats {
    return { limit: this.limit, held: this.held, peak: this.peak, holders: this.#holders.size, failures: this.failures }
  }

  /**
   * Records that `holder` now holds `bytes`. When that takes the process past
   * the ceiling, the largest holders are failed until it is within it again.
   * Returns false if `holder` itself was failed.
   */
  hold(holder: H, bytes: number): boolean {
    let holding = this.#holders.get(holder)
    const before = holding?.held ?? 0
    if (bytes === before) return true
    if (bytes === 0) {
      this.release(holder)
      return true
    }
    if (holding === undefined) this.#holders.set(holder, (holding = { held: 0, grewAt: 0 }))
    holding.held = bytes
    this.held += bytes - before
    if (bytes > before) holding.grewAt = clock()
    if (this.held > this.peak) this.peak = this.held
    if (this.limit === 0 || this.held <= this.limit || bytes < before) return true
    let selfFailed = false
    while (this.held > this.limit) {
      const victim = this.#victim()
      if (victim === undefined) break
      this.release(victim)
      this.failures++
      if (victim === holder) selfFailed = true
      this.#fail(victim)
    }
    return !selfFailed
  }

  /** The holder holds nothing any more (its message ended, its connection closed, its socket drained). */
  release(holder: H): void {
    const holding = this.#holders.get(holder)
    if (holding === undefined) return
    this.held -= holding.held
    this.#holders.delete(holder)
  }

  /** The largest holder; with `stalledFirst`, the largest stalled one if failing it alone brings the budget within its ceiling. */
  #victim(): H | undefined {
    const stalledBefore = clock() - STALLED
    const excess = this.held - this.limit
    let largest: [H, Holding] | undefined
    let largestStalled: [H, Holding] | undefined
    for (const entry of this.#holders) {
      const holding = entry[1]
      if (largest === undefined || holding.held > largest[1].held) largest = entry
      if (this.#stalledFirst && holding.grewAt <= stalledBefore && (largestStalled === undefined || holding.held > largestStalled[1].held)) {
        largestStalled = entry
      }
    }
    if (largestStalled !== undefined && largestStalled[1].held >= excess) return largestStalled[0]
    return largest?.[0]
  }
}

/** What a connection gives the budgets. */
export interface BudgetHolder {
  /** Fails the connection (1013) and releases what it holds for receiving. */
  failForBudget(): void
  /** Terminates the connection: its peer does not read what the send budget holds for it. */
  failForSendBudget(): void
}

/** Default process-wide receive budget: 256 MiB. */
export const DEFAULT_MAX_RECEIVE_MEMORY = 256 * 1024 * 1024
/** Default process-wide send budget: 512 MiB. */
export const DEFAULT_MAX_SEND_MEMORY = 512 * 1024 * 1024

export const receiveBudget = new MemoryBudget<BudgetHolder>('maxReceiveMemory', DEFAULT_MAX_RECEIVE_MEMORY, (holder) => holder.failForBudget(), {
  stalledFirst: true,
})
export const sendBudget = new MemoryBudget<BudgetHolder>('maxSendMemory', DEFAULT_MAX_SEND_MEMORY, (holder) => holder.failForSendBudget(), {
  stalledFirst: false,
})

/**
 * Sets the process-wide ceiling on bytes held for messages being received
 * (default 256 MiB; 0 turns it off). Applies to every server and client of
 * the process.
 *
 * @example
 * ```ts
 * import { configureReceiveMemory } from 'tether-ws'
 * configureReceiveMemory({ limit: 512 * 1024 * 1024 })
 * ```
 */
export function configureReceiveMemory(options: { limit?: number }): void {
  if (options.limit !== undefined) receiveBudget.configure(options.limit)
}

export function receiveMemoryStats(): MemoryBudgetStats {
  return receiveBudget.stats()
}

/**
 * Sets the process-wide ceiling on bytes waiting to be written to peers
 * whose socket buffer is full (default 512 MiB; 0 turns it off). Past it,
 * the connection with the most waiting is terminated (1006 with a reason).
 */
export function configureSendMemory(options: { limit?: number }): void {
  if (options.limit !== undefined) sendBudget.configure(options.limit)
}

export function sendMemoryStats(): MemoryBudgetStats {
  return sendBudget.stats()
}
