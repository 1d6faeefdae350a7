/**
 * The one risky surface of tether's TCP transport: Node's internal bindings
 * (`process.binding('tcp_wrap')` and friends, which `net` itself is built on
 * and which Node documents as deprecated, DEP0111), their types as tether uses
 * them, and the private members of `net.Socket` tether touches to take over an
 * upgraded connection from Node's HTTP server (`_handle`; `_getpeername` and
 * `_getsockname`, which the detached socket's addresses then go through).
 * Nothing else in
 * tether names them: tcp.ts, tcp-listener.ts and tcp-socket.ts go through
 * what this module exports.
 *
 * Rule 1: nothing is asked at load time; the first server that needs the
 * bindings asks, once (`tcpBindings()`), and the answer is kept.
 * Rule 2: nothing is asked where the runtime would warn, so the fallback is
 * silent: under `--pending-deprecation` (flag, NODE_OPTIONS or
 * NODE_PENDING_DEPRECATION=1) Node reports DEP0111, which
 * `--throw-deprecation` turns into a crash. Should any other runtime warn
 * while asked, the warning is held back and the bindings are not used.
 * Rule 3: `TETHER_TCP_HANDLES=0` forces the fallback (CI runs the whole suite so).
 * Where the bindings are not used, servers run on Node's `http` and `net`.
 * Rule 4: every shape is checked when loaded (constructors are functions,
 * indexes are numbers), and a handle is taken from a `net.Socket` only when it
 * is an instance of the TCP class found here; anything unexpected answers
 * `undefined`, and the caller stays on `net`.
 */

/** What tcp.ts hands the bindings as the owner of a handle or request; kept opaque here. */
export interface HandleOwner {
  readonly destroyed: boolean
}

/** A connected TCP handle (libuv `uv_tcp_t` wrapped by Node's `TCPWrap`), as tether uses it. */
export interface StreamHandle {
  owner?: HandleOwner
  /** Called with the read's bytes, or with `undefined` when they are in the buffer given to `useUserBuffer`. */
  onread: (this: StreamHandle, arrayBuffer: ArrayBuffer | undefined) => void
  /** Reads from now on go into `buffer`, from its start (what `net`'s `onread` option uses); absent on older runtimes. */
  useUserBuffer?: (buffer: Uint8Array) => void
  readStart(): number
  readStop(): number
  writeBuffer(request: WriteRequest, data: Uint8Array): number
  writev(request: WriteRequest, chunks: Uint8Array[], allBuffers: boolean): number
  writeLatin1String(request: WriteRequest, data: string): number
  shutdown(request: ShutdownRequest): number
  close(callback?: () => void): void
  getpeername(out: Record<string, unknown>): number
  getsockname(out: Record<string, unknown>): number
  setNoDelay(enable: boolean): number
  setKeepAlive(enable: boolean, delay: number): number
  ref(): void
  unref(): void
  readonly writeQueueSize: number
}

/** A listening TCP handle. */
export interface ServerHandle {
  onconnection: ((status: number, handle?: StreamHandle) => void) | null
  bind(address: string, port: number): number
  bind6(address: string, port: number, flags: number): number
  listen(backlog: number): number
  getsockname(out: Record<string, unknown>): number
  close(callback?: () => void): void
}

/** A write request; the fields after `async` are tether's own, read back in `oncomplete`. */
export interface WriteRequest {
  handle: StreamHandle
  oncomplete: (this: WriteRequest, status: number) => void
  async: boolean
  owner: HandleOwner
  callback: ((error?: Error | null) => void) | undefined
  chunks: Uint8Array[] | undefined
}

export interface ShutdownRequest {
  handle: StreamHandle
  oncomplete: (this: ShutdownRequest, status: number) => void
  owner: HandleOwner
}

export interface Bindings {
  TCP: new (type: number) => StreamHandle & ServerHandle
  SOCKET: number
  SERVER: number
  WriteWrap: new () => WriteRequest
  ShutdownWrap: new () => ShutdownRequest
  /** Shared with every stream of the process: a read's byte count, its offset, and whether the last write went async. */
  state: Int32Array
  kReadBytesOrError: number
  kArrayBufferOffset: number
  kLastWriteWasAsync: number
  UV_EOF: number
}

/** Why the bindings are not asked for, or undefined if they may be. */
export function bindingsRefusal(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): string | undefined {
  if (env.TETHER_TCP_HANDLES === '0') return 'TETHER_TCP_HANDLES=0'
  const options = (env.NODE_OPTIONS ?? '').split(/\s+/)
  if (execArgv.includes('--pending-deprecation') || options.includes('--pending-deprecation') || env.NODE_PENDING_DEPRECATION === '1') {
    return '--pending-deprecation (DEP0111)'
  }
  return undefined
}

/** Node's internal bindings by name, or undefined where they are refused, missing, or made the runtime warn (Rule 2). */
function askBindings(names: readonly string[]): Record<string, Record<string, unknown>> | undefined {
  if (bindingsRefusal() !== undefined) return undefined
  const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
  if (typeof binding !== 'function') return undefined
  const emitWarning = process.emitWarning
  let warned = false
  // Held back, not shown: tether asked, tether falls back.
  process.emitWarning = (() => {
    warned = true
  }) as typeof process.emitWarning
  try {
    const found: Record<string, Record<string, unknown>> = {}
    for (const name of names) found[name] = binding.call(process, name)
    return warned ? undefined : found
  } catch {
    return undefined
  } finally {
    process.emitWarning = emitWarning
  }
}

function loadBindings(): Bindings | undefined {
  const found = askBindings(['tcp_wrap', 'stream_wrap', 'uv'])
  if (found === undefined) return undefined
  try {
    const tcp = found.tcp_wrap!
    const stream = found.stream_wrap!
    const constants = tcp.constants as Record<string, number>
    const loaded: Bindings = {
      TCP: tcp.TCP as Bindings['TCP'],
      SOCKET: constants.SOCKET!,
      SERVER: constants.SERVER!,
      WriteWrap: stream.WriteWrap as Bindings['WriteWrap'],
      ShutdownWrap: stream.ShutdownWrap as Bindings['ShutdownWrap'],
      state: stream.streamBaseState as Int32Array,
      kReadBytesOrError: stream.kReadBytesOrError as number,
      kArrayBufferOffset: stream.kArrayBufferOffset as number,
      kLastWriteWasAsync: stream.kLastWriteWasAsync as number,
      UV_EOF: (found.uv!.UV_EOF as number | undefined) ?? -4095,
    }
    // Rule 4.
    const ok =
      typeof loaded.TCP === 'function' &&
      typeof loaded.WriteWrap === 'function' &&
      typeof loaded.ShutdownWrap === 'function' &&
      loaded.state instanceof Int32Array &&
      [loaded.SOCKET, loaded.SERVER, loaded.kReadBytesOrError, loaded.kArrayBufferOffset, loaded.kLastWriteWasAsync].every(
        (value) => typeof value === 'number',
      )
    return ok ? loaded : undefined
  } catch {
    return undefined
  }
}

let bindings: Bindings | undefined
let lookedUp = false

/** The bindings, looked up on the first call (Rule 1), or undefined where servers use Node's http and net. */
export function tcpBindings(): Bindings | undefined {
  if (!lookedUp) {
    lookedUp = true
    bindings = loadBindings()
  }
  return bindings
}

/** Whether servers may use the TCP handles; false: they use Node's http and net. */
export function tcpHandlesAvailable(): boolean {
  return tcpBindings() !== undefined
}

/**
 * Takes the TCP handle out of a `net.Socket` whose connection tether takes
 * over (an upgrade accepted on Node's HTTP server), or answers undefined
 * (Rule 4): no bindings; not a plain TCP socket (a TLS socket's handle carries
 * encrypted bytes); a socket still connecting, destroyed, ended in either
 * direction, corked, with bytes Node still holds to write, with a 'data' or
 * 'readable' listener of its own, or that has received the peer's EOF. Bytes
 * the socket read and nobody consumed yet are moved into `held`. On success
 * the socket no longer owns the handle: its reads are stopped and it is
 * detached (`_handle` null, as net leaves a socket whose handle it closed),
 * so destroying it does not close the connection. The caller owns the handle.
 */
export function takeHandle(socket: unknown, held: Buffer[]): StreamHandle | undefined {
  const b = tcpBindings()
  if (b === undefined) return undefined
  const s = socket as {
    _handle?: unknown
    _readableState?: { ended?: boolean }
    encrypted?: unknown
    destroyed?: boolean
    connecting?: boolean
    readableLength?: number
    writableLength?: number
    writableCorked?: number
    writableEnded?: boolean
    _pendingData?: unknown
    listenerCount?: (event: string) => number
    read?: () => Buffer | null
  }
  const handle = s?._handle
  if (!(handle instanceof b.TCP) || typeof s.read !== 'function' || typeof s.listenerCount !== 'function') return undefined
  if (s.encrypted || s.destroyed || s.connecting || s.writableEnded || s._readableState?.ended !== false) return undefined
  if (s.writableLength !== 0 || s.writableCorked !== 0 || s._pendingData) return undefined
  if (s.listenerCount('data') > 0 || s.listenerCount('readable') > 0) return undefined
  // What arrived while the upgrade was decided (Node's server stops the socket flowing, not reading).
  while ((s.readableLength ?? 0) > 0) {
    const chunk = s.read()
    if (chunk === null) break
    held.push(chunk)
  }
  if ((s.readableLength ?? 0) > 0 || s._readableState?.ended !== false) {
    // The socket is no longer one to take: give the bytes back, in order.
    for (let i = held.length - 1; i >= 0; i--) (socket as { unshift(chunk: Buffer): void }).unshift(held[i]!)
    held.length = 0
    return undefined
  }
  // Stopped after reading the buffer: read() may start the handle reading again.
  const stream = handle as StreamHandle & { reading?: boolean }
  stream.readStop()
  stream.reading = false
  // net.Socket answers its addresses through `_getpeername`/`_getsockname`, which ask the handle once
  // and cache the answer (`_peername`, `_sockname`); without a handle, the remote one comes from that
  // cache and the local one is {}. Asking both here costs two system calls per connection that most
  // applications never read (issue 18's noServer handshake profile), so the socket asks the handle it
  // gave up, on first use, as net would have: while the connection is open, the addresses; once it
  // is closed, whatever was cached ({} if nothing was, as net answers for a socket closed unasked).
  const detached = socket as NetSocketAddresses
  detached._getpeername = askPeerName
  detached._getsockname = askSockName
  detached[kTakenHandle] = stream
  s._handle = null
  return stream
}

/** Where a detached socket finds the handle it gave up (for its addresses). */
const kTakenHandle = Symbol('tether.takenHandle')

interface NetSocketAddresses {
  _getpeername?: () => Record<string, unknown>
  _getsockname?: () => Record<string, unknown>
  _peername?: Record<string, unknown> | null
  _sockname?: Record<string, unknown> | null
  [kTakenHandle]?: StreamHandle
}

function askPeerName(this: NetSocketAddresses): Record<string, unknown> {
  if (this._peername == null) {
    const out: Record<string, unknown> = {}
    // A closed handle answers an error (or nothing): nothing cached, as net leaves it.
    if (this[kTakenHandle]?.getpeername(out) !== 0) return out
    this._peername = out
  }
  return this._peername
}

function askSockName(this: NetSocketAddresses): Record<string, unknown> {
  if (this._sockname == null) {
    const out: Record<string, unknown> = {}
    if (this[kTakenHandle]?.getsockname(out) !== 0) return out
    this._sockname = out
  }
  return this._sockname
}

/**
 * Node's `net.Server` counts a connection (`_connections`) from its accept to
 * its socket's destroy, and reads the count for `maxConnections`,
 * `getConnections()` and `close()`'s callback (which waits for it to reach 0).
 * A taken-over socket is destroyed at the takeover while its connection goes
 * on: `keepServerCount` stops the destroy from uncounting it, and the handle's
 * new owner calls `releaseServerCount` when the connection closes. Where the
 * fields are not there, nothing is kept (the count ends at the takeover).
 */
export interface CountingServer {
  _connections: number
  _emitCloseIfDrained(): void
}

export function keepServerCount(socket: unknown): CountingServer | undefined {
  const s = socket as { _server?: Partial<CountingServer> | null }
  const server = s._server
  if (server == null || typeof server._connections !== 'number' || typeof server._emitCloseIfDrained !== 'function') return undefined
  s._server = null
  return server as CountingServer
}

export function releaseServerCount(server: CountingServer): void {
  server._connections--
  server._emitCloseIfDrained()
}

/**
 * Destroys a socket whose handle was taken without emitting its 'close': the
 * connection goes on, and its 'close' comes from the stand-in when it ends
 * (Node's streams emit 'close' on destroy only when their states say
 * `emitClose`).
 */
export function destroyWithoutClose(socket: unknown): void {
  const s = socket as { _readableState?: { emitClose?: boolean }; _writableState?: { emitClose?: boolean }; destroy(): void }
  if (s._readableState !== undefined) s._readableState.emitClose = false
  if (s._writableState !== undefined) s._writableState.emitClose = false
  s.destroy()
}
