/**
 * A listening TCP socket over a bare handle (tcp-bindings.ts), handing out a
 * TcpTransport for every connection: the port-mode server's accept loop,
 * without `net.Server` and its `net.Socket` per connection.
 *
 * Rule 1: `listen` binds as `net` does: the IPv6 wildcard by default (which
 * also takes IPv4 where the system allows), IPv4 if that fails; a host name is
 * looked up first.
 * Rule 2: a failed accept is dropped; the listener goes on.
 */
import { lookup } from 'node:dns/promises'
import { type AddressInfo, isIPv6 } from 'node:net'
import { type ServerHandle, tcpBindings } from './tcp-bindings.js'
import { TcpTransport, systemError } from './tcp.js'

export class TcpListener {
  private handle: ServerHandle | undefined
  private readonly onConnection: (transport: TcpTransport) => void

  constructor(onConnection: (transport: TcpTransport) => void) {
    this.onConnection = onConnection
  }

  /** Binds and listens; resolves with the bound address, or rejects with a system error. */
  async listen(port: number, host: string | undefined, backlog = 511): Promise<AddressInfo> {
    const b = tcpBindings()
    if (b === undefined) throw new Error('TcpListener needs Node\'s TCP bindings (tcpHandlesAvailable())')
    const handle = new b.TCP(b.SERVER) as unknown as ServerHandle
    let status: number
    if (host === undefined || host === '' || host === '::') {
      status = handle.bind6('::', port, 0)
      if (status !== 0 && host === undefined) status = handle.bind('0.0.0.0', port)
    } else {
      const address = /^[\d.]+$/.test(host) || isIPv6(host) ? host : (await lookup(host)).address
      status = isIPv6(address) ? handle.bind6(address, port, 0) : handle.bind(address, port)
    }
    if (status === 0) status = handle.listen(backlog)
    if (status !== 0) {
      handle.close()
      throw systemError(status, 'listen', `${host ?? '::'}:${port}`)
    }
    handle.onconnection = (connectStatus, client) => {
      // Rule 2.
      if (connectStatus !== 0 || client === undefined) return
      this.onConnection(new TcpTransport(client))
    }
    this.handle = handle
    return this.address()!
  }

  address(): AddressInfo | null {
    if (this.handle === undefined) return null
    const out: Record<string, unknown> = {}
    return this.handle.getsockname(out) === 0 ? (out as unknown as AddressInfo) : null
  }

  close(callback?: () => void): void {
    const handle = this.handle
    this.handle = undefined
    if (handle === undefined) {
      if (callback) process.nextTick(callback)
      return
    }
    handle.onconnection = null
    handle.close(callback)
  }
}
