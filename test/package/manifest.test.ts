/**
 * What `npm install tether-ws` gets (issue 15): the package's name, entry
 * points that exist in what is packed, no install-time scripts (the build runs
 * in `prepack`), no dependencies for library users (the command parses its
 * arguments with node:util), engines that hold, and no source maps pointing
 * at sources that are not shipped.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT } from '../helpers/net.js'

interface Manifest {
  name: string
  engines: { node: string }
  main: string
  types: string
  bin: Record<string, string>
  exports: Record<string, string | Record<string, string>>
  scripts: Record<string, string>
  dependencies?: Record<string, string>
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest

function packedFiles(): string[] {
  // --ignore-scripts: the suite built dist/ already; prepack would only build it again.
  const result = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  assert.equal(result.status, 0, result.stderr)
  return (JSON.parse(result.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((file) => file.path)
}

describe('the published package', () => {
  it("is named tether-ws, with the command still called tether", () => {
    assert.equal(manifest.name, 'tether-ws')
    assert.deepEqual(Object.keys(manifest.bin), ['tether'])
  })

  it('runs no script at install time, builds in prepack; the command adds no argument-parsing dependency', () => {
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(manifest.scripts[hook], undefined, hook)
    assert.match(manifest.scripts.prepack!, /build/)
    // The hub behind `tether serve` (tether-ws/hub) validates with zod, checks tokens with jose, logs with pino
    // and renders /metrics with prom-client (issue 16); nothing else.
    assert.deepEqual(Object.keys(manifest.dependencies ?? {}).sort(), ['jose', 'pino', 'prom-client', 'zod'])
  })

  it('every entry point, type declaration and the command are in the packed files; no source maps', () => {
    const files = new Set(packedFiles())
    const targets = [manifest.main, manifest.types, ...Object.values(manifest.bin)]
    const collect = (entry: unknown): void => {
      if (typeof entry === 'string') targets.push(entry)
      else if (typeof entry === 'object' && entry !== null) for (const value of Object.values(entry)) collect(value)
    }
    for (const entry of Object.values(manifest.exports)) if (typeof entry === 'object') collect(entry)
    for (const target of targets) assert.ok(files.has(target.replace(/^\.\//, '')), `${target} is packed`)
    assert.deepEqual([...files].filter((file) => file.endsWith('.map')), [])
    assert.ok(![...files].some((file) => file.startsWith('src/')), 'sources are not shipped (and no map points at them)')
    assert.ok(files.has('dist/web/chat.js') || [...files].some((file) => file.startsWith('dist/web/')), 'the demo pages')
  })

  it('every library subpath has types, an import entry and a require entry; the hub is an ES module', () => {
    for (const [subpath, entry] of Object.entries(manifest.exports)) {
      if (subpath === './package.json') continue
      assert.equal(typeof entry, 'object', subpath)
      // tether-ws/hub is the application behind `tether serve` (jose is an ES module): require() reaches it through require(esm).
      if (subpath === './hub') {
        assert.deepEqual(Object.keys(entry), ['types', 'default'], subpath)
      } else if (Object.keys(entry).includes('types')) {
        assert.deepEqual(Object.keys(entry), ['types', 'import', 'require'], subpath)
      } else {
        // An entry with a default export has typings per format (scripts/build.mjs): the ES ones re-export the class.
        assert.deepEqual(Object.keys(entry), ['import', 'require'], subpath)
        for (const format of Object.values(entry as unknown as Record<string, Record<string, string>>)) assert.deepEqual(Object.keys(format), ['types', 'default'], subpath)
      }
    }
  })

  it("the library's entry points load no dependency: what is installed for the command stays unloaded", () => {
    const script = [
      "const Module = require('node:module')",
      'const loaded = new Set()',
      'const load = Module._load',
      "Module._load = function (request, ...rest) { if (!request.startsWith('node:') && !request.startsWith('.') && !request.startsWith('/') && !Module.isBuiltin(request)) loaded.add(request); return load.call(this, request, ...rest) }",
      "for (const entry of ['tether-ws', 'tether-ws/ws', 'tether-ws/core', 'tether-ws/pubsub', 'tether-ws/testing']) require(entry)",
      'console.log(JSON.stringify([...loaded]))',
    ].join('\n')
    const result = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' })
    assert.equal(result.status, 0, result.stderr)
    const dependencies = Object.keys(manifest.dependencies ?? {})
    const loaded = (JSON.parse(result.stdout) as string[]).filter((request) => !request.startsWith('tether-ws'))
    assert.deepEqual(loaded.filter((request) => dependencies.some((name) => request === name || request.startsWith(`${name}/`))), [])
    assert.deepEqual(loaded, [], 'nothing from node_modules at all')
  })

  it('engines names a Node this build runs on: 20.19 or later', () => {
    assert.equal(manifest.engines.node, '>=20.19')
    const [major, minor] = process.versions.node.split('.').map(Number)
    assert.ok(major! > 20 || (major === 20 && minor! >= 19))
  })
})

describe('the container image (Dockerfile)', () => {
  it('keeps the broker clients when it prunes the dev dependencies, so --redis and --nats work in it (issue 16, outsider finding 11)', () => {
    // The image is not built here: its step that moves redis and nats to the dependencies runs on a copy of package.json.
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ')
    const steps = [...dockerfile.matchAll(/^RUN (.*)$/gm)].map((match) => match[1]!)
    const promote = steps.find((step) => step.includes('npm pkg set'))
    assert.ok(promote, 'a step that makes the broker clients dependencies')
    assert.ok(steps.indexOf(promote) < steps.findIndex((step) => step.includes('npm prune --omit=dev')), 'before the prune')
    const dir = mkdtempSync(join(tmpdir(), 'tether-image-'))
    writeFileSync(join(dir, 'package.json'), readFileSync(join(ROOT, 'package.json')))
    const result = spawnSync('bash', ['-c', promote], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
    assert.equal(result.status, 0, result.stderr)
    const image = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest & { devDependencies: Record<string, string> }
    for (const broker of ['redis', 'nats']) {
      // npm writes the peer's range (redis "^5.0.0 || ^6.0.0"), which the installed dev version satisfies: prune keeps it.
      assert.ok(image.dependencies?.[broker], `${broker} is a dependency of the image`)
      assert.equal(image.devDependencies[broker], undefined)
    }
  })
})
