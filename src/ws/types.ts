/**
 * The type vocabulary of `ws` v8, as @types/ws names it, so that a program
 * typed against @types/ws compiles against tether with only its import
 * changed. The WebSocket class carries these names on its namespace
 * (`WebSocket.RawData`, `WebSocket.ServerOptions`, ...: websocket.ts), and the
 * package exports them by name.
 */
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import type { WebSocket } from './websocket.js'

/**
 * What a `message` listener receives: a Buffer (`binaryType` 'nodebuffer', and
 * every text message), an ArrayBuffer ('arraybuffer') or Buffer[] ('fragments').
 * With `binaryType = 'blob'` (ws 8.18 and tether) binary messages are Blobs,
 * which this type leaves out, as @types/ws does.
 */
export type RawData = Buffer | ArrayBuffer | Buffer[]

/** What a MessageEvent carries: a string for text, else as `RawData`. */
export type Data = string | Buffer | ArrayBuffer | Buffer[]

export type CertMeta = string | string[] | Buffer | Buffer[]

/** What `verifyClient` is given. `origin` is the Origin header ('' when absent is not promised: ws gives undefined). */
export interface VerifyClientInfo<Request extends IncomingMessage = IncomingMessage> {
  origin: string
  secure: boolean
  req: Request
}

export type VerifyClientCallbackSync<Request extends IncomingMessage = IncomingMessage> = (info: VerifyClientInfo<Request>) => boolean

export type VerifyClientCallbackAsync<Request extends IncomingMessage = IncomingMessage> = (
  info: VerifyClientInfo<Request>,
  callback: (verified: boolean, code?: number, message?: string, headers?: OutgoingHttpHeaders) => void,
) => void

export type FinishRequestCallback = (request: ClientRequest, websocket: WebSocket) => void

export interface EventListenerOptions {
  once?: boolean | undefined
}

export interface AddressInfo {
  address: string
  family: string
  port: number
}
