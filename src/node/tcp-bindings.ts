/**
 * The one risky surface of the port-mode server (tcp.ts): asking Node for its
 * internal bindings, `process.binding('tcp_wrap')` and friends, which `net`
 * itself is built on and which Node documents as deprecated (DEP0111).
 *
 * Rule 1: nothing is asked at load time; the first server that owns its port asks, once.
 * Rule 2: nothing is asked where the runtime would warn, so the fallback is
 * silent: under `--pending-deprecation` (flag, NODE_OPTIONS or
 * NODE_PENDING_DEPRECATION=1) Node reports DEP0111, which
 * `--throw-deprecation` turns into a crash. Should any other runtime warn
 * while asked, the warning is held back and the bindings are not used.
 * Rule 3: `TETHER_TCP_HANDLES=0` forces the fallback (CI runs the whole suite so).
 * Where the bindings are not used, servers run on Node's `http` and `net`.
 */

/** Why the bindings are not asked for, or undefined if they may be. */
export function bindingsRefusal(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): string | undefined {
  if (env.TETHER_TCP_HANDLES === '0') return 'TETHER_TCP_HANDLES=0'
  const options = (env.NODE_OPTIONS ?? '').split(/\s+/)
  if (execArgv.includes('--pending-deprecation') || options.includes('--pending-deprecation') || env.NODE_PENDING_DEPRECATION === '1') {
    return '--pending-deprecation (DEP0111)'
  }
  return undefined
}

/** Node's internal bindings by name, or undefined where they are refused, missing, or made the runtime warn (Rule 2). */
export function askBindings(names: readonly string[]): Record<string, Record<string, unknown>> | undefined {
  if (bindingsRefusal() !== undefined) return undefined
  const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
  if (typeof binding !== 'function') return undefined
  const emitWarning = process.emitWarning
  let warned = false
  // Held back, not shown: tether asked, tether falls back.
  process.emitWarning = (() => {
    warned = true
  }) as typeof process.emitWarning
  try {
    const found: Record<string, Record<string, unknown>> = {}
    for (const name of names) found[name] = binding.call(process, name)
    return warned ? undefined : found
  } catch {
    return undefined
  } finally {
    process.emitWarning = emitWarning
  }
}
