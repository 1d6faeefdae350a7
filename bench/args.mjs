// Command-line options of the benchmark and soak scripts, on node:util's parseArgs (the
// hand-written parsers before it crashed on `--only` without a value). One table per script:
// each option's type, default and converter; `--help` prints the usage, and a mistake is one
// line, `SCRIPT: message (see --help)`, and exit status 2.
import { parseArgs } from 'node:util'

/** A mistake on a script's command line. */
class UsageError extends Error {}

/**
 * Parses `argv` (default: the process's) against `options`: `{ name: { type: 'string' |
 * 'boolean', default?, multiple?, parse?(text, flag) } }`. Returns the values, converted,
 * with defaults. Exits 0 after printing `usage` for --help, 2 with one line for a mistake.
 */
export function parseOptions(script, usage, options, argv = process.argv.slice(2)) {
  const name = script
  try {
    const config = { help: { type: 'boolean', short: 'h' } }
    for (const [option, spec] of Object.entries(options)) config[option] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}) }
    let parsed
    try {
      parsed = parseArgs({ args: argv, options: config, strict: true, allowPositionals: false })
    } catch (error) {
      throw new UsageError(error.message.split('\n')[0])
    }
    if (parsed.values.help) {
      console.log(usage)
      process.exit(0)
    }
    const values = {}
    for (const [option, spec] of Object.entries(options)) {
      const given = parsed.values[option]
      const key = option.replace(/-([a-z])/g, (_, letter) => letter.toUpperCase())
      if (given === undefined) values[key] = spec.default
      else if (spec.parse === undefined) values[key] = given
      else values[key] = Array.isArray(given) ? given.map((text) => spec.parse(text, `--${option}`)) : spec.parse(given, `--${option}`)
    }
    return values
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`${name}: ${error.message} (see --help)`)
    process.exit(2)
  }
}

/** A number, at least `min` (a whole one with `integer`). */
export function number({ min = 0, integer = false } = {}) {
  return (text, flag) => {
    const value = Number(text)
    if (text.trim() === '' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
      throw new UsageError(`${flag} must be a ${integer ? 'whole ' : ''}number, ${min} or more, not ${JSON.stringify(text)}`)
    }
    return value
  }
}

/** A comma-separated list, each item converted by `item` (default: kept as text), none empty. */
export function list(item = (text) => text) {
  return (text, flag) => {
    const items = text.split(',').map((part) => part.trim())
    if (items.some((part) => part === '')) throw new UsageError(`${flag} takes a comma-separated list, not ${JSON.stringify(text)}`)
    return items.map((part) => item(part, flag))
  }
}

/** One of `choices`. */
export function oneOf(choices) {
  return (text, flag) => {
    if (!choices.includes(text)) throw new UsageError(`${flag} must be one of ${choices.join(', ')}, not ${JSON.stringify(text)}`)
    return text
  }
}

/** `name=command`. */
export function namedCommand(text, flag) {
  const eq = text.indexOf('=')
  if (eq <= 0 || eq === text.length - 1) throw new UsageError(`${flag} takes 'name=command {port}', not ${JSON.stringify(text)}`)
  return { name: text.slice(0, eq), command: text.slice(eq + 1) }
}
