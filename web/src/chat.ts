/** The chat page: join a room with a nickname, talk, see who is online. */
import type { ChatClientMessage, ChatServerMessage } from '../../src/hub/wire-types.js'
import { reconnecting } from './connection.js'

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
const joinForm = $<HTMLFormElement>('join')
const sayForm = $<HTMLFormElement>('say')
const log = $<HTMLOListElement>('log')
const online = $<HTMLUListElement>('online')
const roomTitle = $<HTMLElement>('room-title')
const text = $<HTMLInputElement>('text')
const params = new URLSearchParams(location.search)
$<HTMLInputElement>('nick').value = params.get('nick') ?? localStorage.getItem('tether.nick') ?? ''
$<HTMLInputElement>('room').value = params.get('room') ?? 'lobby'

/** The room asked for (until its welcome or a refusal), and the room this page is in. */
let pending: { room: string; nick: string } | undefined
let joined: { room: string; nick: string } | undefined
const people = new Set<string>()
const joinError = $<HTMLElement>('join-error')

function showRoom(inRoom: boolean): void {
  document.body.dataset.joined = String(inRoom)
  if (!inRoom) {
    log.replaceChildren()
    people.clear()
    renderOnline()
    roomTitle.textContent = ''
    $<HTMLInputElement>('room').focus()
  }
}

function time(at: number | undefined): string {
  return new Date(at ?? Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

function add(kind: string, content: string, at?: number, nick?: string): void {
  const item = document.createElement('li')
  item.className = kind
  const stamp = document.createElement('time')
  stamp.textContent = time(at)
  item.append(stamp, ' ')
  if (nick !== undefined) {
    const who = document.createElement('strong')
    who.textContent = nick
    item.append(who, ' ')
  }
  item.append(content)
  log.append(item)
  log.scrollTop = log.scrollHeight
}

function renderOnline(): void {
  online.replaceChildren(
    ...[...people].sort((a, b) => a.localeCompare(b)).map((nick) => {
      const item = document.createElement('li')
      item.textContent = nick
      return item
    }),
  )
  $<HTMLElement>('online-count').textContent = String(people.size)
}

const connection = reconnecting({
  path: '/chat/ws',
  status: $('status'),
  onOpen() {
    // After a reconnect, join again as before.
    if (joined) {
      pending = joined
      send({ type: 'join', ...joined })
    }
  },
  onMessage(data) {
    const event = data as ChatServerMessage
    switch (event.type) {
      case 'welcome':
        joined = { room: event.room, nick: event.nick }
        pending = undefined
        joinError.textContent = ''
        roomTitle.textContent = `#${event.room}`
        showRoom(true)
        log.replaceChildren()
        for (const past of event.history) if (past.type === 'message') add('message', past.text, past.at, past.nick)
        add('notice', `You joined #${event.room} as ${event.nick}.`)
        people.clear()
        for (const nick of event.online) people.add(nick)
        people.add(event.nick)
        renderOnline()
        text.focus()
        break
      case 'message':
        add('message', event.text, event.at, event.nick)
        break
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
      case 'left':
        joined = undefined
        showRoom(false)
        break
      case 'error':
        // A refused join (a first one, or the one after a reconnect) is told beside the form; anything else in the room.
        if (pending !== undefined) {
          pending = undefined
          joinError.textContent = event.message
          if (joined !== undefined) {
            joined = undefined
            showRoom(false)
          }
        } else {
          add('error', event.message)
        }
        break
    }
  },
})

function send(message: ChatClientMessage): boolean {
  return connection.send(message)
}

joinForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const nick = $<HTMLInputElement>('nick').value.trim()
  const room = $<HTMLInputElement>('room').value.trim()
  if (!nick || !room) return
  localStorage.setItem('tether.nick', nick)
  pending = { room, nick }
  joinError.textContent = ''
  if (!send({ type: 'join', room, nick })) joinError.textContent = 'Not connected: wait a moment and try again.'
})

$<HTMLButtonElement>('leave').addEventListener('click', () => {
  send({ type: 'leave' })
})

sayForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const value = text.value.trim()
  if (!value) return
  if (send({ type: 'say', text: value })) text.value = ''
})
