/**
 * Reference implementations of the handshake's header grammar (RFC 7230
 * §3.2.6 and §7, RFC 6455 §4 and §9.1), written independently of
 * src/core/handshake: a tokenizer first, then the grammar over tokens.
 * The oracles compare the parsers under test with these.
 */

/** A number is read as its decimal text (requests built by hand: issue 15). */
export type ModelHeaderValue = string | readonly string[] | number | undefined

const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

export function modelIsTchar(ch: string): boolean {
  return ch.length === 1 && TCHARS.includes(ch)
}

export function modelIsToken(text: string): boolean {
  return text.length > 0 && [...text].every(modelIsTchar)
}

/** Repeated field lines are one comma-separated list (RFC 7230 §3.2.2). */
export function modelJoin(value: ModelHeaderValue): string | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return String(value)
  return typeof value === 'string' ? value : value.join(', ')
}

/** OWS is SP and HTAB only (RFC 7230 §3.2.3). */
export function trimOws(text: string): string {
  let start = 0
  let end = text.length
  while (start < end && (text[start] === ' ' || text[start] === '\t')) start++
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--
  return text.slice(start, end)
}

type Lexeme =
  | { kind: 'token'; text: string }
  | { kind: 'quoted'; text: string }
  | { kind: ',' | ';' | '=' | 'ows' }
  | { kind: 'bad' }

/** Splits a header value into lexemes; an unterminated quoted-string or a stray character is `bad`. */
function lex(text: string): Lexeme[] {
  const out: Lexeme[] = []
  let i = 0
  while (i < text.length) {
    const ch = text[i]!
    if (ch === ' ' || ch === '\t') {
      while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++
      out.push({ kind: 'ows' })
    } else if (ch === ',' || ch === ';' || ch === '=') {
      out.push({ kind: ch })
      i++
    } else if (modelIsTchar(ch)) {
      let j = i
      while (j < text.length && modelIsTchar(text[j]!)) j++
      out.push({ kind: 'token', text: text.slice(i, j) })
      i = j
    } else if (ch === '"') {
      let j = i + 1
      let value = ''
      let closed = false
      while (j < text.length) {
        if (text[j] === '"') {
          closed = true
          j++
          break
        }
        if (text[j] === '\\') {
          j++
          if (j >= text.length) break
        }
        value += text[j]
        j++
      }
      if (!closed) return [...out, { kind: 'bad' }]
      out.push({ kind: 'quoted', text: value })
      i = j
    } else {
      return [...out, { kind: 'bad' }]
    }
  }
  return out
}

/** Elements of a `#rule` list: split at commas, OWS trimmed, empty elements dropped (RFC 7230 §7). */
function elements(lexemes: Lexeme[]): Lexeme[][] | undefined {
  if (lexemes.some((l) => l.kind === 'bad')) return undefined
  const out: Lexeme[][] = [[]]
  for (const l of lexemes) {
    if (l.kind === ',') out.push([])
    else out.at(-1)!.push(l)
  }
  return out
    .map((element) => {
      const trimmed = [...element]
      while (trimmed[0]?.kind === 'ows') trimmed.shift()
      while (trimmed.at(-1)?.kind === 'ows') trimmed.pop()
      return trimmed
    })
    .filter((element) => element.length > 0)
}

/** `1#token` with empty elements allowed; undefined if an element is not a single token. */
export function modelTokenList(value: ModelHeaderValue): string[] | undefined {
  const text = modelJoin(value)
  if (text === undefined) return []
  const list = elements(lex(text))
  if (list === undefined) return undefined
  const out: string[] = []
  for (const element of list) {
    if (element.length !== 1 || element[0]!.kind !== 'token') return undefined
    out.push(element[0].text)
  }
  return out
}

export function modelHasToken(value: ModelHeaderValue, wanted: string): boolean {
  const list = modelTokenList(value)
  return list !== undefined && list.some((t) => t.toLowerCase() === wanted.toLowerCase())
}

export interface ModelExtension {
  name: string
  params: Array<[string, string | true]>
}

/** Sec-WebSocket-Extensions (RFC 6455 §9.1); a quoted value must be a token once unescaped. */
export function modelParseExtensions(value: ModelHeaderValue): ModelExtension[] | undefined {
  const text = modelJoin(value)
  if (text === undefined) return []
  const list = elements(lex(text))
  if (list === undefined) return undefined
  const out: ModelExtension[] = []
  for (const element of list) {
    // Drop OWS around ';' and '=': the grammar allows it there and nowhere else.
    const parts = element.filter((l, i) => {
      if (l.kind !== 'ows') return true
      const before = element[i - 1]?.kind
      const after = element[i + 1]?.kind
      return !(before === ';' || before === '=' || after === ';' || after === '=')
    })
    const first = parts[0]
    if (first?.kind !== 'token') return undefined
    const extension: ModelExtension = { name: first.text, params: [] }
    let i = 1
    while (i < parts.length) {
      if (parts[i]!.kind !== ';') return undefined
      const name = parts[i + 1]
      if (name?.kind !== 'token') return undefined
      i += 2
      if (parts[i]?.kind === '=') {
        const v = parts[i + 1]
        if (v === undefined || (v.kind !== 'token' && v.kind !== 'quoted') || !modelIsToken(v.text)) return undefined
        extension.params.push([name.text, v.text])
        i += 2
      } else {
        extension.params.push([name.text, true])
      }
    }
    out.push(extension)
  }
  return out
}

/**
 * Whether an Upgrade header offers "websocket" (RFC 6455 §4.2.1 point 3,
 * case-insensitive). Its grammar is `1#protocol`, protocol = protocol-name
 * ["/" protocol-version] (RFC 7230 §6.7), so "h2c/1, websocket" offers it.
 */
export function modelUpgradeOffersWebsocket(value: ModelHeaderValue): boolean {
  const text = modelJoin(value)
  if (text === undefined) return false
  let found = false
  for (const raw of text.split(',')) {
    const element = trimOws(raw)
    if (element === '') continue
    const slash = element.indexOf('/')
    const name = slash === -1 ? element : element.slice(0, slash)
    if (!modelIsToken(name) || (slash !== -1 && !modelIsToken(element.slice(slash + 1)))) return false
    if (slash === -1 && name.toLowerCase() === 'websocket') found = true
  }
  return found
}
