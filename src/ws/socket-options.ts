/**
 * What a WebSocket is given: its options (ws's client options and tether's),
 * what `send` accepts and how, and what `binaryType` may be. Types only;
 * websocket.ts re-exports them, so they are imported from there as before.
 */
import type { ClientHandshakeOptions } from '../node/client.js'
import type { PerMessageDeflateOptions } from '../node/deflate.js'
import type { HeartbeatOptions, SendBufferOptions } from '../node/limits.js'
import type { PreparedMessage } from '../node/prepared.js'
import type { FinishRequestCallback } from './types.js'

/** What `binaryType` may be set to: ws 8's three, and 'blob' (ws 8.18 and tether). */
export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments' | 'blob'
/**
 * What `binaryType` reads as in the types: @types/ws's three, so code typed against ws (a function taking
 * `'nodebuffer' | 'arraybuffer' | 'fragments'`) compiles unchanged. It reads 'blob' at run time after being set
 * to 'blob', as with ws.
 */
export type ReadBinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments'

/**
 * What `send` accepts: what ws accepts (bytes, strings, numbers, anything
 * `Buffer.from` takes), a Blob, and a message prepared once for many receivers.
 */
export type SendData =
  | string
  | Buffer
  | ArrayBuffer
  | SharedArrayBuffer
  | ArrayBufferView
  | Blob
  | Buffer[]
  | number
  | PreparedMessage
  | readonly any[]
  | readonly number[]
  | { valueOf(): ArrayBuffer }
  | { valueOf(): SharedArrayBuffer }
  | { valueOf(): Uint8Array }
  | { valueOf(): readonly number[] }
  | { valueOf(): string }
  | { [Symbol.toPrimitive](hint: string): string }

/** Client options: ws's (`ClientOptions` of @types/ws, and Node's request and TLS options) and tether's. */
export interface WebSocketOptions extends Omit<ClientHandshakeOptions, 'checkServerIdentity' | 'createConnection' | 'finishRequest'> {
  /** As ws (and Node's `tls.connect`): return an Error (ws: false) to refuse the server's certificate. */
  checkServerIdentity?(servername: string, cert: any): boolean | Error | undefined
  /** Makes the connection instead of `net`/`tls` (ws and Node's `http.request` option). */
  createConnection?: ((options: any, oncreate?: (error: Error | null, socket: import('node:stream').Duplex) => void) => import('node:stream').Duplex | null | undefined) | undefined
  /** Called with the request instead of `request.end()`. */
  finishRequest?: FinishRequestCallback | undefined

  /** Accepted for ws compatibility; events are always synchronous. */
  allowSynchronousEvents?: boolean
  /** Answer pings automatically. Default true. */
  autoPong?: boolean
  /** Milliseconds to wait for the peer to finish closing. Default 30 000. */
  closeTimeout?: number
  /** Largest message accepted (after decompression), in bytes. Default 100 MiB. */
  maxPayload?: number
  /** Most data frames one received message may have (more fail with 1008); 0, the default: no count (memory is bounded by bytes). */
  maxFragments?: number
  /**
   * Bytes waiting to be sent above which a new send is refused (`drop`) or the
   * socket is closed with 1013 (`close`, the default), or buffered anyway
   * (`wait`, ws's behaviour). Default limit 64 MiB. tether's addition.
   */
  sendBuffer?: SendBufferOptions
  /**
   * Pings a silent peer and terminates one that does not answer (close 1006
   * with a reason). Servers: `{ interval: 30_000, timeout: 30_000 }` by
   * default; clients: off unless set. `false` turns it off. tether's addition.
   */
  heartbeat?: HeartbeatOptions | false
  /** Closes (1001) a connection whose peer sent no message for this many ms; 0 (default): never. tether's addition. */
  idleTimeout?: number
  maxBufferedChunks?: number
  maxPendingAutoPongs?: number
  skipUTF8Validation?: boolean
  /** permessage-deflate (RFC 7692): true (a client's default), false, or options. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /** Fills each frame's 4-byte masking key (clients). */
  generateMask?(mask: Buffer): void
  protocols?: string | string[]
  /**
   * Open the WebSocket as a stream of an HTTP/2 connection (RFC 8441; tether's
   * addition): `true` for HTTP/2 or an error (`wss:` over TLS, `ws:` as h2c
   * with prior knowledge), `'auto'` for HTTP/2 where the server offers
   * WebSockets over it and HTTP/1.1 otherwise (`wss:` only; ALPN and the
   * server's SETTINGS decide). WebSockets to one origin share one connection,
   * closed `http2IdleTimeout` after the last of them. Default false.
   */
  http2?: boolean | 'auto'
  /** With `http2`: how long the shared connection stays open once its last WebSocket closed, in ms. Default 5 000. */
  http2IdleTimeout?: number
}

export interface SendOptions {
  binary?: boolean
  compress?: boolean
  fin?: boolean
  mask?: boolean
}
