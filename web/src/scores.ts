/** The live-scores page: a card per match, updated every second from the server's feed. */
import { reconnecting } from './connection.js'

interface Match {
  id: string
  home: string
  away: string
  homeScore: number
  awayScore: number
  minute: number
  status: 'live' | 'full-time'
  lastGoal?: { minute: number; side: 'home' | 'away' }
}

const board = document.getElementById('board') as HTMLElement
const updated = document.getElementById('updated') as HTMLElement
const cards = new Map<string, HTMLElement>()

function render(match: Match): void {
  let card = cards.get(match.id)
  if (card === undefined) {
    card = document.createElement('article')
    card.className = 'match'
    card.dataset.id = match.id
    card.innerHTML = '<h2><span class="home"></span> <span class="score" aria-live="polite"></span> <span class="away"></span></h2><p class="clock"></p>'
    cards.set(match.id, card)
    board.append(card)
  }
  const previous = card.dataset.score
  const score = `${match.homeScore} – ${match.awayScore}`
  card.querySelector('.home')!.textContent = match.home
  card.querySelector('.away')!.textContent = match.away
  card.querySelector('.score')!.textContent = score
  card.querySelector('.clock')!.textContent = match.status === 'full-time' ? 'Full time' : `${match.minute}′`
  card.dataset.status = match.status
  card.dataset.score = score
  if (previous !== undefined && previous !== score) {
    card.classList.remove('goal')
    void card.offsetWidth
    card.classList.add('goal')
  }
  updated.textContent = new Date().toLocaleTimeString()
}

reconnecting({
  path: '/scores/ws',
  status: document.getElementById('status') as HTMLElement,
  onOpen() {},
  onMessage(data) {
    const event = data as { type: string; matches?: Match[]; match?: Match }
    if (event.type === 'snapshot') for (const match of event.matches ?? []) render(match)
    else if (event.type === 'match' && event.match) render(event.match)
  },
})
