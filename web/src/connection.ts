/**
 * The pages' connections: a JSON WebSocket that comes back (`reconnecting`,
 * for an app's own endpoint such as /chat/ws), the reliable-delivery client
 * on /v1 (`deliveryClient`, tether-ws/client, which reconnects and resumes by
 * itself), and the status element that shows how they are (`statusBoard`).
 *
 * Both reconnect with exponential backoff and jitter, so a restarted server
 * is not hit by every page at once.
 *
 * With a token (a hub run with --auth jwt), the page sends it as the
 * subprotocol `tether.bearer.TOKEN` next to its own (`tether`, or
 * `tether.v1`): browsers cannot set headers on a WebSocket, and a
 * subprotocol, unlike a query parameter, does not end up in access logs.
 * The token comes from the page's `?token=` parameter (then kept for the
 * session) or an earlier visit.
 */
import { type ClientState, TetherClient } from 'tether-ws/client'

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

const wsOrigin = (): string => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`

/** How one connection is: `closed` while it waits to try again (`retryIn`, ms). */
export interface LinkState {
  state: 'connecting' | 'open' | 'closed'
  /** Connecting after having been connected (or having failed). */
  again?: boolean
  retryIn?: number | undefined
}

/**
 * The page's status element, from the states of its connections: open when
 * all are open, closed when one is waiting to reconnect, connecting
 * otherwise. Returns the function each connection reports to.
 */
export function statusBoard(element: HTMLElement, links: readonly string[]): (link: string, state: LinkState) => void {
  const states = new Map<string, LinkState>(links.map((link) => [link, { state: 'connecting' }]))
  return (link, state) => {
    states.set(link, state)
    const all = [...states.values()]
    const closed = all.find((each) => each.state === 'closed')
    if (closed !== undefined) {
      element.textContent = closed.retryIn === undefined ? 'Disconnected' : `Disconnected: retrying in ${Math.max(1, Math.round(closed.retryIn / 1000))} s`
      element.dataset.state = 'closed'
    } else if (all.every((each) => each.state === 'open')) {
      element.textContent = 'Connected'
      element.dataset.state = 'open'
    } else {
      element.textContent = all.some((each) => each.again) ? 'Reconnecting…' : 'Connecting…'
      element.dataset.state = 'connecting'
    }
  }
}

/** A tether.v1 client state as a link state. */
export function linkState(state: ClientState, delay: number | undefined, attempt: number): LinkState {
  if (state === 'open') return { state: 'open' }
  if (state === 'connecting') return { state: 'connecting', again: attempt > 0 }
  return { state: 'closed', retryIn: state === 'reconnecting' ? delay : undefined }
}

/** The page's reliable-delivery client on /v1 (tether-ws/client, served at /js/client/index.js), with its token. */
export function deliveryClient(): TetherClient {
  return new TetherClient(`${wsOrigin()}/v1`, {
    protocols: () => {
      const token = pageToken()
      return token === undefined ? [] : [`tether.bearer.${token}`]
    },
  })
}

export interface ReconnectingOptions {
  path: string
  onOpen(socket: WebSocket): void
  onMessage(data: unknown): void
  /** The connection's state changed (the page shows it, and may mark what it shows as stale meanwhile). */
  onState?(state: LinkState): void
}

/** A JSON WebSocket to one of the hub's app endpoints that reconnects by itself (0.5 s doubling to 10 s, with jitter). */
export function reconnecting(options: ReconnectingOptions): { send(data: unknown): boolean } {
  let socket: WebSocket | undefined
  let attempt = 0
  const url = `${wsOrigin()}${options.path}`
  const connect = (): void => {
    options.onState?.({ state: 'connecting', again: attempt > 0 })
    const token = pageToken()
    const ws = token === undefined ? new WebSocket(url) : new WebSocket(url, ['tether', `tether.bearer.${token}`])
    socket = ws
    ws.addEventListener('open', () => {
      attempt = 0
      options.onState?.({ state: 'open' })
      options.onOpen(ws)
    })
    ws.addEventListener('message', (event) => {
      let data: unknown
      try {
        data = JSON.parse(String(event.data))
      } catch {
        // Not JSON: not for this page.
        return
      }
      options.onMessage(data)
    })
    ws.addEventListener('close', () => {
      if (socket !== ws) return
      const delay = Math.min(10_000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5)
      attempt++
      options.onState?.({ state: 'closed', retryIn: delay })
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
