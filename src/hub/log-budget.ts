/**
 * A budget of log lines for what clients can cause at will: refused
 * handshakes. Without one, a single client refusing itself in a loop wrote
 * 1,267 lines (96 MB of log) a second (issue 16, outsider finding 1).
 *
 * Theory of operation: a token bucket per process, `burst` lines at once and
 * `perSecond` sustained. A line over the budget is not written but counted by
 * its reason; once the budget allows again, or at the latest every
 * `summaryEvery` ms, one summary line tells how many were left out and why
 * (`refusals not logged: 812 (origin 800, path 12)`). The counters
 * (`/metrics`, `/health`) still count every refusal: the budget thins the log,
 * never the numbers.
 *
 * Rule 1: the log holds at most `burst + perSecond × seconds` refusal lines,
 * plus one summary per `summaryEvery`, whatever the clients do; each line is
 * short (log.ts Rule 1: no value the client sent).
 */
export interface LogBudgetOptions {
  /** Lines written at once before the budget applies. */
  burst: number
  /** Lines a second, sustained. */
  perSecond: number
  /** How often, at most, a summary of the lines left out is written (ms). */
  summaryEvery: number
}

export const REFUSAL_LOG_BUDGET: LogBudgetOptions = { burst: 50, perSecond: 10, summaryEvery: 10_000 }

export class LogBudget {
  readonly #options: LogBudgetOptions
  /** Writes the summary of the lines left out (their number, and the number by reason). */
  readonly #summarize: (count: number, byReason: Record<string, number>) => void
  readonly #now: () => number
  #tokens: number
  #refilledAt: number
  #skipped: Record<string, number> = {}
  #skippedCount = 0
  #timer: NodeJS.Timeout | undefined

  constructor(options: LogBudgetOptions, summarize: (count: number, byReason: Record<string, number>) => void, now: () => number = () => performance.now()) {
    this.#options = options
    this.#summarize = summarize
    this.#now = now
    this.#tokens = options.burst
    this.#refilledAt = now()
  }

  /** Whether a line for `reason` may be written now; if not, it is counted for the summary. */
  take(reason: string): boolean {
    const now = this.#now()
    const { burst, perSecond } = this.#options
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#refilledAt) / 1000) * perSecond)
    this.#refilledAt = now
    if (this.#tokens >= 1) {
      this.#tokens--
      return true
    }
    this.#skipped[reason] = (this.#skipped[reason] ?? 0) + 1
    this.#skippedCount++
    // One timer for the summary, armed by the first line left out (an idle hub keeps none).
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.flush()
      }, this.#options.summaryEvery)
      this.#timer.unref()
    }
    return false
  }

  /** Writes the summary now, if lines were left out (at shutdown too). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#skippedCount === 0) return
    const count = this.#skippedCount
    const byReason = this.#skipped
    this.#skipped = {}
    this.#skippedCount = 0
    this.#summarize(count, byReason)
  }
}
