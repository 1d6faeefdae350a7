/**
 * The schemas the hub validates every incoming message against (from a
 * client, or from another node over the backplane: both are untrusted),
 * each checked by the compiler against its type in wire-types.ts, where the
 * pages in `web/src` find the same types (no validation code ships to the
 * browser).
 *
 * The same limits hold on every path: a nickname, a room name or a text too
 * long from a client is refused; from another node it is dropped.
 */
import * as z from 'zod/mini'
import type * as types from './wire-types.js'

export type ChatClientMessage = types.ChatClientMessage
export type ChatEvent = types.ChatEvent
export type AuthRefresh = types.AuthRefresh
export type { ChatMessage, ChatPresence, ChatServerMessage, HubError, MatchState, ScoresServerMessage, ScoresSnapshot } from './wire-types.js'

export const MAX_NICK = 24
export const MAX_TEXT = 2000
export const MAX_ROOM = 40
export const ROOM_PATTERN = /^[\w-]{1,40}$/
/** Who is online in a room, as one node tells the others: at most this many names. */
export const MAX_ONLINE = 1000

/**
 * Characters a nickname may not hold: controls, and the invisible or
 * direction-changing ones that make two names look alike or reorder a line
 * (zero-width spaces and joiners, bidi marks, embeddings, overrides, isolates).
 */
export const NICK_FORBIDDEN = /[\p{Cc}\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/u
const nick = z.string().check(
  z.trim(),
  z.minLength(1),
  z.maxLength(MAX_NICK),
  z.refine((value) => !NICK_FORBIDDEN.test(value), 'a nickname may not hold control or invisible characters'),
)
const room = z.string().check(z.regex(ROOM_PATTERN))
const text = z.string().check(z.trim(), z.minLength(1), z.maxLength(MAX_TEXT))
/** A page's session secret (crypto.randomUUID() is 36 characters), and a say's id. */
export const SESSION_PATTERN = /^[\w-]{16,128}$/
export const SAY_ID_PATTERN = /^[\w-]{1,64}$/
const session = z.string().check(z.regex(SESSION_PATTERN))
const sayId = z.string().check(z.regex(SAY_ID_PATTERN))
/** A claim: a hash of a session (chat.ts), base64url. */
const claim = z.string().check(z.maxLength(64))

/** Sent on any endpoint: a fresh token before the current one expires (auth.ts Rule 1). */
export const AuthRefresh: z.ZodMiniType<types.AuthRefresh> = z.object({ type: z.literal('tether.auth'), token: z.string().check(z.maxLength(8192)) })

const node = z.string().check(z.maxLength(64))

/** What a chat client sends. */
export const ChatClientMessage: z.ZodMiniType<types.ChatClientMessage> = z.discriminatedUnion('type', [
  z.object({ type: z.literal('join'), room, nick, session: z.optional(session) }),
  z.object({ type: z.literal('say'), text, id: z.optional(sayId) }),
  z.object({ type: z.literal('leave') }),
])

/**
 * Presence as it crosses the backplane (untrusted: another node may be wrong
 * or compromised). A room's messages never cross it: they are in the room's
 * history topic, which only the chat app writes.
 */
export const ChatEvent: z.ZodMiniType<types.ChatEvent> = z.discriminatedUnion('type', [
  z.object({ type: z.literal('join'), room, nick, at: z.number(), node, claim: z.optional(claim) }),
  z.object({ type: z.literal('leave'), room, nick, at: z.number(), node }),
  z.object({
    type: z.literal('here'),
    room,
    nicks: z.array(nick).check(z.maxLength(MAX_ONLINE)),
    joined: z.optional(z.array(z.number()).check(z.maxLength(MAX_ONLINE))),
    claims: z.optional(z.array(z.nullable(claim)).check(z.maxLength(MAX_ONLINE))),
    node,
  }),
])

/** Parses JSON text and validates it; undefined when either fails. */
export function parseWith<T>(schema: z.ZodMiniType<T>, text: string): T | undefined {
  const result = validate(schema, text)
  return result.ok ? result.value : undefined
}

/** Parses JSON text and validates it: the value, or the first field that was wrong (undefined: not JSON, or the type). */
export function validate<T>(schema: z.ZodMiniType<T>, text: string): { ok: true; value: T } | { ok: false; field: string | undefined } {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, field: undefined }
  }
  const result = schema.safeParse(value)
  if (result.success) return { ok: true, value: result.data }
  const field = result.error.issues[0]?.path[0]
  return { ok: false, field: typeof field === 'string' && field !== 'type' ? field : undefined }
}
