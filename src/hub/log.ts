/**
 * The hub's logs: one JSON object a line through pino (what log collectors
 * read), or, on a terminal, one short human line each (a small formatter of
 * our own: pino-pretty would bring a dozen packages for it).
 *
 * What is logged: connections opened and closed (endpoint, address, close
 * code, duration, bytes), refused handshakes (reason, status), backplane
 * events, app errors, start and stop. Rule 1: never a message's contents, a
 * header's value or a token: every field is a count, a code, an address, an
 * app's name or a line the hub wrote itself (test/hub/logs.test.ts holds it).
 */
import { pino } from 'pino'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** What the hub logs through: pino's `Logger` is one, and so is `lineLogger`'s. */
export interface HubLogger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

/** A logger that writes each record as one human line (`log(line)`): for tests and for `HubConfig.log`. */
export function lineLogger(log: (line: string) => void, level: LogLevel = 'info'): HubLogger {
  const threshold = LOG_LEVELS.indexOf(level)
  const at = (name: Exclude<LogLevel, 'silent'>) => (fields: object, message: string) => {
    if (LOG_LEVELS.indexOf(name) >= threshold) log(formatFields(name, message, fields))
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** Where a pino logger writes: a stream with `write(line)` (stdout by default). */
export interface LogDestination {
  write(line: string): unknown
}

/**
 * The hub's pino logger: JSON lines with an ISO time and the level's name,
 * or (`pretty`) one human line per record, to `destination` (stdout).
 */
export function createLogger(options: { level?: LogLevel; pretty?: boolean; destination?: LogDestination } = {}): HubLogger {
  const out: LogDestination = options.destination ?? process.stdout
  const destination = options.pretty ? { write: (line: string) => out.write(prettyLine(line)) } : out
  return pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  )
}

/** Letters that would let a value forge a line or move the cursor on a terminal. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  const clean = (text ?? String(value)).replace(CONTROL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return /[\s"=]/.test(clean) || clean === '' ? JSON.stringify(clean) : clean
}

function formatFields(level: string, message: string, fields: object): string {
  const rest = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${formatValue(value)}`)
    .join(' ')
  return `${level.toUpperCase().padEnd(5)} ${message.replace(CONTROL, ' ')}${rest ? `  ${rest}` : ''}`
}

/** One pino JSON line as a human line: `12:00:01 INFO  connection closed  app=chat code=1000 ...`. */
export function prettyLine(json: string): string {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json
  }
  const { time, level, msg, ...fields } = record
  const clock = typeof time === 'string' ? time.slice(11, 19) : ''
  return `${clock} ${formatFields(String(level ?? 'info'), String(msg ?? ''), fields)}\n`
}
