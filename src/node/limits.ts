/**
 * The limits a connection or server enforces, their defaults, and the
 * counters that say how often each one tripped. Every limit answers with the
 * RFC's code: 1009 or 1008 for what a peer sends, 1013 when it does not read,
 * 1006 (with a reason) for a dead peer, HTTP 408/431/503 in the handshake
 * (the handshake pool's fairness rules are in handshake-pool.ts).
 */
import type { SweepSettings } from './driver.js'

export type SendBufferPolicy = 'wait' | 'drop' | 'close'

export interface SendBufferOptions {
  /** Bytes waiting to be sent above which `policy` applies to a new send; 0: no limit. */
  limit?: number
  /** `wait`: buffer anyway (ws's behaviour); `drop`: refuse the send; `close`: close with 1013. */
  policy?: SendBufferPolicy
}

export interface HeartbeatOptions {
  /** Ping a peer that sent nothing for this many ms. */
  interval?: number
  /** Terminate a pinged peer that sent nothing (not even the pong) for this many ms more. */
  timeout?: number
}

/** Per-connection limits, resolved once per options object and shared by its connections. */
export interface SocketLimits {
  sendLimit: number
  sendPolicy: SendBufferPolicy
  sweep: SweepSettings
}

export const DEFAULT_SEND_BUFFER: Required<SendBufferOptions> = { limit: 64 * 1024 * 1024, policy: 'close' }
/** A server pings a silent peer after 30 s and drops it 30 s later (a client has no default heartbeat). */
export const DEFAULT_SERVER_HEARTBEAT: Required<HeartbeatOptions> = { interval: 30_000, timeout: 30_000 }

function nonNegative(value: unknown, name: string): number {
  if (typeof value !== 'number' || !(value >= 0)) throw new TypeError(`${name} must be a number of milliseconds or bytes, 0 or more`)
  return value
}

const cache = new WeakMap<object, SocketLimits>()

/** Resolves (once per options object) what a socket enforces. */
export function socketLimits(
  options: { sendBuffer?: SendBufferOptions; heartbeat?: HeartbeatOptions | false; idleTimeout?: number },
  server: boolean,
): SocketLimits {
  const cached = cache.get(options)
  if (cached !== undefined) return cached
  const send = { ...DEFAULT_SEND_BUFFER, ...options.sendBuffer }
  if (!['wait', 'drop', 'close'].includes(send.policy)) {
    throw new TypeError(`sendBuffer.policy must be 'wait', 'drop' or 'close', not ${JSON.stringify(send.policy)}`)
  }
  const heartbeat = options.heartbeat === undefined ? (server ? DEFAULT_SERVER_HEARTBEAT : false) : options.heartbeat
  const interval = heartbeat === false ? 0 : nonNegative(heartbeat.interval ?? DEFAULT_SERVER_HEARTBEAT.interval, 'heartbeat.interval')
  const limits: SocketLimits = {
    sendLimit: nonNegative(send.limit, 'sendBuffer.limit'),
    sendPolicy: send.policy,
    sweep: {
      pingInterval: interval,
      pongTimeout: heartbeat === false ? 0 : nonNegative(heartbeat.timeout ?? interval, 'heartbeat.timeout'),
      idleTimeout: nonNegative(options.idleTimeout ?? 0, 'idleTimeout'),
    },
  }
  cache.set(options, limits)
  return limits
}

/** Whether any periodic check is on. */
export function sweeps(limits: SocketLimits): boolean {
  return limits.sweep.pingInterval > 0 || limits.sweep.idleTimeout > 0
}

/** How often to run the checks: a quarter of the shortest period, within 100 ms and 5 s. */
export function sweepPeriod(limits: SocketLimits): number {
  const periods = [limits.sweep.pingInterval, limits.sweep.pongTimeout, limits.sweep.idleTimeout].filter((p) => p > 0)
  return Math.min(5_000, Math.max(100, Math.min(...periods) / 4))
}

/** How often each limit tripped, since the server started. */
export interface LimitStats {
  /** The request head did not arrive within `handshakeTimeout`, or its shortened form under pressure (HTTP 408). */
  handshakeTimeouts: number
  /**
   * Of `handshakeTimeouts`, those at the shortened timeout (a quarter of
   * `handshakeTimeout`), applied while half of `maxPendingHandshakes` or more
   * were in progress.
   */
  pressureTimeouts: number
  /**
   * A connection still sending its request head was closed (HTTP 408) to make
   * room for a newer one, because `maxPendingHandshakes` were in progress: the
   * oldest such connection, or the oldest from an address over its
   * `maxPendingPerAddress` share.
   */
  handshakesDisplaced: number
  /**
   * A connection still sending its request head was closed (HTTP 408) because
   * a newer one came from the same address, which already had
   * `maxPendingPerAddress` sending theirs (not counted for `trustedProxies`).
   */
  addressShareDisplaced: number
  /** The request head was over `maxHeaderSize` or `maxHeaders` (HTTP 431). */
  headersTooLarge: number
  /** `maxPendingHandshakes` were already in progress and none could be displaced (HTTP 503). */
  tooManyPending: number
  /** `maxConnections` were already open (HTTP 503). */
  tooManyConnections: number
  /** `maxConnectionsPerAddress` were already open from the client's address (HTTP 503). */
  tooManyFromAddress: number
  /** The Origin was not allowed (HTTP 403). */
  originRefused: number
  /** `authenticate` refused the request (HTTP 401 or 403). */
  authRefused: number
  /** A message over `maxPayload` (close 1009). */
  payloadTooBig: number
  /** A message in more than `maxFragments` frames (close 1008). */
  tooManyFragments: number
  /**
   * The process-wide receive budget (`maxReceiveMemory`) was spent and this
   * server's connection held the most of it (close 1013).
   */
  receiveMemoryExceeded: number
  /** The process-wide send budget (`maxSendMemory`) was spent and this server's connection had the most waiting (terminated). */
  sendMemoryExceeded: number
  /** A send over the send-buffer limit: refused (`drop`) or the socket closed with 1013 (`close`). */
  sendBufferOverflows: number
  /** No message within `idleTimeout` (close 1001). */
  idleTimeouts: number
  /** No answer to a heartbeat ping (terminated, close 1006 to the application). */
  heartbeatTimeouts: number
  /** The peer did not finish the closing handshake within `closeTimeout` (terminated). */
  closeTimeouts: number
  /** An HTTP/2 extended CONNECT its client reset before it was answered ("rapid reset"): dropped, no WebSocket made. */
  streamsResetBeforeOpen: number
}

export function emptyLimitStats(): LimitStats {
  return {
    handshakeTimeouts: 0,
    pressureTimeouts: 0,
    handshakesDisplaced: 0,
    addressShareDisplaced: 0,
    headersTooLarge: 0,
    tooManyPending: 0,
    tooManyConnections: 0,
    tooManyFromAddress: 0,
    originRefused: 0,
    authRefused: 0,
    payloadTooBig: 0,
    tooManyFragments: 0,
    receiveMemoryExceeded: 0,
    sendMemoryExceeded: 0,
    sendBufferOverflows: 0,
    idleTimeouts: 0,
    heartbeatTimeouts: 0,
    closeTimeouts: 0,
    streamsResetBeforeOpen: 0,
  }
}
