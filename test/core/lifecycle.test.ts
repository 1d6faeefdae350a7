import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StateError } from '../../src/core/errors.js'
import { type State, canTransition, transition, transitions } from '../../src/core/lifecycle.js'

const STATES: State[] = ['connecting', 'open', 'closing', 'closed']

/** The moves of RFC 6455 §4.1/§7, written out independently of the table under test. */
const ALLOWED = new Set([
  'connecting->open', // handshake succeeded
  'connecting->closed', // handshake failed
  'open->closing', // close frame sent or received, or the connection failed
  'open->closed', // transport ended without a closing handshake
  'closing->closed', // closing handshake done or transport ended
])

describe('connection lifecycle (RFC 6455 §4.1, §7)', () => {
  it('lists exactly the allowed moves', () => {
    const listed = new Set(STATES.flatMap((from) => transitions[from].map((to) => `${from}->${to}`)))
    assert.deepEqual([...listed].sort(), [...ALLOWED].sort())
  })

  for (const from of STATES) {
    for (const to of STATES) {
      const move = `${from}->${to}`
      if (ALLOWED.has(move)) {
        it(`allows ${move}`, () => {
          assert.equal(canTransition(from, to), true)
          assert.equal(transition(from, to), to)
        })
      } else {
        it(`forbids ${move}: transition() throws StateError`, () => {
          assert.equal(canTransition(from, to), false)
          assert.throws(
            () => transition(from, to),
            (error: unknown) =>
              error instanceof StateError && error.code === 'TETHER_ERR_ILLEGAL_TRANSITION' && error.message.includes(`${from} -> ${to}`),
          )
        })
      }
    }
  }

  it('has no move out of closed', () => {
    assert.deepEqual(transitions.closed, [])
  })
})
