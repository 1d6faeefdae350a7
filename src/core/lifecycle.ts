/**
 * The states of a WebSocket connection (RFC 6455 §4.1, §7) and the legal moves
 * between them. The table is the single source of truth: the connection moves
 * only through `transition`, and the table is tested on its own.
 *
 *   connecting ──► open ──► closing ──► closed
 *        │           └──────────────────▲ │
 *        └────────────────────────────────┘
 *
 * `closing` covers both halves of the closing handshake (a close frame sent or
 * received, or the connection failed and is waiting for TCP to end).
 */
import { StateError } from './errors.js'

export type State = 'connecting' | 'open' | 'closing' | 'closed'

/** For each state, the states it may move to. */
export const transitions = {
  connecting: ['open', 'closed'],
  open: ['closing', 'closed'],
  closing: ['closed'],
  closed: [],
} as const satisfies Record<State, readonly State[]>

export function canTransition(from: State, to: State): boolean {
  return (transitions[from] as readonly State[]).includes(to)
}

/** Returns `to` if the move is legal; a move outside the table is a bug, so it throws. */
export function transition(from: State, to: State): State {
  if (!canTransition(from, to)) {
    throw new StateError('TETHER_ERR_ILLEGAL_TRANSITION', `Illegal WebSocket state transition: ${from} -> ${to}`)
  }
  return to
}
