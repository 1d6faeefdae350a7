/**
 * `WebSocket`, a drop-in for the class of the same name in `ws` v8: same
 * constructor, options, events (with the same arguments), methods,
 * properties and error codes, on top of tether's core and Node driver.
 *
 * Differences from ws, on purpose:
 * - A protocol error with no `error` listener does not crash the process
 *   (ws#1140, ws#2019, ws#2055, ws#2109): the connection is failed with the
 *   RFC's close code and `close` reports 1006, as in ws.
 * - A client does not fail when the server selects no subprotocol although
 *   some were offered (RFC 6455 §4.1 allows it; browsers accept it).
 * - `allowSynchronousEvents: false` is accepted and ignored: events are
 *   always dispatched synchronously, and `pause()` stops them at once.
 * - After the closing handshake a client waits for the server to close TCP
 *   (RFC 6455 §7.1.1), within `closeTimeout`.
 */
import { EventEmitter } from 'node:events'
import type { ClientRequest, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { isValidCloseCode } from '../core/close.js'
import { Connection } from '../core/connection.js'
import type { AcceptedResponse } from '../core/handshake/http1.js'
import type { GenerateMask } from '../core/writer.js'
import type { IncomingMessage as HttpIncomingMessage } from 'node:http'
import type { ServerOptions as ServerOptionsOf } from './websocket-server.js'
import type { createWebSocketStream as createStream } from './stream.js'
import type * as events from './event-target.js'
import type * as types from './types.js'
import type { RawData } from './types.js'
import { FrameWriter, type FrameWriterHost } from './frame-sender.js'
import { type ClientHandshakeOptions, checkSubprotocols, parseWebSocketUrl, startClientHandshake } from '../node/client.js'
import { startHttp2Handshake } from '../node/http2-client.js'
import { Http2StreamTransport } from '../node/http2-transport.js'
import type { ClientHttp2Stream } from 'node:http2'
import { ProtocolError, TetherError } from '../core/errors.js'
import {
  type DeflateOfferState,
  type DeflateSession,
  PERMESSAGE_DEFLATE,
  abandonDeflateOffer,
  completeDeflate,
  offerDeflate,
  resolveDeflateOptions,
} from '../node/deflate.js'
import { type DriverHandler, SWEEP_DEAD, SWEEP_IDLE, SocketDriver, coarseNow } from '../node/driver.js'
import { type LimitStats, type SocketLimits, socketLimits, sweepPeriod, sweeps } from '../node/limits.js'
import type { ServerCounters } from '../node/server-metrics.js'
import { NetTransport, type Transport } from '../node/transport.js'
import { PreparedMessage } from '../node/prepared.js'
import type { ZlibCodec } from '../node/zlib-codec.js'
import { type TopicHub, kCloseSlow, kDeliver, kHeld, kJoinRun, kWatchWritable } from '../pubsub/hub.js'
import type { PublishedRun } from '../node/published-run.js'
import type { LatestPending } from '../pubsub/policy.js'
import { checkTopic } from '../pubsub/topics.js'
import { addEventListener, defineEventAttributes, removeEventListener } from './event-target.js'
import { toWsError } from './errors.js'
import { type QueuedSend, Sender, type SenderHost, isBlob, sendControlNow, sendNow, sendPreparedNow } from './sender.js'
import type { BinaryType, ReadBinaryType, SendData, SendOptions, WebSocketOptions } from './socket-options.js'
import { ClientHooks, Http2Hooks, normalizeUrl } from './client-hooks.js'

export type { BinaryType, ReadBinaryType, SendData, SendOptions, WebSocketOptions } from './socket-options.js'

const BINARY_TYPES: readonly string[] = ['nodebuffer', 'arraybuffer', 'fragments', 'blob']
const READY_STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'] as const
const CONNECTING = 0
const OPEN = 1
const CLOSING = 2
const CLOSED = 3
const EMPTY = Buffer.alloc(0)

/**
 * The table EventEmitter keeps a socket's listeners in (`_events`). Node's own
 * is `{ __proto__: null }`, which V8 keeps in dictionary mode: 184 B per socket
 * with three listeners, the largest object of an idle connection (issue 18's
 * heap profile). An instance of a constructor whose prototype is an empty
 * null-prototype object inherits no names either, so EventEmitter reads it
 * alike, but stays in fast mode with a shape shared by every socket: 50 B.
 */
const ListenerTable = function ListenerTable() {} as unknown as new () => object
ListenerTable.prototype = Object.create(null)

type Data = SendData

type Callback = (error?: Error | null) => void
/** A send's callback, as @types/ws types it (tether calls it with no argument, or null, on success). */
type SendCallback = (err?: Error) => void
/** A ping's or pong's callback, as @types/ws types it. */
type ControlCallback = (err: Error) => void

/** Bytes of anything `send` accepts, without copying where possible (ws `toBuffer`). */
function toBuffer(data: Exclude<Data, Blob | number>): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (typeof data === 'string') return Buffer.from(data)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return Buffer.from(data as never)
}

function toArrayBuffer(data: Buffer): ArrayBuffer {
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) return data.buffer as ArrayBuffer
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer
}

/**
 * The part of a WebSocket's state an idle server connection never touches,
 * kept out of the object so that 10,000 idle connections do not carry it.
 */
class ColdState {
  url: string | undefined = undefined
  /** The client's upgrade request, while the handshake runs. */
  request: ClientRequest | undefined = undefined
  deflateOffer: DeflateOfferState | undefined = undefined
  /** Bytes of sends refused because the connection was not open (ws counts them). */
  refusedBytes = 0
  /** The send queue, once a send could not be framed at once (sender.ts). */
  sender: Sender | undefined = undefined
  errorEmitted = false
  wasClean = false
  /** Published messages held back under the `latest` policy (the hub's slot). */
  held: LatestPending<PreparedMessage> | undefined = undefined
  /** Why the connection was torn down without a closing handshake (close 1006), when tether did it. */
  abnormalReason: string | undefined = undefined
  /** Redirects followed by this client's handshake (ws's `_redirects`). */
  redirects = 0
  /** `pong` was replaced on this socket or its class: pings are answered through it (driverPing). */
  pongReplaced = false
  /** `_sender`, once a library asked for it (frame-sender.ts). */
  frameWriter: FrameWriter | undefined = undefined
  /** A client's own heartbeat timer. */
  sweepTimer: NodeJS.Timeout | undefined = undefined
  /** What the server's `authenticate` hook accepted the connection as. */
  user: unknown = undefined
  /** Gives up a client handshake over HTTP/2 (http2-client.ts) while CONNECTING. */
  abortStream: (() => void) | undefined = undefined
}

/**
 * Gives read-only accessors a setter that defines an own, writable property
 * on the instance, hiding the accessor: tether's additions to the ws API must
 * not break an application that already used the same name for its own data.
 */
export function allowShadowing(prototype: object, names: readonly string[]): void {
  for (const name of names) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name)
    if (descriptor?.get === undefined || descriptor.set !== undefined) continue
    Object.defineProperty(prototype, name, {
      ...descriptor,
      set(this: object, value: unknown) {
        Object.defineProperty(this, name, { value, writable: true, configurable: true, enumerable: true })
      },
    })
  }
}

/** The topic hub of a server's sockets. */
export type SocketTopicHub = TopicHub<WebSocket, PreparedMessage>

/** What a socket shares with the server that accepted it. */
export interface SocketServerContext {
  /** The server itself (its own type is not known here): one field of the context, not one of each socket. */
  server: object
  hub: SocketTopicHub
  stats: LimitStats
  /** The server's traffic counters (server-metrics.ts): shared, so they cost a connection nothing. */
  counters: ServerCounters
}

/** @internal The server context of a socket a server accepted. */
export const kServer = Symbol('tether.server')

export interface WebSocket {
  onopen: ((event: events.Event) => void) | null
  onmessage: ((event: events.MessageEvent) => void) | null
  onclose: ((event: events.CloseEvent) => void) | null
  onerror: ((event: events.ErrorEvent) => void) | null
  readonly CONNECTING: 0
  readonly OPEN: 1
  readonly CLOSING: 2
  readonly CLOSED: 3
  /**
   * On a server socket: what the server's `authenticate` hook returned as
   * `{ user }` (tether's addition). A server's sockets have it typed by the
   * server's `User` parameter, which `authenticate` infers:
   * `new WebSocketServer({ authenticate: async () => ({ user: account }) })`.
   */
  user?: unknown
}

/**
 * A WebSocket connection, client or server side, with the API of `ws` v8.
 *
 * @example
 * ```ts
 * import { WebSocket } from 'tether-ws'
 * const ws = new WebSocket('ws://127.0.0.1:8080')
 * ws.on('open', () => ws.send('hello'))
 * ws.on('message', (data, isBinary) => console.log(isBinary ? data : data.toString()))
 * ```
 */
export class WebSocket extends EventEmitter implements DriverHandler, SenderHost, FrameWriterHost {
  // Defined below as ws defines them: enumerable, neither writable nor configurable.
  declare static readonly CONNECTING: 0
  declare static readonly OPEN: 1
  declare static readonly CLOSING: 2
  declare static readonly CLOSED: 3

  #readyState: number = CONNECTING
  /** @internal What this socket shares with the server that accepted it (declared, so that setting it adds no property store). */
  ;[kServer]: SocketServerContext | undefined = undefined
  /** The limits this socket enforces (one object shared by sockets configured alike). */
  #limits: SocketLimits | undefined
  /** What only some connections need (clients, queued sends, fragmented sends): created on first use. */
  #cold: ColdState | undefined
  /**
   * Which side this socket plays (bit 0 set: a server's) and its binaryType (the bits above: an index in
   * BINARY_TYPES): one field for the two, an idle connection's 8 bytes (issue 18); read through
   * #isServer and #binaryType.
   */
  #mode = 0
  #protocol = ''
  #extensions = ''
  #options: WebSocketOptions
  #driver: SocketDriver | undefined
  #codec: ZlibCodec | undefined

  constructor(address: string | URL | null, protocols?: string | string[] | WebSocketOptions, options?: WebSocketOptions) {
    super()
    ;(this as unknown as { _events: object })._events = new ListenerTable()
    if (address === null) {
      this.#isServer = true
      this.#options = (protocols && typeof protocols === 'object' && !Array.isArray(protocols) ? protocols : options) ?? {}
      return
    }
    let list: unknown[]
    if (protocols === undefined) {
      list = options?.protocols === undefined ? [] : ([] as unknown[]).concat(options.protocols)
    } else if (Array.isArray(protocols)) {
      list = protocols
    } else if (typeof protocols === 'object' && protocols !== null) {
      options = protocols
      list = options.protocols === undefined ? [] : ([] as unknown[]).concat(options.protocols)
    } else {
      list = [protocols]
    }
    this.#options = { ...options }
    const offered = checkSubprotocols(list)
    const url = address instanceof URL ? address : String(address)
    // Throws SyntaxError for an invalid URL, as ws does.
    this.#warm().url = normalizeUrl(url)
    // A client offers permessage-deflate unless told not to (ws's default).
    const deflate = resolveDeflateOptions(this.#options.perMessageDeflate ?? true)
    this.#warm().deflateOffer = deflate ? offerDeflate(deflate) : undefined
    try {
      const offer = this.#cold?.deflateOffer
      const extensionOffers = offer ? [offer.offer] : []
      const handshake = { ...this.#options, extensionOffers } as ClientHandshakeOptions
      const http2 = this.#options.http2
      if (http2 === true || http2 === 'auto') {
        const hooks = new Http2Hooks(this, url, offered, handshake)
        startHttp2Handshake(parseWebSocketUrl(url).url, offered, { ...handshake, http2 } as never, hooks)
      } else {
        startClientHandshake(url, offered, handshake, new ClientHooks(this))
      }
    } catch (error) {
      this.#releaseOffer()
      throw error
    }
  }

  get #isServer(): boolean {
    return (this.#mode & 1) !== 0
  }
  set #isServer(server: boolean) {
    this.#mode = (this.#mode & ~1) | (server ? 1 : 0)
  }
  get #binaryType(): BinaryType {
    return BINARY_TYPES[this.#mode >> 1] as BinaryType
  }
  set #binaryType(type: BinaryType) {
    this.#mode = (this.#mode & 1) | (BINARY_TYPES.indexOf(type) << 1)
  }

  /** The cold state, created if needed (only for writes). */
  #warm(): ColdState {
    return (this.#cold ??= new ColdState())
  }

  get binaryType(): ReadBinaryType {
    return this.#binaryType as ReadBinaryType
  }
  set binaryType(type: BinaryType) {
    if (BINARY_TYPES.includes(type)) this.#binaryType = type
  }

  /** Bytes queued for sending and not yet handed to the operating system. */
  get bufferedAmount(): number {
    const driver = this.#driver
    const cold = this.#cold
    return (driver ? driver.bufferedAmount : 0) + (cold === undefined ? 0 : (cold.sender?.queuedBytes ?? 0) + cold.refusedBytes)
  }

  get extensions(): string {
    return this.#extensions
  }
  get isPaused(): boolean {
    return this.#driver?.isPaused ?? false
  }
  get protocol(): string {
    return this.#protocol
  }
  get readyState(): 0 | 1 | 2 | 3 {
    return this.#readyState as 0 | 1 | 2 | 3
  }
  get url(): string {
    return this.#cold?.url as string
  }
  /** The underlying socket (ws exposes it as `_socket`; apps read `remoteAddress` from it). */
  get _socket(): Socket | null {
    return this.#driver?.transport.socket ?? null
  }
  /**
   * ws's private `_sender`, as far as libraries built on ws use it:
   * `sendFrame(list, callback)` writes a frame built by `WebSocket.Sender.frame`
   * (engine.io does so for Socket.IO's broadcasts). See frame-sender.ts.
   */
  get _sender(): FrameWriter {
    return (this.#warm().frameWriter ??= new FrameWriter(this))
  }

  /** @internal FrameWriterHost: a whole unmasked data frame, written as it is when nothing must go before it. */
  writeRawFrame(frame: Buffer, callback: Callback | undefined): boolean {
    if (this.#readyState !== OPEN || !this.#isServer || this.#overLimit()) return false
    if (this.#cold?.held !== undefined) this[kServer]!.hub.release(this)
    const sender = this.#cold?.sender
    const driver = this.#driver!
    if ((sender !== undefined && (sender.busy || sender.fragmenting)) || !driver.connection.canSend) return false
    driver.connection.sendPrepared(frame)
    driver.queued(callback)
    return true
  }

  /** Whether both close frames were exchanged (CloseEvent.wasClean). */
  get wasClean(): boolean {
    return (this.#cold?.wasClean ?? false)
  }

  /**
   * Takes over an upgraded socket (used by WebSocketServer and the client
   * handshake). `head` holds bytes received after the handshake.
   */
  setSocket(socket: Socket, head: Buffer, options: WebSocketOptions = this.#options, deflate?: DeflateSession): void {
    this._attach(new NetTransport(socket), head, options, deflate)
  }

  /** @internal Takes over an upgraded transport (a socket, or a bare TCP handle: tcp.ts). */
  _attach(transport: Transport, head: Uint8Array | undefined, options: WebSocketOptions = this.#options, deflate?: DeflateSession): void {
    const connection = new Connection({
      side: this.#isServer ? 'server' : 'client',
      maxPayload: options.maxPayload,
      maxFragments: options.maxFragments,
      skipUTF8Validation: options.skipUTF8Validation,
      autoPong: options.autoPong,
      allocate: Buffer.allocUnsafe,
      generateMask: options.generateMask as GenerateMask | undefined,
      deflate: deflate?.parameters,
    })
    this.#codec = deflate?.codec
    // A subclass's class field `binaryType = 'fragments'` defines an own property that hides the accessor; ws
    // reads the property when the socket is attached, so the field's value holds there too.
    if (Object.hasOwn(this, 'binaryType')) {
      const own = (this as { binaryType: BinaryType }).binaryType
      if (BINARY_TYPES.includes(own)) this.#binaryType = own
    }
    // ws answers pings through the socket's own `pong`: a replacement (a subclass's, or one assigned) is used.
    if (this.#cold?.pongReplaced === true || this.pong !== defaultPong) {
      this.#warm().pongReplaced = true
      connection.stopAutoPong()
    }
    const limits = socketLimits(options, this.#isServer)
    this.#limits = limits
    const tracking = sweeps(limits)
    const driver = new SocketDriver(transport, connection, this, {
      closeTimeout: options.closeTimeout,
      codec: deflate?.codec,
      trackActivity: tracking,
    })
    this.#driver = driver
    if (this.#cold !== undefined) this.#cold.request = undefined
    // A server sweeps its sockets with one timer; a client (or a socket no server owns) keeps its own.
    if (tracking && this[kServer] === undefined) {
      const timer = setInterval(() => this._sweep(coarseNow()), sweepPeriod(limits))
      timer.unref()
      this.#warm().sweepTimer = timer
    }
    driver.start(head)
    this.#readyState = OPEN
    this.emit('open')
  }

  /**
   * @internal A socket already open over `transport`, with no HTTP handshake
   * (tether/testing's linked pairs): `side` says which role it plays.
   */
  static _overTransport(transport: Transport, side: 'client' | 'server', options: WebSocketOptions = {}): WebSocket {
    const ws = new WebSocket(null, undefined, options)
    ws.#isServer = side === 'server'
    ws._attach(transport, undefined, options)
    return ws
  }

  /** Records what the handshake agreed on (server: before `setSocket`). */
  _setNegotiated(protocol: string, extensions: string): void {
    this.#protocol = protocol
    this.#extensions = extensions
  }

  send(data: SendData, callback?: SendCallback): void
  send(data: SendData, options: SendOptions, callback?: SendCallback): void
  send(data: Data, options?: SendOptions | SendCallback, sendCallback?: SendCallback): void {
    if (this.#readyState === CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)')
    let callback = sendCallback as Callback | undefined
    if (typeof options === 'function') {
      callback = options as Callback
      options = {}
    }
    if (typeof data === 'number') data = data.toString()
    if (this.#readyState !== OPEN) return this.#refuse(data, callback)
    if (this.#overLimit()) return this.#overflow(data, callback)
    const server = this[kServer]
    if (server !== undefined && (options as SendOptions | undefined)?.fin !== false) server.counters.messagesSent++
    // Published messages held back for this socket were published before this send: they go first.
    if (this.#cold?.held !== undefined) this[kServer]!.hub.release(this)
    const sender = this.#cold?.sender
    // The common case, without building a queue item: a whole message, nothing queued
    // before it, no compression negotiated.
    if (
      this.#codec === undefined &&
      (typeof data === 'string' || Buffer.isBuffer(data)) &&
      options?.fin !== false &&
      (sender === undefined || (!sender.busy && !sender.fragmenting))
    ) {
      const driver = this.#driver!
      if (driver.connection.canSend) {
        return sendNow(driver, typeof data === 'string' ? Buffer.from(data) : data, options?.binary ?? typeof data !== 'string', callback)
      }
    }
    const prepared = data instanceof PreparedMessage ? data : undefined
    const item: QueuedSend = {
      data: prepared ?? (isBlob(data) ? data : toBuffer((data ?? EMPTY) as Exclude<Data, Blob | number | PreparedMessage>)),
      binary: prepared ? prepared.binary : (options?.binary ?? typeof data !== 'string'),
      fin: prepared ? true : (options?.fin ?? true),
      compress: options?.compress ?? true,
      callback,
    }
    // A queued send (a Blob, a compression) goes behind the published messages this socket holds, and
    // before those published after it: the shared run it holds must end here (hub.ts Rule 2).
    this.#driver!.connection.closeRun()
    this.#senderFor().send(item)
  }

  /** The send queue, created on first need (sender.ts). */
  #senderFor(): Sender {
    const cold = this.#warm()
    return (cold.sender ??= new Sender(this.#driver!, this.#codec, this.#isServer, this))
  }

  /** Whether what waits to be sent is over the send-buffer limit, under a policy that refuses more. */
  #overLimit(): boolean {
    const limits = this.#limits!
    return limits.sendLimit > 0 && limits.sendPolicy !== 'wait' && this.bufferedAmount > limits.sendLimit
  }

  /** Sends a ping; `data` as `send` takes it, at most 125 bytes (ws also takes `ping(callback)`). */
  ping(data?: any, mask?: boolean, callback?: ControlCallback): void
  ping(data: any, callback: ControlCallback): void
  ping(data?: any, mask?: boolean | ControlCallback, callback?: ControlCallback): void {
    this.#control('ping', data, mask, callback as Callback | undefined)
  }

  /** Sends a pong (answers to pings are sent through this method too, as in ws: see `driverAutoPong`). */
  pong(data?: any, mask?: boolean, callback?: ControlCallback): void
  pong(data: any, callback: ControlCallback): void
  pong(data?: any, mask?: boolean | ControlCallback, callback?: ControlCallback): void {
    this.#control('pong', data, mask, callback as Callback | undefined)
  }

  close(code?: number, data?: string | Buffer): void {
    if (this.#readyState === CLOSED) return
    if (this.#readyState === CONNECTING) {
      return this.#abortHandshake('WebSocket was closed before the connection was established')
    }
    const driver = this.#driver
    // A client handshake that failed (or was aborted) leaves no connection: nothing to close (ws returns too).
    if (driver === undefined) return
    const connection = driver.connection
    if (this.#readyState === CLOSING) {
      if (connection.closeSent && (connection.closeReceived || connection.error)) driver.transport.end()
      return
    }
    if (code !== undefined && (typeof code !== 'number' || !isValidCloseCode(code))) {
      throw new TypeError('First argument must be a valid error code number')
    }
    let reason: Buffer = EMPTY
    if (code !== undefined && data !== undefined && data.length > 0) {
      reason = typeof data === 'string' ? Buffer.from(data) : toBuffer(data)
      if (reason.length > 123) throw new RangeError('The message must not be greater than 123 bytes')
    }
    this.#readyState = CLOSING
    // Nothing published after close() reaches this socket, though the close frame may wait in the queue.
    connection.closeRun()
    const sender = this.#cold?.sender
    // Sends accepted before close() still go first (sender.ts Rule 1).
    if (sender !== undefined) return sender.close(code ?? 1005, reason)
    connection.sendClose(code ?? 1005, reason)
    // The close frame goes to the socket now, as ws writes it (so bufferedAmount does not count it).
    driver.queued()
    driver.flushNow()
  }

  terminate(): void {
    if (this.#readyState === CLOSED) return
    if (this.#readyState === CONNECTING) {
      return this.#abortHandshake('WebSocket was closed before the connection was established')
    }
    const driver = this.#driver
    // As in close(): after a failed handshake there is nothing to terminate.
    if (driver === undefined) return
    this.#readyState = CLOSING
    driver.terminate()
  }

  pause(): void {
    if (this.#readyState === CONNECTING || this.#readyState === CLOSED) return
    this.#driver?.pause()
  }

  resume(): void {
    if (this.#readyState === CONNECTING || this.#readyState === CLOSED) return
    this.#driver?.resume()
  }

  // ------------------------------------------------------------ internals

  // ---------------------------------------------------- DriverHandler (internal)
  // The WebSocket hears its driver directly, so a connection costs no forwarding object.

  /** @internal */
  driverMessage(data: Buffer, binary: boolean): void {
    const server = this[kServer]
    if (server !== undefined) server.counters.messagesReceived++
    this._receivedMessage(data, binary)
  }
  /** @internal */
  driverPing(data: Buffer): void {
    // As ws: the answer goes first, through `pong` (only when it was replaced: otherwise the core answered, core Rule 7).
    if (this.#cold?.pongReplaced === true && this.#options.autoPong !== false) this.pong(data, !this.#isServer, noop)
    this.emit('ping', data)
  }

  /** @internal An application replaced `pong` on this socket (the prototype's setter): answer pings through it. */
  _pongReplaced(): void {
    const cold = this.#warm()
    if (cold.pongReplaced) return
    cold.pongReplaced = true
    this.#driver?.connection.stopAutoPong()
  }
  /** @internal */
  driverPong(data: Buffer): void {
    this.emit('pong', data)
  }
  /** @internal */
  driverCloseFrame(): void {
    this._closing()
  }
  /** @internal */
  driverError(error: ProtocolError): void {
    const stats = this[kServer]?.stats
    if (stats !== undefined) {
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') stats.payloadTooBig++
      else if (error.code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') stats.tooManyFragments++
      else if (error.code === 'TETHER_ERR_RECEIVE_MEMORY') stats.receiveMemoryExceeded++
    }
    this._closing()
    this._emitError(toWsError(error))
  }
  /** @internal */
  driverClosed(code: number, reason: Buffer): void {
    this._closed(code, reason)
  }
  /** @internal */
  driverDrain(): void {
    this.emit('drain')
  }

  /** @internal */
  _receivedMessage(data: Buffer, binary: boolean): void {
    if (!binary) {
      this.emit('message', data, false)
      return
    }
    switch (this.#binaryType) {
      case 'nodebuffer':
        this.emit('message', data, true)
        break
      case 'arraybuffer':
        this.emit('message', toArrayBuffer(data), true)
        break
      case 'fragments':
        this.emit('message', [data], true)
        break
      case 'blob':
        this.emit('message', new Blob([data]), true)
        break
    }
  }

  /** @internal A close frame arrived or the connection failed. */
  _closing(): void {
    if (this.#readyState === OPEN) this.#readyState = CLOSING
  }

  /** @internal */
  _emitError(error: Error): void {
    if ((this.#cold?.errorEmitted ?? false)) return
    this.#warm().errorEmitted = true
    // Do not crash the process when nobody listens (see the module comment).
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }

  /** @internal */
  _closed(code: number, reason: Buffer): void {
    const cold = this.#cold
    if (cold?.sweepTimer !== undefined) clearInterval(cold.sweepTimer)
    if (code === 1006 && cold?.abnormalReason !== undefined && reason.length === 0) reason = Buffer.from(cold.abnormalReason)
    const connection = this.#driver?.connection
    this.#warm().wasClean = connection !== undefined && connection.closeSent !== undefined && connection.closeReceived !== undefined
    // Sends still queued hear of it while the socket is CLOSING, as in ws; then it is CLOSED.
    cold?.sender?.fail()
    this.#readyState = CLOSED
    this[kServer]?.hub.remove(this)
    this.emit('close', code, reason)
  }

  /** @internal The client handshake sent a request to `url`. */
  _requestCreated(url: string, request: ClientRequest, redirected: boolean): void {
    this.#warm().url = url
    this.#warm().request = request
    if (redirected) this.emit('redirect', url, request)
  }

  /**
   * How many redirects the client handshake followed (with `followRedirects`), counting the one
   * refused past `maxRedirects`: ws's `_redirects`, which tests and tools read.
   */
  get _redirects(): number {
    return this.#cold?.redirects ?? 0
  }

  /**
   * Which side this socket plays (ws's `_isServer`). A tool that attaches a
   * socket itself sets it before `setSocket`: fastify's `injectWS` makes
   * `new WebSocket(null)` a client so.
   */
  get _isServer(): boolean {
    return this.#isServer
  }
  set _isServer(server: boolean) {
    if (this.#driver === undefined) this.#isServer = Boolean(server)
  }

  /** The client's upgrade request while the handshake runs, then null (ws's `_req`, which tools read). */
  get _req(): ClientRequest | null {
    return this.#cold?.request ?? null
  }

  /** @internal The client handshake follows a redirect. */
  _redirectReceived(): void {
    this.#warm().redirects++
  }

  /** @internal The client handshake failed: CLOSING now, 'error' and 'close' on the next tick (as ws's abortHandshake). */
  _handshakeFailed(error: Error): void {
    this.#releaseOffer()
    if (this.#readyState !== CONNECTING) return
    this.#readyState = CLOSING
    process.nextTick(() => this.#emitErrorAndClose(error))
  }

  /** @internal The server accepted the client handshake. */
  _handshakeAccepted(socket: Socket, head: Buffer, accepted: AcceptedResponse): void {
    this.#opened(accepted, socket, (deflate) => this.setSocket(socket, head, this.#options, deflate))
  }

  /** @internal The server accepted the extended CONNECT (RFC 8441): the stream carries the WebSocket. */
  _streamAccepted(stream: ClientHttp2Stream, accepted: AcceptedResponse): void {
    const transport = new Http2StreamTransport(stream)
    this.#opened(accepted, transport, (deflate) => this._attach(transport, undefined, this.#options, deflate))
  }

  /** @internal The HTTP/2 attempt started; `abort` gives it up (close() while CONNECTING). */
  _streamRequested(url: string, abort: () => void): void {
    const cold = this.#warm()
    cold.url = url
    cold.abortStream = abort
  }

  /** Completes permessage-deflate from the answer, then opens over the connection; fails it if the answer is unacceptable. */
  #opened(accepted: AcceptedResponse, connection: { destroy(): void }, attach: (deflate: DeflateSession | undefined) => void): void {
    if (this.#cold !== undefined) this.#cold.abortStream = undefined
    let deflate: DeflateSession | undefined
    const offer = this.#cold?.deflateOffer
    if (offer !== undefined) {
      this.#warm().deflateOffer = undefined
      const outcome = completeDeflate(offer, accepted.extensions.find((extension) => extension.name === PERMESSAGE_DEFLATE))
      if (typeof outcome === 'string') {
        // RFC 7692 §7.1: an answer the client cannot accept fails the connection.
        connection.destroy()
        this._handshakeFailed(new TetherError('TETHER_ERR_HANDSHAKE_SERVER_EXTENSIONS', 'Invalid Sec-WebSocket-Extensions header', { cause: outcome }))
        return
      }
      deflate = outcome
    }
    this._setNegotiated(accepted.protocol, deflate ? PERMESSAGE_DEFLATE : '')
    attach(deflate)
  }

  // ------------------------------------------------------------------ topics

  /**
   * Subscribes this socket to `topic`: it receives what `server.publish(topic, …)`
   * publishes (on this node, and on every node sharing the server's backplane).
   * Returns false if it already was subscribed, or is no longer open.
   *
   * @example
   * ```ts
   * wss.on('connection', (ws) => ws.subscribe('scores'))
   * wss.publish('scores', JSON.stringify({ home: 2, away: 1 }))
   * ```
   */
  subscribe(topic: string): boolean {
    checkTopic(topic, 'subscribe()')
    const hub = this.#hubFor('subscribe')
    if (this.#readyState !== OPEN) return false
    return hub.registry.subscribe(this, topic)
  }

  /** Unsubscribes from `topic`; returns false if this socket was not subscribed. */
  unsubscribe(topic: string): boolean {
    checkTopic(topic, 'unsubscribe()')
    return this.#hubFor('unsubscribe').registry.unsubscribe(this, topic)
  }

  isSubscribed(topic: string): boolean {
    checkTopic(topic, 'isSubscribed()')
    return this[kServer]?.hub.registry.isSubscribed(this, topic) ?? false
  }

  /** The topics this socket is subscribed to, in the order it subscribed. */
  get topics(): string[] {
    return this[kServer]?.hub.registry.topicsOf(this) ?? []
  }

  #hubFor(method: string): SocketTopicHub {
    const hub = this[kServer]?.hub
    if (hub === undefined) {
      throw new Error(`${method}() is for sockets a WebSocketServer accepted: a client socket has no server to publish from`)
    }
    return hub
  }

  /** @internal `user`'s storage (the property is defined on the prototype below, typed on the interface). */
  _getUser(): unknown {
    return this.#cold?.user
  }
  /** @internal */
  _setUser(user: unknown): void {
    if (user !== undefined || this.#cold !== undefined) this.#warm().user = user
  }

  /** @internal The hub's slot (kept in the cold state: most sockets never need it). */
  get [kHeld](): LatestPending<PreparedMessage> | undefined {
    return this.#cold?.held
  }
  set [kHeld](held: LatestPending<PreparedMessage> | undefined) {
    if (held !== undefined || this.#cold !== undefined) this.#warm().held = held
  }

  /** @internal A published message for this subscriber, behind what it was sent before. */
  [kDeliver](prepared: PreparedMessage): boolean {
    if (this.#readyState !== OPEN) return false
    const sender = this.#cold?.sender
    if (sender !== undefined) return sender.deliver(prepared)
    if (!this.#driver!.connection.canSend) return false
    sendPreparedNow(this.#driver!, this.#codec, prepared, prepared.compress, undefined)
    return true
  }

  /** @internal hub.ts Rule 2: joins a run of published messages where `kDeliver` would send its latest now. */
  [kJoinRun](run: PublishedRun): boolean {
    if (this.#readyState !== OPEN) return false
    const sender = this.#cold?.sender
    if (sender !== undefined && (sender.busy || sender.fragmenting)) return false
    const driver = this.#driver!
    const connection = driver.connection
    if (!connection.canSend || !run.admit(this.#codec !== undefined)) return false
    connection.sendRun(run)
    driver.queued()
    return true
  }

  /** @internal SenderHost: a published message that waited behind a fragmented send. */
  deliverPublished(prepared: PreparedMessage): void {
    this[kDeliver](prepared)
  }

  /** @internal SenderHost: a Blob could not be read. */
  blobFailed(error: Error): void {
    this._emitError(error)
    if (this.#readyState === OPEN) this.close(1011)
  }

  /** @internal SenderHost: a send that can no longer go (sender.ts Rule 3). */
  refuse(data: Buffer | Blob | PreparedMessage, callback: Callback | undefined): void {
    this.#refuse(data, callback)
  }

  /** @internal */
  [kCloseSlow](code: number, reason: string): void {
    if (this.#readyState === OPEN) this.close(code, reason)
  }

  /** @internal */
  [kWatchWritable](): void {
    this.#driver?.watchWritable()
  }

  /** @internal */
  driverWritable(): void {
    this[kServer]?.hub.release(this)
  }

  /** @internal The send budget terminates this connection (memory-budget.ts). */
  driverSendBudgetExceeded(): void {
    const stats = this[kServer]?.stats
    if (stats !== undefined) stats.sendMemoryExceeded++
    this.#warm().abnormalReason = 'send memory budget exceeded: the peer does not read'
    if (this.#readyState === OPEN) this.#readyState = CLOSING
  }

  /** @internal */
  driverCloseTimeout(): void {
    const stats = this[kServer]?.stats
    if (stats !== undefined) stats.closeTimeouts++
  }

  /**
   * @internal One heartbeat and idle check (a server calls it for all its
   * sockets from one timer; a client from its own). A dead peer is
   * terminated: the application sees close 1006 with a reason.
   */
  _sweep(now: number): void {
    const driver = this.#driver
    const limits = this.#limits
    if (driver === undefined || limits === undefined || this.#readyState !== OPEN) return
    const found = driver.sweep(now, limits.sweep)
    if (found === SWEEP_DEAD) {
      const stats = this[kServer]?.stats
      if (stats !== undefined) stats.heartbeatTimeouts++
      const waited = limits.sweep.pingInterval + limits.sweep.pongTimeout
      this.#warm().abnormalReason = `heartbeat timeout: no data and no pong for ${waited} ms`
      this.#readyState = CLOSING
      driver.destroy()
    } else if (found === SWEEP_IDLE) {
      const stats = this[kServer]?.stats
      if (stats !== undefined) stats.idleTimeouts++
      this.close(1001, 'idle timeout')
    }
  }

  #control(kind: 'ping' | 'pong', data: unknown, mask: unknown, callback: Callback | undefined): void {
    if (this.#readyState === CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)')
    if (typeof data === 'function') {
      callback = data as Callback
      data = undefined
    } else if (typeof mask === 'function') {
      callback = mask as Callback
    }
    if (typeof data === 'number') data = data.toString()
    if (this.#readyState !== OPEN) return this.#refuse(data as Data | undefined, callback)
    const bytes = data === undefined || data === null ? EMPTY : toBuffer(data as Exclude<Data, Blob | number>)
    if (bytes.length > 125) throw new RangeError('The data size must not be greater than 125 bytes')
    const driver = this.#driver!
    // As in sender.ts: the core's close frame may be ahead of readyState.
    if (!driver.connection.canSend) return this.#refuse(bytes, callback)
    // Control frames are part of the send buffer: a peer that does not read cannot make them pile up.
    if (this.#overLimit()) return this.#overflow(bytes, callback)
    // A send waiting in the queue (a Blob being read, a compression) goes first, as in ws (sender.ts Rule 1).
    const sender = this.#cold?.sender
    if (sender !== undefined && sender.busy) return sender.control(kind, bytes, callback)
    sendControlNow(driver, kind, bytes, callback)
  }

  /**
   * A send over the send-buffer limit: refused (`drop`) or the socket closed
   * with 1013 (`close`); either way the callback hears of it and the server
   * counts it.
   */
  #overflow(data: Data, callback: Callback | undefined): void {
    const limits = this.#limits!
    const server = this[kServer]
    if (server !== undefined) {
      server.stats.sendBufferOverflows++
      if (limits.sendPolicy === 'close') server.counters.sendBufferClosed++
      else server.counters.sendBufferDropped++
    }
    const error = Object.assign(new Error(`Send buffer limit exceeded: ${this.bufferedAmount} bytes are waiting (limit ${limits.sendLimit})`), {
      code: 'TETHER_ERR_SEND_BUFFER_FULL',
    })
    if (callback) process.nextTick(callback, error)
    this.emit('sendBufferFull', { dropped: data, bufferedAmount: this.bufferedAmount, policy: limits.sendPolicy })
    if (limits.sendPolicy === 'close') this.close(1013, 'send buffer limit exceeded: the peer does not read')
  }

  /** A send while CLOSING or CLOSED: counted in bufferedAmount, reported to the callback (ws behaviour). */
  #refuse(data: Data | undefined, callback: Callback | undefined): void {
    if (data !== undefined && data !== null) {
      this.#warm().refusedBytes += isBlob(data)
        ? data.size
        : data instanceof PreparedMessage
          ? data.data.length
          : toBuffer(data as Exclude<Data, Blob | number | PreparedMessage>).length
    }
    if (callback) {
      // OPEN here means the core's close frame went out before readyState heard of it.
      const state = this.#readyState === OPEN ? CLOSING : this.#readyState
      process.nextTick(callback, new Error(`WebSocket is not open: readyState ${state} (${READY_STATES[state]})`))
    }
  }

  #releaseOffer(): void {
    const offer = this.#cold?.deflateOffer
    if (offer !== undefined) {
      abandonDeflateOffer(offer)
      this.#cold!.deflateOffer = undefined
    }
  }

  #abortHandshake(message: string): void {
    this.#readyState = CLOSING
    const abortStream = this.#cold?.abortStream
    if (abortStream !== undefined) {
      this.#cold!.abortStream = undefined
      abortStream()
    }
    const request = this.#cold?.request
    if (request) {
      request.destroy()
      if (request.socket && !request.socket.destroyed) request.socket.destroy()
    }
    process.nextTick(() => this.#emitErrorAndClose(new Error(message)))
  }

  #emitErrorAndClose(error: Error): void {
    // A handshake abandoned by the application (terminate() from an 'upgrade' or
    // 'unexpected-response' listener) never reaches _handshakeFailed: give back the
    // budget the offer reserved here, or it would leak for the life of the process.
    this.#releaseOffer()
    this.#readyState = CLOSING
    this._emitError(error)
    this.#readyState = CLOSED
    this.emit('close', 1006, EMPTY)
  }
}

for (const [name, value] of [
  ['CONNECTING', CONNECTING],
  ['OPEN', OPEN],
  ['CLOSING', CLOSING],
  ['CLOSED', CLOSED],
] as const) {
  Object.defineProperty(WebSocket, name, { enumerable: true, value })
  Object.defineProperty(WebSocket.prototype, name, { enumerable: true, value })
}
for (const property of ['binaryType', 'bufferedAmount', 'extensions', 'isPaused', 'protocol', 'readyState', 'url']) {
  const descriptor = Object.getOwnPropertyDescriptor(WebSocket.prototype, property)!
  Object.defineProperty(WebSocket.prototype, property, { ...descriptor, enumerable: true })
}
/**
 * `pong` is an accessor on the prototype: assigning `ws.pong = fn` (graphql-ws
 * does, to play a peer that stops answering) stores `fn` on the socket and
 * makes automatic answers to pings go through it, as in ws, whose automatic
 * answer calls `websocket.pong()`. Sockets that never replace it keep the
 * core's automatic pong, which coalesces answers for a peer that does not
 * read (core Rule 7).
 */
const defaultPong = WebSocket.prototype.pong
Object.defineProperty(WebSocket.prototype, 'pong', {
  configurable: true,
  enumerable: false,
  get(): typeof defaultPong {
    return defaultPong
  },
  set(this: WebSocket, replacement: typeof defaultPong) {
    Object.defineProperty(this, 'pong', { value: replacement, writable: true, configurable: true, enumerable: true })
    this._pongReplaced()
  },
})
function noop(): void {}
// `user` is an accessor at run time but a plain optional property in the types, so that a subclass or an
// interface extending WebSocket may declare its own `user` as with ws (an accessor cannot be redeclared so).
Object.defineProperty(WebSocket.prototype, 'user', {
  get(this: WebSocket) {
    return this._getUser()
  },
  set(this: WebSocket, user: unknown) {
    this._setUser(user)
  },
  configurable: true,
  enumerable: false,
})
// tether's read-only additions give way to an application's own field of the same name (`ws.topics = new
// Set()` is common in ws code): assigning one defines an own property that hides the accessor.
allowShadowing(WebSocket.prototype, ['topics', 'wasClean'])
defineEventAttributes(WebSocket.prototype)
Object.defineProperty(WebSocket.prototype, 'addEventListener', { value: addEventListener, writable: true, configurable: true })
Object.defineProperty(WebSocket.prototype, 'removeEventListener', { value: removeEventListener, writable: true, configurable: true })

/** The browser-style events and what their listeners get (@types/ws `WebSocketEventMap`). */
export interface WebSocketEventMap {
  open: events.Event
  error: events.ErrorEvent
  close: events.CloseEvent
  message: events.MessageEvent
}
type EventListenerOf<K extends keyof WebSocketEventMap> =
  | ((event: WebSocketEventMap[K]) => void)
  | { handleEvent(event: WebSocketEventMap[K]): void }

export interface WebSocket {
  addEventListener<K extends keyof WebSocketEventMap>(type: K, listener: EventListenerOf<K>, options?: types.EventListenerOptions): void
  removeEventListener<K extends keyof WebSocketEventMap>(type: K, listener: EventListenerOf<K>): void
}

/** The events of a WebSocket and their arguments, as @types/ws declares them. */
interface WebSocketEvents {
  open: []
  message: [data: RawData, isBinary: boolean]
  close: [code: number, reason: Buffer]
  error: [error: Error]
  ping: [data: Buffer]
  pong: [data: Buffer]
  upgrade: [response: IncomingMessage]
  'unexpected-response': [request: ClientRequest, response: IncomingMessage]
  redirect: [url: string, request: ClientRequest]
  drain: []
}
type Listener<K extends keyof WebSocketEvents> = (this: WebSocket, ...args: WebSocketEvents[K]) => void
type AnyListener = (this: WebSocket, ...args: any[]) => void

/** Typed listeners, so `ws.on('message', (data, isBinary) => ...)` is typed as with @types/ws. */
export interface WebSocket {
  on<K extends keyof WebSocketEvents>(event: K, listener: Listener<K>): this
  on(event: string | symbol, listener: AnyListener): this
  once<K extends keyof WebSocketEvents>(event: K, listener: Listener<K>): this
  once(event: string | symbol, listener: AnyListener): this
  off<K extends keyof WebSocketEvents>(event: K, listener: Listener<K>): this
  off(event: string | symbol, listener: AnyListener): this
  addListener<K extends keyof WebSocketEvents>(event: K, listener: Listener<K>): this
  addListener(event: string | symbol, listener: AnyListener): this
  removeListener<K extends keyof WebSocketEvents>(event: K, listener: Listener<K>): this
  removeListener(event: string | symbol, listener: AnyListener): this
}

/** The instance type, under a name the namespace below can extend (inside it, `WebSocket` is its own member). */
type WebSocketInstance = WebSocket

/**
 * The names @types/ws declares on `WebSocket`, so `WebSocket.RawData`,
 * `WebSocket.ServerOptions`, `WebSocket.Server` and the rest work as types
 * (and, for classes and functions, as values: src/ws/index.ts attaches them),
 * whichever way the package is imported. tether's own exports are here too.
 */
export declare namespace WebSocket {
  type RawData = types.RawData
  type Data = types.Data
  type CertMeta = types.CertMeta
  type VerifyClientCallbackSync<Request extends HttpIncomingMessage = HttpIncomingMessage> = types.VerifyClientCallbackSync<Request>
  type VerifyClientCallbackAsync<Request extends HttpIncomingMessage = HttpIncomingMessage> = types.VerifyClientCallbackAsync<Request>
  type FinishRequestCallback = types.FinishRequestCallback
  type EventListenerOptions = types.EventListenerOptions
  type AddressInfo = types.AddressInfo
  type ClientOptions = WebSocketOptions
  type PerMessageDeflateOptions = import('../node/deflate.js').PerMessageDeflateOptions
  type ServerOptions<
    T extends typeof import('./websocket.js').WebSocket = typeof import('./websocket.js').WebSocket,
    U extends typeof HttpIncomingMessage = typeof HttpIncomingMessage,
  > = ServerOptionsOf<T, U>
  type WebSocketEventMap = import('./websocket.js').WebSocketEventMap
  type BinaryType = import('./websocket.js').BinaryType
  type SendOptions = import('./websocket.js').SendOptions
  type SendData = import('./websocket.js').SendData

  const Event: typeof events.Event
  type Event = events.Event
  const ErrorEvent: typeof events.ErrorEvent
  type ErrorEvent = events.ErrorEvent
  const CloseEvent: typeof events.CloseEvent
  type CloseEvent = events.CloseEvent
  const MessageEvent: typeof events.MessageEvent
  type MessageEvent = events.MessageEvent

  const Server: typeof import('./websocket-server.js').WebSocketServer
  type Server<
    T extends typeof import('./websocket.js').WebSocket = typeof import('./websocket.js').WebSocket,
    U extends typeof HttpIncomingMessage = typeof HttpIncomingMessage,
  > = WebSocketServer<T, U>
  const WebSocketServer: typeof import('./websocket-server.js').WebSocketServer
  type WebSocketServer<
    T extends typeof import('./websocket.js').WebSocket = typeof import('./websocket.js').WebSocket,
    U extends typeof HttpIncomingMessage = typeof HttpIncomingMessage,
  > = import('./websocket-server.js').WebSocketServer<T, U>
  const WebSocket: typeof import('./websocket.js').WebSocket
  // An interface, not an alias, as in @types/ws: `declare module 'tether-ws' { interface WebSocket { isAlive:
  // boolean } }` (module augmentation, ws's heartbeat example) merges here, and so reaches every socket.
  interface WebSocket extends WebSocketInstance {}
  const createWebSocketStream: typeof createStream
  /** ws's frame builder (`Sender.frame`), for libraries that frame a message once for many sockets. */
  const Sender: typeof import('./frame-sender.js').Sender
  type Sender = import('./frame-sender.js').Sender

  type ServerSocket<T extends typeof import('./websocket.js').WebSocket = typeof import('./websocket.js').WebSocket, User = unknown> =
    import('./websocket-server.js').ServerSocket<T, User>
  type AuthResult<User = unknown> = import('./websocket-server.js').AuthResult<User>
  type Http2PortOptions = import('./websocket-server.js').Http2PortOptions
  type ClientSet<Socket = import('./websocket.js').WebSocket> = import('./websocket-server.js').ClientSet<Socket>
  /** ws's Sec-WebSocket-Extensions helpers (`require('ws/lib/extension')`): `parse` and `format`. */
  const extension: typeof import('./header-helpers.js').extension
  /** ws's Sec-WebSocket-Protocol helper (`require('ws/lib/subprotocol')`): `parse` to a Set. */
  const subprotocol: typeof import('./header-helpers.js').subprotocol
  type Extensions = import('./header-helpers.js').Extensions
  type ExtensionParams = import('./header-helpers.js').ExtensionParams
  type VerifyClient<Request extends HttpIncomingMessage = HttpIncomingMessage> = import('./websocket-server.js').VerifyClient<Request>
  type VerifyClientCallback = import('./websocket-server.js').VerifyClientCallback
  type VerifyClientInfo<Request extends HttpIncomingMessage = HttpIncomingMessage> = types.VerifyClientInfo<Request>
  type PublishOptions = import('./websocket-server.js').PublishOptions
  type PublishResult = import('../pubsub/hub.js').PublishResult
  type SlowConsumerInfo = import('../pubsub/hub.js').SlowConsumerInfo
  type TopicStats = import('../pubsub/hub.js').TopicStats
  type SlowConsumerPolicy = import('../pubsub/policy.js').SlowConsumerPolicy
  type TopicPolicy = import('../pubsub/policy.js').TopicPolicy
  type Backplane = import('../pubsub/backplane.js').Backplane
  type BackplaneEvent = import('../pubsub/backplane.js').BackplaneEvent
  type WsProtocolError = import('./errors.js').WsProtocolError
  type DeflateMemoryStats = import('../node/zlib-codec.js').DeflateMemoryStats
  type MemoryBudgetStats = import('../node/memory-budget.js').MemoryBudgetStats
  type FrameOptions = import('./frame-sender.js').FrameOptions
  type WebSocketOptions = import('./websocket.js').WebSocketOptions

  const PreparedMessage: typeof import('../node/prepared.js').PreparedMessage
  type PreparedMessage = import('../node/prepared.js').PreparedMessage
  const configureDeflateMemory: typeof import('../node/zlib-codec.js').configureDeflateMemory
  const deflateMemoryStats: typeof import('../node/zlib-codec.js').deflateMemoryStats
  const configureReceiveMemory: typeof import('../node/memory-budget.js').configureReceiveMemory
  const receiveMemoryStats: typeof import('../node/memory-budget.js').receiveMemoryStats
  const configureSendMemory: typeof import('../node/memory-budget.js').configureSendMemory
  const sendMemoryStats: typeof import('../node/memory-budget.js').sendMemoryStats
  type ServerMetrics = import('../node/server-metrics.js').ServerMetrics
  type LimitStats = import('../node/limits.js').LimitStats
  type HandshakeRefusalReason = import('../node/server-metrics.js').HandshakeRefusalReason
  type HandshakeRefusedMessage = import('../node/server-metrics.js').HandshakeRefusedMessage
  const HANDSHAKE_REFUSED_CHANNEL: typeof import('../node/server-metrics.js').HANDSHAKE_REFUSED_CHANNEL
  const HANDSHAKE_REFUSAL_REASONS: typeof import('../node/server-metrics.js').HANDSHAKE_REFUSAL_REASONS
}
