/**
 * tether: a WebSocket toolkit for Node.js. The main entry is the `ws` v8 API,
 * so migrating from ws means changing one import. The sans-I/O protocol core
 * is at 'tether/core'.
 */
import WebSocketModule from './ws/index.js'

export * from './ws/index.js'
export { WebSocketModule as default, WebSocketModule as 'module.exports' }
