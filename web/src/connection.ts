/**
 * A WebSocket that comes back: when the server restarts or the network
 * drops, it reconnects with exponential backoff (0.5 s doubling to 10 s, with
 * jitter so a restarted server is not hit by every page at once) and shows
 * its state in a status element.
 *
 * With a token (a hub run with --auth jwt), the page sends it as the
 * subprotocol `tether.bearer.TOKEN` next to `tether`: browsers cannot set
 * headers on a WebSocket, and a subprotocol, unlike a query parameter, does
 * not end up in access logs. The token comes from the page's `?token=`
 * parameter (then kept for the session) or an earlier visit.
 */

/** The token this page was given, if any. */
export function pageToken(): string | undefined {
  const given = new URLSearchParams(location.search).get('token')
  if (given) {
    sessionStorage.setItem('tether.token', given)
    // Out of the address bar (and the history), where it could be copied along with the link.
    const url = new URL(location.href)
    url.searchParams.delete('token')
    history.replaceState(null, '', url)
    return given
  }
  return sessionStorage.getItem('tether.token') ?? undefined
}
export interface ReconnectingOptions {
  path: string
  status: HTMLElement
  onOpen(socket: WebSocket): void
  onMessage(data: unknown): void
  /** The connection opened or closed (the page may mark what it shows as stale meanwhile). */
  onState?(state: 'open' | 'closed'): void
}

export function reconnecting(options: ReconnectingOptions): { send(data: unknown): boolean } {
  let socket: WebSocket | undefined
  let attempt = 0
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${options.path}`
  const show = (text: string, state: string): void => {
    options.status.textContent = text
    options.status.dataset.state = state
  }
  const connect = (): void => {
    show(attempt === 0 ? 'Connecting…' : 'Reconnecting…', 'connecting')
    const token = pageToken()
    const ws = token === undefined ? new WebSocket(url) : new WebSocket(url, ['tether', `tether.bearer.${token}`])
    socket = ws
    ws.addEventListener('open', () => {
      attempt = 0
      show('Connected', 'open')
      options.onState?.('open')
      options.onOpen(ws)
    })
    ws.addEventListener('message', (event) => {
      try {
        options.onMessage(JSON.parse(String(event.data)))
      } catch {
        // Not JSON: not for this page.
      }
    })
    ws.addEventListener('close', () => {
      if (socket !== ws) return
      const delay = Math.min(10_000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5)
      attempt++
      show(`Disconnected: retrying in ${Math.round(delay / 1000)} s`, 'closed')
      options.onState?.('closed')
      setTimeout(connect, delay)
    })
  }
  connect()
  return {
    send(data: unknown): boolean {
      if (socket?.readyState !== WebSocket.OPEN) return false
      socket.send(JSON.stringify(data))
      return true
    },
  }
}
