/**
 * How a client WebSocket hears its opening handshake: over HTTP/1.1
 * (node/client.ts) or as a stream of an HTTP/2 connection
 * (node/http2-client.ts, which may fall back to HTTP/1.1), each step handed
 * to the socket's internal methods.
 */
import type { ClientRequest, IncomingMessage } from 'node:http'
import type { ClientHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AcceptedResponse } from '../core/handshake/http1.js'
import { type ClientHandshakeHooks, type ClientHandshakeOptions, startClientHandshake } from '../node/client.js'
import type { Http2HandshakeHooks } from '../node/http2-client.js'
import type { WebSocket } from './websocket.js'

/** `WebSocket.CONNECTING`, not read from the class: this module is loaded while websocket.ts is. */
const CONNECTING = 0

export class ClientHooks implements ClientHandshakeHooks {
  readonly context: WebSocket
  constructor(ws: WebSocket) {
    this.context = ws
  }
  requestCreated(url: string, request: ClientRequest, redirected: boolean): void {
    this.context._requestCreated(url, request, redirected)
  }
  redirectReceived(): void {
    this.context._redirectReceived()
  }
  hasRedirectListener(): boolean {
    return this.context.listenerCount('redirect') > 0
  }
  unexpectedResponse(request: ClientRequest, response: IncomingMessage): boolean {
    return this.context.emit('unexpected-response', request, response)
  }
  upgradeReceived(response: IncomingMessage): void {
    this.context.emit('upgrade', response)
  }
  isAbandoned(): boolean {
    return this.context.readyState !== CONNECTING
  }
  opened(socket: Socket, head: Buffer, accepted: AcceptedResponse): void {
    this.context._handshakeAccepted(socket, head, accepted)
  }
  failed(error: Error): void {
    this.context._handshakeFailed(error)
  }
}

/** The client handshake over HTTP/2 (node/http2-client.ts), and its way back to HTTP/1.1 for `http2: 'auto'`. */
export class Http2Hooks implements Http2HandshakeHooks {
  readonly context: WebSocket
  readonly #address: string | URL
  readonly #protocols: readonly string[]
  readonly #options: ClientHandshakeOptions

  constructor(ws: WebSocket, address: string | URL, protocols: readonly string[], options: ClientHandshakeOptions) {
    this.context = ws
    this.#address = address
    this.#protocols = protocols
    this.#options = options
  }
  started(url: string, abort: () => void): void {
    this.context._streamRequested(url, abort)
  }
  upgradeReceived(response: IncomingMessage): void {
    this.context.emit('upgrade', response)
  }
  isAbandoned(): boolean {
    return this.context.readyState !== CONNECTING
  }
  opened(stream: ClientHttp2Stream, accepted: AcceptedResponse): void {
    this.context._streamAccepted(stream, accepted)
  }
  failed(error: Error): void {
    this.context._handshakeFailed(error)
  }
  fallback(socket: Duplex | undefined): void {
    if (this.isAbandoned()) {
      socket?.destroy()
      return
    }
    // 'auto' found no WebSockets over HTTP/2: HTTP/1.1, on the TLS connection ALPN settled on when there is one.
    const options = socket === undefined ? this.#options : { ...this.#options, createConnection: () => socket } as ClientHandshakeOptions
    try {
      startClientHandshake(this.#address, this.#protocols, options, new ClientHooks(this.context))
    } catch (error) {
      socket?.destroy()
      this.context._handshakeFailed(error as Error)
    }
  }
}

export function normalizeUrl(address: string | URL): string {
  let url: URL
  try {
    url = address instanceof URL ? address : new URL(address)
  } catch {
    throw new SyntaxError(`Invalid URL: ${String(address)}`)
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    url = new URL(url)
    url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:'
  }
  return url.href
}
