/**
 * Helpers for WebSockets over HTTP/2 (RFC 8441) on loopback: tether servers
 * that own their port with `http2`, raw HTTP/2 clients (Node's `http2`, with
 * WebSocket frames written by hand through net.ts's helpers), and bounded
 * waits on sessions and streams. Callers close what they open in `finally`
 * or `t.after`.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import { WebSocketServer, type ServerOptions } from '../../src/index.js'
import { HOST, RawPeer, TIMEOUT, portOf, selfSignedCertificate, until, waitFor, withTimeout } from './net.js'

export const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_PROTOCOL_ERROR } = http2.constants

/** A tether WebSocketServer owning a free port with `http2` (over TLS unless `tls: false`: h2c). */
export async function h2Server(
  options: Omit<ServerOptions, 'port'> = {},
  { tls = true }: { tls?: boolean } = {},
): Promise<{ wss: WebSocketServer; port: number; url: string; origin: string }> {
  const wss = new WebSocketServer({
    host: HOST,
    port: 0,
    http2: true,
    ...(tls ? { tls: selfSignedCertificate() } : {}),
    ...options,
  })
  await waitFor(wss, 'listening')
  const port = portOf(wss as never)
  return { wss, port, url: `${tls ? 'wss' : 'ws'}://${HOST}:${port}`, origin: `${tls ? 'https' : 'http'}://${HOST}:${port}` }
}

/** Stops a server: terminates its clients, closes it (HTTP/2 sessions included), bounded. */
export async function stopServer(wss: WebSocketServer): Promise<void> {
  for (const client of wss.clients) client.terminate()
  await withTimeout(new Promise<void>((resolve) => wss.close(() => resolve())), TIMEOUT, 'wss close')
}

/** A raw HTTP/2 client session to `origin`, once the server's SETTINGS arrived. */
export async function rawSession(origin: string, options: http2.SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const session = http2.connect(origin, { ca: selfSignedCertificate().cert, ...options })
  session.on('error', () => {})
  await waitFor(session, 'remoteSettings')
  return session
}

/** Closes a session at once (bounded wait for its 'close'). */
export async function destroySession(session: ClientHttp2Session | undefined): Promise<void> {
  if (session === undefined || session.destroyed) return
  const gone = waitFor(session, 'close').catch(() => {})
  session.destroy()
  await gone
}

/** The fields of an extended CONNECT to `path`; `fields` overrides, null removes. */
export function connectFields(origin: string, path = '/', fields: Record<string, string | null> = {}): Record<string, string> {
  const url = new URL(origin)
  const merged: Record<string, string | null> = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': url.protocol.slice(0, -1),
    ':path': path,
    ':authority': url.host,
    'sec-websocket-version': '13',
    ...fields,
  }
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(merged)) if (value !== null) out[name] = value
  return out
}

/** A stream as a raw peer sees it: the answer, and (after 200) a RawPeer over its DATA for net.ts's frame helpers. */
export interface RawStream {
  stream: ClientHttp2Stream
  status: number
  headers: IncomingHttpHeaders
  peer: RawPeer
  /** The body of an error answer (until the server ended the stream). */
  body(): Promise<string>
  /** Resolves with the stream's RST_STREAM code once it closed (0: closed cleanly). */
  closed(ms?: number): Promise<number>
}

/** Sends an extended CONNECT (or any request) on `session` and waits for the answer. */
export async function openStream(session: ClientHttp2Session, fields: Record<string, string>, ms = TIMEOUT): Promise<RawStream> {
  const stream = session.request(fields, { endStream: false })
  // RawPeer records DATA, END_STREAM and the close, as it does for a socket's bytes.
  const peer = new RawPeer(stream as unknown as Socket)
  const [headers] = await withTimeout(
    new Promise<[IncomingHttpHeaders]>((resolve, reject) => {
      stream.once('response', (answer) => resolve([answer]))
      stream.once('close', () => reject(new Error(`the stream closed before an answer (RST_STREAM code ${stream.rstCode})`)))
    }),
    ms,
    'the answer to the CONNECT',
  )
  return {
    stream,
    status: Number(headers[':status']),
    headers,
    peer,
    async body() {
      await until(() => peer.ended || peer.closed, ms, 'the end of the answer')
      return peer.buffer.toString()
    },
    async closed(wait = ms) {
      await until(() => stream.closed || stream.destroyed, wait, 'the stream to close')
      await until(() => peer.closed, wait, "the stream's 'close'")
      return stream.rstCode ?? 0
    },
  }
}

/** An HTTP/2 frame as bytes (RFC 9113 §4.1), for peers that write frames themselves. */
export function h2Frame(type: number, flags: number, stream: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const frame = Buffer.alloc(9 + payload.length)
  frame.writeUIntBE(payload.length, 0, 3)
  frame[3] = type
  frame[4] = flags
  frame.writeUInt32BE(stream, 5)
  frame.set(payload, 9)
  return frame
}

/** A header block of literal fields without indexing or Huffman coding (RFC 7541 §6.2.2); names and values under 127 bytes. */
export function h2HeaderBlock(fields: Record<string, string>): Buffer {
  const parts: Buffer[] = []
  for (const [name, value] of Object.entries(fields)) {
    const n = Buffer.from(name)
    const v = Buffer.from(value)
    if (n.length > 126 || v.length > 126) throw new RangeError('h2HeaderBlock: a field over 126 bytes')
    parts.push(Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v)
  }
  return Buffer.concat(parts)
}

/** The client connection preface and an empty SETTINGS frame (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(0x4, 0, 0)])
