/**
 * A WebSocket that comes back: when the server restarts or the network
 * drops, it reconnects with exponential backoff (0.5 s doubling to 10 s, with
 * jitter so a restarted server is not hit by every page at once) and shows
 * its state in a status element.
 */
export interface ReconnectingOptions {
  path: string
  status: HTMLElement
  onOpen(socket: WebSocket): void
  onMessage(data: unknown): void
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
    const ws = new WebSocket(url)
    socket = ws
    ws.addEventListener('open', () => {
      attempt = 0
      show('Connected', 'open')
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
