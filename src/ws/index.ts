/**
 * tether/ws: the `ws` v8 API. `import { WebSocket, WebSocketServer,
 * createWebSocketStream } from 'tether/ws'` (or from 'tether') works wherever
 * the same names from 'ws' do; `import WebSocket from 'tether'` and
 * `require('tether')` give the WebSocket class with the others attached, as
 * `ws` does.
 */
import { createWebSocketStream } from './stream.js'
import { WebSocket } from './websocket.js'
import { WebSocketServer } from './websocket-server.js'

export { WebSocket, WebSocketServer, createWebSocketStream }
export type { BinaryType, Data, RawData, SendOptions, WebSocketOptions } from './websocket.js'
export type { PublishOptions, ServerOptions, VerifyClient, VerifyClientCallback, VerifyClientInfo } from './websocket-server.js'
export type { PublishResult, SlowConsumerInfo, TopicStats } from '../pubsub/hub.js'
export type { SlowConsumerPolicy, TopicPolicy } from '../pubsub/policy.js'
export type { Backplane, BackplaneEvent } from '../pubsub/backplane.js'
export { CloseEvent, ErrorEvent, Event, MessageEvent } from './event-target.js'
export type { WsProtocolError } from './errors.js'
export { PreparedMessage } from '../node/prepared.js'
export { configureDeflateMemory, deflateMemoryStats } from '../node/zlib-codec.js'
export type { DeflateMemoryStats } from '../node/zlib-codec.js'
export { configureReceiveMemory, configureSendMemory, receiveMemoryStats, sendMemoryStats } from '../node/memory-budget.js'
export type { MemoryBudgetStats } from '../node/memory-budget.js'
export type { PerMessageDeflateOptions } from '../node/deflate.js'

/** ws attaches its other exports to the class, so `require('ws').Server` works. */
type WebSocketModule = typeof WebSocket & {
  WebSocket: typeof WebSocket
  WebSocketServer: typeof WebSocketServer
  Server: typeof WebSocketServer
  createWebSocketStream: typeof createWebSocketStream
}
const moduleObject = WebSocket as WebSocketModule
moduleObject.WebSocket = WebSocket
moduleObject.WebSocketServer = WebSocketServer
moduleObject.Server = WebSocketServer
moduleObject.createWebSocketStream = createWebSocketStream

export { moduleObject as default }
