/**
 * The types of the hub's wire formats, declared once, with no code: the hub
 * (wire.ts checks its schemas against them) and the pages in `web/src`
 * import them, so the pages and the server cannot drift apart.
 */

/** What a chat client sends. */
export type ChatClientMessage = { type: 'join'; room: string; nick: string } | { type: 'say'; text: string } | { type: 'leave' }

/** A chat event as it crosses the backplane and reaches pages (`node` says which node published it). */
export type ChatEvent =
  | { type: 'message'; room: string; nick: string; text: string; at: number; node: string }
  | { type: 'join'; room: string; nick: string; at: number; node: string }
  | { type: 'leave'; room: string; nick: string; at: number; node: string }
  /** `joined[i]`: when `nicks[i]` joined on that node (Rule 2's tie-break of src/hub/apps/chat.ts). */
  | { type: 'here'; room: string; nicks: string[]; joined?: number[]; node: string }

/** An error the hub tells a client about, with a stable code. */
export interface HubError {
  type: 'error'
  code: 'bad-message' | 'not-allowed' | 'rate-limited' | 'bad-token' | 'state'
  message: string
}

/** What the hub sends a chat page. */
export type ChatServerMessage =
  | { type: 'welcome'; room: string; nick: string; history: ChatEvent[]; online: string[] }
  | ChatEvent
  | { type: 'left'; room: string }
  | HubError

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
  lastGoal?: { minute: number; side: 'home' | 'away' } | undefined
}

/** What the hub sends a scores page. */
export type ScoresServerMessage = { type: 'snapshot'; matches: MatchState[] } | { type: 'match'; match: MatchState } | HubError

/** Sent on any endpoint: a fresh token before the current one expires. */
export interface AuthRefresh {
  type: 'tether.auth'
  token: string
}
