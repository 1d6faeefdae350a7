/**
 * The fuzzer's command line (`npm run fuzz -- ...`).
 *
 *   --seconds N      seconds per target (default 60)
 *   --target NAME    a target or a prefix (`frames` = the four frames targets); repeatable, or comma-separated
 *   --seed N         seed of the run (default 1); the same seed replays the same inputs
 *   --inputs N       stop each target after N mutated inputs instead of after --seconds
 *   --save           write newly interesting inputs to fuzz/corpus/<target>/
 *   --jobs N         targets run in parallel worker threads (default 1)
 *   --hang-seconds N a worker that makes no progress this long is hung (default 10)
 *   --replay FILE    run FILE(s) through the target(s) and print the outcome (debugging a crash)
 *   --write-seeds    (re)write the seed files of every target's corpus
 *   --list           list the targets
 *
 * Prints one line per target (inputs, inputs/s, signatures, slowest input,
 * crashes) and every crash with the file its input was written to; exits 1
 * if any target crashed.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { corpusDir, crashDir, formatStats, inputHash, type TargetStats } from './engine.js'
import { OracleViolation, SLOW_MS } from './oracle.js'
import { runInWorker } from './parallel.js'
import { selectTargets, targetByName, targets } from './targets/index.js'

interface Args {
  seconds: number
  targets: string[]
  seed: number
  inputs: number | undefined
  save: boolean
  jobs: number
  hangSeconds: number
  replay: string[]
  writeSeeds: boolean
  list: boolean
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seconds: 60, targets: [], seed: 1, inputs: undefined, save: false, jobs: 1, hangSeconds: 10, replay: [], writeSeeds: false, list: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    const number = (): number => {
      const n = Number(value())
      if (!Number.isFinite(n) || n < 0) throw new Error(`${arg} needs a non-negative number`)
      return n
    }
    if (arg === '--seconds') args.seconds = number()
    else if (arg === '--target') args.targets.push(...value().split(',').filter(Boolean))
    else if (arg === '--seed') args.seed = Math.floor(number())
    else if (arg === '--inputs') args.inputs = Math.floor(number())
    else if (arg === '--save') args.save = true
    else if (arg === '--jobs') args.jobs = Math.max(1, Math.floor(number()))
    else if (arg === '--hang-seconds') args.hangSeconds = number()
    else if (arg === '--replay') args.replay.push(value())
    else if (arg === '--write-seeds') args.writeSeeds = true
    else if (arg === '--list') args.list = true
    else throw new Error(`unknown option ${arg} (see fuzz/run.ts)`)
  }
  return args
}

function writeSeeds(): void {
  for (const target of targets) {
    const dir = corpusDir(target)
    mkdirSync(dir, { recursive: true })
    const seeds = target.seeds()
    for (const [name, bytes] of seeds) writeFileSync(join(dir, name), bytes)
    console.log(`${target.name}: ${seeds.length} seeds in ${dir}`)
  }
}

function replay(args: Args): number {
  let failures = 0
  for (const target of selectTargets(args.targets)) {
    for (const file of args.replay) {
      const input = new Uint8Array(readFileSync(file))
      console.log(`${target.name} ${file}\n  ${target.describe?.(input) ?? ''}`)
      const t0 = performance.now()
      try {
        const signature = target.execute(input.slice())
        console.log(`  ok in ${(performance.now() - t0).toFixed(1)} ms: ${signature}`)
      } catch (error) {
        failures++
        console.log(`  ${error instanceof OracleViolation ? 'ORACLE VIOLATION' : 'EXCEPTION'}: ${error instanceof Error ? error.stack : String(error)}`)
      }
    }
  }
  return failures > 0 ? 1 : 0
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2))
  if (args.list) {
    for (const target of targets) console.log(`${target.name}\t(corpus fuzz/corpus/${target.corpus})`)
    return 0
  }
  if (args.writeSeeds) {
    writeSeeds()
    return 0
  }
  if (args.replay.length > 0) return replay(args)

  const chosen = selectTargets(args.targets)
  console.log(`fuzzing ${chosen.map((t) => t.name).join(', ')}: seed ${args.seed}, ${args.inputs !== undefined ? `${args.inputs} inputs` : `${args.seconds} s`} per target, ${args.jobs} job(s)${args.save ? ', saving new inputs' : ''}`)
  const queue = [...chosen]
  const results: TargetStats[] = []
  const runOne = async (): Promise<void> => {
    for (let target = queue.shift(); target !== undefined; target = queue.shift()) {
      const stats = await runInWorker(target.name, {
        seconds: args.seconds,
        maxInputs: args.inputs,
        seed: args.seed,
        save: args.save,
        hangSeconds: args.hangSeconds,
      })
      results.push(stats)
      console.log(formatStats(stats))
      if (stats.slowestMs > SLOW_MS && stats.slowest !== undefined) {
        // Kept for a look (--replay), next to the crashes.
        const dir = crashDir(targetByName(stats.target))
        mkdirSync(dir, { recursive: true })
        const file = join(dir, `slowest-${inputHash(stats.slowest)}.bin`)
        writeFileSync(file, stats.slowest)
        console.log(`  slowest input (${stats.slowestMs.toFixed(1)} ms), written to ${file}: ${stats.slowestInput.slice(0, 300)}`)
      } else if (stats.slowestMs > 10) {
        console.log(`  slowest input (${stats.slowestMs.toFixed(1)} ms): ${stats.slowestInput.slice(0, 300)}`)
      }
      for (const file of stats.saved) console.log(`  saved ${file}`)
      // Crashes grouped by their first line, with the files written for them.
      const groups = new Map<string, { count: number; files: string[] }>()
      for (const crash of stats.crashes) {
        const key = `${crash.kind}: ${crash.message.split('\n')[0]}`
        const group = groups.get(key) ?? { count: 0, files: [] }
        group.count++
        if (crash.file) group.files.push(crash.file)
        groups.set(key, group)
      }
      for (const [key, group] of [...groups].slice(0, 30)) {
        console.log(`  CRASH x${group.count} ${key.slice(0, 400)}${group.files.length > 0 ? `\n    ${group.files.slice(0, 3).join('\n    ')}` : ''}`)
      }
      if (groups.size > 30) console.log(`  ... and ${groups.size - 30} more kinds of crash`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(args.jobs, chosen.length) }, runOne))
  const crashes = results.reduce((sum, s) => sum + s.crashes.length, 0)
  const inputs = results.reduce((sum, s) => sum + s.inputs, 0)
  console.log(`total: ${inputs} inputs, ${crashes} crashes`)
  return crashes > 0 ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exit(2)
  },
)
