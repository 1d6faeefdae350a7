/**
 * The live-scores demo: a simulated feed of several matches whose clocks and
 * scores change every second, published on the `scores` topic with one
 * conflation key per match.
 *
 * The feed is a pure function of the wall clock (a match's events come from
 * a hash of its id, its cycle and the minute), so every node of a cluster
 * computes the same scores at the same second with no coordination, and
 * publishes them locally only. A client that falls behind gets the newest
 * state of each match (the `latest` policy), not a backlog; a client that
 * connects gets a snapshot first.
 */
import type { WebSocket, WebSocketServer } from 'tether-ws'

export const SCORES_TOPIC = 'scores'

const TEAMS: ReadonlyArray<[string, string]> = [
  ['Lisbon Larks', 'Porto Pumas'],
  ['Oslo Otters', 'Bergen Bears'],
  ['Quito Quails', 'Lima Lynxes'],
  ['Accra Arrows', 'Lagos Lions'],
  ['Hanoi Herons', 'Hue Hornets'],
  ['Perth Pelicans', 'Cairns Crocs'],
]
/** One simulated minute per real second; 90 minutes of play, then 30 s of full time before the next match. */
const PLAY = 90
const CYCLE = 120

export interface MatchState {
  id: string
  home: string
  away: string
  homeScore: number
  awayScore: number
  /** Match minute, 0-90; 90 with `status: 'full-time'`. */
  minute: number
  status: 'live' | 'full-time'
  /** The last goal, for the page to highlight. */
  lastGoal?: { minute: number; side: 'home' | 'away' }
}

/** A small, stable hash (FNV-1a) of a string, as a number in [0, 1). */
function unit(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) / 2 ** 32
}

/** The state of match `index` at `seconds` since the epoch. */
export function matchAt(index: number, seconds: number): MatchState {
  const [home, away] = TEAMS[index]!
  const shifted = Math.floor(seconds) + index * 17
  const cycle = Math.floor(shifted / CYCLE)
  const elapsed = shifted % CYCLE
  const minute = Math.min(elapsed, PLAY)
  const state: MatchState = { id: `m${index + 1}`, home, away, homeScore: 0, awayScore: 0, minute, status: elapsed >= PLAY ? 'full-time' : 'live' }
  for (let m = 1; m <= minute; m++) {
    const roll = unit(`${index}:${cycle}:${m}`)
    // About 2.7 goals per match.
    if (roll < 0.015) {
      state.homeScore++
      state.lastGoal = { minute: m, side: 'home' }
    } else if (roll < 0.03) {
      state.awayScore++
      state.lastGoal = { minute: m, side: 'away' }
    }
  }
  return state
}

export function allMatches(seconds: number): MatchState[] {
  return TEAMS.map((_, index) => matchAt(index, seconds))
}

/**
 * Runs the feed on `wss`: every second, each match's state is published on
 * the scores topic (local to this node, keyed by match). Returns a function
 * that stops it.
 */
export function startScoresFeed(wss: WebSocketServer, now: () => number = Date.now): () => void {
  wss.setTopicPolicy(SCORES_TOPIC, { policy: 'latest', backpressureLimit: 64 * 1024 })
  const tick = (): void => {
    const seconds = now() / 1000
    for (const match of allMatches(seconds)) {
      wss.publish(SCORES_TOPIC, JSON.stringify({ type: 'match', match }), { key: match.id, local: true })
    }
  }
  const timer = setInterval(tick, 1000)
  timer.unref()
  return () => clearInterval(timer)
}

/** A scores client: the current state of every match, then updates. */
export function acceptScoresClient(ws: WebSocket, now: () => number = Date.now): void {
  ws.send(JSON.stringify({ type: 'snapshot', matches: allMatches(now() / 1000) }))
  ws.subscribe(SCORES_TOPIC)
  // The page sends nothing; anything it does send is ignored.
}
