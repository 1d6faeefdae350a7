#!/usr/bin/env node
/**
 * The `tether` command: serve, connect, bench. Every failure the user can
 * cause (a bad URL, a refused handshake, a port in use, an unknown option)
 * ends as one line on stderr and a non-zero exit status, never a stack trace.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import {
  ConfigError,
  LOG_LEVELS,
  type LogLevel,
  type SettingSpec,
  createLogger,
  envName,
  isOrigin,
  mergeSettings,
  settingsFromEnv,
  settingsFromFile,
  unknownEnvNames,
} from '../hub/index.js'
import { type CommandSpec, type ParsedCommand, UsageError, commandHelp, keyOf, parseCommand, programHelp } from './args.js'
import { bench, formatReport, type BenchMode, type BenchOptions } from './bench.js'
import { type ConnectOptions, connect } from './connect.js'
import { CliError } from './errors.js'
import { SERVE_DEFAULTS, type ServeOptions, serve } from './serve.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

/**
 * The option parsers: each names the flag, variable or file key it reads (`name`) in its error.
 * Numbers are written in decimal digits only: `Number()` also reads '0x50', '1e3' and ' ' (as 0), so
 * TETHER_PORT=0x50 listened on port 80 (outsider finding 8).
 */
const WHOLE = /^[0-9]+$/
const DECIMAL = /^[0-9]+(\.[0-9]+)?$/

/** Marks a parser whose values are numbers, so that a config file must give them as JSON numbers. */
function numeric<T extends (value: string, name: string) => number>(parse: T): T {
  return Object.assign(parse, { numeric: true })
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return numeric((value: string, name: string): number => {
    const number = Number(value)
    if (!WHOLE.test(value) || !Number.isSafeInteger(number) || number < min || number > max) {
      throw new UsageError(`${name} must be a whole number from ${min} to ${max}`)
    }
    return number
  })
}

const seconds = numeric((value: string, name: string): number => {
  if (!DECIMAL.test(value)) throw new UsageError(`${name} must be a number of seconds, 0 or more`)
  return Number(value)
})

/** Seconds as milliseconds, more than 0 (a timer's range). */
const positiveSeconds = numeric((value: string, name: string): number => {
  const number = Number(value)
  if (!DECIMAL.test(value) || number <= 0 || number * 1000 > 2 ** 31 - 1) {
    throw new UsageError(`${name} must be a number of seconds above 0`)
  }
  return Math.max(1, Math.round(number * 1000))
})

/** An origin as browsers send it (`scheme://host[:port]`), or `*`; the hub's own check named its option, not the flag. */
function origin(value: string, name: string): string {
  if (value !== '*' && !isOrigin(value)) {
    throw new UsageError(`${name} ${JSON.stringify(value)} is not an origin: scheme://host[:port] without a path, e.g. https://app.example (or * for any)`)
  }
  return value
}

/** An IP address or a CIDR range: the library's check said only "Invalid socket address". */
function addressOrRange(value: string, name: string): string {
  const [address = '', prefix, ...rest] = value.split('/')
  const family = isIP(address)
  const bits = family === 4 ? 32 : 128
  if (family === 0 || rest.length > 0 || (prefix !== undefined && (!WHOLE.test(prefix) || Number(prefix) > bits))) {
    throw new UsageError(`${name} ${JSON.stringify(value)} is not an IP address or a CIDR range, e.g. 10.0.0.5 or 10.0.0.0/8`)
  }
  return value
}

/** A broker URL: it must parse, with the broker's scheme (`--redis notaurl` used to say only "Invalid URL"). */
function brokerUrl(schemes: readonly string[], example: string) {
  return (value: string, name: string): string => {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      throw new UsageError(`${name} ${JSON.stringify(value)} is not a URL: use ${example}`)
    }
    if (!schemes.includes(url.protocol)) throw new UsageError(`${name} ${JSON.stringify(value)} must start with ${schemes.map((scheme) => `${scheme}//`).join(' or ')}, e.g. ${example}`)
    return value
  }
}

/** A token scrapers send: long enough not to be guessed. */
function token(value: string, name: string): string {
  if (value.length < 16) throw new UsageError(`${name} must be 16 characters or more (a random one: openssl rand -hex 16)`)
  return value
}

const DESCRIPTION = 'WebSocket toolkit: a demo hub with chat and live scores, a terminal client, and a load generator.'

const SERVE: CommandSpec = {
  name: 'serve',
  description: 'serve the demo apps (chat, live scores), /echo, /health and a topic relay at /topics/NAME',
  options: [
    { name: 'config', value: '<file>', description: 'read settings from this JSON file (keys: the options in camelCase, e.g. {"port": 9000, "allowOrigin": ["https://app.example"]})' },
    { name: 'port', short: 'p', value: '<port>', description: 'port to listen on', parse: integer(0, 65535), default: SERVE_DEFAULTS.port },
    { name: 'host', value: '<host>', description: 'address to listen on (0.0.0.0 or :: for every interface)', default: SERVE_DEFAULTS.host },
    { name: 'tls-cert', value: '<file>', description: 'certificate (PEM) to serve https:// and wss://' },
    { name: 'tls-key', value: '<file>', description: 'private key (PEM) for --tls-cert' },
    { name: 'http2', description: 'with --tls-cert: HTTP/2 beside HTTP/1.1, pages and their WebSockets on one connection (RFC 8441)' },
    {
      name: 'redis',
      value: '<url>',
      description: 'join a cluster over Redis, e.g. redis://127.0.0.1:6379',
      conflicts: ['nats'],
      parse: brokerUrl(['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
      env: 'TETHER_REDIS_URL',
    },
    { name: 'nats', value: '<url>', description: 'join a cluster over NATS, e.g. nats://127.0.0.1:4222', parse: brokerUrl(['nats:', 'tls:'], 'nats://127.0.0.1:4222'), env: 'TETHER_NATS_URL' },
    {
      name: 'broker-timeout',
      value: '<seconds>',
      description: 'with --redis or --nats: how long to wait for the broker at start',
      parse: positiveSeconds,
      default: SERVE_DEFAULTS.brokerTimeout,
      defaultText: String(SERVE_DEFAULTS.brokerTimeout / 1000),
    },
    { name: 'no-compression', description: 'turn permessage-deflate off' },
    { name: 'max-payload', value: '<bytes>', description: 'largest message accepted', parse: integer(1), default: SERVE_DEFAULTS.maxPayload },
    {
      name: 'max-connections',
      value: '<n>',
      description: 'connections accepted at once (more get HTTP 503)',
      parse: integer(1),
      default: SERVE_DEFAULTS.maxConnections,
    },
    {
      name: 'allow-origin',
      value: '<origin>',
      description: "also accept WebSockets from pages of this origin, e.g. https://app.example (repeatable; * for any, with a warning); the pages' own origin is always allowed",
      repeatable: true,
      parse: origin,
    },
    { name: 'auth', value: '<kind>', description: 'require a token from clients (choices: none, jwt)', choices: ['none', 'jwt'], default: SERVE_DEFAULTS.auth },
    { name: 'jwt-secret', value: '<secret>', description: 'with --auth jwt: the HMAC secret (HS256/384/512)' },
    { name: 'jwt-public-key', value: '<file>', description: 'with --auth jwt: a PEM public key (RS*, PS*, ES*, EdDSA)' },
    { name: 'jwt-jwks', value: '<file>', description: 'with --auth jwt: a JSON Web Key Set file' },
    { name: 'jwt-issuer', value: '<iss>', description: 'with --auth jwt: the required issuer' },
    { name: 'jwt-audience', value: '<aud>', description: 'with --auth jwt: the required audience' },
    {
      name: 'publish-rate',
      value: '<n>',
      description: 'messages per second one client may publish (relay, chat)',
      parse: integer(1),
      default: SERVE_DEFAULTS.publishRate,
    },
    { name: 'publish-bytes', value: '<n>', description: 'bytes per second one client may publish', parse: integer(1), default: SERVE_DEFAULTS.publishBytes },
    {
      name: 'publish-limit-action',
      value: '<action>',
      description: 'past the limits: close the connection (1008) or drop the message (choices: close, drop)',
      choices: ['close', 'drop'],
      default: SERVE_DEFAULTS.publishLimitAction,
    },
    {
      name: 'max-connections-per-address',
      value: '<n>',
      description: 'WebSockets one client address may hold (0: no limit)',
      parse: integer(0),
      default: SERVE_DEFAULTS.maxConnectionsPerAddress,
    },
    {
      name: 'trusted-proxy',
      value: '<address>',
      description: 'a reverse proxy in front (address or CIDR range, repeatable): its clients are told apart by X-Forwarded-For',
      repeatable: true,
      parse: addressOrRange,
    },
    {
      name: 'allowed-host',
      value: '<name>',
      description: 'a host name the hub answers to (repeatable; default on 127.0.0.1: localhost names only, elsewhere: any)',
      repeatable: true,
    },
    { name: 'history', value: '<pattern>', description: 'relay topics that keep history, for reliable delivery at /v1 (repeatable; * for all)', repeatable: true },
    {
      name: 'history-size',
      value: '<n>',
      description: 'messages each of those topics keeps',
      parse: integer(1, 1_000_000),
      default: SERVE_DEFAULTS.historySize,
    },
    {
      name: 'history-age',
      value: '<seconds>',
      description: 'how long a message stays in history',
      parse: positiveSeconds,
      default: SERVE_DEFAULTS.historyAge,
      defaultText: String(SERVE_DEFAULTS.historyAge / 1000),
    },
    {
      name: 'history-backend',
      value: '<kind>',
      description: "where history is kept (also the chat's rooms and the scores feed): memory (this node), redis or jetstream (the cluster's broker; the default with --redis or --nats, and the only choice there while the chat runs)",
      choices: ['memory', 'redis', 'jetstream'],
    },
    { name: 'log-level', value: '<level>', description: 'logs at this level and above (choices: debug, info, warn, error, silent)', choices: LOG_LEVELS, default: 'info' },
    { name: 'no-metrics', description: 'do not serve /metrics' },
    { name: 'metrics-token', value: '<token>', description: 'serve /metrics only to requests with "Authorization: Bearer TOKEN" (better in TETHER_METRICS_TOKEN)', parse: token },
    {
      name: 'metrics-port',
      value: '<port>',
      description: 'serve /metrics on this port of --metrics-host instead of the public one (and /health/*, also through the drain)',
      parse: integer(0, 65535),
    },
    { name: 'metrics-host', value: '<host>', description: 'with --metrics-port: the address it listens on', default: '127.0.0.1' },
    {
      name: 'metrics-cache',
      value: '<seconds>',
      description: 'answer /metrics with the same text for this long, so that frequent scrapes cost little (0: fresh each time)',
      parse: numeric((value: string, name: string): number => {
        if (!DECIMAL.test(value) || Number(value) > 3600) throw new UsageError(`${name} must be a number of seconds from 0 to 3600`)
        return Math.round(Number(value) * 1000)
      }),
      default: SERVE_DEFAULTS.metricsCache,
      defaultText: String(SERVE_DEFAULTS.metricsCache / 1000),
    },
  ],
  epilogue: `
Endpoints:
  GET  /               index of the apps and endpoints
  GET  /chat, /scores  the chat and live-scores pages
  GET  /health         JSON status; /health/live (200 while serving), /health/ready (200, or 503 while the
                       backplane is down); while SIGTERM drains, only --metrics-port answers (ready 503)
  GET  /metrics        Prometheus metrics (see --metrics-token, --metrics-port)
  WS   /echo           every message comes back
  WS   /topics/NAME    what you send is published on NAME; you receive what is published on NAME
  WS   /v1             reliable delivery (subprotocol tether.v1) on the topics given with --history, and
                       read-only on the apps' own: $chat:ROOM (a room's messages), $scores:feed
  GET  /js/client/index.js   the tether.v1 client for pages (ES module)

Tokens (--auth jwt): a page offers the subprotocol tether.bearer.TOKEN next to tether, or sends the cookie
tether_token, or ?token=TOKEN. The token's "tether" claim lists the topics it may use:
  {"sub": "ada", "exp": ..., "tether": {"subscribe": ["chat:*", "news"], "publish": ["chat:*"]}}

Settings: every option also from the environment (TETHER_ and its name: TETHER_PORT, TETHER_MAX_PAYLOAD,
TETHER_JWT_SECRET, TETHER_REDIS_URL, TETHER_NATS_URL, TETHER_ALLOW_ORIGIN=a,b ...) and from a JSON file
(--config FILE or TETHER_CONFIG); the command line wins over the environment, which wins over the file.
Logs: JSON lines on stdout, or one readable line each on a terminal; below --log-level info the start is said on
stderr instead. If stdout closes, serving goes on without logs. SIGTERM or SIGINT drains (at most 5 s) and exits
0; a second one exits at once with 143 (SIGTERM) or 130 (SIGINT).

Examples:
  tether serve
  tether serve --port 9000 --redis redis://127.0.0.1:6379    # run several: one cluster
  tether serve --tls-cert cert.pem --tls-key key.pem --http2    # pages and WebSockets on one HTTP/2 connection
  tether serve --host 0.0.0.0 --allow-origin https://app.example --auth jwt --jwt-secret "$SECRET"`,
}

const CONNECT: CommandSpec = {
  name: 'connect',
  argument: { name: '<url>', description: 'ws:// or wss:// URL' },
  description: 'connect to a WebSocket server: type messages, see what comes back (pipes work too)',
  options: [
    { name: 'header', short: 'H', value: '<header>', description: 'request header "Name: value" (repeatable)', repeatable: true },
    { name: 'subprotocol', short: 's', value: '<name>', description: 'subprotocol to offer (repeatable)', repeatable: true },
    { name: 'origin', short: 'o', value: '<origin>', description: 'Origin header' },
    { name: 'proxy', value: '<url>', description: 'HTTP proxy to tunnel through (CONNECT), e.g. http://user:pass@127.0.0.1:3128' },
    { name: 'insecure', short: 'k', description: 'accept any TLS certificate', default: false },
    { name: 'execute', short: 'x', value: '<message>', description: 'send this message (repeatable), wait for as many replies, then close', repeatable: true },
    {
      name: 'wait',
      short: 'w',
      value: '<seconds>',
      description: 'with --execute: how long to wait for replies (default 5); with a pipe: how long to wait after the input ends (default 0)',
      parse: seconds,
    },
    { name: 'no-compression', description: 'do not offer permessage-deflate' },
  ],
  epilogue: `
Typed lines are sent as text messages; /ping, /close CODE REASON, /binary HEX and /help are commands.
With a pipe, each input line is a message and each message received is an output line (binary as hex).
Exit status: 0 after a normal close or one you asked for (/close CODE, Ctrl-D, end of input), 1 if the
connection failed, 3 if the peer closed with another code or the connection dropped (1006); 2 for usage errors.

Examples:
  tether connect ws://127.0.0.1:8080/echo
  tether connect ws://127.0.0.1:8080/echo -x hello
  echo '{"type":"join","room":"lobby","nick":"cli"}' | tether connect ws://127.0.0.1:8080/chat/ws -w 1`,
}

const BENCH: CommandSpec = {
  name: 'bench',
  argument: { name: '<url>', description: 'ws:// or wss:// URL of an echo endpoint (or, with --mode fanout, a topic)' },
  description: 'load any WebSocket server: echo throughput and latency, connection ramp, fan-out',
  options: [
    { name: 'mode', short: 'm', value: '<mode>', description: 'what to measure (choices: echo, latency, ramp, fanout)', choices: ['echo', 'latency', 'ramp', 'fanout'], default: 'echo' },
    {
      name: 'connections',
      short: 'c',
      value: '<n>',
      description: 'connections (default: echo 50, latency 1, ramp 1000, fanout 100 subscribers)',
      parse: integer(1),
    },
    { name: 'in-flight', short: 'i', value: '<n>', description: 'messages in flight per connection (fanout: publisher window)', parse: integer(1), default: 8 },
    { name: 'size', short: 's', value: '<bytes>', description: 'message size', parse: integer(1, 64 * 1024 * 1024), default: 32 },
    { name: 'duration', short: 'd', value: '<seconds>', description: 'how long to run', parse: seconds, default: 5 },
    { name: 'header', short: 'H', value: '<header>', description: 'request header "Name: value" (repeatable)', repeatable: true },
    { name: 'insecure', short: 'k', description: 'accept any TLS certificate', default: false },
    { name: 'json', description: 'print the report as JSON', default: false },
  ],
  epilogue: `
Each connection makes one round trip before the measurement (a warm-up), so the first message's cost is not
counted. -d bounds every mode (ramp stops opening connections at the deadline). Ctrl-C ends the run early and
prints what was measured (exit 130).

Examples:
  tether bench ws://127.0.0.1:8080/echo
  tether bench ws://127.0.0.1:8080/echo --mode latency
  tether bench ws://127.0.0.1:8080/topics/bench --mode fanout -c 1000`,
}

const COMMANDS = [SERVE, CONNECT, BENCH]

/** The serve options as the three sources of settings name them (hub/config.ts): file key, environment variable, parser. */
const SERVE_SETTINGS: SettingSpec[] = SERVE.options
  .filter((spec) => spec.name !== 'config')
  .map((spec) => ({
    key: keyOf(spec),
    env: spec.env ?? envName(keyOf(spec)),
    kind: spec.value === undefined ? 'boolean' : spec.repeatable ? 'list' : (spec.parse as { numeric?: boolean } | undefined)?.numeric ? 'number' : 'string',
    parse: spec.parse,
    choices: spec.choices,
  }))

/** Variables tether reads besides the settings: the config file, and the library's switch for its TCP bindings. */
const OTHER_VARIABLES = ['TETHER_CONFIG', 'TETHER_TCP_HANDLES']

/**
 * What `tether serve` runs with: flags over TETHER_* variables over the --config file over the defaults,
 * and where each setting came from, as errors name it (`sourceOf`).
 */
async function serveSettings(parsed: ParsedCommand): Promise<Record<string, unknown>> {
  const configFile = (parsed.given.config as string | undefined) ?? (process.env.TETHER_CONFIG || undefined)
  try {
    let file: Record<string, unknown> = {}
    if (configFile !== undefined) {
      let text: string
      try {
        text = await readFile(configFile, 'utf8')
      } catch (error) {
        const source = parsed.given.config !== undefined ? '--config' : 'TETHER_CONFIG'
        throw new ConfigError(`cannot read ${source} ${configFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
      }
      file = settingsFromFile(SERVE_SETTINGS, configFile, text)
    }
    const env = settingsFromEnv(SERVE_SETTINGS, process.env)
    // A misspelt variable is otherwise silently ignored (a misspelt file key is an error): say so, once each.
    for (const { name, near } of unknownEnvNames(SERVE_SETTINGS, process.env, OTHER_VARIABLES)) {
      process.stderr.write(`tether: warning: ${name} is not a tether setting, ignored${near ? ` (did you mean ${near}?)` : ''}\n`)
    }
    const sourceOf = (key: string): string => {
      const spec = SERVE_SETTINGS.find((candidate) => candidate.key === key)
      const flag = SERVE.options.find((option) => keyOf(option) === key)
      if (key in parsed.given || spec === undefined) return `--${flag?.name ?? key}`
      if (key in env) return spec.env
      if (key in file) return `${configFile}: ${key}`
      return `--${flag?.name ?? key}`
    }
    // parsed.options holds the defaults and the flags; the flags go on top again.
    return { ...mergeSettings(parsed.options, file, env, parsed.given), sourceOf }
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, 2)
    throw error
  }
}

/** Bytes of logs that may wait for a slow stdout before lines are dropped (counted). */
const LOG_BACKLOG = 1024 * 1024

async function runServe(parsed: ParsedCommand): Promise<void> {
  const options = await serveSettings(parsed)
  const interactive = Boolean(process.stdout.isTTY)
  // The logs go to stdout until nobody reads it (below); then nowhere, and the hub keeps serving. A reader that
  // stays but stops reading (a stuck log shipper) would have every line buffered in this process: past
  // LOG_BACKLOG bytes waiting, lines are dropped and counted, and the count is written once stdout drains
  // (an outsider's stalled FIFO took the hub from 70 to 577 MB).
  let logsOpen = true
  let dropped = 0
  const destination = {
    write: (line: string) => {
      if (!logsOpen) return
      if (process.stdout.writableLength > LOG_BACKLOG) {
        if (dropped++ === 0) process.stdout.once('drain', () => {
          const count = dropped
          dropped = 0
          if (logsOpen) process.stdout.write(`${JSON.stringify({ level: 40, time: Date.now(), event: 'log.dropped', count, msg: `${count} log lines dropped: stdout was not read` })}\n`)
        })
        return
      }
      process.stdout.write(line)
    },
  }
  const logger = createLogger({ level: options.logLevel as LogLevel, pretty: interactive, destination })
  const settings = { ...SERVE_DEFAULTS, ...options, logger } as ServeOptions
  const running = await serve(settings)
  const ws = running.url.replace(/^http/, 'ws')
  const backplane = settings.redis ? 'redis' : settings.nats ? 'nats' : 'none'
  if (interactive) {
    console.log(`tether serve on ${running.url}  (chat ${running.url}/chat, live scores ${running.url}/scores)`)
    console.log(`  ${ws}/echo   ${ws}/topics/NAME   ${running.url}/health   ${running.metricsUrl ?? running.url}/metrics   backplane: ${backplane}`)
  } else if (LOG_LEVELS.indexOf(options.logLevel as LogLevel) <= LOG_LEVELS.indexOf('info')) {
    logger.info({ event: 'hub.listening', url: running.url, metricsUrl: running.metricsUrl, backplane }, `tether serve on ${running.url}`)
  } else {
    // The start is an info record, so warn, error and silent leave it out of the logs; the URL is still said,
    // once, on stderr, which holds what is not a log record (outsider finding 9).
    process.stderr.write(`tether serve on ${running.url}${running.metricsUrl ? ` (metrics ${running.metricsUrl})` : ''}\n`)
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      // The operator insists: exit now, with 128 + the signal's number, as a shell reports a process it killed.
      logger.warn({ event: 'hub.stopping', signal }, `${signal} again: exiting now`)
      process.exit(signal === 'SIGTERM' ? 143 : 130)
    }
    stopping = true
    logger.info({ event: 'hub.stopping', signal }, `${signal}: closing connections (1001), at most ${settings.shutdownTimeout / 1000} s`)
    void running.close().then(() => process.exit(0))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  // Nobody reads the logs any more (`tether serve | head`, a log shipper that died): a server on a public port
  // keeps serving, says so once on stderr, and writes no more logs. It used to drain and exit 0, which a
  // supervisor with Restart=on-failure took for a wanted stop (outsider finding 2).
  onClosedOutput = () => {
    if (!logsOpen) return
    logsOpen = false
    process.stderr.write('tether: stdout was closed: no more logs are written; still serving (SIGTERM stops it)\n')
  }
  // Nor does a closed stderr stop it.
  process.stderr.on('error', () => {})
}

/** Runs the command line; resolves to the exit status (a running server keeps the process alive). */
async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '-h' || first === '--help') {
    process.stdout.write(programHelp('tether', DESCRIPTION, COMMANDS))
    return first === undefined ? 1 : 0
  }
  if (first === '-v' || first === '--version') {
    console.log(version)
    return 0
  }
  if (first === 'help') {
    const command = COMMANDS.find((candidate) => candidate.name === rest[0])
    process.stdout.write(command ? commandHelp('tether', command) : programHelp('tether', DESCRIPTION, COMMANDS))
    return 0
  }
  const command = COMMANDS.find((candidate) => candidate.name === first)
  if (command === undefined) {
    throw new UsageError(first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`)
  }
  const parsed = parseCommand(command, rest)
  if (parsed.help) {
    process.stdout.write(commandHelp('tether', command))
    return 0
  }
  if (command === SERVE) {
    await runServe(parsed)
    return 0
  }
  if (command === CONNECT) {
    return connect(parsed.argument!, parsed.options as unknown as ConnectOptions, { input: process.stdin, output: process.stdout, errors: process.stderr })
  }
  const options = parsed.options as unknown as BenchOptions
  // Ctrl-C ends the run early: the progress bar is cleared and the partial result printed (exit 130).
  const interrupt = new AbortController()
  const onInterrupt = (): void => {
    if (interrupt.signal.aborted) process.exit(130)
    interrupt.abort()
  }
  process.on('SIGINT', onInterrupt)
  const report = await bench(parsed.argument!, { ...options, mode: options.mode as BenchMode }, Boolean(process.stderr.isTTY) && !options.json, interrupt.signal)
  process.off('SIGINT', onInterrupt)
  console.log(options.json ? JSON.stringify(report, null, 2) : formatReport(report))
  return report.interrupted ? 130 : 0
}

/**
 * A closed stdout (`tether connect URL | head -2`, `tether bench --help | head -1`)
 * ends the program quietly with status 0; `tether serve` keeps serving (runServe).
 * Writing to a closed pipe fails with EPIPE, reported as an 'error' event
 * that would otherwise end the process with a stack trace.
 */
let onClosedOutput = (): void => process.exit(0)
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  // A write queued before the EPIPE was reported fails with ERR_STREAM_DESTROYED after it.
  if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return onClosedOutput()
  throw error
})

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (error instanceof UsageError) {
    const command = COMMANDS.find((candidate) => candidate.name === process.argv[2])
    console.error(`tether: ${error.message} (see tether ${command ? `${command.name} ` : ''}--help)`)
    process.exitCode = 2
  } else if (error instanceof CliError) {
    console.error(`tether: ${error.message}`)
    process.exitCode = error.exitCode
  } else {
    console.error(`tether: unexpected error: ${(error as Error)?.message ?? error}`)
    process.exitCode = 1
  }
}
