/** Every fuzz target, in the order runs and CI report them. */
import type { Target } from '../oracle.js'
import { closeTarget } from './close.js'
import { extensionsTarget } from './extensions.js'
import { framesTargets } from './frames.js'
import { clientHandshakeTarget, serverHandshakeTarget } from './handshake.js'

export const targets: readonly Target[] = [...framesTargets, closeTarget, serverHandshakeTarget, clientHandshakeTarget, extensionsTarget]

/** Targets whose name starts with one of `prefixes` (all when none); throws if a prefix matches nothing. */
export function selectTargets(prefixes: readonly string[]): Target[] {
  if (prefixes.length === 0) return [...targets]
  const chosen = targets.filter((t) => prefixes.some((p) => t.name === p || t.name.startsWith(p)))
  for (const p of prefixes) {
    if (!targets.some((t) => t.name === p || t.name.startsWith(p))) {
      throw new Error(`no fuzz target matches "${p}" (targets: ${targets.map((t) => t.name).join(', ')})`)
    }
  }
  return chosen
}

export function targetByName(name: string): Target {
  const target = targets.find((t) => t.name === name)
  if (target === undefined) throw new Error(`unknown fuzz target ${name}`)
  return target
}
