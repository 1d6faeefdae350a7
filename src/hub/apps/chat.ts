/**
 * `/chat/ws`: rooms, nicknames, join and leave notices, who is online, and
 * the last messages of a room on join. Each room is the app's topic
 * `app:chat:ROOM` (public name `chat:ROOM`), so with a backplane a message
 * sent on one node reaches the room on every node.
 *
 * Protocol (JSON text; wire.ts declares and validates it):
 *   client → hub  { type: 'join', room, nick }, { type: 'say', text }, { type: 'leave' }
 *   hub → client  { type: 'welcome', room, nick, history, online }
 *                 { type: 'message' | 'join' | 'leave', room, nick, text?, at }
 *                 { type: 'left', room }, { type: 'error', code, message }
 *
 * Rule 1: every event, from a client or from another node, is validated
 * against wire.ts before it changes anything; an invalid one from another
 * node is dropped (and counted in `summary`).
 * Rule 2: with authentication, a client's nickname is its token's subject:
 * nobody speaks as someone else.
 *
 * Who is online across nodes: each node knows its own users; when a user
 * joins on another node, every node with users in that room answers with a
 * `here` listing them. History is what this node has seen since the room
 * first had a user here (at most HISTORY messages).
 */
import type { App, AppServices, HubClient } from '../app.js'
import { appTopic } from '../topics.js'
import { ChatClientMessage, ChatEvent, MAX_NICK, MAX_TEXT, parseWith, validate } from '../wire.js'

/** What a client is told for each field it got wrong. */
const FIELD_ERRORS: Record<string, string> = {
  room: 'A room name is 1-40 letters, digits, "-" or "_"',
  nick: `A nickname is 1-${MAX_NICK} characters`,
  text: `A message is 1-${MAX_TEXT} characters`,
}
const USAGE = 'Send JSON text: {"type":"join","room":"lobby","nick":"ada"}, {"type":"say","text":"hi"} or {"type":"leave"}'

const HISTORY = 50

class Room {
  readonly history: ChatEvent[] = []
  readonly local = new Map<HubClient, string>()
  readonly remote = new Map<string, Set<string>>()
  readonly name: string
  stopObserving: (() => void) | undefined
  constructor(name: string) {
    this.name = name
  }

  online(): string[] {
    const nicks = new Set(this.local.values())
    for (const set of this.remote.values()) for (const nick of set) nicks.add(nick)
    return [...nicks].sort((a, b) => a.localeCompare(b))
  }
}

export function chatTopic(room: string): string {
  return appTopic('chat', room)
}

export function chatApp(): App {
  const rooms = new Map<string, Room>()
  const joined = new Map<HubClient, Room>()
  let services: AppServices
  let invalidFromNodes = 0

  const publish = (room: Room, event: ChatEvent): void => services.publish(chatTopic(room.name), JSON.stringify(event))

  const roomFor = (name: string): Room => {
    let room = rooms.get(name)
    if (room !== undefined) return room
    room = new Room(name)
    rooms.set(name, room)
    const known = room
    room.stopObserving = services.onPublish(chatTopic(name), (data, isBinary) => {
      const event = isBinary ? undefined : parseWith(ChatEvent, data.toString())
      // Rule 1: another node (or a bug) sent something that is not a chat event.
      if (event === undefined || event.room !== known.name) {
        invalidFromNodes++
        return
      }
      observe(known, event)
    })
    return room
  }

  /** Every event of a room, from this node or another, keeps the node's view of it. */
  const observe = (room: Room, event: ChatEvent): void => {
    if (event.type === 'message') {
      room.history.push(event)
      if (room.history.length > HISTORY) room.history.shift()
      return
    }
    if (event.node === services.node) return
    let nicks = room.remote.get(event.node)
    if (event.type === 'here') {
      room.remote.set(event.node, new Set(event.nicks))
    } else if (event.type === 'join') {
      if (nicks === undefined) room.remote.set(event.node, (nicks = new Set()))
      nicks.add(event.nick)
      // Tell the newcomer's node who is here (answered after this delivery, not inside it).
      if (room.local.size > 0) {
        queueMicrotask(() => {
          if (room.local.size > 0) publish(room, { type: 'here', room: room.name, nicks: [...new Set(room.local.values())], node: services.node })
        })
      }
    } else if (event.type === 'leave') {
      nicks?.delete(event.nick)
    }
  }

  const leave = (client: HubClient): void => {
    const room = joined.get(client)
    if (room === undefined) return
    joined.delete(client)
    const nick = room.local.get(client)!
    room.local.delete(client)
    client.ws.unsubscribe(chatTopic(room.name))
    publish(room, { type: 'leave', room: room.name, nick, at: Date.now(), node: services.node })
  }

  return {
    name: 'chat',
    route: { path: '/chat/ws' },
    start(given) {
      services = given
    },
    open() {},
    message(client, data, isBinary) {
      const result = isBinary ? undefined : validate(ChatClientMessage, data.toString())
      if (result === undefined || !result.ok) {
        const field = result?.field
        return client.error('bad-message', field !== undefined && FIELD_ERRORS[field] !== undefined ? FIELD_ERRORS[field] : USAGE)
      }
      const message = result.value
      if (message.type === 'join') {
        if (joined.has(client)) return client.error('state', 'Already in a room: leave it first')
        const publicName = `chat:${message.room}`
        // Rule 2.
        const nick = client.identity.subject?.slice(0, MAX_NICK) ?? message.nick
        if (!client.subscribe(chatTopic(message.room), publicName)) return
        const room = roomFor(message.room)
        room.local.set(client, nick)
        joined.set(client, room)
        client.send({ type: 'welcome', room: room.name, nick, history: room.history, online: room.online() })
        publish(room, { type: 'join', room: room.name, nick, at: Date.now(), node: services.node })
      } else if (message.type === 'say') {
        const room = joined.get(client)
        if (room === undefined) return client.error('state', 'Join a room first')
        const event: ChatEvent = { type: 'message', room: room.name, nick: room.local.get(client)!, text: message.text, at: Date.now(), node: services.node }
        const outcome = client.publish(chatTopic(room.name), `chat:${room.name}`, JSON.stringify(event))
        if (outcome === 'not-allowed') client.error('not-allowed', `Not allowed to speak in ${room.name}`)
        else if (outcome === 'dropped') client.error('rate-limited', 'Slow down: that message was not sent')
      } else {
        const room = joined.get(client)
        if (room === undefined) return client.error('state', 'Not in a room')
        leave(client)
        client.send({ type: 'left', room: room.name })
      }
    },
    close(client) {
      leave(client)
    },
    stop() {
      for (const room of rooms.values()) room.stopObserving?.()
    },
    summary() {
      const out: Record<string, number> = {}
      for (const room of rooms.values()) out[room.name] = room.online().length
      return { rooms: out, invalidFromNodes }
    },
  }
}
