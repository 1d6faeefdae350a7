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
 * against wire.ts before it changes anything or reaches a client: clients
 * are subscribed to the room's local topic `local:chat:ROOM`, which only this
 * app publishes on (`local`, and refused from the backplane: hub.ts), with
 * events that passed the schema. An invalid one from another node is dropped
 * and counted.
 * Rule 2: nobody speaks as someone else. A nickname is unique in its room
 * across nodes: a join whose nickname is already known is refused, and when
 * two nodes accept the same nickname at once, each sees the other's join and
 * both keep the earlier one (by join time, then node id), so the later joiner
 * is told the name is taken and leaves the room. With authentication, a
 * nickname is the token's subject (a token without one may not chat).
 * Rule 3: what a node keeps is bounded: a room lives while it has users on
 * this node (then its history and observer go), at most MAX_ROOMS rooms at
 * once, and a room's history is at most HISTORY messages and HISTORY_BYTES.
 *
 * Who is online across nodes: each node knows its own users; when a user
 * joins on another node, every node with users in that room answers with a
 * `here` listing them. History is what this node has seen since the room
 * last had a user here.
 */
import type { App, AppServices, HubClient } from '../app.js'
import { appTopic } from '../topics.js'
import { ChatClientMessage, ChatEvent, MAX_NICK, MAX_TEXT, NICK_FORBIDDEN, parseWith, validate } from '../wire.js'

const HISTORY = 50
/** Rule 3: a room's history in characters of text, and how many rooms a node keeps at once. */
const HISTORY_BYTES = 64 * 1024
export const MAX_ROOMS = 1000

/** What a client is told for each field it got wrong. */
const FIELD_ERRORS: Record<string, string> = {
  room: 'A room name is 1-40 letters, digits, "-" or "_"',
  nick: `A nickname is 1-${MAX_NICK} characters, without control or invisible characters`,
  text: `A message is 1-${MAX_TEXT} characters`,
}
const USAGE = 'Send JSON text: {"type":"join","room":"lobby","nick":"ada"}, {"type":"say","text":"hi"} or {"type":"leave"}'

class Room {
  readonly history: Array<Extract<ChatEvent, { type: 'message' }>> = []
  historySize = 0
  readonly local = new Map<HubClient, string>()
  /** When each local client joined (Rule 2's tie-break). */
  readonly joinedAt = new Map<HubClient, number>()
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

  remember(event: Extract<ChatEvent, { type: 'message' }>): void {
    this.history.push(event)
    this.historySize += event.text.length
    while (this.history.length > HISTORY || this.historySize > HISTORY_BYTES) this.historySize -= this.history.shift()!.text.length
  }
}

/** The topic a room's events cross nodes on (validated by every node before use). */
export function chatTopic(room: string): string {
  return appTopic('chat', room)
}

/** The topic this node's clients of a room receive on: only validated events, published locally (Rule 1). */
export function chatLocalTopic(room: string): string {
  return `local:chat:${room}`
}

export function chatApp(): App {
  const rooms = new Map<string, Room>()
  const joined = new Map<HubClient, Room>()
  let services: AppServices
  let invalidFromNodes = 0

  const publish = (room: Room, event: ChatEvent): void => services.publish(chatTopic(room.name), JSON.stringify(event))

  const openRoom = (name: string): Room => {
    const room = new Room(name)
    rooms.set(name, room)
    room.stopObserving = services.onPublish(chatTopic(name), (data, isBinary) => {
      const event = isBinary ? undefined : parseWith(ChatEvent, data.toString())
      // Rule 1: another node (or a bug) sent something that is not a chat event of this room.
      if (event === undefined || event.room !== room.name) {
        invalidFromNodes++
        return
      }
      observe(room, event)
    })
    return room
  }

  /** How many hold `nick` in `room`: local clients (unless `except` is this node) and other nodes (but `except`). */
  const holders = (room: Room, nick: string, except?: string): number => {
    let count = 0
    if (except !== services.node) for (const held of room.local.values()) if (held === nick) count++
    for (const [node, nicks] of room.remote) if (node !== except && nicks.has(nick)) count++
    return count
  }

  /**
   * Every valid event of a room, from this node or another: the node's view
   * of it, then its clients. A join of a nickname already present through
   * someone else, or a leave of one still present, changes nothing a page
   * shows, so it is not forwarded (a page would otherwise drop a name that is
   * still online).
   */
  const observe = (room: Room, event: ChatEvent): void => {
    let forward = true
    if (event.type === 'join') forward = holders(room, event.nick, event.node) === 0
    if (event.type === 'message') room.remember(event)
    else if (event.node !== services.node) {
      let nicks = room.remote.get(event.node)
      if (event.type === 'here') {
        room.remote.set(event.node, new Set(event.nicks))
      } else if (event.type === 'join') {
        if (nicks === undefined) room.remote.set(event.node, (nicks = new Set()))
        nicks.add(event.nick)
        // Rule 2: the same nickname accepted on two nodes at once: the later join gives way.
        for (const [client, nick] of room.local) {
          if (nick !== event.nick) continue
          const at = room.joinedAt.get(client)!
          if (at > event.at || (at === event.at && services.node > event.node)) {
            queueMicrotask(() => {
              if (joined.get(client) !== room) return
              leave(client)
              client.error('state', `The nickname ${nick} is taken in ${room.name}`)
              client.send({ type: 'left', room: room.name })
            })
          }
        }
        // Tell the newcomer's node who is here (answered after this delivery, not inside it).
        queueMicrotask(() => {
          if (room.local.size > 0) publish(room, { type: 'here', room: room.name, nicks: [...new Set(room.local.values())], node: services.node })
        })
      } else if (event.type === 'leave') {
        nicks?.delete(event.nick)
        if (nicks?.size === 0) room.remote.delete(event.node)
      }
    }
    if (event.type === 'leave') forward = holders(room, event.nick) === 0
    if (!forward) return
    services.publish(chatLocalTopic(room.name), JSON.stringify(event), { local: true })
  }

  const leave = (client: HubClient): Room | undefined => {
    const room = joined.get(client)
    if (room === undefined) return undefined
    joined.delete(client)
    const nick = room.local.get(client)!
    room.local.delete(client)
    room.joinedAt.delete(client)
    client.ws.unsubscribe(chatLocalTopic(room.name))
    publish(room, { type: 'leave', room: room.name, nick, at: Date.now(), node: services.node })
    // Rule 3: nobody left here: the room goes, with its history.
    if (room.local.size === 0) {
      room.stopObserving?.()
      rooms.delete(room.name)
    }
    return room
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
        let nick = message.nick
        // Rule 2: with authentication, you are your token's subject.
        if (client.identity.authenticated) {
          const subject = client.identity.subject?.trim()
          if (subject === undefined) return client.error('not-allowed', 'Your token has no subject ("sub"): it cannot be used to chat')
          if (subject.length === 0 || subject.length > MAX_NICK || NICK_FORBIDDEN.test(subject)) {
            return client.error('not-allowed', `Your token's subject is not a valid nickname (${FIELD_ERRORS.nick})`)
          }
          nick = subject
        }
        let room = rooms.get(message.room)
        if (room?.online().includes(nick)) return client.error('state', `The nickname ${nick} is taken in ${message.room}`)
        if (room === undefined && rooms.size >= MAX_ROOMS) return client.error('state', 'Too many rooms on this server: join an existing one')
        if (!client.subscribe(chatLocalTopic(message.room), `chat:${message.room}`)) return
        room ??= openRoom(message.room)
        const at = Date.now()
        room.local.set(client, nick)
        room.joinedAt.set(client, at)
        joined.set(client, room)
        client.send({ type: 'welcome', room: room.name, nick, history: room.history, online: room.online() })
        publish(room, { type: 'join', room: room.name, nick, at, node: services.node })
      } else if (message.type === 'say') {
        const room = joined.get(client)
        if (room === undefined) return client.error('state', 'Join a room first')
        const event: ChatEvent = { type: 'message', room: room.name, nick: room.local.get(client)!, text: message.text, at: Date.now(), node: services.node }
        const outcome = client.publish(chatTopic(room.name), `chat:${room.name}`, JSON.stringify(event))
        if (outcome === 'not-allowed') client.error('not-allowed', `Not allowed to speak in ${room.name}`)
        else if (outcome === 'dropped') client.error('rate-limited', 'Slow down: that message was not sent')
      } else {
        const room = leave(client)
        if (room === undefined) return client.error('state', 'Not in a room')
        client.send({ type: 'left', room: room.name })
      }
    },
    close(client) {
      leave(client)
    },
    stop() {
      for (const room of rooms.values()) room.stopObserving?.()
      rooms.clear()
    },
    summary() {
      let users = 0
      for (const room of rooms.values()) users += room.local.size
      return { rooms: rooms.size, users, invalidFromNodes }
    },
  }
}
