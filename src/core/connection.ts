/**
 * A WebSocket connection after its opening handshake, without I/O
 * (RFC 6455 §5-§7): bytes in, events and bytes out.
 *
 * Theory of operation: the transport feeds received bytes to `receiveData`
 * and the end of input to `receiveEof`; the application calls `send*`. After
 * each call the transport collects `eventsReceived()` to dispatch,
 * `dataToSend()` to write, `eofToSend()` to half-close, and asks
 * `closeExpected()` whether to arm a close timer. Nothing here reads a clock,
 * opens a socket or throws because of what a peer sent.
 *
 * Rule 1: a peer's protocol violation becomes state, never an exception:
 * `failConnection` records the error, emits an `error` event, sends a close
 * frame with the error's code and asks the transport to close (§7.1.7). Input
 * after that point is discarded.
 * Rule 2: the closing handshake is kept as values (`closeSent`,
 * `closeReceived`, `receivedThenSent`); the result reported in `closed` is
 * derived from them.
 * Rule 3: "The server MUST close the underlying TCP connection immediately"
 * after the handshake completes (§7.1.1 and §5.5.1: the server closes first);
 * the client waits for the server's EOF, with a timer the transport arms.
 * Rule 4: limits are checked against the declared length in each frame
 * header, before any of its payload is buffered.
 * Rule 5: a close frame the connection writes on its own (the answer to a
 * peer's close, or the close of a failure) goes out after whatever the
 * application sends while handling the events received before it. Input is
 * parsed a whole read at a time, so a message and the close frame (or the bad
 * frame) behind it can arrive together; the application sees the message only
 * once `eventsReceived()` hands it out, after the close was parsed. Such a
 * close frame is therefore held while events received before it wait to be
 * handed out, and written at the next `dataToSend()`; until then data may
 * still be sent (`canSend`), as it could in an implementation that dispatches
 * while parsing. "An endpoint MAY delay sending a Close frame until its
 * current message is sent" (§5.5.1).
 * Rule 6: a header is judged on what its first two bytes and the message in
 * progress say (reserved bits, opcode, control-frame rules, mask: 1002)
 * before its 64-bit length is (top bit set: 1002; above 2^53 - 1: 1009). A
 * ping announcing 2^60 bytes breaks §5.5 ("125 bytes or less"); it is not
 * a message too big to process.
 * Rule 7: automatic pongs never pile up. While the transport says its output
 * is blocked (`setOutputBlocked`: the peer is not reading), a ping's answer
 * waits as one pending pong, and a newer ping replaces its payload: "If an
 * endpoint receives a Ping frame and has not yet sent Pong frame(s) in
 * response to previous Ping frame(s), the endpoint MAY elect to send a Pong
 * frame for only the most recently processed Ping frame" (§5.5.3). Otherwise
 * every ping is answered, in order.
 * Rule 8: `bytesHeld` is what the connection holds for the message in
 * progress (its assembled bytes) and for input waiting behind an inflation;
 * failing or closing releases it at once, so a transport enforcing a memory
 * budget can take it back by failing the connection.
 */
import type { InflateOutcome } from './deflate/codec.js'
import type { DeflateParameters } from './deflate/negotiate.js'
import { type Close, MAX_CLOSE_REASON, isCloseParseFailure, isValidCloseCode, parseClose, serializeClose } from './close.js'
import { ProtocolError, type ProtocolErrorCode, StateError } from './errors.js'
import { CloseCode, MAX_CONTROL_PAYLOAD, Opcode, firstHeaderByte } from './frame.js'
import { type State, transition } from './lifecycle.js'
import { MessageAssembler } from './messages.js'
import { type FrameHeader, FrameParser, type FrameSink } from './parser.js'
import { type Allocate, FrameWriter, type GenerateMask, type SharedRun, type Side, type WriterSettings, writerSettings } from './writer.js'

export type { Side } from './writer.js'

/** Default `maxPayload`: 100 MiB, as in `ws`. */
export const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
/**
 * Default `maxFragments`: no count. Memory is bounded by bytes (`maxPayload`,
 * and the receive budget of the Node transport), as gorilla/websocket,
 * uWebSockets and Go's net/http bound it; a count would refuse legitimate
 * messages (the Autobahn testsuite's 4 MiB in 64-byte fragments) and protects
 * nothing a byte limit does not: an empty fragment costs the bytes it takes
 * to read, and holds none.
 */
export const DEFAULT_MAX_FRAGMENTS = 0

export interface ConnectionOptions {
  side: Side
  /** Largest message accepted, in bytes; 0 means no limit. Default 100 MiB. */
  maxPayload?: number
  /**
   * Most data frames one message may arrive in; 0 (the default) means no
   * limit. Memory is bounded by `maxPayload` whatever this is; a count only
   * bounds how many frames one message may take, for those who want it.
   */
  maxFragments?: number
  /** Deliver text messages without checking their UTF-8 (the peer is trusted). */
  skipUTF8Validation?: boolean
  /** Answer pings with pongs automatically. Default true. */
  autoPong?: boolean
  /** Buffer allocator for outgoing frames and received messages. */
  allocate?: Allocate
  /** Masking-key generator (client side). */
  generateMask?: GenerateMask
  /**
   * permessage-deflate parameters, when the handshake negotiated it
   * (RFC 7692). RSV1 then marks compressed messages, and their payload is
   * handed out through `inflate` events.
   */
  deflate?: DeflateParameters
}

/** What `eventsReceived` reports, in the order it happened. */
export type ConnectionEvent =
  | { type: 'message'; data: Uint8Array; binary: boolean }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  /** A close frame arrived (§5.5.1); `code` is 1005 if it had none. */
  | { type: 'close'; code: number; reason: Uint8Array }
  | { type: 'error'; error: ProtocolError }
  /**
   * A piece of a compressed message to inflate (RFC 7692 §7.2.2). Parsing
   * stops until the transport answers with `receiveInflated`. `end` marks the
   * message's last piece; at most `limit` bytes may come out of it.
   */
  | { type: 'inflate'; data: Uint8Array; end: boolean; limit: number }
  /** The connection is over; `code` is the received close code, or 1006 if none arrived. */
  | { type: 'closed'; code: number; reason: Uint8Array; wasClean: boolean }

/**
 * The closing handshake's facts (Rule 2), kept apart from the connection so
 * that an open, idle connection does not carry them: created when the
 * handshake (or a failure) begins.
 */
class ClosingState {
  closeSent: Close | undefined = undefined
  closeReceived: Close | undefined = undefined
  receivedThenSent: boolean | undefined = undefined
  error: ProtocolError | undefined = undefined
  eofPending = false
  eofSent = false
  /** Rule 5: the payload of a close frame waiting for `dataToSend()`. */
  heldClose: Uint8Array | undefined = undefined
}

/** The resolved options that do not change per connection. */
interface ConnectionSettings {
  side: Side
  maxPayload: number
  maxFragments: number
  validateUtf8: boolean
  autoPong: boolean
  writer: WriterSettings
}

const settingsCache = new WeakMap<WriterSettings, Map<string, ConnectionSettings>>()

/** One settings object for all connections configured alike. */
function connectionSettings(options: ConnectionOptions): ConnectionSettings {
  const writer = writerSettings(options.side, options.allocate, options.generateMask)
  const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD
  const maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS
  const validateUtf8 = !options.skipUTF8Validation
  const autoPong = options.autoPong ?? true
  const key = `${options.side} ${maxPayload} ${maxFragments} ${validateUtf8} ${autoPong}`
  let byKey = settingsCache.get(writer)
  if (byKey === undefined) settingsCache.set(writer, (byKey = new Map()))
  let settings = byKey.get(key)
  if (settings === undefined) byKey.set(key, (settings = { side: options.side, maxPayload, maxFragments, validateUtf8, autoPong, writer }))
  return settings
}

/** The compressed message being received (permessage-deflate only). */
class Inflation {
  /** The message in progress is compressed (RSV1 on its first frame). */
  compressed = false
  /** Its compressed bytes so far, for the size limit. */
  wireLength = 0
  /** An inflate request is out; parsing waits for `receiveInflated`. */
  pending: { end: boolean } | undefined = undefined
  /** Its final piece was sent to be inflated. */
  ended = false
}

/** What the frame being received is for. */
type FrameRole = 'data' | 'control' | 'discard'

const EMPTY = new Uint8Array(0)
const textEncoder = new TextEncoder()

export class Connection implements FrameSink {
  /** Settings shared by every connection configured alike (an idle connection carries one field for them). */
  private readonly settings: ConnectionSettings
  state: State = 'open'
  private closing: ClosingState | undefined

  private readonly parser: FrameParser
  /**
   * Made when a frame is queued, let go once `dataToSend` took everything and it remembers no batch size
   * above the least: an idle connection, heartbeats included, holds none (80 bytes each; issue 18).
   */
  private writer: FrameWriter | undefined
  /** Created when the first event is queued; an idle connection holds no array. */
  private events: ConnectionEvent[] | undefined

  // Receiving.
  private frameRole: FrameRole = 'discard'
  /** Opcode of the data message in progress, 0 if none. */
  private messageOpcode = 0
  /** With permessage-deflate only: the compressed message in progress. */
  private readonly inflation: Inflation | undefined
  private message: MessageAssembler | undefined
  private control: Uint8Array | undefined
  private controlLength = 0
  private controlSingle: Uint8Array | undefined

  // Sending.
  /** Opcode of a fragmented message we are sending, 0 if none. */
  private sendingOpcode = 0
  /**
   * Rule 7: the payload of the one automatic pong waiting while output is
   * blocked (a newer ping replaces it), and whether output is blocked.
   */
  private pendingPong: Uint8Array | undefined
  private outputBlocked = false
  /** The front end answers pings itself (`stopAutoPong`), though `autoPong` was configured. */
  private autoPongStopped = false

  /** Negotiated permessage-deflate parameters, if any. */
  readonly deflate: DeflateParameters | undefined

  constructor(options: ConnectionOptions) {
    const settings = connectionSettings(options)
    this.settings = settings
    this.deflate = options.deflate
    this.inflation = options.deflate === undefined ? undefined : new Inflation()
    this.parser = new FrameParser(this)
  }

  private output(): FrameWriter {
    return (this.writer ??= new FrameWriter(this.settings.writer))
  }

  get side(): Side {
    return this.settings.side
  }

  /** Our close frame, once sent (or held, Rule 5). */
  get closeSent(): Close | undefined {
    return this.closing?.closeSent
  }
  /** The peer's close frame, once received. */
  get closeReceived(): Close | undefined {
    return this.closing?.closeReceived
  }
  /** True if the close frame was received before ours was sent. */
  get receivedThenSent(): boolean | undefined {
    return this.closing?.receivedThenSent
  }
  /** The protocol error that failed the connection, if any. */
  get error(): ProtocolError | undefined {
    return this.closing?.error
  }

  private closingState(): ClosingState {
    return (this.closing ??= new ClosingState())
  }

  // ---------------------------------------------------------------- input

  /** Feeds bytes received from the peer. The connection may modify them in place (unmasking). */
  receiveData(data: Uint8Array): void {
    if (this.state !== 'open' && (this.state !== 'closing' || this.inputFinished)) return
    this.parser.feed(data)
  }

  /**
   * How many of the bytes `bytes[start..end)`, if they are the next received, `receiveData` copies before it
   * returns, keeping no view of them: a transport that reads into a buffer it reuses may hand over that many as
   * a view of it (tcp.ts Rule 6), and must copy the rest. They are payload of an uncompressed data frame that is
   * copied into its message's own buffer because the message has bytes already or the frame is not its last
   * (a message that arrives in one piece is delivered as that piece):
   * - while parsing such a frame's payload: the rest of it, or as much of it as is here;
   * - between frames: such a frame whose header is here whole, up to its end.
   * The first frame of a message that is also its last answers 0 even when its payload runs past `end`: taking
   * its first bytes as views too was measured (issue 18) and, under glibc's default heap trimming, cost the
   * 1 MiB echo 5-8%. Compressed frames (the inflater may keep its input), control frames, a stopped parser and
   * a connection that is not open answer 0.
   */
  bytesCopiedOnReceipt(bytes: Uint8Array, start: number, end: number): number {
    if (this.state !== 'open') return 0
    const available = end - start
    const parser = this.parser
    if (parser.atFrameBoundary) {
      const size = parser.frameSizeAt(bytes, start, end)
      if (size === 0) return 0
      const first = bytes[start]!
      const opcode = first & 0x0f
      // RSV1 on a message's first frame, or a continuation of a compressed message: the inflater's input.
      if (opcode > Opcode.Binary || (first & 0x40) !== 0 || (opcode === Opcode.Continuation && this.inflation?.compressed)) return 0
      const fin = (first & 0x80) !== 0
      const begun = opcode === Opcode.Continuation && (this.message?.length ?? 0) > 0
      return !fin || begun ? Math.min(size, available) : 0
    }
    if (this.frameRole !== 'data' || this.inflation?.compressed) return 0
    if (this.message!.length === 0 && parser.fin) return 0
    return Math.min(parser.payloadAhead, available)
  }

  /** The peer closed its side of the transport (TCP FIN, or the transport ended). */
  receiveEof(): void {
    if (this.state === 'closed') return
    // §7.1.5: without a received close frame the code is 1006.
    this.finish()
  }

  /** The transport is gone or was torn down (close timeout, terminate). */
  abort(): void {
    if (this.state === 'closed') return
    this.finish()
  }

  /** Events since the last call, oldest first. */
  eventsReceived(): ConnectionEvent[] {
    const events = this.events
    // The caller owns what it gets, so the queue itself is never handed out.
    if (events === undefined) return []
    this.events = undefined
    return events
  }

  /** Whether events are waiting to be collected. */
  get hasEvents(): boolean {
    return this.events !== undefined
  }

  // --------------------------------------------------------------- output

  /**
   * Bytes to write to the transport, in order; the caller now owns them.
   * Take them after handling the events of `eventsReceived()` (Rule 5);
   * `eventsHandled` false says some of those events still wait to be handled
   * (a paused front end holds them): a held close frame then stays held, so
   * the answers to them can still go out before it.
   */
  dataToSend(eventsHandled = true): Uint8Array[] {
    const held = this.closing?.heldClose
    if (held !== undefined && eventsHandled) {
      this.closing!.heldClose = undefined
      this.output().writeFrame(firstHeaderByte(true, Opcode.Close), held)
    }
    const writer = this.writer
    if (writer === undefined) return []
    const chunks = writer.take()
    if (writer.resting) this.writer = undefined
    return chunks
  }

  /**
   * Whether data and control frames may still be sent: no close frame has gone
   * out (§5.5.1: "After sending a Close frame, the endpoint MUST NOT send any
   * more data frames"), counting a held one as not yet sent (Rule 5).
   */
  get canSend(): boolean {
    return this.state !== 'closed' && (this.closeSent === undefined || this.closing?.heldClose !== undefined)
  }

  /** Bytes queued and not yet taken by `dataToSend`. */
  get bytesToSend(): number {
    return (this.writer?.queuedBytes ?? 0) + (this.pendingPong === undefined ? 0 : this.pendingPong.length + 2)
  }

  /** True once, when the transport should half-close (after the queued data). */
  eofToSend(): boolean {
    if (!this.closing?.eofPending || this.closing?.eofSent || this.closing?.heldClose !== undefined) return false
    this.closing!.eofSent = true
    return true
  }

  /** True while the connection waits for the peer to finish closing; the transport should arm a timer. */
  closeExpected(): boolean {
    return this.state === 'closing'
  }

  /**
   * Sends a text message (or a fragment of one when `fin` is false).
   * `compressed` says the bytes are already DEFLATE output (RFC 7692 §7.2.1);
   * RSV1 then marks the message's first frame.
   */
  sendText(data: string | Uint8Array, fin = true, compressed = false): void {
    this.sendData(Opcode.Text, typeof data === 'string' ? textEncoder.encode(data) : data, fin, compressed)
  }

  /** Sends a binary message (or a fragment of one when `fin` is false); see `sendText`. */
  sendBinary(data: Uint8Array, fin = true, compressed = false): void {
    this.sendData(Opcode.Binary, data, fin, compressed)
  }

  /**
   * Sends bytes that are already a whole, unmasked frame (a message framed
   * once for many receivers, see `prepare.ts`). Only a server may, as a
   * client masks every frame with its own key (§5.3).
   */
  sendPrepared(frame: Uint8Array): void {
    this.assertCanSendPrepared()
    if ((frame[0]! & 0x40) !== 0 && this.deflate === undefined) {
      throw new StateError('TETHER_ERR_NO_DEFLATE', 'permessage-deflate was not negotiated on this connection')
    }
    this.output().writeRaw(frame)
  }

  /**
   * Sends a shared run of prepared, uncompressed frames (writer.ts Rule 3):
   * the run's messages from now until something else is sent on this
   * connection or the run is sealed. A server's only, as `sendPrepared`.
   */
  sendRun(run: SharedRun): void {
    this.assertCanSendPrepared()
    this.output().writeRun(run)
  }

  /** Prepared frames go out as they are: only a server's (unmasked), and never inside a fragmented message. */
  private assertCanSendPrepared(): void {
    this.assertCanSend()
    if (this.settings.side === 'client') throw new StateError('TETHER_ERR_PREPARED_CLIENT', 'A client cannot send prepared frames')
    if (this.sendingOpcode !== 0) {
      throw new StateError('TETHER_ERR_FRAGMENTED_SEND', 'A fragmented message is being sent; finish it first')
    }
  }

  /** Ends what this connection takes of a shared run (it is going away): the run takes no more messages. */
  closeRun(): void {
    this.writer?.closeRun()
  }

  /** Sends a ping (§5.5.2); at most 125 bytes. */
  sendPing(data: Uint8Array = EMPTY): void {
    this.sendControl(Opcode.Ping, data)
  }

  /** Sends a pong (§5.5.3); at most 125 bytes. */
  sendPong(data: Uint8Array = EMPTY): void {
    this.sendControl(Opcode.Pong, data)
  }

  /**
   * Starts (or completes) the closing handshake (§5.5.1, §7.1.2). `code`
   * 1005 sends an empty close frame. Sending a second close frame is ignored.
   */
  sendClose(code: number = CloseCode.NoStatusReceived, reason: string | Uint8Array = EMPTY): void {
    if (code !== CloseCode.NoStatusReceived && !isValidCloseCode(code)) {
      throw new RangeError(`Invalid close code: ${code}`)
    }
    const reasonBytes = typeof reason === 'string' ? textEncoder.encode(reason) : reason
    if (reasonBytes.length > MAX_CLOSE_REASON) {
      throw new RangeError(`The close reason must not be greater than ${MAX_CLOSE_REASON} bytes`)
    }
    if (code === CloseCode.NoStatusReceived && reasonBytes.length > 0) {
      throw new RangeError('A close reason needs a close code')
    }
    if (this.state === 'closed' || this.closeSent !== undefined) return
    this.writeClose(code, reasonBytes)
  }

  /**
   * Fails the connection (§7.1.7) with a local reason, for example an
   * extension that could not process a message (1011) or a limit the
   * transport enforces (1008, 1009).
   */
  failConnection(error: ProtocolError): void {
    if (this.state === 'closed' || this.error !== undefined) return
    this.closingState().error = error
    this.parser.stop()
    this.releaseInput()
    // Rule 5: answers to the events before this one go out before the close frame.
    const hold = this.events !== undefined
    this.emit({ type: 'error', error })
    // §7.1.7: "the endpoint SHOULD send a Close frame with an appropriate status code".
    if (this.closeSent === undefined) this.writeClose(error.closeCode, EMPTY, hold)
    // ... "before proceeding to _Close the WebSocket Connection_" (§7.1.1): "when a server is
    // instructed to _Close the WebSocket Connection_ it SHOULD initiate a TCP Close immediately,
    // and when a client is instructed to do the same, it SHOULD wait for a TCP Close from the
    // server." Rule 3 again: a failing client waits for the server's EOF (the transport's close
    // timer bounds the wait) instead of ending TCP first.
    if (this.settings.side === 'server') this.closingState().eofPending = true
    if (this.state === 'open') this.state = transition(this.state, 'closing')
  }

  // ---------------------------------------------------- FrameSink (parser)

  frameStarted(header: FrameHeader): void {
    const { opcode } = header
    this.frameRole = 'discard'

    const problem = this.headerProblem(header)
    if (problem !== undefined) return this.fail(problem[0], problem[1])

    if (opcode >= Opcode.Close) {
      this.frameRole = 'control'
      this.controlLength = 0
      this.controlSingle = undefined
      return
    }

    if (opcode !== Opcode.Continuation) {
      this.messageOpcode = opcode
      const inflation = this.inflation
      if (inflation !== undefined) {
        inflation.compressed = header.rsv1
        inflation.wireLength = 0
        inflation.ended = false
      }
      ;(this.message ??= new MessageAssembler(this.settings.writer.allocate, this.settings.maxPayload)).start(
        opcode === Opcode.Text && this.settings.validateUtf8,
      )
    }
    const message = this.message!
    if (this.settings.maxFragments > 0 && ++message.fragments > this.settings.maxFragments) {
      return this.fail('WS_ERR_TOO_MANY_BUFFERED_PARTS', 'Too many message fragments')
    }
    // Rule 4: the limit is checked before a byte of this frame is buffered. A compressed
    // message is also held to it on the wire; its inflated size is checked while inflating.
    const inflation = this.inflation
    const size = inflation?.compressed ? (inflation.wireLength += header.length) : message.length + header.length
    if (this.settings.maxPayload > 0 && size > this.settings.maxPayload) {
      return this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'Max payload size exceeded')
    }
    this.frameRole = 'data'
  }

  payloadReceived(piece: Uint8Array): void {
    if (this.frameRole === 'data') {
      const last = this.parser.fin && this.parser.payloadRemaining === 0
      if (this.inflation?.compressed) return this.requestInflate(piece, last)
      if (!this.appendToMessage(piece, last, this.parser.payloadRemaining, this.parser.fin)) return
    } else if (this.frameRole === 'control') {
      this.appendControl(piece)
    }
  }

  frameEnded(): void {
    if (this.frameRole === 'data') {
      // Not the last frame, or the message was already completed by receiveInflated.
      if (!this.parser.fin || this.messageOpcode === 0) return
      // A compressed message whose last frame is empty still needs its end inflated.
      if (this.inflation?.compressed) {
        if (!this.inflation.ended) this.requestInflate(EMPTY, true)
        return
      }
      this.finishMessage()
    } else if (this.frameRole === 'control') {
      const payload = this.controlSingle ?? (this.control ? this.control.slice(0, this.controlLength) : EMPTY)
      this.controlSingle = undefined
      this.receiveControl(this.parser.opcode, payload)
    }
  }

  headerInvalid(code: ProtocolErrorCode, message: string, header: FrameHeader): void {
    // Rule 6: what the header's first two bytes break comes before its length.
    const problem = this.headerProblem(header)
    if (problem !== undefined) return this.fail(problem[0], problem[1])
    this.fail(code, message)
  }

  /**
   * The first rule of §5 a frame header breaks, judged on what its first
   * two bytes and the message in progress say (reserved bits, opcode,
   * control-frame rules, mask), or undefined.
   */
  private headerProblem(header: FrameHeader): [ProtocolErrorCode, string] | undefined {
    const { opcode } = header
    if (header.rsv2 || header.rsv3) {
      return ['WS_ERR_UNEXPECTED_RSV_2_3', 'Invalid WebSocket frame: RSV2 and RSV3 must be clear']
    }
    // §5.2: "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values".
    // RFC 7692 §6: RSV1 is the "Per-Message Compressed" bit, set on the first frame of a message
    // only; "An endpoint MUST NOT set the 'Per-Message Compressed' bit of control frames and
    // non-first fragments of a data message."
    if (header.rsv1 && (this.deflate === undefined || (opcode !== Opcode.Text && opcode !== Opcode.Binary))) {
      return ['WS_ERR_UNEXPECTED_RSV_1', 'Invalid WebSocket frame: RSV1 must be clear']
    }

    if (opcode === Opcode.Continuation) {
      // §5.4: a continuation frame belongs to a message that was started.
      if (this.messageOpcode === 0) return ['WS_ERR_INVALID_OPCODE', 'Invalid WebSocket frame: invalid opcode 0']
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      // §5.4: fragments of one message are not interleaved with another message's.
      if (this.messageOpcode !== 0) return ['WS_ERR_INVALID_OPCODE', `Invalid WebSocket frame: invalid opcode ${opcode}`]
    } else if (opcode === Opcode.Close || opcode === Opcode.Ping || opcode === Opcode.Pong) {
      // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
      if (!header.fin) return ['WS_ERR_EXPECTED_FIN', 'Invalid WebSocket frame: FIN must be set']
      if (header.length > MAX_CONTROL_PAYLOAD || (opcode === Opcode.Close && header.length === 1)) {
        return ['WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', `Invalid WebSocket frame: invalid payload length ${header.length}`]
      }
    } else {
      // §5.2: opcodes 3-7 and 0xB-0xF are reserved.
      return ['WS_ERR_INVALID_OPCODE', `Invalid WebSocket frame: invalid opcode ${opcode}`]
    }

    // §5.1: "a server MUST close the connection upon receiving a frame that is not masked";
    // "A client MUST close a connection if it detects a masked frame."
    if (this.settings.side === 'server') {
      if (!header.masked) return ['WS_ERR_EXPECTED_MASK', 'Invalid WebSocket frame: MASK must be set']
    } else if (header.masked) {
      return ['WS_ERR_UNEXPECTED_MASK', 'Invalid WebSocket frame: MASK must be clear']
    }
    return undefined
  }

  /**
   * The answer to the last `inflate` event. Parsing resumes, so new events
   * may follow (collect them again).
   */
  receiveInflated(outcome: InflateOutcome): void {
    const request = this.inflation?.pending
    if (request === undefined) throw new StateError('TETHER_ERR_NO_INFLATE', 'No inflate request is pending')
    this.inflation!.pending = undefined
    if (this.state === 'closed' || this.error !== undefined) return
    if (!outcome.ok) {
      if (outcome.reason === 'too-big') return this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'Max payload size exceeded')
      return this.fail('WS_ERR_INVALID_COMPRESSED_DATA', `Invalid compressed data: ${outcome.message}`)
    }
    const chunks = outcome.data
    for (let i = 0; i < chunks.length; i++) {
      if (!this.appendInflated(chunks[i]!, request.end && i === chunks.length - 1)) return
    }
    if (request.end) this.finishMessage()
    // finishMessage fails the connection when the whole text is not UTF-8 (§8.1). Rule 1: input
    // after that point is discarded, so the parser stays stopped with whatever is queued behind.
    if (this.error === undefined) this.parser.resume()
  }

  /**
   * A piece of the answer to the pending `inflate` event, given while the
   * codec works (so the output is copied into the message as it comes, and
   * the transport can count it): valid only during the call. `last` when it
   * is the message's last piece. Returns false once the connection failed
   * (too big, not UTF-8): the codec should stop.
   */
  receiveInflatedData(chunk: Uint8Array): boolean {
    if (this.inflation?.pending === undefined || this.error !== undefined || this.state === 'closed') return false
    return this.appendInflated(chunk, false)
  }

  private appendInflated(chunk: Uint8Array, last: boolean): boolean {
    // The codec honours the limit; checking again keeps a faulty codec from breaking it.
    if (this.settings.maxPayload > 0 && this.message!.length + chunk.length > this.settings.maxPayload) {
      this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'Max payload size exceeded')
      return false
    }
    return this.appendToMessage(chunk, last, 0, false)
  }

  /** Rule 8: bytes held for the message in progress and for input waiting to be parsed. */
  get bytesHeld(): number {
    const message = this.message
    return (message === undefined ? 0 : message.held) + this.parser.pendingBytes
  }

  /**
   * Rule 7: the transport's output is blocked (the peer does not read) or
   * free again. While blocked, automatic pongs wait as one; when freed, the
   * waiting one is queued for `dataToSend()`.
   */
  setOutputBlocked(blocked: boolean): void {
    this.outputBlocked = blocked
    if (!blocked) this.writePendingPong()
  }

  /**
   * From now on, pings are not answered here: the front end answers them
   * itself (ws answers through the socket's `pong` method, which an
   * application may replace). A pong already waiting (Rule 7) is dropped.
   */
  stopAutoPong(): void {
    this.autoPongStopped = true
    this.pendingPong = undefined
  }

  // ------------------------------------------------------------ internals

  /** True once no more input will be processed: a close frame arrived, or the connection failed. */
  private get inputFinished(): boolean {
    return this.closeReceived !== undefined || this.error !== undefined
  }

  private emit(event: ConnectionEvent): void {
    ;(this.events ??= []).push(event)
  }

  private fail(code: ProtocolErrorCode, message: string): void {
    this.frameRole = 'discard'
    this.failConnection(new ProtocolError(code, message))
  }

  /** Asks the transport to inflate a piece of the compressed message; parsing waits (RFC 7692 §7.2.2). */
  private requestInflate(data: Uint8Array, end: boolean): void {
    const inflation = this.inflation!
    inflation.pending = { end }
    if (end) inflation.ended = true
    const limit = this.settings.maxPayload > 0 ? this.settings.maxPayload - this.message!.length : Number.POSITIVE_INFINITY
    this.parser.stop()
    this.emit({ type: 'inflate', data, end, limit })
  }

  /** Appends to the message in progress; false (and the connection failed) on invalid UTF-8. */
  private appendToMessage(piece: Uint8Array, last: boolean, frameRemaining: number, finalFrame: boolean): boolean {
    let valid: boolean
    try {
      valid = this.message!.append(piece, last, frameRemaining, finalFrame)
    } catch {
      // Rule 1: an allocation the runtime refuses is a message too big to process, not a throw.
      this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'Max payload size exceeded: no memory for the message')
      return false
    }
    if (!valid) this.fail('WS_ERR_INVALID_UTF8', 'Invalid WebSocket frame: invalid UTF-8 sequence')
    return valid
  }

  private finishMessage(): void {
    const binary = this.messageOpcode === Opcode.Binary
    this.messageOpcode = 0
    if (this.inflation !== undefined) this.inflation.compressed = false
    const data = this.message!.finish()
    // §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
    // byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_."
    if (data === undefined) return this.fail('WS_ERR_INVALID_UTF8', 'Invalid WebSocket frame: invalid UTF-8 sequence')
    this.emit({ type: 'message', data, binary })
  }

  private appendControl(piece: Uint8Array): void {
    if (this.controlLength === 0 && this.parser.payloadRemaining === 0) {
      this.controlSingle = piece
      this.controlLength = piece.length
      return
    }
    const buffer = (this.control ??= new Uint8Array(MAX_CONTROL_PAYLOAD))
    if (this.controlSingle !== undefined) {
      buffer.set(this.controlSingle, 0)
      this.controlSingle = undefined
    }
    buffer.set(piece, this.controlLength)
    this.controlLength += piece.length
  }

  private receiveControl(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.Ping) {
      this.emit({ type: 'ping', data: payload })
      // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response ...
      // [with] identical Application data", unless it already sent a close frame.
      if (this.settings.autoPong && !this.autoPongStopped && this.closeSent === undefined) {
        // Rule 7: while output is blocked, only the most recent ping is answered.
        if (this.outputBlocked) this.pendingPong = new Uint8Array(payload)
        else this.output().writeFrame(firstHeaderByte(true, Opcode.Pong), payload)
      }
      return
    }
    if (opcode === Opcode.Pong) {
      this.emit({ type: 'pong', data: payload })
      return
    }
    const close = parseClose(payload, !this.settings.validateUtf8)
    if (isCloseParseFailure(close)) {
      if (close.problem === 'utf8') return this.fail('WS_ERR_INVALID_UTF8', 'Invalid WebSocket frame: invalid UTF-8 sequence')
      const code = (payload[0]! << 8) | payload[1]!
      return this.fail('WS_ERR_INVALID_CLOSE_CODE', `Invalid WebSocket frame: invalid status code ${code}`)
    }
    this.receiveClose(close)
  }

  private receiveClose(close: Close): void {
    // Copy the reason: it is a view into a read buffer the transport may recycle.
    const received: Close = { code: close.code, reason: new Uint8Array(close.reason) }
    this.closingState().closeReceived = received
    this.parser.stop()
    this.releaseInput()
    // Rule 5: answers to the events before this one go out before the close frame.
    const hold = this.events !== undefined
    this.emit({ type: 'close', code: received.code, reason: received.reason })
    if (this.closeSent === undefined) {
      // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close
      // frame, the endpoint MUST send a Close frame in response. (When sending a Close frame
      // in response, the endpoint typically echos the status code it received.)"
      // The reason is echoed too, as ws does, so either side sees the same close.
      this.writeClose(close.code, received.reason, hold)
    } else if (this.settings.side === 'server') {
      this.closingState().eofPending = true
    }
  }

  /** Sends (or, with `hold`, queues for the next `dataToSend()`: Rule 5) our close frame. */
  private writeClose(code: number, reason: Uint8Array, hold = false): void {
    // The answer to a ping received before goes out before the close frame (nothing may follow it).
    this.writePendingPong()
    this.closingState().closeSent = { code, reason }
    this.closingState().receivedThenSent = this.closeReceived !== undefined
    const payload = serializeClose(code, reason)
    if (hold) this.closingState().heldClose = payload
    else this.output().writeFrame(firstHeaderByte(true, Opcode.Close), payload)
    if (this.state === 'open') this.state = transition(this.state, 'closing')
    // Rule 3: once both close frames have passed, the server ends TCP.
    if (this.closeReceived !== undefined && this.settings.side === 'server') this.closingState().eofPending = true
  }

  private sendData(opcode: number, data: Uint8Array, fin: boolean, compressed: boolean): void {
    this.assertCanSend()
    if (compressed && this.deflate === undefined) {
      throw new StateError('TETHER_ERR_NO_DEFLATE', 'permessage-deflate was not negotiated on this connection')
    }
    // §5.4: fragments after the first are continuation frames; RFC 7692 §6: RSV1 only on the first.
    const first = this.sendingOpcode === 0
    const frameOpcode = first ? opcode : Opcode.Continuation
    this.sendingOpcode = fin ? 0 : first ? opcode : this.sendingOpcode
    this.output().writeFrame(firstHeaderByte(fin, frameOpcode, first && compressed), data)
  }

  private writePendingPong(): void {
    const pong = this.pendingPong
    if (pong === undefined) return
    this.pendingPong = undefined
    this.output().writeFrame(firstHeaderByte(true, Opcode.Pong), pong)
  }

  private sendControl(opcode: number, data: Uint8Array): void {
    this.assertCanSend()
    if (data.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`The data size must not be greater than ${MAX_CONTROL_PAYLOAD} bytes`)
    }
    this.output().writeFrame(firstHeaderByte(true, opcode), data)
  }

  private assertCanSend(): void {
    // §5.5.1: "After sending a Close frame, the endpoint MUST NOT send any more data frames."
    if (!this.canSend) {
      throw new StateError('TETHER_ERR_NOT_OPEN', `WebSocket is not open: state ${this.state}`)
    }
  }

  /** Rule 8: no more input will be processed; let go of what was held for it. */
  private releaseInput(): void {
    this.message?.release()
    this.parser.discardPending()
  }

  private finish(): void {
    const received = this.closeReceived
    this.state = transition(this.state, 'closed')
    this.parser.stop()
    this.releaseInput()
    this.pendingPong = undefined
    this.emit({
      type: 'closed',
      code: received?.code ?? CloseCode.AbnormalClosure,
      reason: received?.reason ?? EMPTY,
      wasClean: received !== undefined && this.closeSent !== undefined,
    })
  }
}
