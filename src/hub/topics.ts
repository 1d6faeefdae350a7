/**
 * Topic namespaces and patterns.
 *
 * Theory of operation: every topic the hub publishes on is named by who owns
 * it. The relay's topics (`/topics/NAME`) are `relay:NAME`; an app's are
 * `app:APP:NAME` (chat rooms `app:chat:lobby`, the scores feed
 * `app:scores:feed`). A client names relay topics only, and the relay adds the
 * prefix, so nothing a client sends on `/topics/…` can reach an app's topic,
 * on this node or another (Centrifugo's channel namespaces). Topics under
 * `local:` are an app's own deliveries to its clients on this node: never
 * forwarded, and refused from the backplane (a broker or another node may be
 * wrong or compromised).
 *
 * Permissions (token claims, per-topic publish limits) are written against
 * the names clients see: a relay topic as its NAME, a chat room as
 * `chat:ROOM`, the scores feed as `scores`. A pattern is such a name where
 * `*` stands for any run of characters.
 */

export const RELAY_PREFIX = 'relay:'
export const APP_PREFIX = 'app:'
export const LOCAL_PREFIX = 'local:'

/** The internal topic of relay topic `name`. */
export function relayTopic(name: string): string {
  return RELAY_PREFIX + name
}

/** The internal topic of an app's own topic. */
export function appTopic(app: string, name: string): string {
  return `${APP_PREFIX}${app}:${name}`
}

const compiled = new Map<string, RegExp>()

/** Whether `name` matches `pattern` (`*`: any run of characters, everything else literal). */
export function matchesPattern(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name
  let regexp = compiled.get(pattern)
  if (regexp === undefined) {
    const source = pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')
    regexp = new RegExp(`^${source}$`, 's')
    if (compiled.size > 1000) compiled.clear()
    compiled.set(pattern, regexp)
  }
  return regexp.test(name)
}

/** Whether any of `patterns` matches `name`. */
export function matchesAny(patterns: readonly string[], name: string): boolean {
  for (const pattern of patterns) if (matchesPattern(pattern, name)) return true
  return false
}
