/**
 * Live scores: a simulated feed of several matches whose clocks and scores
 * change every second, served two ways.
 *
 * - `$scores:feed` on `/v1` (tether.v1, read-only; the page's way): a topic
 *   with history whose entries are snapshots of every match, one a second.
 *   Scores are state, not a log: a page subscribes with `recent: 1` (the
 *   newest snapshot, then live); after a reconnect it resumes, and the last
 *   of what it gets is the current state. The window is short (FEED_HISTORY).
 * - `/scores/ws` (JSON, for any WebSocket client): a snapshot first, then each
 *   match's changes on the app's feed topic with one conflation key per
 *   match, so a client that falls behind gets the newest state of each match
 *   (the `latest` policy), not a backlog.
 *
 * The feed is a pure function of the wall clock (a match's events come from
 * a hash of its id, its cycle and the minute), so every node of a cluster
 * computes the same scores at the same second with no coordination, and
 * publishes them locally only. Into the history topic, every node appends
 * its snapshot of second S with the idempotency key S, so the store keeps
 * one per second whichever nodes write it; a node's clock a little behind
 * may append an older second after a newer one, and the page keeps the
 * newest by `at`.
 */
import type { App, AppServices } from '../app.js'
import type { MatchState, ScoresSnapshot } from '../wire.js'

export type { MatchState } from '../wire.js'

/** The feed is computed on every node and published locally only; the topic is refused from the backplane (hub.ts). */
export const SCORES_TOPIC = 'local:scores:feed'
/** The feed's name for permissions. */
export const SCORES_PUBLIC_NAME = 'scores'
/** The feed's history topic: `$scores:feed` on /v1. */
export const FEED_NAME = 'feed'
/** The feed's window: a minute of snapshots (a page away longer gets the newest ones, which is all it needs). */
export const FEED_HISTORY = { maxCount: 60, maxAge: 60_000 }

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

/**
 * The goal model: each side scores in a minute with a fixed chance, so a
 * side's goals in 90 minutes are binomial, close to Poisson: the home side
 * averages 1.5 goals, the away side 1.2, 2.7 a match, as in top-flight
 * football (about 7% of matches end 0-0, and ten goals are rare).
 */
const HOME_GOALS = 1.5
const AWAY_GOALS = 1.2

/**
 * A seeded pseudo-random generator (SplitMix32 seeding a xorshift-multiply
 * sequence): the same seed gives the same numbers on every node, so every
 * node of a cluster plays the same match without talking to the others. Not
 * for secrets; for a simulation, uniform and cheap.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32
  }
}

/** The seed of match `index` in its `cycle`th playing (a mix of both, so neighbouring matches differ). */
function seedOf(index: number, cycle: number): number {
  return (Math.imul(index + 1, 0x27d4eb2d) ^ Math.imul(cycle + 1, 0x165667b1)) >>> 0
}

/** The state of match `index` at `seconds` since the epoch. */
export function matchAt(index: number, seconds: number): MatchState {
  const [home, away] = TEAMS[index]!
  const shifted = Math.floor(seconds) + index * 17
  const cycle = Math.floor(shifted / CYCLE)
  const elapsed = shifted % CYCLE
  const minute = Math.min(elapsed, PLAY)
  const state: MatchState = { id: `m${index + 1}`, home, away, homeScore: 0, awayScore: 0, minute, status: elapsed >= PLAY ? 'full-time' : 'live' }
  const random = seededRandom(seedOf(index, cycle))
  for (let m = 1; m <= minute; m++) {
    // Two draws a minute, whatever happens, so that minute m's events never depend on earlier ones.
    const homeRoll = random()
    const awayRoll = random()
    if (homeRoll < HOME_GOALS / PLAY) {
      state.homeScore++
      state.lastGoal = { minute: m, side: 'home' }
    }
    if (awayRoll < AWAY_GOALS / PLAY) {
      state.awayScore++
      state.lastGoal = { minute: m, side: 'away' }
    }
  }
  return state
}

/** A whole match `index` of cycle `cycle` at full time (for the distribution test and the docs). */
export function fullTime(index: number, cycle: number): MatchState {
  return matchAt(index, cycle * CYCLE - index * 17 + PLAY)
}

export function allMatches(seconds: number): MatchState[] {
  return TEAMS.map((_, index) => matchAt(index, seconds))
}

/** Every match at the whole second `second`. */
export function snapshotAt(second: number): ScoresSnapshot {
  return { type: 'snapshot', matches: allMatches(second), at: second }
}

export function scoresApp(now: () => number = Date.now): App {
  let timer: NodeJS.Timeout | undefined
  let appendFailed = 0
  return {
    name: 'scores',
    route: { path: '/scores/ws' },
    history: {
      policy: FEED_HISTORY,
      publicName: (name) => (name === FEED_NAME ? SCORES_PUBLIC_NAME : undefined),
    },
    check(_param, identity) {
      if (!identity.can('subscribe', SCORES_PUBLIC_NAME)) return { status: 403, message: 'Not allowed to subscribe to scores' }
      return undefined
    },
    start(services: AppServices) {
      services.setTopicPolicy(SCORES_TOPIC, { policy: 'latest', backpressureLimit: 64 * 1024 })
      const tick = (): void => {
        const second = Math.floor(now() / 1000)
        const snapshot = snapshotAt(second)
        for (const match of snapshot.matches) {
          services.publish(SCORES_TOPIC, JSON.stringify({ type: 'match', match }), { key: match.id, local: true })
        }
        // Every node writes the feed's history, so that a page always finds the newest snapshot there; the
        // store keeps one a second (the key), whichever nodes write it.
        services.history.append(FEED_NAME, JSON.stringify(snapshot), { key: String(second) }).catch(() => appendFailed++)
      }
      timer = setInterval(tick, 1000)
      timer.unref()
      // The first snapshot now: a page that subscribes in the first second finds one.
      tick()
    },
    open(client) {
      client.send(snapshotAt(Math.floor(now() / 1000)))
      client.subscribe(SCORES_TOPIC, SCORES_PUBLIC_NAME)
    },
    // A client of /scores/ws sends nothing; anything it does send is ignored.
    stop() {
      if (timer !== undefined) clearInterval(timer)
    },
    summary() {
      return { appendFailed }
    },
  }
}
