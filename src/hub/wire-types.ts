/**
 * The types of the hub's wire formats, declared once, with no code: the hub
 * (wire.ts checks its schemas against them) and the pages in `web/src`
 * import them, so the pages and the server cannot drift apart.
 */

/**
 * What a chat client sends. `session` (a random secret of the page, kept for
 * its tab) lets the same page take its nickname back after a reconnect, on
 * any node, while the room still counts it present; `id` names a `say` for
 * its answer and makes it idempotent (sent again after a reconnect, with
 * the same id, it is kept once).
 */
export type ChatClientMessage =
  | { type: 'join'; room: string; nick: string; session?: string | undefined }
  | { type: 'say'; text: string; id?: string | undefined }
  | { type: 'leave' }

/**
 * A message of a room, as the room's history topic keeps it (`$chat:ROOM` on
 * `/v1`): written only by the chat app, with the nickname it stamped.
 */
export interface ChatMessage {
  type: 'message'
  room: string
  nick: string
  text: string
  /** When the node that accepted it did, in ms since 1970. */
  at: number
  node: string
}

/** Who is in a room, as pages are told (`node` says which node published it). */
export type ChatPresence =
  | { type: 'join'; room: string; nick: string; at: number; node: string }
  | { type: 'leave'; room: string; nick: string; at: number; node: string }
  /** `joined[i]`: when `nicks[i]` joined on that node (Rule 2's tie-break of src/hub/apps/chat.ts). */
  | { type: 'here'; room: string; nicks: string[]; joined?: number[] | undefined; node: string }

/**
 * Presence as it crosses the backplane: what pages are told, and the claims
 * (a hash of the joining page's session) by which a page takes its nickname
 * back after a reconnect; claims never reach pages.
 */
export type ChatEvent =
  | { type: 'join'; room: string; nick: string; at: number; node: string; claim?: string | undefined }
  | { type: 'leave'; room: string; nick: string; at: number; node: string }
  | { type: 'here'; room: string; nicks: string[]; joined?: number[] | undefined; claims?: Array<string | null> | undefined; node: string }

/** An error the hub tells a client about, with a stable code, and the id of the request it answers (a `say`'s). */
export interface HubError {
  type: 'error'
  code: 'bad-message' | 'not-allowed' | 'rate-limited' | 'bad-token' | 'state' | 'unavailable'
  message: string
  id?: string | undefined
}

/** What the hub sends a chat page on `/chat/ws` (a room's messages are on `/v1`, in `topic`). */
export type ChatServerMessage =
  | { type: 'welcome'; room: string; nick: string; online: string[]; topic: string }
  | ChatPresence
  /** A `say` was kept: its position in the room's history. */
  | { type: 'said'; id?: string | undefined; position: { epoch: string; offset: number } }
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

/** Every match at second `at` (since 1970): what `/scores/ws` sends first, and each entry of `$scores:feed` on `/v1`. */
export interface ScoresSnapshot {
  type: 'snapshot'
  matches: MatchState[]
  at: number
}

/** What the hub sends on `/scores/ws`. */
export type ScoresServerMessage = ScoresSnapshot | { type: 'match'; match: MatchState } | HubError

/** Sent on any endpoint: a fresh token before the current one expires. */
export interface AuthRefresh {
  type: 'tether.auth'
  token: string
}
