/**
 * The chat: rooms, nicknames, who is online (`/chat/ws`), and each room's
 * messages as a topic with history (`$chat:ROOM` on `/v1`, history.ts), so
 * a room reads the same on every node and a page that reconnects gets
 * exactly what it missed.
 *
 * Protocol on `/chat/ws` (JSON text; wire.ts declares and validates it):
 *   client → hub  { type: 'join', room, nick, session? }, { type: 'say', text, id? }, { type: 'leave' }
 *   hub → client  { type: 'welcome', room, nick, online, topic }
 *                 { type: 'join' | 'leave', room, nick, at, node }, { type: 'here', room, nicks, joined?, node }
 *                 { type: 'said', id?, position }, { type: 'left', room }, { type: 'error', code, message, id? }
 * and on `/v1` (tether.v1, read-only), topic `topic` of the welcome: every
 * message of the room, { type: 'message', room, nick, text, at, node }.
 *
 * Theory of operation: a `say` this app accepts is appended to the room's
 * history topic, whose store gives it its position, the same on every node;
 * pages read the room there with tether-ws/client (the recent messages when
 * they join, then live, and after a reconnect from where they were). The
 * `said` answer carries the position; a say with an `id` is kept once
 * however often it is sent (a page sends what was not answered again after
 * a reconnect). Presence is not a log: each node knows its own users and
 * tells the others over the backplane (the room's app topic `app:chat:ROOM`),
 * and this node's clients hear of changes on `local:chat:ROOM`.
 *
 * Rule 1: every event, from a client or from another node, is validated
 * against wire.ts before it changes anything or reaches a client: clients
 * are subscribed to `local:chat:ROOM`, which only this app publishes on
 * (`local`, and refused from the backplane: hub.ts). An invalid event from
 * another node, or a message (messages never cross the backplane), is
 * dropped and counted.
 * Rule 2: nobody speaks as someone else. The nickname of a message is the
 * one this app stamped from the join, and only this app writes a room's
 * history topic (clients cannot publish on `$` topics: history.ts Rule 1).
 * A nickname is unique in its room across nodes: a join whose nickname is
 * held by someone else is refused, and when two nodes accept the same one at
 * once, each sees the other's join and both keep the earlier one (by join
 * time, then node id), so the later joiner is told the name is taken and
 * leaves the room. The same page may take its nickname back (after a
 * reconnect, on any node, before the room let it go): its join carries the
 * page's session, a secret only the page has, and nodes compare its hash
 * (the claim); there the newer connection is kept. A say's id is keyed by
 * the claim (or the join), so an id cannot cancel someone else's message.
 * With authentication, a nickname is the token's subject.
 * Rule 3: bounded. A room's presence lives while it has users on this node,
 * at most MAX_ROOMS at once; a room's history is its topic's (HISTORY
 * messages, HISTORY_AGE), in a store bounded in bytes (history.ts Rule 4).
 * Rule 4: presence heals. Every PRESENCE_INTERVAL each node repeats who it
 * has in each of its rooms (`here`); a node not heard from in a room for
 * PRESENCE_TIMEOUT (killed, or cut off) is forgotten there, and its users
 * are told to have left, unless someone else holds the nickname. When the
 * backplane comes back after an outage, each node says who it has at once
 * (what it said meanwhile was lost): two nodes that each let a `bob` join
 * during the outage settle it then, by Rule 2, not at the next interval
 * (outsider finding 12: both bobs stayed until someone else joined).
 */
import { createHash } from 'node:crypto'
import type { App, AppServices, HubClient } from '../app.js'
import { appHistoryTopic } from '../history.js'
import { appTopic } from '../topics.js'
import {
  ChatClientMessage,
  ChatEvent,
  type ChatMessage,
  type ChatPresence,
  MAX_NICK,
  MAX_TEXT,
  NICK_FORBIDDEN,
  ROOM_PATTERN,
  parseWith,
  validate,
} from '../wire.js'

/** Rule 3: a room's history (its topic's policy), and how many rooms a node keeps at once. */
export const HISTORY = 100
export const HISTORY_AGE = 24 * 60 * 60 * 1000
export const MAX_ROOMS = 1000
/** Rule 4, in ms. */
export const PRESENCE_INTERVAL = 10_000
export const PRESENCE_TIMEOUT = 30_000

/** What a client is told for each field it got wrong. */
const FIELD_ERRORS: Record<string, string> = {
  room: 'A room name is 1-40 letters, digits, "-" or "_"',
  nick: `A nickname is 1-${MAX_NICK} characters, without control or invisible characters`,
  text: `A message is 1-${MAX_TEXT} characters`,
  session: 'A session is 16-128 letters, digits, "-" or "_"',
  id: 'A message id is 1-64 letters, digits, "-" or "_"',
}
const USAGE = 'Send JSON text: {"type":"join","room":"lobby","nick":"ada"}, {"type":"say","text":"hi"} or {"type":"leave"}'

/** Someone in a room on this node. */
interface Holder {
  nick: string
  /** The hash of the page's session (Rule 2), if it gave one. */
  claim: string | undefined
  /** When the join was accepted (Rule 2's tie-break). */
  at: number
}

class Room {
  readonly name: string
  readonly local = new Map<HubClient, Holder>()
  /** Who other nodes have here: node → nickname → claim (null: none). */
  readonly remote = new Map<string, Map<string, string | null>>()
  /** When each other node was last heard from in this room (performance.now(), Rule 4). */
  readonly heard = new Map<string, number>()
  stopObserving: (() => void) | undefined
  constructor(name: string) {
    this.name = name
  }

  online(): string[] {
    const nicks = new Set<string>()
    for (const holder of this.local.values()) nicks.add(holder.nick)
    for (const held of this.remote.values()) for (const nick of held.keys()) nicks.add(nick)
    return [...nicks].sort((a, b) => a.localeCompare(b))
  }

  /** The claims of everyone holding `nick` here and on other nodes (null: a holder without a session). */
  claimsOf(nick: string): Array<string | null> {
    const claims: Array<string | null> = []
    for (const holder of this.local.values()) if (holder.nick === nick) claims.push(holder.claim ?? null)
    for (const held of this.remote.values()) if (held.has(nick)) claims.push(held.get(nick)!)
    return claims
  }

  isHeld(nick: string): boolean {
    return this.claimsOf(nick).length > 0
  }
}

/** The topic a room's presence crosses nodes on (validated by every node before use). */
export function chatTopic(room: string): string {
  return appTopic('chat', room)
}

/** The topic this node's clients of a room receive presence on: only validated events, published locally (Rule 1). */
export function chatLocalTopic(room: string): string {
  return `local:chat:${room}`
}

/** A session's claim (Rule 2): what nodes compare, never the secret itself. */
function claimOf(session: string): string {
  return createHash('sha256').update(session).digest('base64url')
}

/** An event as pages get it: claims stay between nodes. */
function presence(event: ChatEvent): ChatPresence {
  if (event.type === 'join') return { type: 'join', room: event.room, nick: event.nick, at: event.at, node: event.node }
  if (event.type === 'here') return { type: 'here', room: event.room, nicks: event.nicks, joined: event.joined, node: event.node }
  return event
}

export interface ChatOptions {
  /** Rule 4: how often a node repeats who it has in a room, and when a node not heard from is forgotten, in ms. */
  presenceInterval?: number
  presenceTimeout?: number
}

export function chatApp(options: ChatOptions = {}): App {
  const presenceInterval = options.presenceInterval ?? PRESENCE_INTERVAL
  const presenceTimeout = options.presenceTimeout ?? PRESENCE_TIMEOUT
  const rooms = new Map<string, Room>()
  const joined = new Map<HubClient, Room>()
  let services: AppServices
  let timer: NodeJS.Timeout | undefined
  let invalidFromNodes = 0
  let nodesForgotten = 0

  const publish = (room: Room, event: ChatEvent): void => services.publish(chatTopic(room.name), JSON.stringify(event))
  const tell = (room: Room, event: ChatPresence): void => services.publish(chatLocalTopic(room.name), JSON.stringify(event), { local: true })

  const openRoom = (name: string): Room => {
    const room = new Room(name)
    rooms.set(name, room)
    room.stopObserving = services.onPublish(chatTopic(name), (data, isBinary) => {
      const event = isBinary ? undefined : parseWith(ChatEvent, data.toString())
      // Rule 1: another node (or a bug) sent something that is not a presence event of this room.
      if (event === undefined || event.room !== room.name) {
        invalidFromNodes++
        return
      }
      observe(room, event)
    })
    return room
  }

  /** Who this node has in a room, with join times and claims. */
  const here = (room: Room): ChatEvent => {
    const since = new Map<string, Holder>()
    for (const holder of room.local.values()) {
      const known = since.get(holder.nick)
      if (known === undefined || holder.at < known.at) since.set(holder.nick, holder)
    }
    const holders = [...since.values()]
    return {
      type: 'here',
      room: room.name,
      nicks: holders.map((holder) => holder.nick),
      joined: holders.map((holder) => holder.at),
      claims: holders.map((holder) => holder.claim ?? null),
      node: services.node,
    }
  }

  /** A client leaves its room, told why (Rule 2: it gave way to another join). */
  const displace = (client: HubClient, room: Room, quietly: boolean, why: string): void => {
    if (quietly) {
      // Its nickname stays in the room (a newer connection of the same page holds it here): nothing to tell anyone.
      room.local.delete(client)
      joined.delete(client)
      client.ws.unsubscribe(chatLocalTopic(room.name))
    } else {
      leave(client)
    }
    client.error('state', why)
    client.send({ type: 'left', room: room.name })
  }

  /**
   * Rule 2: `nick` joined on `node` at `at`, and a client here holds it too.
   * Different people: the later join gives way (by time, then node id), so
   * that both nodes, deciding alone, keep the same one. The same page (the
   * same claim): the earlier connection gives way, it is the one left behind.
   */
  const giveWayIfLater = (room: Room, nick: string, at: number, node: string, claim: string | null | undefined): void => {
    for (const [client, holder] of room.local) {
      if (holder.nick !== nick) continue
      const samePage = claim !== undefined && claim !== null && holder.claim === claim
      const mineFirst = holder.at < at || (holder.at === at && services.node < node)
      if (samePage ? !mineFirst : mineFirst) continue
      queueMicrotask(() => {
        if (joined.get(client) !== room || room.local.get(client) !== holder) return
        displace(client, room, false, samePage ? `You are in #${room.name} from another connection now` : `The nickname ${nick} is taken in ${room.name}`)
      })
    }
  }

  /** Rule 4: forgets what `node` had in `room`; nicknames nobody else holds are told to have left. */
  const forget = (room: Room, node: string, replacement?: Map<string, string | null>): void => {
    const before = room.remote.get(node)
    if (replacement === undefined) room.remote.delete(node)
    else room.remote.set(node, replacement)
    for (const nick of before?.keys() ?? []) {
      if (!room.isHeld(nick)) tell(room, { type: 'leave', room: room.name, nick, at: Date.now(), node })
    }
  }

  /**
   * Every valid event of a room from another node (and this node's own
   * leaves): the node's view of the room, then its clients, who are told
   * only what changes what a page shows (a join of a nickname already
   * present, or a leave of one still present, is not forwarded).
   */
  const observe = (room: Room, event: ChatEvent): void => {
    const mine = event.node === services.node
    if (!mine) room.heard.set(event.node, performance.now())
    if (event.type === 'join') {
      // This node's joins were told to its clients when it accepted them.
      if (mine) return
      const known = room.isHeld(event.nick)
      let held = room.remote.get(event.node)
      if (held === undefined) room.remote.set(event.node, (held = new Map()))
      held.set(event.nick, event.claim ?? null)
      giveWayIfLater(room, event.nick, event.at, event.node, event.claim)
      // Tell the newcomer's node who is here, and since when (answered after this delivery, not inside it).
      queueMicrotask(() => {
        if (room.local.size > 0 && rooms.get(room.name) === room) publish(room, here(room))
      })
      if (!known) tell(room, presence(event))
    } else if (event.type === 'leave') {
      if (!mine) {
        const held = room.remote.get(event.node)
        held?.delete(event.nick)
        if (held?.size === 0) room.remote.delete(event.node)
      }
      if (!room.isHeld(event.nick)) tell(room, presence(event))
    } else if (!mine) {
      const added = event.nicks.filter((nick) => !room.isHeld(nick))
      // Its whole list: a nickname missing from it left that node (even if its leave was lost).
      forget(room, event.node, new Map(event.nicks.map((nick, i) => [nick, event.claims?.[i] ?? null])))
      // Rule 2 again: a node whose room opened as the other's join went by (its subscription to the
      // room was not yet in place) learns of the clash only from this answer.
      event.nicks.forEach((nick, i) => {
        const at = event.joined?.[i]
        if (at !== undefined) giveWayIfLater(room, nick, at, event.node, event.claims?.[i])
      })
      if (added.length > 0) tell(room, presence(event))
    }
  }

  const leave = (client: HubClient): Room | undefined => {
    const room = joined.get(client)
    if (room === undefined) return undefined
    joined.delete(client)
    const holder = room.local.get(client)!
    room.local.delete(client)
    client.ws.unsubscribe(chatLocalTopic(room.name))
    publish(room, { type: 'leave', room: room.name, nick: holder.nick, at: Date.now(), node: services.node })
    // Rule 3: nobody left here: the room's presence goes (its history stays in its topic).
    if (room.local.size === 0) {
      room.stopObserving?.()
      rooms.delete(room.name)
    }
    return room
  }

  /** Rule 4: every interval, say who is here, and forget nodes not heard from. */
  const tick = (): void => {
    const oldest = performance.now() - presenceTimeout
    for (const room of rooms.values()) {
      publish(room, here(room))
      for (const [node, heard] of room.heard) {
        if (heard >= oldest) continue
        room.heard.delete(node)
        if (!room.remote.has(node)) continue
        nodesForgotten++
        forget(room, node)
      }
    }
  }

  const join = (client: HubClient, message: Extract<ChatClientMessage, { type: 'join' }>): void => {
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
    const claim = message.session === undefined ? undefined : claimOf(message.session)
    let room = rooms.get(message.room)
    const claims = room?.claimsOf(nick) ?? []
    // Rule 2: held by someone else, or by a holder without a session, is taken; held only by this page is taken back.
    if (claims.some((held) => held === null || held !== claim)) return client.error('state', `The nickname ${nick} is taken in ${message.room}`)
    if (room === undefined && rooms.size >= MAX_ROOMS) return client.error('state', 'Too many rooms on this server: join an existing one')
    if (!client.subscribe(chatLocalTopic(message.room), `chat:${message.room}`)) return
    room ??= openRoom(message.room)
    for (const [other, holder] of room.local) {
      if (holder.nick === nick) displace(other, room, true, `You are in #${room.name} from another connection now`)
    }
    const holder: Holder = { nick, claim, at: Date.now() }
    room.local.set(client, holder)
    joined.set(client, room)
    client.send({ type: 'welcome', room: room.name, nick, online: room.online(), topic: appHistoryTopic('chat', room.name) })
    // The page taking its nickname back changes nothing the others see.
    if (claims.length === 0) tell(room, { type: 'join', room: room.name, nick, at: holder.at, node: services.node })
    publish(room, { type: 'join', room: room.name, nick, at: holder.at, node: services.node, claim })
  }

  const say = (client: HubClient, message: Extract<ChatClientMessage, { type: 'say' }>): void => {
    const id = message.id
    const room = joined.get(client)
    if (room === undefined) return client.error('state', 'Join a room first', id)
    const holder = room.local.get(client)!
    const event: ChatMessage = { type: 'message', room: room.name, nick: holder.nick, text: message.text, at: Date.now(), node: services.node }
    const data = JSON.stringify(event)
    const outcome = client.admit(`chat:${room.name}`, Buffer.byteLength(data))
    if (outcome === 'not-allowed') return client.error('not-allowed', `Not allowed to speak in ${room.name}`, id)
    if (outcome === 'dropped') return client.error('rate-limited', 'Slow down: that message was not sent', id)
    if (outcome === 'closed') return
    // Rule 2: the id counts within its author's session (or join), so nobody's id can stand for another's message.
    const key = id === undefined ? undefined : `${holder.claim ?? `${holder.nick}@${holder.at}`}:${id}`
    services.history.append(room.name, data, { key }).then(
      (position) => client.send(id === undefined ? { type: 'said', position } : { type: 'said', id, position }),
      () => client.error('unavailable', 'The message could not be stored: send it again (with the same id)', id),
    )
  }

  return {
    name: 'chat',
    route: { path: '/chat/ws' },
    history: {
      policy: { maxCount: HISTORY, maxAge: HISTORY_AGE },
      publicName: (room) => (ROOM_PATTERN.test(room) ? `chat:${room}` : undefined),
    },
    start(given) {
      services = given
      timer = setInterval(tick, presenceInterval)
      timer.unref()
    },
    open() {},
    message(client, data, isBinary) {
      const result = isBinary ? undefined : validate(ChatClientMessage, data.toString())
      if (result === undefined || !result.ok) {
        const field = result?.field
        return client.error('bad-message', field !== undefined && FIELD_ERRORS[field] !== undefined ? FIELD_ERRORS[field] : USAGE)
      }
      const message = result.value
      if (message.type === 'join') return join(client, message)
      if (message.type === 'say') return say(client, message)
      const room = leave(client)
      if (room === undefined) return client.error('state', 'Not in a room')
      client.send({ type: 'left', room: room.name })
    },
    close(client) {
      leave(client)
    },
    backplaneReconnected() {
      for (const room of rooms.values()) publish(room, here(room))
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      for (const room of rooms.values()) room.stopObserving?.()
      rooms.clear()
    },
    summary() {
      let users = 0
      for (const room of rooms.values()) users += room.local.size
      return { rooms: rooms.size, users, invalidFromNodes, nodesForgotten }
    },
  }
}
