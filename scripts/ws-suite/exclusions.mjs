// The tests of ws's own suite (test/*.test.js of websockets/ws 8.21) that tether does not pass, each with
// the reason. Keyed by mocha's full title. Two kinds:
//   PRIVATE: the test reaches into ws's private members or relies on the identity of ws's own private
//            objects (its lib/constants EMPTY_BUFFER and kListener, its lib/event-target classes);
//   DIFFERENCE: a behaviour tether chose differently, listed in README.md ("Migrating from ws").
// run.mjs runs every other test first (an excluded test can leave state that fails the next one), then
// these, and reports an exclusion that no longer fails.
export const PUBLIC_FILES = ['websocket', 'websocket-server', 'create-websocket-stream']

const PRIVATE = 'PRIVATE'
const DIFFERENCE = 'DIFFERENCE'

export const EXCLUSIONS = new Map([
  // websocket.test.js
  ['WebSocket #ctor options accepts the receiver limit options', [PRIVATE, 'reads ws._receiver._maxBufferedChunks and friends']],
  ['WebSocket #ctor options honors the `generateMask` option', [PRIVATE, "reads the server socket's bytes through ws._socket 'data' listeners; EMPTY_BUFFER identity"]],
  ['WebSocket #ctor options honors the `closeTimeout` option', [PRIVATE, 'reads ws._closeTimer._idleTimeout']],
  ['WebSocket Attributes `bufferedAmount` takes into account the data in the sender queue', [DIFFERENCE, 'bufferedAmount counts framed (compressed) bytes: tether compresses at once, ws counts the message while zlib works']],
  ['WebSocket Attributes `bufferedAmount` takes into account the data in the socket queue', [PRIVATE, 'reads ws._socket._writableState']],
  ["WebSocket Events emits an 'error' event if an error occurs (1/2)", [PRIVATE, "compares the close reason with ws's EMPTY_BUFFER by identity"]],
  ["WebSocket Events emits the 'error' event only once (2/2)", [PRIVATE, "writes raw frames through the server's ws._socket while a Blob read fails; tether reports the peer's protocol error, which arrives first"]],
  ["WebSocket Events does not re-emit `net.Socket` errors", [PRIVATE, 'calls ws._socket.resetAndDestroy() on a server socket (in port mode tether\'s ws._socket is not a net.Socket)']],
  ['WebSocket Connection establishing close event is raised when server closes connection', [PRIVATE, "compares the close reason with ws's EMPTY_BUFFER by identity"]],
  ['WebSocket Connection establishing fails if server sends no subprotocol', [DIFFERENCE, 'accepted with protocol "" (RFC 6455 §4.1, browsers)']],
  ['WebSocket #pause pauses the socket', [PRIVATE, 'calls ws._socket.isPaused()']],
  ['WebSocket #resume resumes the socket', [PRIVATE, 'calls ws._socket.isPaused()']],
  ['WebSocket #send works when the `data` argument is falsy', [PRIVATE, "compares received data with ws's EMPTY_BUFFER by identity"]],
  ['WebSocket #send honors the `mask` option', [DIFFERENCE, "a client always masks (RFC 6455 §5.3 MUST), so `mask: false` is ignored; the test also reads the server's ws._socket 'data'"]],
  ['WebSocket #close sends the close status code only when necessary', [PRIVATE, "reads raw bytes through ws._socket 'data' listeners on both sides"]],
  ['WebSocket #close sets a timer for the closing handshake to complete', [PRIVATE, 'reads ws._closeTimer']],
  ["WebSocket WHATWG API emulation doesn't remove listeners added with `on`", [PRIVATE, "reads listeners[i][kListener], ws's private symbol"]],
  ['WebSocket WHATWG API emulation supports the `addEventListener` method', [PRIVATE, "reads listeners[i][kListener], ws's private symbol"]],
  ["WebSocket WHATWG API emulation doesn't return listeners added with `addEventListener`", [PRIVATE, "reads listeners[i][kListener], ws's private symbol"]],
  ["WebSocket WHATWG API emulation doesn't remove listeners added with `addEventListener`", [PRIVATE, "reads listeners[i][kListener], ws's private symbol"]],
  ['WebSocket WHATWG API emulation supports the `removeEventListener` method', [PRIVATE, "reads listeners[i][kListener], ws's private symbol"]],
  ['WebSocket WHATWG API emulation wraps text data in a `MessageEvent`', [PRIVATE, "instanceof ws's own lib/event-target MessageEvent"]],
  ['WebSocket WHATWG API emulation receives a `CloseEvent` when server closes (1000)', [PRIVATE, "instanceof ws's own lib/event-target CloseEvent"]],
  ['WebSocket WHATWG API emulation receives a `CloseEvent` when server closes (4000)', [PRIVATE, "instanceof ws's own lib/event-target CloseEvent"]],
  ['WebSocket WHATWG API emulation sets `target` and `type` on events', [PRIVATE, "instanceof ws's own lib/event-target Event"]],
  ['WebSocket permessage-deflate consumes all received data when connection is closed (1/2)', [PRIVATE, "reads ws._receiver's and ws._socket's internal state"]],
  ['WebSocket permessage-deflate consumes all received data when connection is closed (2/2)', [PRIVATE, "reads ws._receiver's and ws._socket's internal state"]],
  ['WebSocket permessage-deflate handles a close frame received while compressing data', [PRIVATE, "hooks ws._sender's deflate stream"]],
  ['WebSocket permessage-deflate #close can be used while data is being decompressed', [PRIVATE, "reads ws._receiver's internal state"]],
  ['WebSocket permessage-deflate #send calls the callback if the socket is closed prematurely', [DIFFERENCE, 'compression is synchronous: the messages were compressed and written before close(), so they are sent']],
  ['WebSocket permessage-deflate #terminate can be used while data is being compressed', [DIFFERENCE, 'compression is synchronous: nothing is "being compressed" when terminate() runs; the callback gets "WebSocket is not open: the socket is closed"']],
  ['WebSocket permessage-deflate #terminate can be used while data is being decompressed', [PRIVATE, "reads ws._receiver's internal state"]],
  ['WebSocket Connection close closes cleanly after simultaneous errors (1/2)', [PRIVATE, "compares the close reason with ws's EMPTY_BUFFER by identity"]],
  ['WebSocket Connection close closes cleanly after simultaneous errors (2/2)', [PRIVATE, "compares the close reason with ws's EMPTY_BUFFER by identity"]],
  ['WebSocket Connection close resumes the socket when an error occurs', [PRIVATE, 'calls ws._socket.push()']],
  ['WebSocket Connection close resumes the socket when the close frame is received', [PRIVATE, 'calls ws._socket.push()']],
  // websocket-server.test.js
  ['WebSocketServer #ctor binds the server on any IPv6 address when available', [PRIVATE, 'reads wss._server (tether binds :: too, without an http.Server)']],
  ['WebSocketServer #ctor options accepts the receiver limit options', [PRIVATE, 'reads ws._receiver._maxBufferedChunks and friends']],
  ['WebSocketServer #ctor options honors the `closeTimeout` option', [PRIVATE, 'reads ws._closeTimer._idleTimeout']],
  ['WebSocketServer #address returns the address of the server', [PRIVATE, 'compares with wss._server.address()']],
  ["WebSocketServer #close emits the 'close' event after the server closes", [PRIVATE, "listens on wss._server's 'close'"]],
  ['WebSocketServer #close calls the callback if the server is already closed', [PRIVATE, 'reads wss._state']],
  ["WebSocketServer #close emits the 'close' event if the server is already closed", [PRIVATE, 'reads wss._state']],
  ['WebSocketServer Connection establishing fails if the Upgrade header field value cannot be read', [DIFFERENCE, 'no Upgrade: websocket gets 426 with Upgrade: websocket (RFC 7231 §6.5.15); ws answers 400']],
  ['WebSocketServer Connection establishing fails if the Upgrade header field value is not "websocket"', [DIFFERENCE, 'no Upgrade: websocket gets 426 with Upgrade: websocket (RFC 7231 §6.5.15); ws answers 400']],
  ['WebSocketServer Connection establishing fails if the Sec-WebSocket-Version header is invalid (2/2)', [DIFFERENCE, 'a version other than 13 or 8 gets 426 (RFC 6455 §4.4); ws answers 400']],
  ['WebSocketServer Connection establishing fails if the Sec-WebSocket-Extensions header is invalid', [DIFFERENCE, 'an invalid permessage-deflate offer is declined, not refused (RFC 7692 §7.1)']],
  // create-websocket-stream.test.js
  ['createWebSocketStream The returned stream buffers writes if `readyState` is `CONNECTING`', [PRIVATE, "compares data with ws's EMPTY_BUFFER by identity"]],
  ['createWebSocketStream The returned stream errors if a write occurs when `readyState` is `CLOSING`', [PRIVATE, "listens on ws._receiver's 'conclude'"]],
  ['createWebSocketStream The returned stream does not swallow errors that may occur while destroying', [DIFFERENCE, "data that does not inflate fails with code WS_ERR_INVALID_COMPRESSED_DATA (close 1007), where ws passes zlib's Z_DATA_ERROR"]],
  ['createWebSocketStream The returned stream handles backpressure (2/3)', [PRIVATE, "reads ws._receiver._writableState and ws._socket.isPaused()"]],
  ['createWebSocketStream The returned stream handles backpressure (3/3)', [PRIVATE, "reads ws._receiver._writableState and ws._socket.isPaused()"]],
  ["createWebSocketStream The returned stream does not suppress the throwing behavior of 'error' events", [DIFFERENCE, 'an error nobody listens for is not thrown: a peer cannot crash the process']],
])
