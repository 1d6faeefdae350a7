/**
 * The live-scores page: a card per match, from the scores feed `$scores:feed`
 * on /v1 through the reliable-delivery client (tether-ws/client). Scores are
 * state, not a log: the page subscribes to the newest snapshot (`recent: 1`)
 * and then to each new one; after a reconnect the client resumes and the
 * last snapshot it hands over is the current one. Snapshots come with their
 * second, and one older than what is shown is ignored (a node whose clock is
 * a little behind may have written it late). While the client is
 * disconnected, and until it is subscribed again, the board is marked stale.
 */
import type { MatchState as Match, ScoresSnapshot } from '../../src/hub/wire-types.js'
import { deliveryClient, linkState, statusBoard } from './connection.js'

const board = document.getElementById('board') as HTMLElement
const updated = document.getElementById('updated') as HTMLElement
const cards = new Map<string, HTMLElement>()
/** The second of the snapshot shown. */
let shown = -Infinity

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
}

/** A snapshot as the scores app wrote it, or undefined. */
function snapshot(data: string | Uint8Array): ScoresSnapshot | undefined {
  if (typeof data !== 'string') return undefined
  try {
    const value = JSON.parse(data) as Partial<ScoresSnapshot>
    return value?.type === 'snapshot' && Array.isArray(value.matches) && typeof value.at === 'number' ? (value as ScoresSnapshot) : undefined
  } catch {
    return undefined
  }
}

const status = statusBoard(document.getElementById('status') as HTMLElement, ['scores'])
const client = deliveryClient()
let connected = false
client.on('state', ({ state, delay, attempt }) => {
  status('scores', linkState(state, delay, attempt))
  if (state === 'open') connected = true
  // What is shown may be out of date from the moment the connection is lost until the feed is subscribed again.
  else if (connected) board.dataset.stale = 'true'
})
const feed = client.subscribe('$scores:feed', { recent: 1 })
feed.on('message', (data) => {
  const latest = snapshot(data)
  if (latest === undefined || latest.at < shown) return
  shown = latest.at
  for (const match of latest.matches) render(match)
  updated.textContent = new Date(latest.at * 1000).toLocaleTimeString()
})
feed.on('subscribed', () => {
  board.dataset.stale = 'false'
})
feed.on('error', (error) => {
  status('scores', { state: 'closed' })
  updated.textContent = `– (${error.message})`
})
