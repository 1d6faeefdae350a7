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
 * Exit status: 0 after a normal close (1000, 1001 or 1005), 1 when the
 * connection failed (bad URL, refused or failed handshake, network error),
 * 3 when the peer closed with another code or the connection dropped.
 */
import { createInterface } from 'node:readline'
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
  const say = (line: string): void => {
    io.errors.write(`${line}\n`)
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
    if (interactive) io.output.write(`< ${describe(bytes, isBinary)}\n`)
    else io.output.write(`${isBinary ? bytes.toString('hex') : bytes.toString()}\n`)
  })
  ws.on('ping', (data) => interactive && io.output.write(`< ping ${data.length ? describe(data, true) : ''}\n`))
  ws.on('pong', (data) => interactive && io.output.write(`< pong ${data.length ? describe(data, true) : ''}\n`))

  const opened = await new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true))
    ws.once('unexpected-response', (_request, response) => {
      say(`error: the server refused the WebSocket handshake: HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trimEnd())
      response.resume()
      // Said once: the abort that follows is not another error.
      ws.removeAllListeners('error')
      ws.on('error', () => {})
      ws.terminate()
      resolve(false)
    })
    ws.once('error', (error: NodeJS.ErrnoException) => {
      const reason =
        error.code === 'ECONNREFUSED' ? `connection refused by ${url.host}` : error.code === 'ENOTFOUND' ? `host not found: ${url.hostname}` : error.message
      say(`error: ${reason}`)
      resolve(false)
    })
  })
  if (!opened) return 1
  ws.on('error', (error) => say(`error: ${error.message}`))

  const closedWith = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])))

  if (interactive) {
    say(`connected to ${url.href}${ws.protocol ? ` (subprotocol ${ws.protocol})` : ''}; /help for commands, Ctrl-D to close`)
    const lines = createInterface({ input: io.input, output: io.output, prompt: '> ' })
    lines.prompt()
    lines.on('line', (line) => {
      runLine(ws, line, say)
      if (ws.readyState === WebSocket.OPEN) lines.prompt()
    })
    lines.on('close', () => ws.readyState === WebSocket.OPEN && ws.close(1000))
    ws.once('close', () => lines.close())
  } else if (options.execute.length > 0) {
    for (const message of options.execute) ws.send(message)
    const deadline = Date.now() + (options.wait ?? 5) * 1000
    while (ws.readyState === WebSocket.OPEN && received < options.execute.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    if (ws.readyState === WebSocket.OPEN) ws.close(1000)
  } else {
    const lines = createInterface({ input: io.input })
    lines.on('line', (line) => ws.readyState === WebSocket.OPEN && ws.send(line))
    lines.on('close', () => {
      setTimeout(() => ws.readyState === WebSocket.OPEN && ws.close(1000), (options.wait ?? 0) * 1000).unref()
    })
    ws.once('close', () => lines.close())
  }

  const [code, reason] = await closedWith
  say(`closed: ${code}${reason ? ` ${reason}` : ''}`)
  return NORMAL.has(code) ? 0 : 3
}

const HELP = `commands:
  /ping [text]            send a ping
  /close [code [reason]]  close (default 1000)
  /binary HEX             send a binary message, e.g. /binary 01ff
  //text                  send a text message that starts with "/"
  anything else           send it as a text message`

function runLine(ws: WebSocket, line: string, say: (line: string) => void): void {
  if (!line.startsWith('/') || line.startsWith('//')) {
    ws.send(line.startsWith('//') ? line.slice(1) : line)
    return
  }
  const [command, ...rest] = line.slice(1).split(' ')
  try {
    if (command === 'ping') ws.ping(rest.join(' '))
    else if (command === 'close') {
      const code = rest[0] ? Number(rest[0]) : 1000
      ws.close(code, rest.slice(1).join(' '))
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
