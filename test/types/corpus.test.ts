/**
 * TypeScript users migrating from ws (issue 15): a corpus of programs written
 * against @types/ws (test/types/ws-programs: a default import, named imports,
 * CommonJS `import x = require()`) must compile under `--strict` with zero
 * errors against tether-ws, with only the module name changed. The same
 * programs compile against ws and @types/ws too (with 'ws' written back), which
 * shows they are real ws programs and not written to suit tether. tether's own
 * additions have their corpus (test/types/tether-programs). And every name the
 * package exports is reachable through the `export =` typing CommonJS
 * programs get (the class's namespace).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT } from '../helpers/net.js'

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const CORPUS = join(ROOT, 'test', 'types', 'ws-programs')

function compile(project: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [TSC, '-p', project], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  return { status: result.status, output: `${result.stdout}${result.stderr}` }
}

describe('ws-style TypeScript programs compile against tether-ws under --strict', () => {
  it('the corpus has programs of every import style', () => {
    const files = readdirSync(CORPUS)
    assert.ok(files.some((file) => file.endsWith('.cts')), 'a CommonJS program')
    for (const file of files.filter((name) => /\.c?ts$/.test(name))) {
      assert.match(readFileSync(join(CORPUS, file), 'utf8'), /'tether-ws'/, `${file} imports tether-ws`)
    }
  })

  it('the corpus compiles against tether-ws with zero errors', () => {
    const { status, output } = compile(join(CORPUS, 'tsconfig.json'))
    assert.equal(output.trim(), '')
    assert.equal(status, 0)
  })

  it("the same corpus, with 'ws' as the module name, compiles against ws and @types/ws (it is real ws code)", () => {
    const dir = join(ROOT, 'build', 'types-ws-programs')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    for (const file of readdirSync(CORPUS)) {
      writeFileSync(join(dir, file), readFileSync(join(CORPUS, file), 'utf8').replaceAll("'tether-ws'", "'ws'"))
    }
    const { status, output } = compile(join(dir, 'tsconfig.json'))
    assert.equal(output.trim(), '')
    assert.equal(status, 0)
  })

  it("tether's additions (ws.user from authenticate, topics, shutdown, Sender) compile under --strict", () => {
    const { status, output } = compile(join(ROOT, 'test', 'types', 'tether-programs', 'tsconfig.json'))
    assert.equal(output.trim(), '')
    assert.equal(status, 0)
  })

  it('a mistake is caught: the corpus check is not vacuous', () => {
    const dir = join(ROOT, 'build', 'types-mistake')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'tsconfig.json'), readFileSync(join(CORPUS, 'tsconfig.json'), 'utf8'))
    writeFileSync(
      join(dir, 'wrong.ts'),
      "import WebSocket from 'tether-ws'\nconst ws = new WebSocket('ws://x')\nws.send('x', { binary: 'yes' })\nconst n: number = ws.url\n",
    )
    const { status, output } = compile(join(dir, 'tsconfig.json'))
    assert.notEqual(status, 0)
    assert.match(output, /wrong\.ts\(3,/)
    assert.match(output, /wrong\.ts\(4,/)
  })

  it("every name the package exports is on the class's namespace, which require() programs see", () => {
    // The names src/index.ts exports, as the built declarations list them: types, and values.
    const declarations = ['index.d.ts', 'ws/index.d.ts'].map((file) => readFileSync(join(ROOT, 'dist', 'cjs', file), 'utf8')).join('\n')
    const types = new Set<string>()
    const values = new Set<string>()
    for (const match of declarations.matchAll(/export (type )?\{([^}]*)\}/g)) {
      for (const part of match[2]!.split(',')) {
        const name = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/).at(-1)!.trim()
        if (name && name !== 'default') (match[1] ? types : values).add(name)
      }
    }
    assert.ok(types.size > 20 && values.size > 10, `found ${types.size} types and ${values.size} values`)
    // Values the module carries at run time are all declared too.
    for (const name of Object.keys(createRequire(join(ROOT, 'package.json'))('tether-ws') as object)) values.add(name)
    const dir = join(ROOT, 'build', 'types-namespace')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'tsconfig.json'), readFileSync(join(CORPUS, 'tsconfig.json'), 'utf8'))
    const lines = ["import WebSocket = require('tether-ws')"]
    // Generic types have defaults for every parameter, so the bare name is a complete type.
    for (const name of types) lines.push(`export type T_${name} = WebSocket.${name}`)
    for (const name of values) lines.push(`export const v_${name} = WebSocket.${name}`)
    writeFileSync(join(dir, 'names.cts'), lines.join('\n') + '\n')
    const { status, output } = compile(join(dir, 'tsconfig.json'))
    assert.equal(output.trim(), '')
    assert.equal(status, 0)
  })
})
