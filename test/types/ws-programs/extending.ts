// A ws program that adds its own state to sockets, the three ways ws users do:
// module augmentation (the heartbeat example of ws's README), a subclass given
// to the server as `WebSocket`, and fields named like tether's additions.
import { WebSocket, WebSocketServer } from 'tether-ws'

declare module 'tether-ws' {
  interface WebSocket {
    isAlive: boolean
  }
}

class Member extends WebSocket {
  user?: string
  rooms = new Set<string>()
}

const wss = new WebSocketServer({ port: 0, WebSocket: Member })
wss.on('connection', (ws) => {
  ws.isAlive = true
  ws.on('pong', () => {
    ws.isAlive = true
  })
  const member: Member = ws
  member.user = 'ada'
  member.rooms.add('lobby')
})
const interval = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate()
      continue
    }
    ws.isAlive = false
    ws.ping()
  }
}, 30_000)
wss.on('close', () => clearInterval(interval))

// binaryType passed where @types/ws's type of it is expected (outsider, issue 15: 'blob' in tether's type broke this).
function decode(data: Buffer, type: 'nodebuffer' | 'arraybuffer' | 'fragments'): number {
  return type === 'fragments' ? 1 : data.length
}
const reader = new WebSocket('ws://127.0.0.1:1')
const kind: 'nodebuffer' | 'arraybuffer' | 'fragments' = reader.binaryType
decode(Buffer.alloc(0), reader.binaryType)
void kind
