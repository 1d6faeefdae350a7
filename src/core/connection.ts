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
 */
import { type Close, MAX_CLOSE_REASON, isCloseParseFailure, isValidCloseCode, parseClose, serializeClose } from './close.js'
import { ProtocolError, type ProtocolErrorCode, StateError } from './errors.js'
import { CloseCode, MAX_CONTROL_PAYLOAD, Opcode, firstHeaderByte } from './frame.js'
import { type State, transition } from './lifecycle.js'
import { MessageAssembler } from './messages.js'
import { type FrameHeader, FrameParser, type FrameSink } from './parser.js'
import { type Allocate, FrameWriter, type GenerateMask, type Side } from './writer.js'

export type { Side } from './writer.js'

/** Default `maxPayload`: 100 MiB, as in `ws`. */
export const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024

export interface ConnectionOptions {
  side: Side
  /** Largest message accepted, in bytes; 0 means no limit. Default 100 MiB. */
  maxPayload?: number
  /** Deliver text messages without checking their UTF-8 (the peer is trusted). */
  skipUTF8Validation?: boolean
  /** Answer pings with pongs automatically. Default true. */
  autoPong?: boolean
  /** Buffer allocator for outgoing frames. */
  allocate?: Allocate
  /** Masking-key generator (client side). */
  generateMask?: GenerateMask
}

/** What `eventsReceived` reports, in the order it happened. */
export type ConnectionEvent =
  | { type: 'message'; data: Uint8Array; binary: boolean }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  /** A close frame arrived (§5.5.1); `code` is 1005 if it had none. */
  | { type: 'close'; code: number; reason: Uint8Array }
  | { type: 'error'; error: ProtocolError }
  /** The connection is over; `code` is the received close code, or 1006 if none arrived. */
  | { type: 'closed'; code: number; reason: Uint8Array; wasClean: boolean }

/** What the frame being received is for. */
type FrameRole = 'data' | 'control' | 'discard'

const EMPTY = new Uint8Array(0)
const textEncoder = new TextEncoder()

export class Connection implements FrameSink {
  readonly side: Side
  state: State = 'open'
  closeSent: Close | undefined
  closeReceived: Close | undefined
  /** True if the close frame was received before ours was sent. */
  receivedThenSent: boolean | undefined
  /** The protocol error that failed the connection, if any. */
  error: ProtocolError | undefined

  private readonly maxPayload: number
  private readonly validateUtf8: boolean
  private readonly autoPong: boolean
  private readonly parser: FrameParser
  private readonly writer: FrameWriter
  private events: ConnectionEvent[] = []
  private eofPending = false
  private eofSent = false

  // Receiving.
  private frameRole: FrameRole = 'discard'
  private frameOpcode = 0
  private frameFin = false
  private frameRemaining = 0
  /** Opcode of the data message in progress, 0 if none. */
  private messageOpcode = 0
  private message: MessageAssembler | undefined
  private control: Uint8Array | undefined
  private controlLength = 0
  private controlSingle: Uint8Array | undefined

  // Sending.
  /** Opcode of a fragmented message we are sending, 0 if none. */
  private sendingOpcode = 0

  constructor(options: ConnectionOptions) {
    this.side = options.side
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD
    this.validateUtf8 = !options.skipUTF8Validation
    this.autoPong = options.autoPong ?? true
    this.parser = new FrameParser(this)
    this.writer = new FrameWriter(options.side, options.allocate, options.generateMask)
  }

  // ---------------------------------------------------------------- input

  /** Feeds bytes received from the peer. The connection may modify them in place (unmasking). */
  receiveData(data: Uint8Array): void {
    if (this.state !== 'open' && (this.state !== 'closing' || this.inputFinished)) return
    this.parser.feed(data)
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
    // A fresh array even when empty: the caller owns what it gets, so the queue is never handed out.
    if (events.length === 0) return []
    this.events = []
    return events
  }

  /** Whether events are waiting to be collected. */
  get hasEvents(): boolean {
    return this.events.length > 0
  }

  // --------------------------------------------------------------- output

  /** Bytes to write to the transport, in order; the caller now owns them. */
  dataToSend(): Uint8Array[] {
    return this.writer.take()
  }

  /** Bytes queued and not yet taken by `dataToSend`. */
  get bytesToSend(): number {
    return this.writer.bytes
  }

  /** True once, when the transport should half-close (after the queued data). */
  eofToSend(): boolean {
    if (!this.eofPending || this.eofSent) return false
    this.eofSent = true
    return true
  }

  /** True while the connection waits for the peer to finish closing; the transport should arm a timer. */
  closeExpected(): boolean {
    return this.state === 'closing'
  }

  /** Sends a text message (or a fragment of one when `fin` is false). */
  sendText(data: string | Uint8Array, fin = true): void {
    this.sendData(Opcode.Text, typeof data === 'string' ? textEncoder.encode(data) : data, fin)
  }

  /** Sends a binary message (or a fragment of one when `fin` is false). */
  sendBinary(data: Uint8Array, fin = true): void {
    this.sendData(Opcode.Binary, data, fin)
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
    this.error = error
    this.parser.stop()
    this.emit({ type: 'error', error })
    // §7.1.7: "the endpoint SHOULD send a Close frame with an appropriate status code".
    if (this.closeSent === undefined) this.writeClose(error.closeCode, EMPTY)
    // ... "before proceeding to _Close the WebSocket Connection_": close our side now.
    this.eofPending = true
    if (this.state === 'open') this.state = transition(this.state, 'closing')
  }

  // ---------------------------------------------------- FrameSink (parser)

  frameStarted(header: FrameHeader): void {
    const { opcode } = header
    this.frameOpcode = opcode
    this.frameFin = header.fin
    this.frameRemaining = header.length
    this.frameRole = 'discard'

    if (header.rsv2 || header.rsv3) {
      return this.fail('WS_ERR_UNEXPECTED_RSV_2_3', 'Invalid WebSocket frame: RSV2 and RSV3 must be clear')
    }
    // §5.2: "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values".
    if (header.rsv1) {
      return this.fail('WS_ERR_UNEXPECTED_RSV_1', 'Invalid WebSocket frame: RSV1 must be clear')
    }

    if (opcode === Opcode.Continuation) {
      // §5.4: a continuation frame belongs to a message that was started.
      if (this.messageOpcode === 0) return this.fail('WS_ERR_INVALID_OPCODE', 'Invalid WebSocket frame: invalid opcode 0')
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      // §5.4: fragments of one message are not interleaved with another message's.
      if (this.messageOpcode !== 0) {
        return this.fail('WS_ERR_INVALID_OPCODE', `Invalid WebSocket frame: invalid opcode ${opcode}`)
      }
    } else if (opcode === Opcode.Close || opcode === Opcode.Ping || opcode === Opcode.Pong) {
      // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
      if (!header.fin) return this.fail('WS_ERR_EXPECTED_FIN', 'Invalid WebSocket frame: FIN must be set')
      if (header.length > MAX_CONTROL_PAYLOAD || (opcode === Opcode.Close && header.length === 1)) {
        return this.fail(
          'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
          `Invalid WebSocket frame: invalid payload length ${header.length}`,
        )
      }
    } else {
      // §5.2: opcodes 3-7 and 0xB-0xF are reserved.
      return this.fail('WS_ERR_INVALID_OPCODE', `Invalid WebSocket frame: invalid opcode ${opcode}`)
    }

    // §5.1: "a server MUST close the connection upon receiving a frame that is not masked";
    // "A client MUST close a connection if it detects a masked frame."
    if (this.side === 'server') {
      if (!header.masked) return this.fail('WS_ERR_EXPECTED_MASK', 'Invalid WebSocket frame: MASK must be set')
    } else if (header.masked) {
      return this.fail('WS_ERR_UNEXPECTED_MASK', 'Invalid WebSocket frame: MASK must be clear')
    }

    if (opcode >= Opcode.Close) {
      this.frameRole = 'control'
      this.controlLength = 0
      this.controlSingle = undefined
      return
    }

    if (opcode !== Opcode.Continuation) {
      this.messageOpcode = opcode
      ;(this.message ??= new MessageAssembler()).start(opcode === Opcode.Text && this.validateUtf8)
    }
    const message = this.message!
    // Rule 4: the limit is checked before a byte of this frame is buffered.
    if (this.maxPayload > 0 && message.length + header.length > this.maxPayload) {
      return this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'Max payload size exceeded')
    }
    this.frameRole = 'data'
  }

  payloadReceived(piece: Uint8Array): void {
    this.frameRemaining -= piece.length
    if (this.frameRole === 'data') {
      const last = this.frameFin && this.frameRemaining === 0
      if (!this.message!.append(piece, last, this.frameRemaining)) {
        this.fail('WS_ERR_INVALID_UTF8', 'Invalid WebSocket frame: invalid UTF-8 sequence')
      }
    } else if (this.frameRole === 'control') {
      this.appendControl(piece)
    }
  }

  frameEnded(): void {
    if (this.frameRole === 'data') {
      if (this.frameFin) this.finishMessage()
    } else if (this.frameRole === 'control') {
      const payload = this.controlSingle ?? (this.control ? this.control.slice(0, this.controlLength) : EMPTY)
      this.controlSingle = undefined
      this.receiveControl(this.frameOpcode, payload)
    }
  }

  headerInvalid(code: ProtocolErrorCode, message: string): void {
    this.fail(code, message)
  }

  // ------------------------------------------------------------ internals

  /** True once no more input will be processed: a close frame arrived, or the connection failed. */
  private get inputFinished(): boolean {
    return this.closeReceived !== undefined || this.error !== undefined
  }

  private emit(event: ConnectionEvent): void {
    this.events.push(event)
  }

  private fail(code: ProtocolErrorCode, message: string): void {
    this.frameRole = 'discard'
    this.failConnection(new ProtocolError(code, message))
  }

  private finishMessage(): void {
    const binary = this.messageOpcode === Opcode.Binary
    this.messageOpcode = 0
    const data = this.message!.finish()
    // §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
    // byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_."
    if (data === undefined) return this.fail('WS_ERR_INVALID_UTF8', 'Invalid WebSocket frame: invalid UTF-8 sequence')
    this.emit({ type: 'message', data, binary })
  }

  private appendControl(piece: Uint8Array): void {
    if (this.controlLength === 0 && this.frameRemaining === 0) {
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
      if (this.autoPong && this.closeSent === undefined) this.writer.writeFrame(firstHeaderByte(true, Opcode.Pong), payload)
      return
    }
    if (opcode === Opcode.Pong) {
      this.emit({ type: 'pong', data: payload })
      return
    }
    const close = parseClose(payload, !this.validateUtf8)
    if (isCloseParseFailure(close)) {
      if (close.problem === 'utf8') return this.fail('WS_ERR_INVALID_UTF8', 'Invalid WebSocket frame: invalid UTF-8 sequence')
      const code = (payload[0]! << 8) | payload[1]!
      return this.fail('WS_ERR_INVALID_CLOSE_CODE', `Invalid WebSocket frame: invalid status code ${code}`)
    }
    this.receiveClose(close)
  }

  private receiveClose(close: Close): void {
    // Copy the reason: it is a view into a read buffer the transport may recycle.
    this.closeReceived = { code: close.code, reason: new Uint8Array(close.reason) }
    this.parser.stop()
    this.emit({ type: 'close', code: this.closeReceived.code, reason: this.closeReceived.reason })
    if (this.closeSent === undefined) {
      // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close
      // frame, the endpoint MUST send a Close frame in response. (When sending a Close frame
      // in response, the endpoint typically echos the status code it received.)"
      // The reason is echoed too, as ws does, so either side sees the same close.
      this.writeClose(close.code, this.closeReceived.reason)
    } else if (this.side === 'server') {
      this.eofPending = true
    }
  }

  private writeClose(code: number, reason: Uint8Array): void {
    this.closeSent = { code, reason }
    this.receivedThenSent = this.closeReceived !== undefined
    this.writer.writeFrame(firstHeaderByte(true, Opcode.Close), serializeClose(code, reason))
    if (this.state === 'open') this.state = transition(this.state, 'closing')
    // Rule 3: once both close frames have passed, the server ends TCP.
    if (this.closeReceived !== undefined && this.side === 'server') this.eofPending = true
  }

  private sendData(opcode: number, data: Uint8Array, fin: boolean): void {
    this.assertCanSend()
    // §5.4: fragments after the first are continuation frames.
    const frameOpcode = this.sendingOpcode === 0 ? opcode : Opcode.Continuation
    this.sendingOpcode = fin ? 0 : this.sendingOpcode === 0 ? opcode : this.sendingOpcode
    this.writer.writeFrame(firstHeaderByte(fin, frameOpcode), data)
  }

  private sendControl(opcode: number, data: Uint8Array): void {
    this.assertCanSend()
    if (data.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`The data size must not be greater than ${MAX_CONTROL_PAYLOAD} bytes`)
    }
    this.writer.writeFrame(firstHeaderByte(true, opcode), data)
  }

  private assertCanSend(): void {
    // §5.5.1: "After sending a Close frame, the endpoint MUST NOT send any more data frames."
    if (this.closeSent !== undefined || this.state === 'closed') {
      throw new StateError('TETHER_ERR_NOT_OPEN', `WebSocket is not open: state ${this.state}`)
    }
  }

  private finish(): void {
    const received = this.closeReceived
    this.state = transition(this.state, 'closed')
    this.parser.stop()
    this.emit({
      type: 'closed',
      code: received?.code ?? CloseCode.AbnormalClosure,
      reason: received?.reason ?? EMPTY,
      wasClean: received !== undefined && this.closeSent !== undefined,
    })
  }
}
