/**
 * The chat demo: rooms, nicknames, join and leave notices, who is online,
 * and the last messages of a room on join. Each room is the topic
 * `chat:ROOM`, so with a backplane a message sent on one node reaches the
 * room on every node.
 *
 * Protocol (JSON text messages):
 *   client → server  { type: 'join', room, nick }, then { type: 'say', text }
 *   server → client  { type: 'welcome', room, nick, history, online }
 *                    { type: 'message' | 'join' | 'leave', room, nick, text?, at, node }
 *                    { type: 'here', room, nicks, node }   (another node's users)
 *                    { type: 'error', message }
 *
 * Who is online across nodes: each node knows its own users; when a user
 * joins on another node, every node with users in that room answers with a
 * `here` listing them. History is what this node has seen since the room
 * first had a user here (at most HISTORY messages).
 */
import { randomUUID } from 'node:crypto'
import type { WebSocket, WebSocketServer } from 'tether-ws'

const HISTORY = 50
const ROOM = /^[\w-]{1,40}$/
const MAX_NICK = 24
const MAX_TEXT = 2000

interface ChatEvent {
  type: 'message' | 'join' | 'leave' | 'here'
  room: string
  nick?: string
  nicks?: string[]
  text?: string
  at?: number
  node: string
}

class Room {
  readonly history: ChatEvent[] = []
  readonly local = new Map<WebSocket, string>()
  readonly remote = new Map<string, Set<string>>()
  readonly name: string
  constructor(name: string) {
    this.name = name
  }

  online(): string[] {
    const nicks = new Set(this.local.values())
    for (const set of this.remote.values()) for (const nick of set) nicks.add(nick)
    return [...nicks].sort((a, b) => a.localeCompare(b))
  }
}

export class ChatApp {
  readonly node = randomUUID()
  readonly #wss: WebSocketServer
  readonly #rooms = new Map<string, Room>()

  constructor(wss: WebSocketServer) {
    this.#wss = wss
  }

  /** A socket connected to the chat endpoint. */
  accept(ws: WebSocket): void {
    let joined: Room | undefined
    ws.on('message', (data, isBinary) => {
      let message: { type?: unknown; room?: unknown; nick?: unknown; text?: unknown }
      try {
        if (isBinary) throw new Error('binary')
        message = JSON.parse(String(data))
      } catch {
        return this.#error(ws, 'Send JSON text messages: {"type":"join","room":"lobby","nick":"ada"} or {"type":"say","text":"hi"}')
      }
      if (message.type === 'join') {
        if (joined) return this.#error(ws, 'Already in a room: reconnect to change rooms')
        const room = typeof message.room === 'string' ? message.room : ''
        const nick = typeof message.nick === 'string' ? message.nick.trim() : ''
        if (!ROOM.test(room)) return this.#error(ws, 'A room name is 1-40 letters, digits, "-" or "_"')
        if (nick.length === 0 || nick.length > MAX_NICK) return this.#error(ws, `A nickname is 1-${MAX_NICK} characters`)
        joined = this.#join(ws, room, nick)
      } else if (message.type === 'say') {
        if (!joined) return this.#error(ws, 'Join a room first')
        const text = typeof message.text === 'string' ? message.text.trim() : ''
        if (text.length === 0 || text.length > MAX_TEXT) return this.#error(ws, `A message is 1-${MAX_TEXT} characters`)
        this.#publish(joined, { type: 'message', room: joined.name, nick: joined.local.get(ws)!, text, at: Date.now(), node: this.node })
      } else {
        this.#error(ws, 'Unknown message type: use "join" or "say"')
      }
    })
    ws.on('close', () => {
      if (!joined) return
      const nick = joined.local.get(ws)!
      joined.local.delete(ws)
      try {
        this.#publish(joined, { type: 'leave', room: joined.name, nick, at: Date.now(), node: this.node })
      } catch {
        // The server is closed: nobody is left to tell.
      }
    })
  }

  /** The rooms this node knows, with who is online (for /health). */
  summary(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const room of this.#rooms.values()) out[room.name] = room.online().length
    return out
  }

  #join(ws: WebSocket, name: string, nick: string): Room {
    const room = this.#room(name)
    room.local.set(ws, nick)
    ws.send(JSON.stringify({ type: 'welcome', room: name, nick, history: room.history, online: room.online() }))
    ws.subscribe(`chat:${name}`)
    this.#publish(room, { type: 'join', room: name, nick, at: Date.now(), node: this.node })
    return room
  }

  #room(name: string): Room {
    let room = this.#rooms.get(name)
    if (room !== undefined) return room
    room = new Room(name)
    this.#rooms.set(name, room)
    const known = room
    this.#wss.onPublish(`chat:${name}`, (data) => this.#observe(known, JSON.parse(String(data)) as ChatEvent))
    return room
  }

  /** Every event of a room, from this node or another, keeps the node's view of it. */
  #observe(room: Room, event: ChatEvent): void {
    if (event.type === 'message') {
      room.history.push(event)
      if (room.history.length > HISTORY) room.history.shift()
      return
    }
    if (event.node === this.node) return
    let nicks = room.remote.get(event.node)
    if (event.type === 'here') {
      room.remote.set(event.node, new Set(event.nicks))
    } else if (event.type === 'join') {
      if (nicks === undefined) room.remote.set(event.node, (nicks = new Set()))
      nicks.add(event.nick!)
      // Tell the newcomer's node who is here (answered after this delivery, not inside it).
      if (room.local.size > 0) {
        queueMicrotask(() => this.#publish(room, { type: 'here', room: room.name, nicks: [...new Set(room.local.values())], node: this.node }))
      }
    } else if (event.type === 'leave') {
      nicks?.delete(event.nick!)
    }
  }

  #publish(room: Room, event: ChatEvent): void {
    this.#wss.publish(`chat:${room.name}`, JSON.stringify(event))
  }

  #error(ws: WebSocket, message: string): void {
    ws.send(JSON.stringify({ type: 'error', message }))
  }
}
