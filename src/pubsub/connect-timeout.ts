/**
 * Connecting a broker backplane within a deadline. A broker client left to
 * itself may wait forever for the first connection (node-redis retries
 * forever; a server that accepts TCP and never answers holds either client
 * until the kernel gives up), so `connect()` races its work against one
 * timer, releases what it opened when the timer wins, and names the broker
 * in the error it rejects with.
 *
 * Rule 1: the timer never outlives the attempt (cleared when the work
 * settles), so a process whose connect failed can exit.
 */

export const DEFAULT_CONNECT_TIMEOUT = 5_000

/** The `connectTimeout` option, checked: milliseconds, more than 0. */
export function resolveConnectTimeout(value: unknown): number {
  if (value === undefined) return DEFAULT_CONNECT_TIMEOUT
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 2 ** 31 - 1) {
    throw new TypeError(`connectTimeout must be a number of milliseconds from 1 to ${2 ** 31 - 1}, got ${String(value)}`)
  }
  return value
}

/** A broker URL fit for an error message or a log line: credentials (user, password, a NATS token) as `***`. */
export function redactUrl(url: string): string {
  return url.replace(/^((?:[a-z][a-z\d+.-]*:\/\/)?)[^/?#]*@/i, '$1***@')
}

/**
 * An error as one line for "Could not connect …: <reason>". Node reports a
 * refused connection to a name with several addresses (`localhost`) as an
 * AggregateError whose own message is empty.
 */
export function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  let reason = error.message
  if (reason === '' && error instanceof AggregateError) reason = error.errors.map((inner) => reasonOf(inner)).join('; ')
  if (reason === '') reason = (error as NodeJS.ErrnoException).code ?? error.name
  return reason.replace(/\s*\n\s*/g, ' ')
}

/** Thrown into the work's place when the deadline passed first. */
export class ConnectTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms (connectTimeout)`)
    this.name = 'ConnectTimeoutError'
  }
}

/**
 * `work`, or a ConnectTimeoutError after `ms` (then `onTimeout` releases
 * what the work opened). A rejection of `work` after the deadline is
 * swallowed: the caller already has its answer.
 */
export function withConnectTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new ConnectTimeoutError(ms))
      onTimeout()
    }, ms)
  })
  work.catch(() => {})
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
}
