/**
 * `/scores/ws`: live scores. A simulated feed of several matches whose clocks
 * and scores change every second, published on the app's feed topic with one
 * conflation key per match, so a client that falls behind gets the newest
 * state of each match (the `latest` policy), not a backlog; a client that
 * connects gets a snapshot first.
 *
 * The feed is a pure function of the wall clock (a match's events come from
 * a hash of its id, its cycle and the minute), so every node of a cluster
 * computes the same scores at the same second with no coordination, and
 * publishes them locally only.
 */
import type { App, AppServices } from '../app.js'
import type { MatchState } from '../wire.js'

export type { MatchState } from '../wire.js'

/** The feed is computed on every node and published locally only; the topic is refused from the backplane (hub.ts). */
export const SCORES_TOPIC = 'local:scores:feed'
/** The feed's name for permissions. */
export const SCORES_PUBLIC_NAME = 'scores'

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

export function scoresApp(now: () => number = Date.now): App {
  let timer: NodeJS.Timeout | undefined
  return {
    name: 'scores',
    route: { path: '/scores/ws' },
    check(_param, identity) {
      if (!identity.can('subscribe', SCORES_PUBLIC_NAME)) return { status: 403, message: 'Not allowed to subscribe to scores' }
      return undefined
    },
    start(services: AppServices) {
      services.setTopicPolicy(SCORES_TOPIC, { policy: 'latest', backpressureLimit: 64 * 1024 })
      const tick = (): void => {
        for (const match of allMatches(now() / 1000)) {
          services.publish(SCORES_TOPIC, JSON.stringify({ type: 'match', match }), { key: match.id, local: true })
        }
      }
      timer = setInterval(tick, 1000)
      timer.unref()
    },
    open(client) {
      client.send({ type: 'snapshot', matches: allMatches(now() / 1000) })
      client.subscribe(SCORES_TOPIC, SCORES_PUBLIC_NAME)
    },
    // The page sends nothing; anything it does send is ignored.
    stop() {
      if (timer !== undefined) clearInterval(timer)
    },
  }
}
