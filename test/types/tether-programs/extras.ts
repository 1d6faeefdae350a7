// tether's additions on top of the ws API, typed: `ws.user` from `authenticate`, topics, shutdown,
// and the ws names reached through the default export in an ES module (which @types/ws leaves out).
import WebSocket, { type PublishResult, WebSocketServer } from 'tether-ws'

interface Account {
  id: string
  rooms: string[]
}
const accounts = new Map<string, Account>()

const wss = new WebSocketServer({
  port: 0,
  heartbeat: { interval: 10_000, timeout: 5_000 },
  authenticate: async (request) => {
    const account = accounts.get(request.headers.authorization ?? '')
    return account ? { user: account } : { status: 403, message: 'Unknown token' }
  },
})
wss.on('connection', (ws) => {
  // Account | undefined: authenticate may refuse (then there is no connection), so TypeScript keeps undefined.
  const account: Account | undefined = ws.user
  if (account === undefined) return ws.close(1008)
  for (const room of account.rooms) ws.subscribe(room)
  ws.on('message', (data, isBinary) => {
    const result: PublishResult = wss.publish(account.rooms[0] ?? 'lobby', data as Buffer, { binary: isBinary })
    console.log(result.delivered)
  })
})
for (const socket of wss.clients) console.log(socket.user?.id)
const always = new WebSocketServer({ noServer: true, authenticate: () => ({ user: { id: 'x', rooms: [] } as Account }) })
always.on('connection', (ws) => console.log(ws.user.rooms.length))

const server: WebSocket.Server = new WebSocket.Server({ noServer: true })
const options: WebSocket.ClientOptions = { heartbeat: { interval: 1000, timeout: 1000 }, proxy: 'env' }
const client = new WebSocket.WebSocket('ws://127.0.0.1:1', options)
const prepared = new WebSocket.PreparedMessage(Buffer.from('x'), true)
client.on('open', () => client.send(prepared))
const frame: Buffer[] = WebSocket.Sender.frame(Buffer.from('hello'), { fin: true, opcode: 1, mask: false, readOnly: true })
client._sender.sendFrame(frame)
void server.shutdown({ timeout: 1000 }).then(({ closed, terminated }) => closed + terminated)

// A server whose sockets carry a user is still a WebSocketServer (User is covariant).
export const plain: WebSocketServer = wss
