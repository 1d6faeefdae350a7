/**
 * The `tether.v1` subprotocol: reliable delivery over one WebSocket. Pure
 * code with no imports (no Node, no DOM), so that the same module runs in
 * the server and, unbundled, in a browser.
 *
 * Theory of operation: each WebSocket message carries one protocol message.
 * A binary message starts with a type octet, then the fields of that type:
 * unsigned integers as LEB128 varints (up to 2^53 - 1), strings as a varint
 * length and UTF-8, and a payload, when there is one, as the rest of the
 * message (so a payload is never copied to be parsed, and may be binary).
 * The same messages have a JSON form for debugging (`tether.v1.json`), with
 * binary payloads in base64 (`data64`). Either side accepts both forms; a
 * server answers in the form of the negotiated subprotocol.
 *
 * Positions: every message published on a topic with history gets a
 * position `{ epoch, offset }`. Offsets count up by one per message of the
 * topic within an epoch; the epoch changes when the history was lost (a
 * broker that restarted empty), so a position from an old epoch cannot be
 * mistaken for one of the new. An empty epoch with offset 0 means "nothing
 * seen yet".
 *
 * Rule 1: parsing never throws; bytes it cannot read give a `ParseFailure`
 * naming what was wrong.
 * Rule 2: a parsed message has checked types and ranges (an offset is a
 * safe integer, a string is valid UTF-8); what a server allows (topic
 * length, permissions) is the server's business.
 */

/** The subprotocol with binary messages, and its JSON form for debugging. */
export const PROTOCOL = 'tether.v1'
export const PROTOCOL_JSON = 'tether.v1.json'

export interface Position {
  /** Changes when the topic's history was lost; `''` before anything was published. */
  epoch: string
  /** The message's number in its epoch, from 1; 0 means "before the first". */
  offset: number
}

/** Why a gap: what could not be recovered. */
export const GapReason = {
  /** The history no longer reaches back to the position: `count` messages are gone. */
  Expired: 'expired',
  /** The position's epoch is not the topic's: its history was lost (count unknown). */
  Reset: 'reset',
  /** The position is past the newest message the server knows of (count unknown). */
  Ahead: 'ahead',
} as const
export type GapReason = (typeof GapReason)[keyof typeof GapReason]

/** The codes of `error` messages (stable; documented in docs/design.md). */
export const ErrorCode = {
  /** The message could not be parsed; the server closes the connection with 1008 after saying so. */
  BadMessage: 'bad-message',
  /** Parsed, but a field is out of range (an empty or too long topic, a subscription twice). */
  BadRequest: 'bad-request',
  /** The client may not subscribe to, or publish on, that topic. */
  NotAllowed: 'not-allowed',
  /** The topic keeps no history, so it is not served over tether.v1. */
  NoHistory: 'no-history',
  /** Too many subscriptions, or publishes waiting for the broker, on this connection. */
  Limit: 'limit',
  /** Over the publish rate: this publish was dropped. */
  RateLimited: 'rate-limited',
  /** The broker did not take the publish (or did not say so in time): publish it again (with the same key). */
  Unavailable: 'unavailable',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

export type ClientMessage =
  | {
      type: 'subscribe'
      /** Echoed in the answer (`subscribed` or `error`). */
      id: number
      topic: string
      /** Resume after this position (the last one delivered to the application). */
      from?: Position | undefined
      /** Without `from`: also deliver up to this many of the newest retained messages. */
      recent?: number | undefined
    }
  | { type: 'unsubscribe'; id: number; topic: string }
  | {
      type: 'publish'
      /** 0: no answer wanted; otherwise `published` or `error` with this id. */
      id: number
      topic: string
      data: Uint8Array
      binary: boolean
      /** An idempotency key: the same key on the same topic is published once (within the history window). */
      key?: string | undefined
    }

export type ServerMessage =
  | {
      type: 'subscribed'
      id: number
      topic: string
      /** Where delivery stands: the last message delivered for this subscription, or the topic's newest. */
      position: Position
      /** How many retained messages were delivered before this answer. */
      recovered: number
    }
  | { type: 'unsubscribed'; id: number; topic: string }
  | { type: 'deliver'; topic: string; position: Position; data: Uint8Array; binary: boolean }
  | {
      type: 'gap'
      topic: string
      reason: GapReason
      /** Messages that will never be delivered; undefined when nobody can know. */
      count: number | undefined
      /** The position the client asked for (or had). */
      from: Position
      /** Delivery continues after this position. */
      to: Position
    }
  | { type: 'published'; id: number; topic: string; position: Position }
  | { type: 'error'; id: number; code: ErrorCode | string; message: string; topic: string }

/** What a parser returns for bytes or text it could not read (Rule 1). */
export interface ParseFailure {
  type: 'invalid'
  reason: string
}

const T_SUBSCRIBE = 0x01
const T_UNSUBSCRIBE = 0x02
const T_PUBLISH = 0x03
const T_SUBSCRIBED = 0x81
const T_UNSUBSCRIBED = 0x82
const T_DELIVER = 0x83
const T_GAP = 0x84
const T_PUBLISHED = 0x85
const T_ERROR = 0x86

const F_FROM = 1
const F_RECENT = 2
const F_BINARY = 1
const F_KEY = 2

const GAP_REASONS: readonly GapReason[] = [GapReason.Expired, GapReason.Reset, GapReason.Ahead]

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

// ---------------------------------------------------------------------------
// Binary writing

/** A growable byte writer; one per message. */
class Writer {
  bytes: Uint8Array
  length = 0

  constructor(size: number) {
    this.bytes = new Uint8Array(size)
  }

  #reserve(more: number): void {
    if (this.length + more <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + more))
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  byte(value: number): void {
    this.#reserve(1)
    this.bytes[this.length++] = value
  }

  /** An unsigned integer up to 2^53 - 1 as LEB128. */
  varint(value: number): void {
    this.#reserve(8)
    let rest = value
    while (rest >= 0x80) {
      this.bytes[this.length++] = (rest % 0x80) | 0x80
      rest = Math.floor(rest / 0x80)
    }
    this.bytes[this.length++] = rest
  }

  string(value: string): void {
    // At most 3 bytes per UTF-16 unit.
    this.#reserve(8 + value.length * 3)
    const start = this.length
    // Room for the longest length prefix the string can need, then moved back.
    const prefix = varintSize(value.length * 3)
    const { written } = encoder.encodeInto(value, this.bytes.subarray(start + prefix))
    const actual = varintSize(written)
    if (actual !== prefix) this.bytes.copyWithin(start + actual, start + prefix, start + prefix + written)
    this.varint(written)
    this.length = start + actual + written
  }

  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length)
    this.bytes.set(bytes, this.length)
    this.length += bytes.length
  }

  position(position: Position): void {
    this.string(position.epoch)
    this.varint(position.offset)
  }

  done(): Uint8Array {
    return this.bytes.subarray(0, this.length)
  }
}

function varintSize(value: number): number {
  let size = 1
  while (value >= 0x80) {
    value = Math.floor(value / 0x80)
    size++
  }
  return size
}

/** A client message as binary (`tether.v1`). */
export function serializeClientMessage(message: ClientMessage): Uint8Array {
  if (message.type === 'publish') {
    const writer = new Writer(16 + message.topic.length * 3 + (message.key?.length ?? 0) * 3 + message.data.length)
    writer.byte(T_PUBLISH)
    writer.varint(message.id)
    writer.byte((message.binary ? F_BINARY : 0) | (message.key !== undefined ? F_KEY : 0))
    writer.string(message.topic)
    if (message.key !== undefined) writer.string(message.key)
    writer.raw(message.data)
    return writer.done()
  }
  const writer = new Writer(32 + message.topic.length * 3)
  if (message.type === 'subscribe') {
    writer.byte(T_SUBSCRIBE)
    writer.varint(message.id)
    writer.byte((message.from !== undefined ? F_FROM : 0) | (message.recent !== undefined ? F_RECENT : 0))
    writer.string(message.topic)
    if (message.from !== undefined) writer.position(message.from)
    if (message.recent !== undefined) writer.varint(message.recent)
  } else {
    writer.byte(T_UNSUBSCRIBE)
    writer.varint(message.id)
    writer.string(message.topic)
  }
  return writer.done()
}

/** A server message as binary (`tether.v1`). */
export function serializeServerMessage(message: ServerMessage): Uint8Array {
  switch (message.type) {
    case 'deliver': {
      const writer = new Writer(24 + (message.topic.length + message.position.epoch.length) * 3 + message.data.length)
      writer.byte(T_DELIVER)
      writer.byte(message.binary ? F_BINARY : 0)
      writer.string(message.topic)
      writer.position(message.position)
      writer.raw(message.data)
      return writer.done()
    }
    case 'subscribed': {
      const writer = new Writer(64)
      writer.byte(T_SUBSCRIBED)
      writer.varint(message.id)
      writer.string(message.topic)
      writer.position(message.position)
      writer.varint(message.recovered)
      return writer.done()
    }
    case 'unsubscribed': {
      const writer = new Writer(32)
      writer.byte(T_UNSUBSCRIBED)
      writer.varint(message.id)
      writer.string(message.topic)
      return writer.done()
    }
    case 'gap': {
      const writer = new Writer(64)
      writer.byte(T_GAP)
      writer.string(message.topic)
      writer.byte(GAP_REASONS.indexOf(message.reason))
      // 0: unknown; n + 1: n messages.
      writer.varint(message.count === undefined ? 0 : message.count + 1)
      writer.position(message.from)
      writer.position(message.to)
      return writer.done()
    }
    case 'published': {
      const writer = new Writer(48)
      writer.byte(T_PUBLISHED)
      writer.varint(message.id)
      writer.string(message.topic)
      writer.position(message.position)
      return writer.done()
    }
    case 'error': {
      const writer = new Writer(64 + message.message.length * 3)
      writer.byte(T_ERROR)
      writer.varint(message.id)
      writer.string(message.code)
      writer.string(message.message)
      writer.string(message.topic)
      return writer.done()
    }
  }
}

// ---------------------------------------------------------------------------
// Binary reading

class Truncated extends Error {}

class Reader {
  readonly #bytes: Uint8Array
  offset = 0

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
  }

  byte(): number {
    if (this.offset >= this.#bytes.length) throw new Truncated('truncated message')
    return this.#bytes[this.offset++]!
  }

  varint(): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const byte = this.byte()
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) throw new Truncated('an integer past 2^53 - 1')
        return value
      }
      scale *= 0x80
    }
    throw new Truncated('an integer past 2^53 - 1')
  }

  string(): string {
    const length = this.varint()
    if (this.offset + length > this.#bytes.length) throw new Truncated('truncated string')
    const bytes = this.#bytes.subarray(this.offset, this.offset + length)
    this.offset += length
    try {
      return decoder.decode(bytes)
    } catch {
      throw new Truncated('a string that is not UTF-8')
    }
  }

  position(): Position {
    const epoch = this.string()
    return { epoch, offset: this.varint() }
  }

  rest(): Uint8Array {
    const rest = this.#bytes.subarray(this.offset)
    this.offset = this.#bytes.length
    return rest
  }

  end(): void {
    if (this.offset !== this.#bytes.length) throw new Truncated('bytes after the message')
  }
}

function readBinary<T>(bytes: Uint8Array, read: (reader: Reader, type: number) => T | ParseFailure): T | ParseFailure {
  if (bytes.length === 0) return { type: 'invalid', reason: 'an empty message' }
  const reader = new Reader(bytes)
  try {
    return read(reader, reader.byte())
  } catch (error) {
    if (error instanceof Truncated) return { type: 'invalid', reason: error.message }
    throw error
  }
}

function parseClientBinary(bytes: Uint8Array): ClientMessage | ParseFailure {
  return readBinary<ClientMessage>(bytes, (reader, type) => {
    if (type === T_SUBSCRIBE) {
      const id = reader.varint()
      const flags = reader.byte()
      const topic = reader.string()
      const from = (flags & F_FROM) !== 0 ? reader.position() : undefined
      const recent = (flags & F_RECENT) !== 0 ? reader.varint() : undefined
      reader.end()
      return { type: 'subscribe', id, topic, from, recent }
    }
    if (type === T_UNSUBSCRIBE) {
      const id = reader.varint()
      const topic = reader.string()
      reader.end()
      return { type: 'unsubscribe', id, topic }
    }
    if (type === T_PUBLISH) {
      const id = reader.varint()
      const flags = reader.byte()
      const topic = reader.string()
      const key = (flags & F_KEY) !== 0 ? reader.string() : undefined
      const binary = (flags & F_BINARY) !== 0
      const data = reader.rest()
      // Rule 2: a text payload is UTF-8, as a WebSocket text message would be.
      if (!binary && !isUtf8(data)) return { type: 'invalid', reason: 'a text payload that is not UTF-8' }
      return { type: 'publish', id, topic, key, binary, data }
    }
    return { type: 'invalid', reason: `unknown message type 0x${type.toString(16)}` }
  })
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    decoder.decode(bytes)
    return true
  } catch {
    return false
  }
}

function parseServerBinary(bytes: Uint8Array): ServerMessage | ParseFailure {
  return readBinary<ServerMessage>(bytes, (reader, type) => {
    switch (type) {
      case T_DELIVER: {
        const flags = reader.byte()
        const topic = reader.string()
        const position = reader.position()
        return { type: 'deliver', topic, position, binary: (flags & F_BINARY) !== 0, data: reader.rest() }
      }
      case T_SUBSCRIBED: {
        const id = reader.varint()
        const topic = reader.string()
        const position = reader.position()
        const recovered = reader.varint()
        reader.end()
        return { type: 'subscribed', id, topic, position, recovered }
      }
      case T_UNSUBSCRIBED: {
        const id = reader.varint()
        const topic = reader.string()
        reader.end()
        return { type: 'unsubscribed', id, topic }
      }
      case T_GAP: {
        const topic = reader.string()
        const reason = GAP_REASONS[reader.byte()]
        if (reason === undefined) return { type: 'invalid', reason: 'unknown gap reason' }
        const count = reader.varint()
        const from = reader.position()
        const to = reader.position()
        reader.end()
        return { type: 'gap', topic, reason, count: count === 0 ? undefined : count - 1, from, to }
      }
      case T_PUBLISHED: {
        const id = reader.varint()
        const topic = reader.string()
        const position = reader.position()
        reader.end()
        return { type: 'published', id, topic, position }
      }
      case T_ERROR: {
        const id = reader.varint()
        const code = reader.string()
        const message = reader.string()
        const topic = reader.string()
        reader.end()
        return { type: 'error', id, code, message, topic }
      }
      default:
        return { type: 'invalid', reason: `unknown message type 0x${type.toString(16)}` }
    }
  })
}

// ---------------------------------------------------------------------------
// JSON (tether.v1.json)

type Json = Record<string, unknown>

function positionJson(position: Position): Json {
  return { epoch: position.epoch, offset: position.offset }
}

function payloadJson(data: Uint8Array, binary: boolean): Json {
  return binary ? { data64: toBase64(data) } : { data: decoder.decode(data) }
}

/** A client message as JSON text (`tether.v1.json`). */
export function serializeClientMessageJson(message: ClientMessage): string {
  if (message.type === 'publish') {
    return JSON.stringify({
      type: 'publish',
      id: message.id,
      topic: message.topic,
      ...(message.key !== undefined ? { key: message.key } : {}),
      ...payloadJson(message.data, message.binary),
    })
  }
  if (message.type === 'subscribe') {
    return JSON.stringify({
      type: 'subscribe',
      id: message.id,
      topic: message.topic,
      ...(message.from !== undefined ? { from: positionJson(message.from) } : {}),
      ...(message.recent !== undefined ? { recent: message.recent } : {}),
    })
  }
  return JSON.stringify({ type: 'unsubscribe', id: message.id, topic: message.topic })
}

/** A server message as JSON text (`tether.v1.json`). */
export function serializeServerMessageJson(message: ServerMessage): string {
  switch (message.type) {
    case 'deliver':
      return JSON.stringify({ type: 'deliver', topic: message.topic, position: positionJson(message.position), ...payloadJson(message.data, message.binary) })
    case 'gap':
      return JSON.stringify({
        type: 'gap',
        topic: message.topic,
        reason: message.reason,
        count: message.count ?? null,
        from: positionJson(message.from),
        to: positionJson(message.to),
      })
    default:
      return JSON.stringify(message)
  }
}

class Invalid extends Error {}

function field<T>(object: Json, name: string, check: (value: unknown) => value is T, what: string): T {
  const value = object[name]
  if (!check(value)) throw new Invalid(`"${name}" must be ${what}`)
  return value
}

function optional<T>(object: Json, name: string, check: (value: unknown) => value is T, what: string): T | undefined {
  return object[name] === undefined ? undefined : field(object, name, check, what)
}

const isString = (value: unknown): value is string => typeof value === 'string'
const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

function positionField(object: Json, name: string): Position {
  const value = field(object, name, isObject, 'an object { epoch, offset }')
  return { epoch: field(value, 'epoch', isString, 'a string'), offset: field(value, 'offset', isCount, 'a whole number, 0 or more') }
}

function payloadField(object: Json): { data: Uint8Array; binary: boolean } {
  if (object.data64 !== undefined && object.data !== undefined) throw new Invalid('"data" and "data64" together: send one')
  if (object.data64 !== undefined) {
    const bytes = fromBase64(field(object, 'data64', isString, 'base64 text'))
    if (bytes === undefined) throw new Invalid('"data64" must be base64 text')
    return { data: bytes, binary: true }
  }
  return { data: encoder.encode(field(object, 'data', isString, 'a string (or binary data as "data64")')), binary: false }
}

function readJson<T>(text: string, read: (object: Json, type: unknown) => T | ParseFailure): T | ParseFailure {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { type: 'invalid', reason: 'not JSON' }
  }
  if (!isObject(value)) return { type: 'invalid', reason: 'not a JSON object' }
  try {
    return read(value, value.type)
  } catch (error) {
    if (error instanceof Invalid) return { type: 'invalid', reason: error.message }
    throw error
  }
}

function parseClientJson(text: string): ClientMessage | ParseFailure {
  return readJson<ClientMessage>(text, (object, type) => {
    if (type !== 'subscribe' && type !== 'unsubscribe' && type !== 'publish') return { type: 'invalid', reason: '"type" must be subscribe, unsubscribe or publish' }
    const id = field(object, 'id', isCount, 'a whole number, 0 or more')
    const topic = field(object, 'topic', isString, 'a string')
    if (type === 'subscribe') {
      const from = object.from === undefined ? undefined : positionField(object, 'from')
      return { type, id, topic, from, recent: optional(object, 'recent', isCount, 'a whole number, 0 or more') }
    }
    if (type === 'unsubscribe') return { type, id, topic }
    return { type, id, topic, key: optional(object, 'key', isString, 'a string'), ...payloadField(object) }
  })
}

function parseServerJson(text: string): ServerMessage | ParseFailure {
  return readJson<ServerMessage>(text, (object, type) => {
    switch (type) {
      case 'deliver':
        return { type, topic: field(object, 'topic', isString, 'a string'), position: positionField(object, 'position'), ...payloadField(object) }
      case 'subscribed':
        return {
          type,
          id: field(object, 'id', isCount, 'a count'),
          topic: field(object, 'topic', isString, 'a string'),
          position: positionField(object, 'position'),
          recovered: field(object, 'recovered', isCount, 'a count'),
        }
      case 'unsubscribed':
        return { type, id: field(object, 'id', isCount, 'a count'), topic: field(object, 'topic', isString, 'a string') }
      case 'gap': {
        const reason = field(object, 'reason', (value): value is GapReason => GAP_REASONS.includes(value as GapReason), 'a gap reason')
        const count = object.count === null ? undefined : optional(object, 'count', isCount, 'a count or null')
        return { type, topic: field(object, 'topic', isString, 'a string'), reason, count, from: positionField(object, 'from'), to: positionField(object, 'to') }
      }
      case 'published':
        return { type, id: field(object, 'id', isCount, 'a count'), topic: field(object, 'topic', isString, 'a string'), position: positionField(object, 'position') }
      case 'error':
        return {
          type,
          id: field(object, 'id', isCount, 'a count'),
          code: field(object, 'code', isString, 'a string'),
          message: field(object, 'message', isString, 'a string'),
          topic: optional(object, 'topic', isString, 'a string') ?? '',
        }
      default:
        return { type: 'invalid', reason: 'unknown "type"' }
    }
  })
}

/** A message from a client: binary (`tether.v1`) or JSON text (`tether.v1.json`). Never throws (Rule 1). */
export function parseClientMessage(data: Uint8Array | string, isBinary: boolean): ClientMessage | ParseFailure {
  if (typeof data === 'string') return parseClientJson(data)
  if (isBinary) return parseClientBinary(data)
  let text: string
  try {
    text = decoder.decode(data)
  } catch {
    return { type: 'invalid', reason: 'text that is not UTF-8' }
  }
  return parseClientJson(text)
}

/** A message from a server: binary or JSON text. Never throws (Rule 1). */
export function parseServerMessage(data: Uint8Array | string): ServerMessage | ParseFailure {
  return typeof data === 'string' ? parseServerJson(data) : parseServerBinary(data)
}

// ---------------------------------------------------------------------------
// Base64 (standard alphabet, padded), without Buffer or atob so that it runs anywhere.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const VALUES = new Int16Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) VALUES[ALPHABET.charCodeAt(i)] = i

export function toBase64(bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!
  }
  if (i + 1 === bytes.length) {
    const n = bytes[i]! << 16
    out += `${ALPHABET[n >> 18]!}${ALPHABET[(n >> 12) & 63]!}==`
  } else if (i + 2 === bytes.length) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += `${ALPHABET[n >> 18]!}${ALPHABET[(n >> 12) & 63]!}${ALPHABET[(n >> 6) & 63]!}=`
  }
  return out
}

/** The bytes of base64 text, or undefined when it is not base64. */
export function fromBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0
  const out = new Uint8Array((text.length / 4) * 3 - padding)
  let o = 0
  for (let i = 0; i < text.length; i += 4) {
    let n = 0
    for (let j = 0; j < 4; j++) {
      const code = text.charCodeAt(i + j)
      const last = i + 4 === text.length
      if (code === 61 /* = */ && last && j >= 4 - padding) {
        n <<= 6
        continue
      }
      const value = code < 128 ? VALUES[code]! : -1
      if (value < 0) return undefined
      n = (n << 6) | value
    }
    if (o < out.length) out[o++] = (n >> 16) & 255
    if (o < out.length) out[o++] = (n >> 8) & 255
    if (o < out.length) out[o++] = n & 255
  }
  return out
}
