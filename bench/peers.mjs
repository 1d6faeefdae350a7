// The benchmark's optional peers, uWebSockets.js and Bun: servers to compare tether with in the
// same run, never dependencies of tether. They are installed on first use into .tmp/bench-peers
// (its own package.json, outside the project's lock file) with the machine's npm; where that
// fails (no registry, an unsupported platform), the bench says so and runs without them.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { root } from './lib.mjs'

export const peersDir = join(root, '.tmp', 'bench-peers')

/** Exact versions, so that a figure names what it measured: uWS v20.30.0 (an npm build of it), Bun 1.4.x. */
export const PEERS = {
  uws: { package: '@trufflesuite/uws-js-unofficial', version: '20.30.0-unofficial.0' },
  bun: { package: 'bun', version: '1.4.5' },
}

export const peerRequire = createRequire(join(peersDir, 'package.json'))

function installed(name) {
  try {
    if (name === 'bun') return existsSync(bunPath()) && spawnSync(bunPath(), ['--version']).status === 0
    peerRequire(PEERS[name].package)
    return true
  } catch {
    return false
  }
}

export function bunPath() {
  return join(peersDir, 'node_modules', 'bun', 'bin', 'bun.exe')
}

/**
 * Makes the named peers available; answers { name: true } or { name: 'why not' }.
 * One npm install for all the missing ones; a failure leaves the others usable.
 */
export function ensurePeers(names) {
  const result = {}
  const missing = names.filter((name) => !installed(name))
  if (missing.length > 0) {
    mkdirSync(peersDir, { recursive: true })
    // Its own package.json (not the project's): npm records the peers there, so installing one keeps the other.
    if (!existsSync(join(peersDir, 'package.json'))) writeFileSync(join(peersDir, 'package.json'), JSON.stringify({ name: 'tether-bench-peers', private: true }, null, 2) + '\n')
    process.stderr.write(`bench: installing ${missing.map((name) => `${PEERS[name].package}@${PEERS[name].version}`).join(', ')} into .tmp/bench-peers ...\n`)
    const specs = missing.map((name) => `${PEERS[name].package}@${PEERS[name].version}`)
    const out = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...specs], {
      cwd: peersDir,
      encoding: 'utf8',
      timeout: 300_000,
    })
    if (out.status !== 0) process.stderr.write(`bench: npm install failed: ${(out.stderr || out.error?.message || '').trim().split('\n').slice(-3).join(' ')}\n`)
  }
  for (const name of names) result[name] = installed(name) ? true : `${PEERS[name].package}@${PEERS[name].version} could not be installed or loaded`
  return result
}
