/**
 * `createWebSocketStream(ws, options)`: a Duplex over a WebSocket, as in
 * `ws` v8. Readable side: each message is one chunk; when the readable
 * buffer is full the WebSocket is paused until the stream is read again
 * (backpressure). Writable side: each chunk is sent as one message and the
 * write completes when the frame was handed to the socket. Ending the
 * writable side starts the closing handshake.
 */
import { Duplex, type DuplexOptions } from 'node:stream'
import { WebSocket } from './websocket.js'

/**
 * Wraps `ws` in a Duplex stream.
 *
 * @example
 * ```ts
 * const duplex = createWebSocketStream(new WebSocket('ws://127.0.0.1:8080'))
 * process.stdin.pipe(duplex).pipe(process.stdout)
 * ```
 */
/**
 * As in ws: an error destroys the stream, which terminates the WebSocket (a
 * message the stream cannot take, such as an ArrayBuffer with `binaryType`
 * 'arraybuffer': what was received still arrives, then close 1006). Unlike
 * ws, an error nobody listens for is not thrown again: a peer's protocol
 * error does not crash the process (README, "Migrating from ws").
 */
function onDuplexError(this: Duplex): void {
  this.removeListener('error', onDuplexError)
  this.destroy()
  // Keep a listener, so that a later error is not thrown either.
  this.on('error', ignoreError)
}

function ignoreError(): void {}

export function createWebSocketStream(ws: WebSocket, options?: DuplexOptions): Duplex {
  let terminateOnDestroy = true
  const duplex = new Duplex({
    ...options,
    autoDestroy: false,
    emitClose: false,
    objectMode: false,
    writableObjectMode: false,
  })

  ws.on('message', (message: Buffer | Buffer[] | ArrayBuffer | Blob, isBinary: boolean) => {
    const data = !isBinary && duplex.readableObjectMode ? message.toString() : message
    if (!duplex.push(data)) ws.pause()
  })
  ws.once('error', (error: Error) => {
    if (duplex.destroyed) return
    // The socket is already failing; destroying the stream must not terminate it again.
    terminateOnDestroy = false
    duplex.destroy(error)
  })
  ws.once('close', () => {
    if (duplex.destroyed) return
    duplex.push(null)
  })

  duplex._destroy = (error, callback) => {
    if (ws.readyState === WebSocket.CLOSED) {
      callback(error)
      process.nextTick(() => duplex.emit('close'))
      return
    }
    let called = false
    ws.once('error', (wsError: Error) => {
      called = true
      callback(wsError)
    })
    ws.once('close', () => {
      if (!called) callback(error)
      process.nextTick(() => duplex.emit('close'))
    })
    if (terminateOnDestroy) ws.terminate()
  }

  duplex._final = (callback) => {
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.once('open', () => duplex._final(callback))
      return
    }
    // A client whose handshake failed has no socket: its 'error' comes and destroys the stream (as ws).
    if (ws._socket === null) return
    if (ws.readyState === WebSocket.CLOSED) {
      callback()
      if (duplex.readableEnded) duplex.destroy()
      return
    }
    // The writable side is finished once the closing handshake is: tether's socket in port mode is
    // not a stream with a 'finish' event, so wait for the WebSocket itself.
    ws.once('close', () => callback())
    ws.close()
  }

  duplex._read = () => {
    if (ws.isPaused) ws.resume()
  }

  duplex._write = (chunk: Buffer, _encoding, callback) => {
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.once('open', () => duplex._write(chunk, _encoding, callback))
      return
    }
    ws.send(chunk, callback)
  }

  // Both sides done: the stream is destroyed (closed), whichever side finished last.
  duplex.on('end', () => {
    if (!duplex.destroyed && duplex.writableFinished) duplex.destroy()
  })
  duplex.on('finish', () => {
    if (!duplex.destroyed && duplex.readableEnded) duplex.destroy()
  })
  duplex.on('error', onDuplexError)
  return duplex
}
