/** The live-scores page: a card per match, updated every second from the server's feed. */
import type { MatchState as Match, ScoresServerMessage } from '../../src/hub/wire-types.js'
import { reconnecting } from './connection.js'

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
  onState(state) {
    // A snapshot follows every (re)connection; until then, what is shown may be out of date.
    board.dataset.stale = String(state === 'closed')
  },
  onMessage(data) {
    const event = data as ScoresServerMessage
    if (event.type === 'snapshot') for (const match of event.matches) render(match)
    else if (event.type === 'match') render(event.match)
  },
})
