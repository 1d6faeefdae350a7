/**
 * The chat page: join a room with a nickname, talk, see who is online.
 *
 * Two connections, each reconnecting by itself: /chat/ws for what is asked
 * and answered (join, say, leave) and who is online, and the
 * reliable-delivery client (tether-ws/client, /v1) for the room's messages,
 * which are the room's history topic (the welcome names it). So the log is
 * the same on every node, its first lines are the room's recent messages,
 * and after a reconnect it goes on from the last message shown: nothing lost
 * or shown twice, and what the history no longer has is said ("N messages
 * could not be recovered").
 *
 * Sending: each message gets an id and waits in an outbox until the hub
 * says it was kept (`said`); messages typed while disconnected, and those
 * not answered when a connection dropped, are sent again after the page is
 * back in its room, with the same id, and the hub keeps each once. The page
 * takes its nickname back after a reconnect by its session (a secret kept
 * for this tab), before the room lets it go.
 */
import type { Subscription } from 'tether-ws/client'
import type { ChatClientMessage, ChatMessage, ChatServerMessage } from '../../src/hub/wire-types.js'
import { deliveryClient, linkState, reconnecting, statusBoard } from './connection.js'

/** How many of a room's newest messages a page shows when it joins. */
const RECENT = 50
/** Messages that may wait to be sent at once. */
const MAX_OUTBOX = 100

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
const joinForm = $<HTMLFormElement>('join')
const sayForm = $<HTMLFormElement>('say')
const log = $<HTMLOListElement>('log')
const online = $<HTMLUListElement>('online')
const roomTitle = $<HTMLElement>('room-title')
const text = $<HTMLInputElement>('text')
const pendingNote = $<HTMLElement>('pending')
const joinError = $<HTMLElement>('join-error')
const params = new URLSearchParams(location.search)
$<HTMLInputElement>('nick').value = params.get('nick') ?? localStorage.getItem('tether.nick') ?? ''
$<HTMLInputElement>('room').value = params.get('room') ?? 'lobby'

/** 128 random bits as hex (getRandomValues: pages served over plain http have no crypto.randomUUID). */
function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

/** This tab's session: it lets the page take its nickname back after a reconnect (never shown to others). */
const session = sessionStorage.getItem('tether.session') ?? randomId()
sessionStorage.setItem('tether.session', session)

/** The room asked for (until its welcome or a refusal), and the room this page is in. */
let pending: { room: string; nick: string } | undefined
let joined: { room: string; nick: string } | undefined
/** The room's messages: its history topic, and the notice its recent messages go before. */
let feed: { topic: string; subscription: Subscription } | undefined
/** Messages not yet kept by the hub, oldest first. */
const outbox: Array<{ id: string; text: string }> = []
/** Why the hub took this page out of its room, told with the `left` that follows. */
let lastRoomError: string | undefined
let leaving = false
let retry: ReturnType<typeof setTimeout> | undefined
const people = new Set<string>()

/** Forgets the room shown: its messages, what waited to be sent, who was online. */
function clearRoom(): void {
  feed?.subscription.unsubscribe()
  feed = undefined
  outbox.length = 0
  renderPending()
  log.replaceChildren()
  people.clear()
  renderOnline()
  roomTitle.textContent = ''
}

function showRoom(inRoom: boolean): void {
  document.body.dataset.joined = String(inRoom)
  if (!inRoom) {
    clearRoom()
    $<HTMLInputElement>('room').focus()
  }
}

function time(at: number | undefined): string {
  return new Date(at ?? Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

function item(kind: string, content: string, at?: number, nick?: string): HTMLLIElement {
  const line = document.createElement('li')
  line.className = kind
  const stamp = document.createElement('time')
  stamp.textContent = time(at)
  line.append(stamp, ' ')
  if (nick !== undefined) {
    const who = document.createElement('strong')
    who.textContent = nick
    line.append(who, ' ')
  }
  line.append(content)
  return line
}

function add(kind: string, content: string, at?: number, nick?: string): HTMLLIElement {
  const line = item(kind, content, at, nick)
  log.append(line)
  log.scrollTop = log.scrollHeight
  return line
}

function renderOnline(): void {
  online.replaceChildren(
    ...[...people].sort((a, b) => a.localeCompare(b)).map((nick) => {
      const entry = document.createElement('li')
      entry.textContent = nick
      return entry
    }),
  )
  $<HTMLElement>('online-count').textContent = String(people.size)
}

function renderPending(): void {
  pendingNote.textContent = outbox.length === 0 ? '' : `${outbox.length} message${outbox.length === 1 ? '' : 's'} waiting to be sent`
}

/** A history entry as the chat app wrote it; anything else (a store that was written by someone else) is not shown. */
function chatMessage(data: string | Uint8Array): ChatMessage | undefined {
  if (typeof data !== 'string') return undefined
  let value: Partial<ChatMessage>
  try {
    value = JSON.parse(data) as Partial<ChatMessage>
  } catch {
    return undefined
  }
  const ok = value?.type === 'message' && typeof value.nick === 'string' && typeof value.text === 'string' && typeof value.at === 'number'
  return ok ? (value as ChatMessage) : undefined
}

/** Reads the room's messages: the recent ones before `anchor` (the join notice), then live, and after a reconnect from where it was. */
function follow(topic: string, anchor: HTMLElement): void {
  const subscription = client.subscribe(topic, { recent: RECENT })
  feed = { topic, subscription }
  let replaying = true
  subscription.on('message', (data, { position }) => {
    const message = chatMessage(data)
    if (message === undefined) {
      console.warn(`${topic} ${position.offset}: not a chat message; not shown`)
      return
    }
    const line = item('message', message.text, message.at, message.nick)
    line.dataset.offset = String(position.offset)
    if (replaying) log.insertBefore(line, anchor)
    else log.append(line)
    log.scrollTop = log.scrollHeight
  })
  subscription.on('subscribed', () => {
    replaying = false
  })
  subscription.on('gap', ({ count }) => {
    add('error', count === undefined ? 'Some messages could not be recovered.' : `${count} message${count === 1 ? '' : 's'} could not be recovered.`)
  })
  subscription.on('error', (error) => {
    add('error', `The room's messages cannot be shown: ${error.message}`)
  })
}

/** What leaving a room cost, if messages were still waiting to be sent (never dropped without a word). */
function unsentNote(unsent: number): string {
  return unsent === 0 ? '' : ` (${unsent} unsent message${unsent === 1 ? '' : 's'} dropped)`
}

function send(message: ChatClientMessage): boolean {
  return connection.send(message)
}

/** Sends what waits in the outbox (the hub keeps each id once, so sending again is safe). */
function flush(): void {
  if (joined === undefined || pending !== undefined) return
  for (const entry of outbox) if (!send({ type: 'say', text: entry.text, id: entry.id })) return
}

const status = statusBoard($('status'), ['chat', 'messages'])

const client = deliveryClient()
client.on('state', ({ state, delay, attempt }) => status('messages', linkState(state, delay, attempt)))

const connection = reconnecting({
  path: '/chat/ws',
  onState: (state) => status('chat', state),
  onOpen() {
    // After a reconnect, join again as before (the session takes the nickname back).
    if (joined) {
      pending = joined
      send({ type: 'join', ...joined, session })
    }
  },
  onMessage(data) {
    const event = data as ChatServerMessage
    switch (event.type) {
      case 'welcome': {
        const again = joined?.room === event.room && feed?.topic === event.topic
        joined = { room: event.room, nick: event.nick }
        pending = undefined
        joinError.textContent = ''
        if (!again) {
          clearRoom()
          follow(event.topic, add('notice', `You joined #${event.room} as ${event.nick}.`))
        }
        roomTitle.textContent = `#${event.room}`
        showRoom(true)
        people.clear()
        for (const nick of event.online) people.add(nick)
        people.add(event.nick)
        renderOnline()
        flush()
        text.focus()
        break
      }
      case 'said': {
        const index = outbox.findIndex((entry) => entry.id === event.id)
        if (index !== -1) outbox.splice(index, 1)
        renderPending()
        break
      }
      case 'join':
        if (event.nick !== joined?.nick || !people.has(event.nick)) add('notice', `${event.nick} joined.`, event.at)
        people.add(event.nick)
        renderOnline()
        break
      case 'leave':
        add('notice', `${event.nick} left.`, event.at)
        people.delete(event.nick)
        renderOnline()
        break
      case 'here':
        for (const nick of event.nicks) people.add(nick)
        renderOnline()
        break
      case 'left': {
        const unsent = outbox.length
        joined = undefined
        showRoom(false)
        // Taken out of the room by the hub (another connection of this page took it): said beside the form.
        if (!leaving && lastRoomError !== undefined) joinError.textContent = lastRoomError + unsentNote(unsent)
        else if (unsent > 0) joinError.textContent = `You left #${event.room}${unsentNote(unsent)}`
        leaving = false
        lastRoomError = undefined
        break
      }
      case 'error': {
        const index = event.id === undefined ? -1 : outbox.findIndex((entry) => entry.id === event.id)
        if (index !== -1) {
          // The hub could not store it yet: it stays in the outbox and goes again shortly; otherwise it is refused for good.
          if (event.code === 'unavailable') {
            retry ??= setTimeout(() => {
              retry = undefined
              flush()
            }, 1_000)
            break
          }
          outbox.splice(index, 1)
          renderPending()
          add('error', event.message)
        } else if (pending !== undefined) {
          // A refused join (a first one, or the one after a reconnect) is told beside the form.
          pending = undefined
          const unsent = outbox.length
          if (joined !== undefined) {
            joined = undefined
            showRoom(false)
          }
          joinError.textContent = event.message + unsentNote(unsent)
        } else {
          lastRoomError = event.message
          add('error', event.message)
        }
        break
      }
    }
  },
})

joinForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const nick = $<HTMLInputElement>('nick').value.trim()
  const room = $<HTMLInputElement>('room').value.trim()
  if (!nick || !room) return
  localStorage.setItem('tether.nick', nick)
  pending = { room, nick }
  joinError.textContent = ''
  if (!send({ type: 'join', room, nick, session })) joinError.textContent = 'Not connected: wait a moment and try again.'
})

$<HTMLButtonElement>('leave').addEventListener('click', () => {
  leaving = send({ type: 'leave' })
})

// Closing or reloading the page with messages still waiting: the browser asks first.
addEventListener('beforeunload', (event) => {
  if (outbox.length > 0) event.preventDefault()
})

sayForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const value = text.value.trim()
  if (!value || joined === undefined) return
  if (outbox.length >= MAX_OUTBOX) {
    add('error', `${MAX_OUTBOX} messages are waiting to be sent already: wait for the connection to come back.`)
    return
  }
  const entry = { id: randomId(), text: value }
  outbox.push(entry)
  renderPending()
  text.value = ''
  if (pending === undefined) send({ type: 'say', text: entry.text, id: entry.id })
})
