#!/usr/bin/env node
/**
 * The `tether` command: serve, connect, bench. Every failure the user can
 * cause (a bad URL, a refused handshake, a port in use, an unknown option)
 * ends as one line on stderr and a non-zero exit status, never a stack trace.
 */
import { readFileSync } from 'node:fs'
import { type CommandSpec, UsageError, commandHelp, parseCommand, programHelp } from './args.js'
import { bench, formatReport, type BenchMode, type BenchOptions } from './bench.js'
import { type ConnectOptions, connect } from './connect.js'
import { CliError } from './errors.js'
import { SERVE_DEFAULTS, type ServeOptions, serve } from './serve.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const number = Number(value)
    if (value.trim() === '' || !Number.isInteger(number) || number < min || number > max) {
      throw new UsageError(`${name} must be a whole number from ${min} to ${max}`)
    }
    return number
  }
}

function seconds(name: string) {
  return (value: string): number => {
    const number = Number(value)
    if (value.trim() === '' || !Number.isFinite(number) || number < 0) throw new UsageError(`${name} must be a number of seconds, 0 or more`)
    return number
  }
}

/** Seconds as milliseconds, more than 0 (a timer's range). */
function positiveSeconds(name: string) {
  return (value: string): number => {
    const number = Number(value)
    if (!Number.isFinite(number) || number <= 0 || number * 1000 > 2 ** 31 - 1) {
      throw new UsageError(`${name} must be a number of seconds above 0`)
    }
    return Math.max(1, Math.round(number * 1000))
  }
}

const DESCRIPTION = 'WebSocket toolkit: a demo hub with chat and live scores, a terminal client, and a load generator.'

const SERVE: CommandSpec = {
  name: 'serve',
  description: 'serve the demo apps (chat, live scores), /echo, /health and a topic relay at /topics/NAME',
  options: [
    { name: 'port', short: 'p', value: '<port>', description: 'port to listen on', parse: integer('--port', 0, 65535), default: SERVE_DEFAULTS.port },
    { name: 'host', value: '<host>', description: 'address to listen on (0.0.0.0 or :: for every interface)', default: SERVE_DEFAULTS.host },
    { name: 'tls-cert', value: '<file>', description: 'certificate (PEM) to serve https:// and wss://' },
    { name: 'tls-key', value: '<file>', description: 'private key (PEM) for --tls-cert' },
    { name: 'redis', value: '<url>', description: 'join a cluster over Redis, e.g. redis://127.0.0.1:6379', conflicts: ['nats'] },
    { name: 'nats', value: '<url>', description: 'join a cluster over NATS, e.g. nats://127.0.0.1:4222' },
    {
      name: 'broker-timeout',
      value: '<seconds>',
      description: 'with --redis or --nats: how long to wait for the broker at start (default 5)',
      parse: positiveSeconds('--broker-timeout'),
    },
    { name: 'no-compression', description: 'turn permessage-deflate off' },
    { name: 'max-payload', value: '<bytes>', description: 'largest message accepted', parse: integer('--max-payload', 1), default: SERVE_DEFAULTS.maxPayload },
    {
      name: 'max-connections',
      value: '<n>',
      description: 'connections accepted at once (more get HTTP 503)',
      parse: integer('--max-connections', 1),
      default: SERVE_DEFAULTS.maxConnections,
    },
    {
      name: 'allow-origin',
      value: '<origin>',
      description: "also accept WebSockets from pages of this origin, e.g. https://app.example (repeatable; * for any, with a warning); the pages' own origin is always allowed",
      repeatable: true,
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
      parse: integer('--publish-rate', 1),
      default: SERVE_DEFAULTS.publishRate,
    },
    { name: 'publish-bytes', value: '<n>', description: 'bytes per second one client may publish', parse: integer('--publish-bytes', 1), default: SERVE_DEFAULTS.publishBytes },
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
      parse: integer('--max-connections-per-address', 0),
      default: SERVE_DEFAULTS.maxConnectionsPerAddress,
    },
    {
      name: 'trusted-proxy',
      value: '<address>',
      description: 'a reverse proxy in front (address or CIDR range, repeatable): its clients are told apart by X-Forwarded-For',
      repeatable: true,
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
      description: 'messages each of those topics keeps (default 100)',
      parse: integer('--history-size', 1, 1_000_000),
      default: SERVE_DEFAULTS.historySize,
    },
    {
      name: 'history-age',
      value: '<seconds>',
      description: 'how long a message stays in history (default 300)',
      parse: positiveSeconds('--history-age'),
      default: SERVE_DEFAULTS.historyAge,
    },
    {
      name: 'history-backend',
      value: '<kind>',
      description: "where history is kept (also the chat's rooms and the scores feed): memory (this node), redis or jetstream (the cluster's broker; the default with --redis or --nats, and the only choice there while the chat runs)",
      choices: ['memory', 'redis', 'jetstream'],
    },
  ],
  epilogue: `
Endpoints:
  GET  /               index of the apps and endpoints
  GET  /chat, /scores  the chat and live-scores pages
  GET  /health         JSON status
  WS   /echo           every message comes back
  WS   /topics/NAME    what you send is published on NAME; you receive what is published on NAME
  WS   /v1             reliable delivery (subprotocol tether.v1) on the topics given with --history, and
                       read-only on the apps' own: $chat:ROOM (a room's messages), $scores:feed
  GET  /js/client/index.js   the tether.v1 client for pages (ES module)

Tokens (--auth jwt): a page offers the subprotocol tether.bearer.TOKEN next to tether, or sends the cookie
tether_token, or ?token=TOKEN. The token's "tether" claim lists the topics it may use:
  {"sub": "ada", "exp": ..., "tether": {"subscribe": ["chat:*", "news"], "publish": ["chat:*"]}}

Examples:
  tether serve
  tether serve --port 9000 --redis redis://127.0.0.1:6379    # run several: one cluster
  tether serve --tls-cert cert.pem --tls-key key.pem
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
      parse: seconds('--wait'),
    },
    { name: 'no-compression', description: 'do not offer permessage-deflate' },
  ],
  epilogue: `
Typed lines are sent as text messages; /ping, /close CODE REASON, /binary HEX and /help are commands.
With a pipe, each input line is a message and each message received is an output line (binary as hex).
Exit status: 0 after a normal close, 1 if the connection failed, 3 if the peer closed abnormally.

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
      parse: integer('--connections', 1),
    },
    { name: 'in-flight', short: 'i', value: '<n>', description: 'messages in flight per connection (fanout: publisher window)', parse: integer('--in-flight', 1), default: 8 },
    { name: 'size', short: 's', value: '<bytes>', description: 'message size', parse: integer('--size', 1, 64 * 1024 * 1024), default: 32 },
    { name: 'duration', short: 'd', value: '<seconds>', description: 'how long to run', parse: seconds('--duration'), default: 5 },
    { name: 'header', short: 'H', value: '<header>', description: 'request header "Name: value" (repeatable)', repeatable: true },
    { name: 'insecure', short: 'k', description: 'accept any TLS certificate', default: false },
    { name: 'json', description: 'print the report as JSON', default: false },
  ],
  epilogue: `
Examples:
  tether bench ws://127.0.0.1:8080/echo
  tether bench ws://127.0.0.1:8080/echo --mode latency
  tether bench ws://127.0.0.1:8080/topics/bench --mode fanout -c 1000`,
}

const COMMANDS = [SERVE, CONNECT, BENCH]

async function runServe(options: Record<string, unknown>): Promise<void> {
  const log = (line: string): void => console.error(`tether: ${line}`)
  const settings = { ...SERVE_DEFAULTS, ...options, log } as ServeOptions
  const running = await serve(settings)
  const ws = running.url.replace(/^http/, 'ws')
  console.log(`tether serve on ${running.url}  (chat ${running.url}/chat, live scores ${running.url}/scores)`)
  console.log(`  ${ws}/echo   ${ws}/topics/NAME   ${running.url}/health   backplane: ${settings.redis ? 'redis' : settings.nats ? 'nats' : 'in-memory'}`)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      log(`${signal} again: exiting now`)
      process.exit(130)
    }
    stopping = true
    log(`${signal}: closing connections (1001), at most ${SERVE_DEFAULTS.shutdownTimeout / 1000} s`)
    void running.close().then(() => process.exit(0))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
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
    await runServe(parsed.options)
    return 0
  }
  if (command === CONNECT) {
    return connect(parsed.argument!, parsed.options as unknown as ConnectOptions, { input: process.stdin, output: process.stdout, errors: process.stderr })
  }
  const options = parsed.options as unknown as BenchOptions
  const report = await bench(parsed.argument!, { ...options, mode: options.mode as BenchMode }, Boolean(process.stderr.isTTY) && !options.json)
  console.log(options.json ? JSON.stringify(report, null, 2) : formatReport(report))
  return 0
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`error: ${error.message}`)
    console.error('(run with --help for usage)')
    process.exitCode = 2
  } else if (error instanceof CliError) {
    console.error(`tether: ${error.message}`)
    process.exitCode = error.exitCode
  } else {
    console.error(`tether: unexpected error: ${(error as Error)?.message ?? error}`)
    process.exitCode = 1
  }
}
