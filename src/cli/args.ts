/**
 * Command-line parsing for `tether`, on Node's own `util.parseArgs`, so the
 * package needs no argument-parsing dependency (a library user installs
 * nothing for a command they may never run).
 *
 * Theory of operation: each command is a table of options (long name, short
 * letter, value name, description, converter, default, repeatable). The table
 * gives parseArgs its configuration, turns the strings it returns into typed
 * values (camelCase keys, `--no-x` as `x: false`), and writes the help text.
 *
 * Rule 1: every mistake on the command line is a `UsageError` with one line
 * of text; main.ts prints it (`tether: ...`) and exits 2.
 */
import { parseArgs } from 'node:util'

/** A mistake on the command line (Rule 1). */
export class UsageError extends Error {}

export interface OptionSpec {
  /** The long name without dashes (`'max-payload'`, `'no-compression'`). */
  name: string
  short?: string
  /** The value's name in help (`'<url>'`); a flag has none. */
  value?: string
  description: string
  /** Turns the text into the option's value; throws UsageError naming `name` (the flag, or an environment variable or file key). */
  parse?: (text: string, name: string) => unknown
  /** The environment variable, when it is not TETHER_ and the key in upper snake case (serve only). */
  env?: string
  default?: unknown
  /** The default as help shows it, when the value is in other units than the option (ms for seconds). */
  defaultText?: string
  /** May be given more than once: the value is a list. */
  repeatable?: boolean
  /** Allowed values. */
  choices?: readonly string[]
  /** Options this one cannot be given with. */
  conflicts?: readonly string[]
}

export interface CommandSpec {
  name: string
  /** `'<url>'` when the command takes one positional argument. */
  argument?: { name: string; description: string }
  description: string
  options: readonly OptionSpec[]
  /** Text printed after the options in help. */
  epilogue?: string
}

export interface ParsedCommand {
  options: Record<string, unknown>
  /** Only the options given on the command line (no defaults): what wins over the environment and a config file. */
  given: Record<string, unknown>
  argument: string | undefined
  help: boolean
}

/** `max-payload` → `maxPayload`; `no-compression` → `compression` (negated). */
export function keyOf(spec: OptionSpec): string {
  const name = spec.name.startsWith('no-') ? spec.name.slice(3) : spec.name
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())
}

/** Parses the arguments after the command name. */
export function parseCommand(command: CommandSpec, args: readonly string[]): ParsedCommand {
  const config: NonNullable<Parameters<typeof parseArgs>[0]>['options'] = { help: { type: 'boolean', short: 'h' } }
  for (const spec of command.options) {
    config[spec.name] = {
      type: spec.value === undefined ? 'boolean' : 'string',
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.repeatable ? { multiple: true } : {}),
    }
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: [...args], options: config, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError(describeParseError(error as Error & { code?: string }))
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>
  if (values.help) return { options: {}, given: {}, argument: undefined, help: true }
  const expected = command.argument ? 1 : 0
  if (parsed.positionals.length > expected) {
    throw new UsageError(`too many arguments for '${command.name}': expected ${expected}, got ${parsed.positionals.length}`)
  }
  if (command.argument && parsed.positionals.length === 0) throw new UsageError(`missing required argument '${command.argument.name}'`)
  const options: Record<string, unknown> = {}
  const given: Record<string, unknown> = {}
  for (const spec of command.options) {
    const key = keyOf(spec)
    const value = values[spec.name]
    if (value === undefined) {
      if (spec.name.startsWith('no-')) options[key] = true
      else if (spec.repeatable) options[key] = Array.isArray(spec.default) ? [...spec.default] : []
      else if (spec.default !== undefined) options[key] = spec.default
      continue
    }
    for (const other of spec.conflicts ?? []) {
      if (values[other] !== undefined) throw new UsageError(`option '--${spec.name}' cannot be used with option '--${other}'`)
    }
    if (spec.name.startsWith('no-')) {
      options[key] = given[key] = !value
      continue
    }
    const convert = (text: string): unknown => {
      if (spec.choices && !spec.choices.includes(text)) {
        throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}, not ${JSON.stringify(text)}`)
      }
      return spec.parse ? spec.parse(text, `--${spec.name}`) : text
    }
    options[key] = given[key] = Array.isArray(value) ? value.map(convert) : typeof value === 'string' ? convert(value) : value
  }
  return { options, given, argument: parsed.positionals[0], help: false }
}

function describeParseError(error: Error & { code?: string }): string {
  const option = /'(-[^']*)'/.exec(error.message)?.[1]
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) return `unknown option '${option}'`
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    return /argument missing/.test(error.message) ? `option '${option}' argument missing` : `option '${option}' does not take a value`
  }
  return error.message.split('\n')[0]!
}

function flagsOf(spec: OptionSpec): string {
  return `${spec.short ? `-${spec.short}, ` : ''}--${spec.name}${spec.value ? ` ${spec.value}` : ''}`
}

/** Lays out `rows` as two columns, the second wrapped at `width`. */
function columns(rows: ReadonlyArray<readonly [string, string]>, width = 80): string {
  const left = Math.max(...rows.map(([flags]) => flags.length)) + 2
  return rows
    .map(([flags, text]) => {
      const lines: string[] = []
      let line = ''
      for (const word of text.split(' ')) {
        if (line && left + 2 + line.length + 1 + word.length > width) {
          lines.push(line)
          line = word
        } else {
          line = line ? `${line} ${word}` : word
        }
      }
      lines.push(line)
      return lines.map((part, i) => `  ${(i === 0 ? flags : '').padEnd(left)}${part}`).join('\n')
    })
    .join('\n')
}

/** The help of one command. */
export function commandHelp(program: string, command: CommandSpec): string {
  const rows: Array<readonly [string, string]> = command.options.map((spec) => {
    const shown = spec.default !== undefined && !(Array.isArray(spec.default) && spec.default.length === 0) && spec.value
    return [flagsOf(spec), `${spec.description}${shown ? ` (default: ${spec.defaultText ?? JSON.stringify(spec.default)})` : ''}`] as const
  })
  rows.push(['-h, --help', 'display help for command'])
  const usage = `Usage: ${program} ${command.name} [options]${command.argument ? ` ${command.argument.name}` : ''}`
  const argument = command.argument ? `\n\nArguments:\n${columns([[command.argument.name, command.argument.description]])}` : ''
  return `${usage}\n\n${command.description}${argument}\n\nOptions:\n${columns(rows)}\n${command.epilogue ?? ''}\n`
}

/** The help of the program: its commands. */
export function programHelp(program: string, description: string, commands: readonly CommandSpec[]): string {
  const rows: Array<readonly [string, string]> = commands.map(
    (command) => [`${command.name} [options]${command.argument ? ` ${command.argument.name}` : ''}`, command.description] as const,
  )
  rows.push(['help [command]', 'display help for command'])
  const options = columns([
    ['-v, --version', 'output the version number'],
    ['-h, --help', 'display help for command'],
  ])
  return `Usage: ${program} [options] [command]\n\n${description}\n\nOptions:\n${options}\n\nCommands:\n${columns(rows)}\n`
}
