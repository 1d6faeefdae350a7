/**
 * tether-ws/ws: the `ws` v8 API. `import { WebSocket, WebSocketServer,
 * createWebSocketStream } from 'tether-ws'` works wherever the same names from
 * 'ws' do; `import WebSocket from 'tether-ws'` and `require('tether-ws')` give
 * the WebSocket class with the others attached, as `ws` does. The class's
 * namespace (websocket.ts) declares what is attached here, and the types of
 * @types/ws.
 */
import { configureDeflateMemory, deflateMemoryStats } from '../node/zlib-codec.js'
import { configureReceiveMemory, configureSendMemory, receiveMemoryStats, sendMemoryStats } from '../node/memory-budget.js'
import { PreparedMessage } from '../node/prepared.js'
import { HANDSHAKE_REFUSAL_REASONS, HANDSHAKE_REFUSED_CHANNEL } from '../node/server-metrics.js'
import { CloseEvent, ErrorEvent, Event, MessageEvent } from './event-target.js'
import { Sender } from './frame-sender.js'
import { extension, subprotocol } from './header-helpers.js'
import { createWebSocketStream } from './stream.js'
import { WebSocket } from './websocket.js'
import { WebSocketServer } from './websocket-server.js'

export { WebSocket, WebSocketServer, WebSocketServer as Server, createWebSocketStream, Sender }
export type { BinaryType, SendData, SendOptions, WebSocketOptions, WebSocketOptions as ClientOptions, WebSocketEventMap } from './websocket.js'
export type {
  AddressInfo,
  CertMeta,
  Data,
  EventListenerOptions,
  FinishRequestCallback,
  RawData,
  VerifyClientCallbackAsync,
  VerifyClientCallbackSync,
  VerifyClientInfo,
} from './types.js'
export { extension, subprotocol }
export type { ExtensionParams, Extensions } from './header-helpers.js'
export type { AuthResult, ClientSet, Http2PortOptions, PublishOptions, ServerOptions, ServerSocket, VerifyClient, VerifyClientCallback } from './server-options.js'
export type { FrameOptions } from './frame-sender.js'
export type { PublishResult, SlowConsumerInfo, TopicStats } from '../pubsub/hub.js'
export type { SlowConsumerPolicy, TopicPolicy } from '../pubsub/policy.js'
export type { Backplane, BackplaneEvent } from '../pubsub/backplane.js'
export { CloseEvent, ErrorEvent, Event, MessageEvent }
export type { WsProtocolError } from './errors.js'
export { PreparedMessage }
export { configureDeflateMemory, deflateMemoryStats }
export type { DeflateMemoryStats } from '../node/zlib-codec.js'
export { configureReceiveMemory, configureSendMemory, receiveMemoryStats, sendMemoryStats }
export type { MemoryBudgetStats } from '../node/memory-budget.js'
export type { PerMessageDeflateOptions } from '../node/deflate.js'
export type { LimitStats } from '../node/limits.js'
export { HANDSHAKE_REFUSAL_REASONS, HANDSHAKE_REFUSED_CHANNEL }
export type { HandshakeRefusalReason, HandshakeRefusedMessage, ServerMetrics } from '../node/server-metrics.js'

/**
 * ws attaches its other exports to the class, so `require('ws').Server` works;
 * tether attaches its own too, so a CommonJS program reaches all of them.
 */
const attached = {
  WebSocket,
  WebSocketServer,
  Server: WebSocketServer,
  createWebSocketStream,
  Sender,
  Event,
  ErrorEvent,
  CloseEvent,
  MessageEvent,
  PreparedMessage,
  configureDeflateMemory,
  deflateMemoryStats,
  configureReceiveMemory,
  receiveMemoryStats,
  configureSendMemory,
  sendMemoryStats,
  extension,
  subprotocol,
  HANDSHAKE_REFUSED_CHANNEL,
  HANDSHAKE_REFUSAL_REASONS,
} satisfies { [Name in keyof typeof WebSocket]?: (typeof WebSocket)[Name] }
for (const [name, value] of Object.entries(attached)) {
  Object.defineProperty(WebSocket, name, { value, enumerable: true, writable: true, configurable: true })
}

export { WebSocket as default }
