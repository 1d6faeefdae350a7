/**
 * Who a client is and what it may do: JSON Web Tokens verified with `jose`,
 * taken from where a browser can put them, turned into topic permissions.
 *
 * Theory of operation: a browser cannot set headers on a WebSocket request,
 * so a token travels in one of three places, tried in this order: the
 * `Sec-WebSocket-Protocol` header as a subprotocol `tether.bearer.TOKEN`
 * (the page offers it next to `tether`, which the hub selects), a
 * `tether_token` cookie, or a `token` query parameter (last: URLs end up in
 * logs). The token is verified (signature, `exp`, `nbf`, and `iss`/`aud`
 * when configured) before the upgrade: a missing or bad token gets 401.
 *
 * Permissions are the token's `tether` claim: `{ "subscribe": [patterns],
 * "publish": [patterns] }`, matched against public topic names (a relay topic
 * as its NAME, a chat room as `chat:ROOM`, the scores feed as `scores`; `*`
 * stands for any run of characters). A token without the claim may do
 * nothing. Without authentication (`kind: 'none'`, the development default)
 * every client may do everything.
 *
 * Rule 1: a token's expiry ends the connection (close 4001) unless the
 * client sent a fresh token before it, as `{"type":"tether.auth","token":…}`;
 * a token without `exp` is refused.
 * Rule 2: tokens and claims are never logged.
 */
import type { IncomingMessage } from 'node:http'
import { type JWTPayload, type JWTVerifyGetKey, type KeyObject, createLocalJWKSet, importSPKI, jwtVerify, decodeProtectedHeader } from 'jose'
import { createSecretKey } from 'node:crypto'
import type { AuthConfig } from './config.js'
import { matchesAny } from './topics.js'

/** What a client may do, and until when. */
export interface Identity {
  /** Whether a token was verified (false: no authentication configured). */
  readonly authenticated: boolean
  /** The token's `sub`, if any. */
  readonly subject: string | undefined
  /** When the token expires, in ms since the epoch (undefined: never, or no token). */
  readonly expiresAt: number | undefined
  can(action: 'subscribe' | 'publish', topic: string): boolean
}

/** Every permission: no authentication configured. */
export const ANYONE: Identity = { authenticated: false, subject: undefined, expiresAt: undefined, can: () => true }

/** The subprotocol a page offers to carry its token, and the one the hub selects. */
export const BEARER_PROTOCOL_PREFIX = 'tether.bearer.'
export const HUB_PROTOCOL = 'tether'
export const TOKEN_COOKIE = 'tether_token'
export const TOKEN_QUERY = 'token'

/** Why a token was refused (said to the client with 401; never the token itself). */
export class AuthError extends Error {}

export interface Authenticator {
  /** The identity of an upgrade request, or an AuthError (401). */
  identify(request: IncomingMessage): Promise<Identity>
  /** The identity of a token sent later (Rule 1). */
  verify(token: string): Promise<Identity>
  readonly required: boolean
}

/** The token of a request: subprotocol, then cookie, then query parameter. */
export function tokenOf(request: IncomingMessage): string | undefined {
  const protocols = request.headers['sec-websocket-protocol']
  if (typeof protocols === 'string') {
    for (const protocol of protocols.split(',')) {
      const trimmed = protocol.trim()
      if (trimmed.startsWith(BEARER_PROTOCOL_PREFIX)) return trimmed.slice(BEARER_PROTOCOL_PREFIX.length)
    }
  }
  const cookie = request.headers.cookie
  if (typeof cookie === 'string') {
    for (const part of cookie.split(';')) {
      const index = part.indexOf('=')
      if (index !== -1 && part.slice(0, index).trim() === TOKEN_COOKIE) return decodeURIComponent(part.slice(index + 1).trim())
    }
  }
  const query = (request.url ?? '').split('?')[1]
  if (query !== undefined) {
    const value = new URLSearchParams(query).get(TOKEN_QUERY)
    if (value) return value
  }
  return undefined
}

/** The `tether` claim's patterns, or none. */
function patterns(claims: JWTPayload, action: 'subscribe' | 'publish'): string[] {
  const tether = claims.tether
  if (typeof tether !== 'object' || tether === null) return []
  const list = (tether as Record<string, unknown>)[action]
  return Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string') : []
}

function identityOf(claims: JWTPayload): Identity {
  const subscribe = patterns(claims, 'subscribe')
  const publish = patterns(claims, 'publish')
  return {
    authenticated: true,
    subject: typeof claims.sub === 'string' ? claims.sub : undefined,
    expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : undefined,
    can: (action, topic) => matchesAny(action === 'subscribe' ? subscribe : publish, topic),
  }
}

export async function createAuthenticator(config: AuthConfig): Promise<Authenticator> {
  if (config.kind === 'none') {
    return { required: false, identify: async () => ANYONE, verify: async () => ANYONE }
  }
  let key: KeyObject | Uint8Array | JWTVerifyGetKey
  if (config.jwks !== undefined) key = createLocalJWKSet(config.jwks as Parameters<typeof createLocalJWKSet>[0])
  else if (config.publicKey !== undefined) {
    const pem = config.publicKey
    // The algorithm comes from each token's header; the key must suit it (jose checks).
    const cache = new Map<string, KeyObject>()
    key = async (header) => {
      const alg = header.alg ?? ''
      let imported = cache.get(alg)
      if (imported === undefined) cache.set(alg, (imported = (await importSPKI(pem, alg)) as KeyObject))
      return imported
    }
  } else key = createSecretKey(Buffer.from(config.secret!, 'utf8'))
  const options = {
    ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
    ...(config.audience !== undefined ? { audience: config.audience } : {}),
    // A token that never expires could never be taken back (Rule 1 needs an expiry).
    requiredClaims: ['exp'],
    algorithms:
      config.secret !== undefined && config.jwks === undefined && config.publicKey === undefined
        ? ['HS256', 'HS384', 'HS512']
        : ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
  }
  const verify = async (token: string): Promise<Identity> => {
    try {
      decodeProtectedHeader(token)
      const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], options)
      // Issued in the future (a clock or an issuer gone wrong): refused, with a minute of leeway.
      if (typeof payload.iat === 'number' && payload.iat * 1000 > Date.now() + 60_000) throw new AuthError('the token is not valid')
      return identityOf(payload)
    } catch (error) {
      if (error instanceof AuthError) throw error
      const code = (error as { code?: string }).code
      throw new AuthError(code === 'ERR_JWT_EXPIRED' ? 'the token has expired' : 'the token is not valid')
    }
  }
  return {
    required: true,
    verify,
    identify: async (request) => {
      const token = tokenOf(request)
      if (token === undefined) throw new AuthError(`a token is required (subprotocol ${BEARER_PROTOCOL_PREFIX}TOKEN, cookie ${TOKEN_COOKIE} or ?${TOKEN_QUERY}=)`)
      return verify(token)
    },
  }
}
