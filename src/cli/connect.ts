/**
 * `tether connect URL`: talk to any WebSocket server from the terminal.
 *
 * Interactive (stdin and stdout are a terminal): a prompt; each line is sent
 * as a text message; incoming messages are printed with their direction and
 * type; `/ping`, `/close CODE REASON`, `/binary HEX` and `/help` are commands.
 * Pipe mode (otherwise): each input line is one text message, each incoming
 * message one output line (binary as hex), nothing else on stdout; at the end
 * of input the client closes with 1000 (after `--wait` seconds).
 *
 * Exit status: 0 after a normal close (1000, 1001 or 1005) or one the user
 * asked for (`/close 4001`, Ctrl-D, the end of piped input, whatever the
 * code), 1 when the connection failed (bad URL, refused or failed handshake,
 * network error), 3 when the peer closed with another code or the connection
 * dropped (1006).
 *
 * Rule 1 (interactive): a message that arrives while the user types is
 * printed above the prompt, and the prompt is drawn again below it with what
 * was typed so far, so the two never overwrite each other.
 */
import { type Interface, clearLine, createInterface, cursorTo } from 'node:readline'
import { WebSocket } from 'tether-ws'
import { CliError } from './errors.js'

export interface ConnectOptions {
  header: string[]
  subprotocol: string[]
  proxy?: string | undefined
  insecure: boolean
  execute: string[]
  /** Seconds to wait for replies (with --execute) or after the end of input (pipe mode). */
  wait?: number | undefined
  origin?: string | undefined
  compression: boolean
}

export interface ConnectIo {
  input: NodeJS.ReadableStream & { isTTY?: boolean }
  output: NodeJS.WritableStream & { isTTY?: boolean }
  errors: NodeJS.WritableStream
}

const NORMAL = new Set([1000, 1001, 1005])

export function parseUrl(text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new CliError(`invalid URL ${JSON.stringify(text)}: use ws://host:port/path or wss://...`)
  }
  if (url.protocol === 'http:') url.protocol = 'ws:'
  if (url.protocol === 'https:') url.protocol = 'wss:'
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new CliError(`invalid URL ${JSON.stringify(text)}: the scheme must be ws: or wss:, not ${url.protocol}`)
  }
  return url
}

function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new CliError(`invalid --header ${JSON.stringify(line)}: use "Name: value"`)
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
  }
  return headers
}

/**
 * Why a connection failed, in one line: Node's messages for a TLS handshake
 * with a plain port (an OpenSSL error over two lines) or a server that is not
 * HTTP ("socket hang up") say little to a user.
 */
export function describeFailure(error: NodeJS.ErrnoException, url: URL): string {
  const code = error.code
  if (code === 'ECONNREFUSED') return `connection refused by ${url.host}`
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host not found: ${url.hostname}`
  if (code === 'ETIMEDOUT') return `no answer from ${url.host} (timed out)`
  if (url.protocol === 'wss:' && (code === 'EPROTO' || /wrong version number|packet length too long|ssl3_get_record/i.test(error.message))) {
    return `TLS handshake with ${url.host} failed: the port does not speak TLS (try ws://)`
  }
  if (code === 'ECONNRESET' || error.message === 'socket hang up') {
    return `${url.host} closed the connection without answering the WebSocket handshake: is it a WebSocket server?`
  }
  if (code?.startsWith('HPE_')) return `${url.host} did not answer with HTTP: is it a WebSocket server?`
  return error.message.split('\n')[0]!.trim()
}

function describe(data: Buffer, isBinary: boolean): string {
  return isBinary ? `[binary ${data.length} B] ${data.toString('hex').replace(/(..)(?!$)/g, '$1 ')}` : data.toString()
}

/** Runs the client; resolves with the exit status. */
export async function connect(urlText: string, options: ConnectOptions, io: ConnectIo): Promise<number> {
  const url = parseUrl(urlText)
  const headers = parseHeaders(options.header)
  const interactive = Boolean(io.input.isTTY && io.output.isTTY) && options.execute.length === 0
  if (options.proxy !== undefined) {
    try {
      new URL(options.proxy)
    } catch {
      throw new CliError(`invalid --proxy ${JSON.stringify(options.proxy)}: use http://[user:password@]host:port`)
    }
  }
  // Rule 1: the prompt's line is cleared before a line is printed, and redrawn after it.
  let prompt: Interface | undefined
  const above = (stream: NodeJS.WritableStream, line: string): void => {
    if (prompt === undefined) {
      stream.write(`${line}\n`)
      return
    }
    cursorTo(io.output, 0)
    clearLine(io.output, 0)
    stream.write(`${line}\n`)
    prompt.prompt(true)
  }
  const say = (line: string): void => above(io.errors, line)
  const fail = (line: string): void => {
    io.errors.write(`tether: ${line}\n`)
  }

  const ws = new WebSocket(url, options.subprotocol, {
    headers,
    origin: options.origin,
    rejectUnauthorized: !options.insecure,
    perMessageDeflate: options.compression,
    handshakeTimeout: 10_000,
    proxy: options.proxy,
  })

  // Listening from the start: a server may send its first message with the handshake's response.
  let received = 0
  ws.on('message', (data, isBinary) => {
    received++
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)
    if (interactive) above(io.output, `< ${describe(bytes, isBinary)}`)
    else io.output.write(`${isBinary ? bytes.toString('hex') : bytes.toString()}\n`)
  })
  ws.on('ping', (data) => interactive && above(io.output, `< ping ${data.length ? describe(data, true) : ''}`))
  ws.on('pong', (data) => interactive && above(io.output, `< pong ${data.length ? describe(data, true) : ''}`))

  const opened = await new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true))
    ws.once('unexpected-response', (_request, response) => {
      fail(`the server refused the WebSocket handshake: HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trimEnd())
      response.resume()
      // Said once: the abort that follows is not another error.
      ws.removeAllListeners('error')
      ws.on('error', () => {})
      ws.terminate()
      resolve(false)
    })
    ws.once('error', (error: NodeJS.ErrnoException) => {
      fail(describeFailure(error, url))
      resolve(false)
    })
  })
  if (!opened) return 1
  ws.on('error', (error) => say(`tether: ${error.message.split('\n')[0]}`))
  /** The user closed (a /close command, Ctrl-D, the end of piped input or --execute's end): not the peer's doing. */
  let closedByUser = false
  const closeAsUser = (code?: number, reason?: string): void => {
    if (ws.readyState !== WebSocket.OPEN) return
    ws.close(code, reason)
    closedByUser = true
  }

  const closedWith = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])))

  if (interactive) {
    say(`connected to ${url.href}${ws.protocol ? ` (subprotocol ${ws.protocol})` : ''}; /help for commands, Ctrl-D to close`)
    const lines = createInterface({ input: io.input, output: io.output, prompt: '> ' })
    prompt = lines
    lines.prompt()
    lines.on('line', (line) => {
      runLine(line, ws, closeAsUser, say)
      if (ws.readyState === WebSocket.OPEN) lines.prompt()
    })
    lines.on('close', () => closeAsUser(1000))
    ws.once('close', () => {
      prompt = undefined
      lines.close()
    })
  } else if (options.execute.length > 0) {
    for (const message of options.execute) ws.send(message)
    const deadline = Date.now() + (options.wait ?? 5) * 1000
    while (ws.readyState === WebSocket.OPEN && received < options.execute.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    closeAsUser(1000)
  } else {
    const lines = createInterface({ input: io.input })
    lines.on('line', (line) => ws.readyState === WebSocket.OPEN && ws.send(line))
    lines.on('close', () => {
      setTimeout(() => closeAsUser(1000), (options.wait ?? 0) * 1000).unref()
    })
    ws.once('close', () => lines.close())
  }

  const [code, reason] = await closedWith
  say(`closed: ${code}${reason ? ` ${reason}` : ''}`)
  if (code === 1006) return 3
  return closedByUser || NORMAL.has(code) ? 0 : 3
}

const HELP = `commands:
  /ping [text]            send a ping
  /close [code [reason]]  close (default 1000)
  /binary HEX             send a binary message, e.g. /binary 01ff
  //text                  send a text message that starts with "/"
  anything else           send it as a text message`

function runLine(line: string, ws: WebSocket, close: (code?: number, reason?: string) => void, say: (line: string) => void): void {
  if (!line.startsWith('/') || line.startsWith('//')) {
    ws.send(line.startsWith('//') ? line.slice(1) : line)
    return
  }
  const [command, ...rest] = line.slice(1).split(' ')
  try {
    if (command === 'ping') ws.ping(rest.join(' '))
    else if (command === 'close') {
      const code = rest[0] ? Number(rest[0]) : 1000
      close(code, rest.slice(1).join(' '))
    } else if (command === 'binary') {
      const hex = rest.join('').replace(/\s/g, '')
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) return say('/binary takes hex digits in pairs, e.g. /binary 01ff')
      ws.send(Buffer.from(hex, 'hex'))
    } else if (command === 'help') say(HELP)
    else say(`unknown command /${command}; /help lists them`)
  } catch (error) {
    say(`error: ${(error as Error).message}`)
  }
}
