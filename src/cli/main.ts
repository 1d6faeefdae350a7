#!/usr/bin/env node
/**
 * The `tether` command: serve, connect, bench. Every failure the user can
 * cause (a bad URL, a refused handshake, a port in use, an unknown option)
 * ends as one line on stderr and a non-zero exit status, never a stack trace.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { bench, formatReport, type BenchMode } from './bench.js'
import { connect } from './connect.js'
import { CliError } from './errors.js'
import { SERVE_DEFAULTS, type ServeOptions, serve } from './serve.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const number = Number(value)
    if (!Number.isInteger(number) || number < min || number > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`)
    }
    return number
  }
}

function seconds(value: string): number {
  const number = Number(value)
  if (!Number.isFinite(number) || number < 0) throw new InvalidArgumentError('must be a number of seconds, 0 or more')
  return number
}

/** Seconds as milliseconds, more than 0 (a timer's range). */
function positiveSeconds(name: string) {
  return (value: string): number => {
    const number = Number(value)
    if (!Number.isFinite(number) || number <= 0 || number * 1000 > 2 ** 31 - 1) {
      throw new InvalidArgumentError(`${name} must be a number of seconds above 0`)
    }
    return Math.max(1, Math.round(number * 1000))
  }
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

const program = new Command()
  .name('tether')
  .description('WebSocket toolkit: a demo hub with chat and live scores, a terminal client, and a load generator.')
  .version(version, '-v, --version')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(text) })
  .exitOverride()

program
  .command('serve')
  .description('serve the demo apps (chat, live scores), /echo, /health and a topic relay at /topics/NAME')
  .option('-p, --port <port>', 'port to listen on', integer('--port', 0, 65535), SERVE_DEFAULTS.port)
  .option('--host <host>', 'address to listen on (0.0.0.0 or :: for every interface)', SERVE_DEFAULTS.host)
  .option('--tls-cert <file>', 'certificate (PEM) to serve https:// and wss://')
  .option('--tls-key <file>', 'private key (PEM) for --tls-cert')
  .addOption(new Option('--redis <url>', 'join a cluster over Redis, e.g. redis://127.0.0.1:6379').conflicts('nats'))
  .option('--nats <url>', 'join a cluster over NATS, e.g. nats://127.0.0.1:4222')
  .option('--broker-timeout <seconds>', 'with --redis or --nats: how long to wait for the broker at start (default 5)', positiveSeconds('--broker-timeout'), SERVE_DEFAULTS.brokerTimeout)
  .option('--no-compression', 'turn permessage-deflate off')
  .option('--max-payload <bytes>', 'largest message accepted', integer('--max-payload', 1), SERVE_DEFAULTS.maxPayload)
  .option('--max-connections <n>', 'connections accepted at once (more get HTTP 503)', integer('--max-connections', 1), SERVE_DEFAULTS.maxConnections)
  .option('--allow-origin <origin>', 'also accept WebSockets from pages of this origin, e.g. https://app.example (repeatable; * for any, with a warning); the pages\' own origin is always allowed', collect, [])
  .addOption(new Option('--auth <kind>', 'require a token from clients').choices(['none', 'jwt']).default(SERVE_DEFAULTS.auth))
  .option('--jwt-secret <secret>', 'with --auth jwt: the HMAC secret (HS256/384/512)')
  .option('--jwt-public-key <file>', 'with --auth jwt: a PEM public key (RS*, PS*, ES*, EdDSA)')
  .option('--jwt-jwks <file>', 'with --auth jwt: a JSON Web Key Set file')
  .option('--jwt-issuer <iss>', 'with --auth jwt: the required issuer')
  .option('--jwt-audience <aud>', 'with --auth jwt: the required audience')
  .option('--publish-rate <n>', 'messages per second one client may publish (relay, chat)', integer('--publish-rate', 1), SERVE_DEFAULTS.publishRate)
  .option('--publish-bytes <n>', 'bytes per second one client may publish', integer('--publish-bytes', 1), SERVE_DEFAULTS.publishBytes)
  .addOption(new Option('--publish-limit-action <action>', 'past the limits: close the connection (1008) or drop the message').choices(['close', 'drop']).default(SERVE_DEFAULTS.publishLimitAction))
  .option('--history <pattern>', 'relay topics that keep history, for reliable delivery at /v1 (repeatable; * for all)', collect, [])
  .option('--history-size <n>', 'messages each of those topics keeps (default 100)', integer('--history-size', 1, 1_000_000), SERVE_DEFAULTS.historySize)
  .option('--history-age <seconds>', 'how long a message stays in history (default 300)', positiveSeconds('--history-age'), SERVE_DEFAULTS.historyAge)
  .addOption(new Option('--history-backend <kind>', 'where history is kept: memory (this node), redis or jetstream (the cluster\'s broker; the default with --redis or --nats)').choices(['memory', 'redis', 'jetstream']))
  .addHelpText(
    'after',
    `
Endpoints:
  GET  /               index of the apps and endpoints
  GET  /chat, /scores  the chat and live-scores pages
  GET  /health         JSON status
  WS   /echo           every message comes back
  WS   /topics/NAME    what you send is published on NAME; you receive what is published on NAME
  WS   /v1             reliable delivery (subprotocol tether.v1) on the topics given with --history
  GET  /js/client/index.js   the tether.v1 client for pages (ES module)

Tokens (--auth jwt): a page offers the subprotocol tether.bearer.TOKEN next to tether, or sends the cookie
tether_token, or ?token=TOKEN. The token's "tether" claim lists the topics it may use:
  {"sub": "ada", "exp": ..., "tether": {"subscribe": ["chat:*", "news"], "publish": ["chat:*"]}}

Examples:
  tether serve
  tether serve --port 9000 --redis redis://127.0.0.1:6379    # run several: one cluster
  tether serve --tls-cert cert.pem --tls-key key.pem
  tether serve --host 0.0.0.0 --allow-origin https://app.example --auth jwt --jwt-secret "$SECRET"`,
  )
  .action(async (options) => {
    const log = (line: string): void => console.error(`tether: ${line}`)
    const running = await serve({ ...SERVE_DEFAULTS, ...options, log } as ServeOptions)
    const ws = running.url.replace(/^http/, 'ws')
    console.log(`tether serve on ${running.url}  (chat ${running.url}/chat, live scores ${running.url}/scores)`)
    console.log(`  ${ws}/echo   ${ws}/topics/NAME   ${running.url}/health   backplane: ${options.redis ? 'redis' : options.nats ? 'nats' : 'in-memory'}`)
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
  })

program
  .command('connect')
  .description('connect to a WebSocket server: type messages, see what comes back (pipes work too)')
  .argument('<url>', 'ws:// or wss:// URL')
  .option('-H, --header <header>', 'request header "Name: value" (repeatable)', collect, [])
  .option('-s, --subprotocol <name>', 'subprotocol to offer (repeatable)', collect, [])
  .option('-o, --origin <origin>', 'Origin header')
  .option('--proxy <url>', 'HTTP proxy to tunnel through (CONNECT), e.g. http://user:pass@127.0.0.1:3128')
  .option('-k, --insecure', 'accept any TLS certificate', false)
  .option('-x, --execute <message>', 'send this message (repeatable), wait for as many replies, then close', collect, [])
  .option('-w, --wait <seconds>', 'with --execute: how long to wait for replies (default 5); with a pipe: how long to wait after the input ends (default 0)', seconds)
  .option('--no-compression', 'do not offer permessage-deflate')
  .addHelpText(
    'after',
    `
Typed lines are sent as text messages; /ping, /close CODE REASON, /binary HEX and /help are commands.
With a pipe, each input line is a message and each message received is an output line (binary as hex).
Exit status: 0 after a normal close, 1 if the connection failed, 3 if the peer closed abnormally.

Examples:
  tether connect ws://127.0.0.1:8080/echo
  tether connect ws://127.0.0.1:8080/echo -x hello
  echo '{"type":"join","room":"lobby","nick":"cli"}' | tether connect ws://127.0.0.1:8080/chat/ws -w 1`,
  )
  .action(async (url: string, options) => {
    process.exitCode = await connect(url, options, { input: process.stdin, output: process.stdout, errors: process.stderr })
  })

program
  .command('bench')
  .description('load any WebSocket server: echo throughput and latency, connection ramp, fan-out')
  .argument('<url>', 'ws:// or wss:// URL of an echo endpoint (or, with --mode fanout, a topic)')
  .addOption(new Option('-m, --mode <mode>', 'what to measure').choices(['echo', 'latency', 'ramp', 'fanout']).default('echo'))
  .option('-c, --connections <n>', 'connections (default: echo 50, latency 1, ramp 1000, fanout 100 subscribers)', integer('--connections', 1))
  .option('-i, --in-flight <n>', 'messages in flight per connection (fanout: publisher window)', integer('--in-flight', 1), 8)
  .option('-s, --size <bytes>', 'message size', integer('--size', 1, 64 * 1024 * 1024), 32)
  .option('-d, --duration <seconds>', 'how long to run', seconds, 5)
  .option('-H, --header <header>', 'request header "Name: value" (repeatable)', collect, [])
  .option('-k, --insecure', 'accept any TLS certificate', false)
  .option('--json', 'print the report as JSON', false)
  .addHelpText(
    'after',
    `
Examples:
  tether bench ws://127.0.0.1:8080/echo
  tether bench ws://127.0.0.1:8080/echo --mode latency
  tether bench ws://127.0.0.1:8080/topics/bench --mode fanout -c 1000`,
  )
  .action(async (url: string, options) => {
    const report = await bench(url, { ...options, mode: options.mode as BenchMode }, Boolean(process.stderr.isTTY) && !options.json)
    console.log(options.json ? JSON.stringify(report, null, 2) : formatReport(report))
  })

try {
  await program.parseAsync(process.argv)
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander printed its one-line message (or the help / version); keep its status.
    process.exitCode = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2
  } else if (error instanceof CliError) {
    console.error(`tether: ${error.message}`)
    process.exitCode = error.exitCode
  } else {
    console.error(`tether: unexpected error: ${(error as Error)?.message ?? error}`)
    process.exitCode = 1
  }
}
