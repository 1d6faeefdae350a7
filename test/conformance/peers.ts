/**
 * The raw peers of the conformance suite: a hand-written WebSocket client
 * (drives a tether server) and a hand-written WebSocket server (drives a
 * tether client), both over plain `net` sockets or as streams of HTTP/2
 * connections (RFC 8441, on Node's `http2`: `connectRawH2Client`,
 * `RawH2Server`), plus what they need to speak permessage-deflate themselves.
 *
 * Theory of operation: after the opening handshake, which each peer writes
 * and checks by hand (RFC 6455 §4), a connection is a `Wire`. A Wire writes
 * frames it builds itself (masked when the peer is the client, §5.3) in
 * exactly the pieces a case asks for, and parses everything the testee sends
 * with its own parser, independent of tether's. It records, with times:
 * every frame, the messages they form (inflated when compressed), protocol
 * violations by the testee, the close frames both ways and which side ended
 * TCP first.
 *
 * Rule 1 (the peer behaves like a correct endpoint around the close): a close
 * frame from the testee is answered with a close frame carrying its code
 * (§5.5.1) unless the peer already sent one; once both close frames have
 * passed, a peer that is the server ends TCP (§7.1.1: "the server MUST close
 * the underlying TCP connection immediately"), a peer that is the client
 * waits for the testee's FIN and only then ends its side.
 * Rule 2: nothing here waits without a bound; every wait resolves to a
 * boolean (reached or not) and the caller decides what that means.
 * Rule 3: a write after the peer answered the testee's close frame, ended
 * TCP, or lost the socket is skipped silently (a case may go on sending after
 * the testee gave up). A close frame the case itself sends does not stop the
 * steps: sending after one's own close is what some cases are about.
 */
import { createHash, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import net, { type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import zlib from 'node:zlib'
import { DeflateAuditor } from './inflate-audit.js'

export const HOST = '127.0.0.1'
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** RFC 7692 §7.2.1: the four octets a sync flush ends with; removed on the wire. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])
const EMPTY: Buffer = Buffer.alloc(0)
/** How long a server peer waits, after the closing handshake, before it ends TCP (ms). */
const FIN_GRACE = 5

export const Op = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const

export function now(): number {
  return performance.now()
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Lets the event loop run one turn (a poll phase), so a write just made is read by the testee before the next. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

// ------------------------------------------------------------------ frames

/** A frame a peer sends. `payload` is the unmasked payload. */
export interface FrameSpec {
  opcode: number
  payload?: Buffer
  /** Default true. */
  fin?: boolean
  /** RSV1..3 as a 3-bit number (RSV1 = 4). Default 0. */
  rsv?: number
}

/** Serializes a frame (RFC 6455 §5.2), masking the payload with a fresh random key when `mask`. */
export function serializeFrame(spec: FrameSpec, mask: boolean): Buffer {
  const payload = spec.payload ?? EMPTY
  const length = payload.length
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8
  const headerSize = 2 + extended + (mask ? 4 : 0)
  const out = Buffer.allocUnsafe(headerSize + length)
  out[0] = ((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f)
  const maskBit = mask ? 0x80 : 0
  if (extended === 0) out[1] = maskBit | length
  else if (extended === 2) {
    out[1] = maskBit | 126
    out.writeUInt16BE(length, 2)
  } else {
    out[1] = maskBit | 127
    out.writeBigUInt64BE(BigInt(length), 2)
  }
  if (!mask) {
    payload.copy(out, headerSize)
    return out
  }
  const key = randomBytes(4)
  key.copy(out, 2 + extended)
  xorInto(out, headerSize, payload, key)
  return out
}

/** out[at + i] = payload[i] ^ key[i % 4], four bytes at a time where possible. */
function xorInto(out: Buffer, at: number, payload: Uint8Array, key: Uint8Array): void {
  const length = payload.length
  const k0 = key[0]!
  const k1 = key[1]!
  const k2 = key[2]!
  const k3 = key[3]!
  const word = (k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)) >>> 0
  let i = 0
  const whole = length & ~3
  for (; i < whole; i += 4) {
    const value = (payload[i]! | (payload[i + 1]! << 8) | (payload[i + 2]! << 16) | (payload[i + 3]! << 24)) ^ word
    out[at + i] = value & 0xff
    out[at + i + 1] = (value >>> 8) & 0xff
    out[at + i + 2] = (value >>> 16) & 0xff
    out[at + i + 3] = (value >>> 24) & 0xff
  }
  for (; i < length; i++) out[at + i] = payload[i]! ^ key[i & 3]!
}

/** A close payload: 2-byte code and reason; code 1005 means an empty payload. */
export function closePayload(code: number, reason: Buffer | string = EMPTY): Buffer {
  if (code === 1005) return EMPTY
  const reasonBytes = typeof reason === 'string' ? Buffer.from(reason) : reason
  const out = Buffer.alloc(2 + reasonBytes.length)
  out.writeUInt16BE(code, 0)
  reasonBytes.copy(out, 2)
  return out
}

/** A frame as the peer received it from the testee (payload unmasked). */
export interface ReceivedFrame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  payload: Buffer
  at: number
}

/** What the testee sent, assembled: data messages, pongs and pings, in arrival order. */
export type ReceivedItem =
  | { type: 'text' | 'binary'; data: Buffer; compressed: boolean; frames: number; at: number }
  | { type: 'pong' | 'ping'; data: Buffer; at: number }

/** A FIFO of received chunks that never copies more than one frame's bytes. */
class ByteQueue {
  private chunks: Buffer[] = []
  private head = 0
  length = 0

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.length += chunk.length
  }

  /** The byte at `index` from the front. */
  byte(index: number): number {
    let i = this.head
    let chunk = this.chunks[i]!
    while (index >= chunk.length) {
      index -= chunk.length
      chunk = this.chunks[++i]!
    }
    return chunk[index]!
  }

  /** Removes and returns the first `n` bytes (one copy when they span chunks). */
  take(n: number): Buffer {
    if (n === 0) return EMPTY
    this.length -= n
    const first = this.chunks[this.head]!
    if (first.length >= n) {
      const out = first.subarray(0, n)
      if (first.length === n) this.shift()
      else this.chunks[this.head] = first.subarray(n)
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.chunks[this.head]!
      const part = Math.min(chunk.length, n - filled)
      chunk.copy(out, filled, 0, part)
      filled += part
      if (part === chunk.length) this.shift()
      else this.chunks[this.head] = chunk.subarray(part)
    }
    return out
  }

  private shift(): void {
    this.chunks[this.head] = EMPTY
    this.head++
    if (this.head > 1024) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}

// --------------------------------------------------------- permessage-deflate

/** The four parameters of RFC 7692 as both sides agreed on them. */
export interface DeflateAgreement {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number
  clientMaxWindowBits: number
}

/** One extension from a Sec-WebSocket-Extensions value: its name and parameters in order. */
export interface ParsedExtension {
  name: string
  params: Array<[string, string | true]>
}

/** A plain parser for Sec-WebSocket-Extensions (quoted values are unquoted); undefined if malformed. */
export function parseExtensionHeader(value: string | undefined): ParsedExtension[] | undefined {
  if (value === undefined) return []
  const out: ParsedExtension[] = []
  for (const element of value.split(',')) {
    if (element.trim() === '') continue
    const [name, ...rest] = element.split(';').map((part) => part.trim())
    if (!name || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return undefined
    const params: Array<[string, string | true]> = []
    for (const part of rest) {
      const eq = part.indexOf('=')
      if (eq === -1) params.push([part, true])
      else params.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')])
    }
    out.push({ name, params })
  }
  return out
}

/**
 * The peer's side of permessage-deflate: compresses what the peer sends
 * (with node:zlib, taking over context when allowed) and inflates what the
 * testee sends, checking it twice: node:zlib gives the bytes, and an
 * independent decoder (`DeflateAuditor`) checks that no back-reference
 * reaches past the negotiated window or, without context takeover, before
 * the message's first byte.
 */
export class PeerDeflate {
  /** Window bits and context takeover of the peer's own compressor. */
  private readonly sendBits: number
  private readonly sendTakeover: boolean
  private readonly recvTakeover: boolean
  private deflater: zlib.DeflateRaw | undefined
  private readonly received: Buffer[] = []
  private producedSoFar = 0
  private readonly auditor: DeflateAuditor

  constructor(options: { sendBits: number; sendTakeover: boolean; recvBits: number; recvTakeover: boolean }) {
    // zlib refuses an 8-bit window for raw DEFLATE and uses 9, whose references reach back at most
    // 250 bytes (2^9 - 262): still within what a peer that agreed on 8 accepts.
    this.sendBits = Math.max(9, options.sendBits)
    this.sendTakeover = options.sendTakeover
    this.recvTakeover = options.recvTakeover
    this.auditor = new DeflateAuditor(options.recvBits, options.recvTakeover)
  }

  /** Compresses one message as RFC 7692 §7.2.1 says: sync flush, then the tail removed. */
  async compress(data: Buffer): Promise<Buffer> {
    if (!this.sendTakeover) {
      const out = zlib.deflateRawSync(data, { windowBits: this.sendBits, finishFlush: zlib.constants.Z_SYNC_FLUSH })
      return stripTail(out)
    }
    const deflater = (this.deflater ??= zlib.createDeflateRaw({ windowBits: this.sendBits }))
    const chunks: Buffer[] = []
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
    }
    deflater.on('data', onData)
    deflater.write(data)
    await new Promise<void>((resolve) => deflater.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()))
    deflater.removeListener('data', onData)
    return stripTail(Buffer.concat(chunks))
  }

  /** Inflates one compressed message of the testee; throws with a short reason if it is not valid for the agreement. */
  inflate(payload: Buffer): Buffer {
    const audit = this.auditor.decodeMessage(payload)
    let data: Buffer
    try {
      if (this.recvTakeover) {
        this.received.push(payload, TAIL)
        const all = zlib.inflateRawSync(Buffer.concat(this.received), { windowBits: 15, finishFlush: zlib.constants.Z_SYNC_FLUSH })
        data = all.subarray(this.producedSoFar)
        this.producedSoFar = all.length
      } else {
        data = zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { windowBits: 15, finishFlush: zlib.constants.Z_SYNC_FLUSH })
      }
    } catch (error) {
      throw new Error(`compressed message does not inflate: ${(error as Error).message}`)
    }
    if (audit.problem !== undefined) throw new Error(audit.problem)
    if (!audit.data.equals(data)) throw new Error('independent DEFLATE decoder disagrees with zlib')
    return data
  }

  close(): void {
    this.deflater?.close()
    this.deflater = undefined
  }
}

function stripTail(out: Buffer): Buffer {
  if (out.length < 4 || !out.subarray(out.length - 4).equals(TAIL)) throw new Error('sync flush tail missing')
  return out.subarray(0, out.length - 4)
}

// -------------------------------------------------------------------- wire

export interface CloseInfo {
  code: number
  reason: Buffer
  at: number
}

/**
 * One connection as the raw peer sees it, after the opening handshake.
 * Events: 'change' after anything was recorded (frames, FIN, close).
 */
export class Wire extends EventEmitter {
  /** A TCP socket, or an HTTP/2 stream (RFC 8441: END_STREAM for FIN, RST_STREAM for a reset). */
  readonly socket: Duplex
  /** The peer is the client: it masks what it sends and expects unmasked frames. */
  readonly peerIsClient: boolean
  readonly started = now()
  readonly frames: ReceivedFrame[] = []
  readonly items: ReceivedItem[] = []
  /** What the testee did wrong on the wire, in order. */
  readonly violations: string[] = []
  /** The testee's close frame, if one came. */
  testeeClose: CloseInfo | undefined
  /** When the peer sent its close frame, and whether it was the answer to the testee's. */
  peerCloseAt: number | undefined
  peerAnsweredClose = false
  /** TCP: when the testee's FIN arrived, when the peer sent its FIN, when the socket closed. */
  testeeFinAt: number | undefined
  peerFinAt: number | undefined
  closedAt: number | undefined
  /** The testee ended TCP while the peer had not (yet) ended its side. */
  testeeEndedFirst = false
  transportError: string | undefined
  /** Set by the suite once permessage-deflate was agreed. */
  deflate: PeerDeflate | undefined
  private readonly queue = new ByteQueue()
  private finTimer: NodeJS.Timeout | undefined
  // A data message being assembled.
  private messageType: 'text' | 'binary' | undefined
  private messageParts: Buffer[] = []
  private messageCompressed = false
  private messageFrames = 0

  constructor(socket: Duplex, peerIsClient: boolean, initial: Buffer) {
    super()
    this.setMaxListeners(0)
    this.socket = socket
    this.peerIsClient = peerIsClient
    ;(socket as Partial<Socket>).setNoDelay?.(true)
    socket.on('data', (chunk: Buffer) => this.received(chunk))
    socket.on('end', () => this.testeeEnded())
    socket.on('close', () => {
      this.closedAt ??= now()
      this.emit('change')
    })
    socket.on('error', (error: Error) => {
      this.transportError ??= (error as NodeJS.ErrnoException).code ?? error.message
      this.emit('change')
    })
    if (initial.length > 0) queueMicrotask(() => this.received(initial))
  }

  /** Whether the peer can still write (Rule 3). */
  get writable(): boolean {
    return !this.socket.destroyed && !this.socket.writableEnded
  }

  /** Writes frames in one write; notes a close frame among them. */
  sendFrames(specs: readonly FrameSpec[]): void {
    this.write(Buffer.concat(specs.map((spec) => this.serialize(spec))))
  }

  /** The bytes of a frame as this peer puts it on the wire; notes a close frame. */
  serialize(spec: FrameSpec): Buffer {
    if (spec.opcode === Op.Close && this.peerCloseAt === undefined) this.peerCloseAt = now()
    return serializeFrame(spec, this.peerIsClient)
  }

  write(bytes: Buffer): void {
    // Rule 3, and §5.5.1: after answering the testee's close the peer sends nothing more.
    if (!this.writable || bytes.length === 0 || this.peerAnsweredClose) return
    this.socket.write(bytes)
  }

  /** Writes `bytes` in pieces of `chop` bytes; between pieces waits `pause` ms (0: one event-loop turn). */
  async writeChopped(bytes: Buffer, chop: number, pause: number | undefined): Promise<void> {
    for (let at = 0; at < bytes.length; at += chop) {
      this.write(bytes.subarray(at, at + chop))
      if (at + chop < bytes.length && pause !== undefined) await (pause === 0 ? turn() : delay(pause))
    }
  }

  /** Sends a close frame (if none was sent yet). */
  sendClose(code: number, reason: Buffer | string = EMPTY): void {
    if (this.peerCloseAt !== undefined) return
    this.sendFrames([{ opcode: Op.Close, payload: closePayload(code, reason) }])
    this.afterCloseFrames()
  }

  /** Ends the peer's side of TCP (FIN). */
  end(): void {
    if (this.socket.destroyed || this.socket.writableEnded) return
    this.peerFinAt = now()
    this.socket.end()
  }

  destroy(): void {
    clearTimeout(this.finTimer)
    this.socket.destroy()
    this.deflate?.close()
  }

  /** Resolves true once `predicate()` holds, false after `ms` (Rule 2). */
  until(predicate: () => boolean, ms: number): Promise<boolean> {
    if (predicate()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const check = (): void => {
        if (!predicate()) return
        finish(true)
      }
      const timer = setTimeout(() => finish(false), ms)
      const finish = (value: boolean): void => {
        clearTimeout(timer)
        this.removeListener('change', check)
        resolve(value)
      }
      this.on('change', check)
    })
  }

  /** The testee's close frame arrived, or it ended TCP, or the socket is gone. */
  get testeeGaveUp(): boolean {
    return this.testeeClose !== undefined || this.testeeFinAt !== undefined || this.closedAt !== undefined
  }

  /** Nothing more worth waiting for: the testee gave up, or it already broke the protocol. */
  get settled(): boolean {
    return this.testeeGaveUp || this.violations.length > 0
  }

  // ------------------------------------------------------------ receiving

  private received(chunk: Buffer): void {
    this.queue.push(chunk)
    try {
      while (this.parseOne()) {
        // one frame per round
      }
    } catch (error) {
      this.violation((error as Error).message)
      this.queue.take(this.queue.length)
    }
    this.emit('change')
  }

  /** Parses one whole frame if it has arrived. */
  private parseOne(): boolean {
    const queue = this.queue
    if (queue.length < 2) return false
    const b0 = queue.byte(0)
    const b1 = queue.byte(1)
    const length7 = b1 & 0x7f
    const masked = (b1 & 0x80) !== 0
    const headerSize = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (masked ? 4 : 0)
    if (queue.length < headerSize) return false
    let length = length7
    if (length7 === 126) length = (queue.byte(2) << 8) | queue.byte(3)
    else if (length7 === 127) {
      if (queue.byte(2) & 0x80) throw new Error('64-bit payload length with the top bit set')
      length = 0
      for (let i = 2; i < 10; i++) length = length * 256 + queue.byte(i)
    }
    if (queue.length < headerSize + length) return false
    const header = queue.take(headerSize)
    let payload = queue.take(length)
    if (masked) {
      const key = header.subarray(headerSize - 4, headerSize)
      const unmasked = Buffer.allocUnsafe(length)
      xorInto(unmasked, 0, payload, key)
      payload = unmasked
    } else {
      payload = Buffer.from(payload)
    }
    this.frameReceived({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload, at: now() })
    return true
  }

  private violation(text: string): void {
    if (this.violations.length < 8) this.violations.push(text)
  }

  /** Checks a testee frame against RFC 6455 §5 (and RFC 7692 §6 for RSV1), then files it. */
  private frameReceived(frame: ReceivedFrame): void {
    this.frames.push(frame)
    const { opcode } = frame
    const name = `opcode ${opcode}`
    if (this.testeeClose !== undefined) {
      this.violation(`a frame (${name}) after the testee's close frame`)
      return
    }
    // §5.1 / §5.3: a client masks every frame, a server none.
    if (frame.masked === this.peerIsClient) {
      this.violation(this.peerIsClient ? 'the server masked a frame' : 'the client sent an unmasked frame')
    }
    const rsv1Allowed = this.deflate !== undefined && (opcode === Op.Text || opcode === Op.Binary)
    if ((frame.rsv & 3) !== 0 || ((frame.rsv & 4) !== 0 && !rsv1Allowed)) this.violation(`reserved bits ${frame.rsv} set on ${name}`)
    if (opcode >= 0x8) {
      if (!frame.fin) this.violation(`fragmented control frame (${name})`)
      if (frame.payload.length > 125) this.violation(`control frame of ${frame.payload.length} bytes`)
    }
    switch (opcode) {
      case Op.Text:
      case Op.Binary:
        if (this.messageType !== undefined) {
          this.violation('a new data frame inside a fragmented message')
          return
        }
        this.messageType = opcode === Op.Text ? 'text' : 'binary'
        this.messageCompressed = (frame.rsv & 4) !== 0
        this.messageParts = [frame.payload]
        this.messageFrames = 1
        if (frame.fin) this.finishMessage(frame.at)
        return
      case Op.Continuation:
        if (this.messageType === undefined) {
          this.violation('a continuation frame with no message started')
          return
        }
        this.messageParts.push(frame.payload)
        this.messageFrames++
        if (frame.fin) this.finishMessage(frame.at)
        return
      case Op.Ping:
      case Op.Pong:
        this.items.push({ type: opcode === Op.Ping ? 'ping' : 'pong', data: frame.payload, at: frame.at })
        return
      case Op.Close:
        this.closeReceived(frame)
        return
      default:
        this.violation(`reserved ${name}`)
    }
  }

  private finishMessage(at: number): void {
    const type = this.messageType!
    let data = this.messageParts.length === 1 ? this.messageParts[0]! : Buffer.concat(this.messageParts)
    const compressed = this.messageCompressed
    const frames = this.messageFrames
    this.messageType = undefined
    this.messageParts = []
    if (compressed) {
      try {
        data = this.deflate!.inflate(data)
      } catch (error) {
        this.violation((error as Error).message)
        return
      }
    }
    // §8.1: a text message is UTF-8 (the testee must not send invalid text either).
    if (type === 'text' && !isUtf8(data)) this.violation('the testee sent a text message that is not valid UTF-8')
    this.items.push({ type, data, compressed, frames, at })
  }

  private closeReceived(frame: ReceivedFrame): void {
    const payload = frame.payload
    let code = 1005
    let reason = EMPTY
    if (payload.length === 1) this.violation('close frame with a 1-byte payload')
    else if (payload.length >= 2) {
      code = payload.readUInt16BE(0)
      reason = payload.subarray(2)
      // §7.4: 1005, 1006, 1015 and unassigned ranges never go on the wire.
      if (!sendableCode(code)) this.violation(`close code ${code} may not be sent (§7.4)`)
      if (!isUtf8(reason)) this.violation('close reason is not UTF-8')
    }
    this.testeeClose = { code, reason, at: frame.at }
    // A fragmented message the testee had not finished ends here (not a violation: an endpoint
    // may close in the middle of one); it is simply not delivered.
    this.messageType = undefined
    this.messageParts = []
    if (this.peerCloseAt === undefined) {
      // Rule 1: answer with the code received (an empty close with an empty one).
      const answer = code === 1005 || !sendableCode(code) ? 1005 : code
      this.sendFrames([{ opcode: Op.Close, payload: closePayload(answer) }])
      this.peerAnsweredClose = true
    }
    this.afterCloseFrames()
  }

  /**
   * Rule 1: a server peer ends TCP once both close frames have passed. It does so
   * after a grace of a few milliseconds: a client that ends TCP together with its
   * close frame, without waiting for the server, is then seen to end first instead
   * of racing the server's FIN through the same read. (A client that waits can
   * never be seen to end first, so the grace cannot make a correct client look bad.)
   */
  private afterCloseFrames(): void {
    if (this.peerIsClient || this.peerCloseAt === undefined || this.testeeClose === undefined || this.finTimer) return
    this.finTimer = setTimeout(() => this.end(), FIN_GRACE)
  }

  private testeeEnded(): void {
    this.testeeFinAt = now()
    if (this.peerFinAt === undefined) this.testeeEndedFirst = true
    // Complete the TCP close from our side (the sockets are half-open capable).
    this.end()
    this.emit('change')
  }
}

function sendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

/**
 * Whether `bytes` are well-formed UTF-8, checked by a round trip through the
 * WHATWG decoder (which replaces every ill-formed sequence with U+FFFD, so the
 * re-encoded bytes differ): deliberately not `buffer.isUtf8`, the check tether
 * itself relies on.
 */
export function isUtf8(bytes: Uint8Array): boolean {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return Buffer.from(view.toString('utf8'), 'utf8').equals(view)
}

// ------------------------------------------------------- opening handshakes

function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

/** Splits an HTTP head from what follows it; undefined until the blank line arrived. */
function splitHead(buffer: Buffer): { head: string; rest: Buffer } | undefined {
  const end = buffer.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  return { head: buffer.subarray(0, end + 4).toString('latin1'), rest: buffer.subarray(end + 4) }
}

/** A header's value in an HTTP head (several lines are joined with ", "), or undefined. */
export function headerOf(head: string, name: string): string | undefined {
  const values: string[] = []
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === name.toLowerCase()) values.push(line.slice(colon + 1).trim())
  }
  return values.length === 0 ? undefined : values.join(', ')
}

/** Reads an HTTP head from a socket within `ms`; the bytes after it are returned too. */
function readHead(socket: Socket, ms: number): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffer = EMPTY
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk])
      const split = splitHead(buffer)
      if (split) done(undefined, split)
      else if (buffer.length > 64 * 1024) done(new Error('HTTP head larger than 64 KiB'))
    }
    const onEnd = (): void => done(new Error('connection closed during the opening handshake'))
    const timer = setTimeout(() => done(new Error(`no HTTP head within ${ms} ms`)), ms)
    const done = (error: Error | undefined, value?: { head: string; rest: Buffer }): void => {
      clearTimeout(timer)
      socket.removeListener('data', onData)
      socket.removeListener('end', onEnd)
      socket.removeListener('close', onEnd)
      socket.pause()
      if (error) reject(error)
      else resolve(value!)
    }
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
  })
}

/**
 * The raw client (server role): connects, writes the upgrade request by
 * hand, checks the 101 answer (§4.1) and returns the Wire and the answer.
 */
export async function connectRawClient(
  port: number,
  options: { path: string; extensions?: string; ms: number },
): Promise<{ wire: Wire; head: string }> {
  const socket = net.connect({ port, host: HOST, allowHalfOpen: true })
  socket.on('error', () => {})
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connect timed out after ${options.ms} ms`)), options.ms)
      socket.once('connect', () => {
        clearTimeout(timer)
        resolve()
      })
      socket.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
    })
    const key = randomBytes(16).toString('base64')
    const lines = [
      `GET ${options.path} HTTP/1.1`,
      `Host: ${HOST}:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
    ]
    if (options.extensions !== undefined) lines.push(`Sec-WebSocket-Extensions: ${options.extensions}`)
    socket.write(lines.join('\r\n') + '\r\n\r\n')
    const { head, rest } = await readHead(socket, options.ms)
    const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]
    if (status !== '101') throw new Error(`the server answered ${head.split('\r\n')[0]}`)
    if (headerOf(head, 'upgrade')?.toLowerCase() !== 'websocket') throw new Error('101 without Upgrade: websocket')
    if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headerOf(head, 'connection') ?? '')) throw new Error('101 without Connection: Upgrade')
    if (headerOf(head, 'sec-websocket-accept') !== acceptFor(key)) throw new Error('wrong Sec-WebSocket-Accept')
    const wire = new Wire(socket, true, rest)
    socket.resume()
    return { wire, head }
  } catch (error) {
    socket.destroy()
    throw error
  }
}

/** What the raw server answers to an upgrade request: extra headers, or undefined for a plain 101. */
export type Answer = (requestHead: string) => { extensions?: string }

/**
 * The raw server (client role): accepts one connection per `accept()` call,
 * checks the client's upgrade request by hand (§4.1, §4.2.1), answers 101
 * and returns the Wire.
 */
export class RawServer {
  readonly server: net.Server
  private waiting: { answer: Answer; ms: number; resolve: (value: { wire: Wire; head: string }) => void; reject: (error: Error) => void } | undefined
  private readonly sockets = new Set<Socket>()

  constructor() {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.connection(socket))
  }

  async listen(): Promise<number> {
    this.server.listen(0, HOST)
    await new Promise<void>((resolve, reject) => {
      this.server.once('listening', resolve)
      this.server.once('error', reject)
    })
    return (this.server.address() as AddressInfo).port
  }

  /** The next connection, answered with `answer`; rejects after `ms`. */
  accept(answer: Answer, ms: number): Promise<{ wire: Wire; head: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined
        reject(new Error(`no upgrade request within ${ms} ms`))
      }, ms)
      this.waiting = {
        answer,
        ms,
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
    })
  }

  private connection(socket: Socket): void {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => {})
    const waiting = this.waiting
    this.waiting = undefined
    if (waiting === undefined) {
      socket.destroy()
      return
    }
    readHead(socket, waiting.ms).then(
      ({ head, rest }) => {
        const problem = checkRequest(head)
        if (problem !== undefined) {
          socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
          waiting.reject(new Error(`bad upgrade request: ${problem}`))
          return
        }
        const { extensions } = waiting.answer(head)
        const lines = [
          'HTTP/1.1 101 Switching Protocols',
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Accept: ${acceptFor(headerOf(head, 'sec-websocket-key')!)}`,
        ]
        if (extensions !== undefined) lines.push(`Sec-WebSocket-Extensions: ${extensions}`)
        socket.write(lines.join('\r\n') + '\r\n\r\n')
        const wire = new Wire(socket, false, rest)
        socket.resume()
        waiting.resolve({ wire, head })
      },
      (error: Error) => {
        socket.destroy()
        waiting.reject(error)
      },
    )
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** What RFC 6455 §4.1 requires of a client's opening handshake; undefined when it is right. */
function checkRequest(head: string): string | undefined {
  if (!/^GET \S+ HTTP\/1\.1\r\n/.test(head)) return 'not a GET with HTTP/1.1'
  if (headerOf(head, 'host') === undefined) return 'no Host'
  if (!/(^|,)\s*websocket\s*(,|$)/i.test(headerOf(head, 'upgrade') ?? '')) return 'no Upgrade: websocket'
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headerOf(head, 'connection') ?? '')) return 'no Connection: Upgrade'
  if (headerOf(head, 'sec-websocket-version') !== '13') return 'Sec-WebSocket-Version is not 13'
  const key = headerOf(head, 'sec-websocket-key') ?? ''
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key) || Buffer.from(key, 'base64').length !== 16) return 'Sec-WebSocket-Key is not 16 bytes in base64'
  return undefined
}

// ------------------------------------------------ HTTP/2 streams (RFC 8441)

/** An HTTP/2 answer or request as an HTTP/1-style head, so that `headerOf` reads its fields. */
function headOf(firstLine: string, fields: IncomingHttpHeaders): string {
  const lines = [firstLine]
  for (const [name, value] of Object.entries(fields)) {
    if (name.startsWith(':') || value === undefined) continue
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`)
  }
  return lines.join('\r\n') + '\r\n\r\n'
}

/**
 * The raw client over HTTP/2 (server role): an extended CONNECT on `session`
 * (RFC 8441 §4, §5), checks the 200 (no Sec-WebSocket-Accept), and returns
 * the Wire over the stream and the answer as a head.
 */
export async function connectRawH2Client(
  session: ClientHttp2Session,
  authority: string,
  options: { path: string; extensions?: string; ms: number },
): Promise<{ wire: Wire; head: string }> {
  const fields: Record<string, string> = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'http',
    ':path': options.path,
    ':authority': authority,
    'sec-websocket-version': '13',
  }
  if (options.extensions !== undefined) fields['sec-websocket-extensions'] = options.extensions
  const stream = session.request(fields, { endStream: false })
  stream.on('error', () => {})
  try {
    const answer = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to the CONNECT within ${options.ms} ms`)), options.ms)
      stream.once('response', (headers) => {
        clearTimeout(timer)
        resolve(headers)
      })
      stream.once('close', () => {
        clearTimeout(timer)
        reject(new Error(`the stream closed during the opening handshake (code ${stream.rstCode})`))
      })
    })
    const status = Number(answer[':status'])
    if (status !== 200) throw new Error(`the server answered ${status}`)
    if (answer['sec-websocket-accept'] !== undefined) throw new Error('Sec-WebSocket-Accept in an HTTP/2 answer (RFC 8441 §5)')
    return { wire: new Wire(stream, true, EMPTY), head: headOf(`HTTP/2 ${status}`, answer) }
  } catch (error) {
    stream.destroy()
    throw error
  }
}

/**
 * The raw server over HTTP/2 (client role): a clear-text HTTP/2 server (h2c)
 * that sends SETTINGS_ENABLE_CONNECT_PROTOCOL, answers one extended CONNECT
 * per `accept()` call with 200 after checking it by hand, and returns the
 * Wire over its stream.
 */
export class RawH2Server {
  readonly server: http2.Http2Server
  private waiting: { answer: Answer; resolve: (value: { wire: Wire; head: string }) => void; reject: (error: Error) => void } | undefined
  private readonly sessions = new Set<http2.ServerHttp2Session>()

  constructor() {
    this.server = http2.createServer({ settings: { enableConnectProtocol: true } })
    this.server.on('session', (session) => {
      this.sessions.add(session)
      session.on('close', () => this.sessions.delete(session))
      session.on('error', () => {})
    })
    this.server.on('stream', (stream, headers) => this.stream(stream, headers))
  }

  async listen(): Promise<number> {
    this.server.listen(0, HOST)
    await new Promise<void>((resolve, reject) => {
      this.server.once('listening', resolve)
      this.server.once('error', reject)
    })
    return (this.server.address() as AddressInfo).port
  }

  /** The next extended CONNECT, answered with `answer`; rejects after `ms`. */
  accept(answer: Answer, ms: number): Promise<{ wire: Wire; head: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined
        reject(new Error(`no extended CONNECT within ${ms} ms`))
      }, ms)
      this.waiting = {
        answer,
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
    })
  }

  private stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {})
    const waiting = this.waiting
    this.waiting = undefined
    if (waiting === undefined) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
      return
    }
    const head = headOf(`${headers[':method']} ${headers[':path']} HTTP/2`, headers)
    const problem =
      headers[':method'] !== 'CONNECT' ? 'not a CONNECT'
        : headers[':protocol'] !== 'websocket' ? 'no :protocol websocket'
          : headers[':scheme'] === undefined || headers[':path'] === undefined ? 'no :scheme or :path'
            : headers['sec-websocket-version'] !== '13' ? 'Sec-WebSocket-Version is not 13'
              : undefined
    if (problem !== undefined) {
      stream.respond({ ':status': 400 }, { endStream: true })
      waiting.reject(new Error(`bad extended CONNECT: ${problem}`))
      return
    }
    const { extensions } = waiting.answer(head)
    stream.respond(extensions === undefined ? { ':status': 200 } : { ':status': 200, 'sec-websocket-extensions': extensions })
    waiting.resolve({ wire: new Wire(stream, false, EMPTY), head })
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
