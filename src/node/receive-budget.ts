/**
 * One budget, for the whole process, of the bytes held for messages being
 * received: assembled payloads, inflated output of compressed messages,
 * compressed fragments kept until their message ends, and input waiting
 * behind an inflation. Every connection (server or client side) counts what
 * it holds here.
 *
 * Theory of operation: `maxPayload` bounds one message, but not how many a
 * peer can have in progress at once: thirty connections each sending the
 * first fragment of a compressed 90 MiB message hold 2.7 GiB for 2.6 MiB on
 * the wire. So the bytes held across all connections have one ceiling; when
 * a connection's holding would pass it, the connection holding the most is
 * failed with 1013 (Try Again Later: the budget, not its message, is what is
 * too big) and what it held is released at once. The largest holder is the
 * likeliest attacker, and failing it frees the most.
 *
 * Rule 1: a connection reports its holding after each read and each piece of
 * inflated output, so the budget is exceeded by at most one read or one
 * inflate piece (64 KiB) before it acts.
 * Rule 2: a connection holding nothing is not in the holder set; the set is
 * scanned only when the budget is exceeded.
 */

/** What a connection gives the budget. */
export interface BudgetHolder {
  /** Bytes the budget counts for this holder now (the budget sets it). */
  budgetHeld: number
  /** Fails the connection (1013) and releases what it holds; called by the budget. */
  failForBudget(): void
}

/** Default process-wide receive budget: 256 MiB. */
export const DEFAULT_MAX_RECEIVE_MEMORY = 256 * 1024 * 1024

const budget = {
  limit: DEFAULT_MAX_RECEIVE_MEMORY,
  held: 0,
  peak: 0,
  failures: 0,
}
const holders = new Set<BudgetHolder>()

/** What the receive budget holds now. */
export interface ReceiveMemoryStats {
  /** The ceiling, in bytes (0: none). */
  limit: number
  /** Bytes held now for messages being received, across all connections. */
  held: number
  /** The most ever held at once. */
  peak: number
  /** Connections holding something now. */
  holders: number
  /** Connections failed with 1013 because the budget was spent. */
  failures: number
}

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
  if (options.limit !== undefined) {
    if (typeof options.limit !== 'number' || !(options.limit >= 0)) throw new TypeError('maxReceiveMemory must be a number of bytes, 0 or more')
    budget.limit = options.limit
  }
}

export function receiveMemoryStats(): ReceiveMemoryStats {
  return { limit: budget.limit, held: budget.held, peak: budget.peak, holders: holders.size, failures: budget.failures }
}

/**
 * Records that `holder` now holds `bytes`. When that takes the process past
 * its budget, the largest holders are failed until it is within it again.
 * Returns false if `holder` itself was failed.
 */
export function holdReceived(holder: BudgetHolder, bytes: number): boolean {
  const before = holder.budgetHeld
  if (bytes === before) return true
  set(holder, bytes)
  if (budget.held > budget.peak) budget.peak = budget.held
  if (budget.limit === 0 || budget.held <= budget.limit || bytes < before) return true
  let selfFailed = false
  while (budget.held > budget.limit) {
    let largest: BudgetHolder | undefined
    for (const candidate of holders) if (largest === undefined || candidate.budgetHeld > largest.budgetHeld) largest = candidate
    if (largest === undefined) break
    set(largest, 0)
    budget.failures++
    if (largest === holder) selfFailed = true
    largest.failForBudget()
  }
  return !selfFailed
}

/** The holder is gone (its connection closed): what it held is released. */
export function releaseReceived(holder: BudgetHolder): void {
  if (holder.budgetHeld !== 0) set(holder, 0)
}

function set(holder: BudgetHolder, bytes: number): void {
  const before = holder.budgetHeld
  budget.held += bytes - before
  holder.budgetHeld = bytes
  if (bytes === 0) holders.delete(holder)
  else if (before === 0) holders.add(holder)
}
