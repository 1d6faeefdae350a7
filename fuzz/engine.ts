/**
 * The fuzz loop: replay the corpus, then mutate for a bounded time.
 *
 * Theory of operation: a target's corpus (fuzz/corpus/<target>/, plus the
 * seeds the target builds in code) is replayed first; every input must pass
 * the target's oracles. Then, until the time or input budget is spent, an
 * input is drawn from the in-memory corpus (or, for a share of iterations,
 * generated from the target's grammar), mutated (mutate.ts) and executed.
 * There is no coverage feedback: an input is "interesting" when its outcome
 * signature (which events, which error, which frame shapes: each target
 * defines it) was never seen before, and interesting inputs join the
 * in-memory corpus; with `save` they are also written to the corpus
 * directory, so the repository keeps what a long run discovered.
 *
 * Rule 1: a run is a pure function of (seed, corpus): the same seed replays
 * the same inputs in the same order. Only the number of inputs reached in a
 * time budget varies.
 * Rule 2: a crash (an oracle violation, any exception out of the parser, an
 * input slower than HANG_MS twice in a row, memory growth beyond the
 * target's bound) is recorded with its input under fuzz/crashes/<target>/
 * and the run goes on; the caller decides the exit status from `crashes`.
 * Rule 3: memory is checked across batches, after a forced GC: growth of
 * `arrayBuffers` beyond the corpus kept in memory must stay under the
 * target's `memoryBound`, which is tied to its configured limits.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { mutate } from './mutate.js'
import { HANG_MS, OracleViolation, SLOW_MS, type Target, takeMeasured } from './oracle.js'
import { Rng } from './rng.js'

/** The repository root (this file is build/fuzz/engine.js once compiled). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export function corpusDir(target: Target, root = ROOT): string {
  return join(root, 'fuzz', 'corpus', target.corpus)
}

export function crashDir(target: Target, root = ROOT): string {
  return join(root, 'fuzz', 'crashes', target.name)
}

export interface Crash {
  kind: 'oracle' | 'exception' | 'hang' | 'memory'
  message: string
  /** Where the input was written, if it was. */
  file?: string
  input?: Uint8Array
}

export interface TargetStats {
  target: string
  seed: number
  /** Corpus entries replayed before mutating (files plus built-in seeds). */
  replayed: number
  /** Inputs executed, replay included. */
  inputs: number
  seconds: number
  inputsPerSecond: number
  /** Distinct outcome signatures seen. */
  signatures: number
  /** Inputs added to the in-memory corpus during the run. */
  discovered: number
  /** Files written to the corpus directory (`save`). */
  saved: string[]
  slowestMs: number
  /** The slowest input, described, and its bytes. */
  slowestInput: string
  slowest?: Uint8Array
  /** Inputs slower than SLOW_MS. */
  slowInputs: number
  /** Largest arrayBuffers growth measured after a GC, beyond the corpus held. */
  memoryGrowth: number
  crashes: Crash[]
}

export interface RunOptions {
  seconds: number
  /** Stop after this many mutated inputs (deterministic runs and tests). */
  maxInputs?: number
  seed: number
  /** Write newly interesting inputs to the corpus directory. */
  save?: boolean
  /** At most this many files saved per target and run. */
  maxSaved?: number
  /** Only replay the corpus. */
  replayOnly?: boolean
  /** Write crashing inputs under fuzz/crashes/ (default true). */
  writeCrashes?: boolean
  root?: string
  /** Called with each input before it runs (the worker hands it to the hang watchdog). */
  beforeInput?: (input: Uint8Array) => void
}

/** The hash a corpus file is named by. */
export function inputHash(bytes: Uint8Array): string {
  return createHash('sha1').update(bytes).digest('hex').slice(0, 16)
}

/** Corpus files of a target, sorted by name (Rule 1). */
export function loadCorpus(target: Target, root = ROOT): Array<{ name: string; bytes: Uint8Array }> {
  const dir = corpusDir(target, root)
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((name) => !name.startsWith('.'))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }))
}

let gcFunction: (() => void) | undefined

/** A forced full GC, without needing node --expose-gc. */
export function forceGc(): void {
  if (gcFunction === undefined) {
    setFlagsFromString('--expose-gc')
    gcFunction = runInNewContext('gc') as () => void
  }
  gcFunction()
}

/**
 * Lets the event loop turn. A zlib stream that fails emits its 'error' on
 * the next tick and stays reachable until then (the tether codec's and the
 * model's alike): a loop that never yields would hold every failed stream
 * of the run, which is the harness's memory, not the parser's.
 */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * Collects garbage until `arrayBuffers` is settled: V8 frees the memory
 * of dead ArrayBuffers on a task of its own after the GC, so one GC is
 * followed by a turn of the event loop, twice.
 */
async function settleMemory(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await turn()
    forceGc()
  }
  await turn()
}

function arrayBuffers(): number {
  return process.memoryUsage().arrayBuffers
}

const MEMORY_CHECK_MS = 500
const MAX_CORPUS = 8192
const MAX_CRASH_FILES = 10
const MAX_SAVED_LENGTH = 4096

/** Replays the corpus of `target`, then fuzzes it (see the module comment). */
export async function runTarget(target: Target, options: RunOptions): Promise<TargetStats> {
  const root = options.root ?? ROOT
  const rng = new Rng(options.seed)
  const start = performance.now()
  const deadline = start + options.seconds * 1000
  const signatures = new Map<string, number>()
  const corpus: Uint8Array[] = []
  const known = new Set<string>()
  const saved: string[] = []
  const crashes: Crash[] = []
  const crashKeys = new Set<string>()
  const stats = { inputs: 0, slowestMs: 0, slowestInput: '', slowest: undefined as Uint8Array | undefined, slowInputs: 0, memoryGrowth: 0, discovered: 0 }
  let corpusBytes = 0

  const addToCorpus = (bytes: Uint8Array): void => {
    if (corpus.length >= MAX_CORPUS) {
      // Keep the seeds (the first entries); replace a random later one.
      const victim = Math.min(corpus.length - 1, 64 + rng.int(corpus.length - 64))
      corpusBytes -= corpus[victim]!.length
      corpus[victim] = bytes
    } else {
      corpus.push(bytes)
    }
    corpusBytes += bytes.length
  }

  const recordCrash = (kind: Crash['kind'], message: string, input: Uint8Array | undefined): void => {
    // One file per distinct problem: digits and hex vary between inputs, the problem does not.
    const key = `${kind}:${message.split('\n')[0]!.replace(/[0-9a-f]{6,}/g, '#').replace(/\d+/g, 'N')}`
    const first = !crashKeys.has(key)
    // Only the first input of each problem is kept: a run with a frequent crash must not hold them all.
    const crash: Crash = { kind, message: first ? message : message.split('\n')[0]!, input: first ? input : undefined }
    if (input !== undefined && options.writeCrashes !== false && first && crashKeys.size < MAX_CRASH_FILES) {
      const dir = crashDir(target, root)
      mkdirSync(dir, { recursive: true })
      const hash = inputHash(input)
      crash.file = join(dir, `${hash}.bin`)
      writeFileSync(crash.file, input)
      const description = target.describe?.(input) ?? ''
      writeFileSync(join(dir, `${hash}.txt`), `target: ${target.name}\nkind: ${kind}\n${description}\n\n${message}\n`)
    }
    crashKeys.add(key)
    crashes.push(crash)
  }

  /** Runs one input with its oracles, the time bound and crash recording; returns the signature or undefined. */
  const execute = (input: Uint8Array): string | undefined => {
    options.beforeInput?.(input)
    stats.inputs++
    takeMeasured()
    const t0 = performance.now()
    let signature: string | undefined
    try {
      // The parser may modify what it is fed (unmasking in place): it gets a copy, the corpus keeps the original.
      signature = target.execute(input.slice())
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}` : String(error)
      recordCrash(error instanceof OracleViolation ? 'oracle' : 'exception', message, input)
    }
    // The parser's own time when the target measured it, else the whole execution's.
    const ms = takeMeasured() ?? performance.now() - t0
    if (ms > stats.slowestMs) {
      stats.slowestMs = ms
      stats.slowestInput = target.describe?.(input) ?? `${input.length} bytes`
      stats.slowest = input
    }
    if (ms > SLOW_MS) stats.slowInputs++
    if (ms > HANG_MS) {
      // Wall-clock time: a loaded machine can stall a thread. A hang is an input slow twice in a row.
      takeMeasured()
      const t1 = performance.now()
      try {
        target.execute(input.slice())
      } catch {
        // Already recorded above if it throws.
      }
      const again = takeMeasured() ?? performance.now() - t1
      if (again > HANG_MS) recordCrash('hang', `input took ${ms.toFixed(0)} ms, then ${again.toFixed(0)} ms (limit ${HANG_MS} ms)`, input)
    }
    return signature
  }

  const consider = (input: Uint8Array, signature: string | undefined, fromCorpus: boolean): void => {
    if (signature === undefined) return
    const seen = signatures.get(signature)
    signatures.set(signature, (seen ?? 0) + 1)
    if (seen !== undefined && !fromCorpus) return
    const hash = inputHash(input)
    if (known.has(hash)) return
    known.add(hash)
    addToCorpus(input)
    if (fromCorpus) return
    stats.discovered++
    if (options.save && saved.length < (options.maxSaved ?? 50) && input.length <= MAX_SAVED_LENGTH) {
      const dir = corpusDir(target, root)
      mkdirSync(dir, { recursive: true })
      const file = join(dir, `${hash}.bin`)
      if (!existsSync(file)) {
        writeFileSync(file, input)
        saved.push(file)
      }
    }
  }

  // Replay: the seeds built in code, then the files (those equal to a seed are skipped).
  const replay: Uint8Array[] = []
  for (const [, bytes] of target.seeds()) replay.push(bytes)
  for (const { bytes } of loadCorpus(target, root)) replay.push(bytes)
  let replayed = 0
  for (const input of replay) {
    const hash = inputHash(input)
    if (known.has(hash)) continue
    replayed++
    if ((replayed & 63) === 0) await turn()
    consider(input, execute(input), true)
    known.add(hash)
  }

  await settleMemory()
  const baseline = arrayBuffers() - corpusBytes
  let nextMemoryCheck = performance.now() + MEMORY_CHECK_MS
  const checkMemory = async (): Promise<void> => {
    await settleMemory()
    const growth = arrayBuffers() - corpusBytes - baseline
    stats.memoryGrowth = Math.max(stats.memoryGrowth, growth)
    if (growth > target.memoryBound) {
      recordCrash('memory', `arrayBuffers grew by ${growth} bytes across a batch (bound ${target.memoryBound})`, undefined)
    }
  }

  let mutated = 0
  if (!options.replayOnly && corpus.length === 0 && target.generate === undefined) {
    throw new Error(`${target.name}: no corpus and no generator`)
  }
  while (!options.replayOnly) {
    if (options.maxInputs !== undefined && mutated >= options.maxInputs) break
    // The clock is read every 16 inputs: cheap, and still within a few ms of the budget.
    if ((mutated & 15) === 0) {
      const now = performance.now()
      if (options.maxInputs === undefined && now >= deadline) break
      if (now >= nextMemoryCheck) {
        await checkMemory()
        nextMemoryCheck = performance.now() + MEMORY_CHECK_MS
      } else if ((mutated & 63) === 0) {
        await turn()
      }
    }
    mutated++
    let base: Uint8Array
    if (target.generate !== undefined && (corpus.length === 0 || rng.chance(0.1))) {
      base = target.generate(rng)
      if (base.length > target.maxLength) base = base.slice(0, target.maxLength)
      if (rng.chance(0.5)) {
        consider(base, execute(base), false)
        continue
      }
    } else {
      // A third of the time one of the most recent discoveries, else anything.
      base = rng.chance(0.3) ? corpus[corpus.length - 1 - rng.int(Math.min(corpus.length, 64))]! : rng.pick(corpus)
    }
    const input = mutate(base, { rng, corpus, dictionary: target.dictionary, maxLength: target.maxLength, text: target.text })
    consider(input, execute(input), false)
  }
  if (!options.replayOnly) await checkMemory()

  const seconds = (performance.now() - start) / 1000
  return {
    target: target.name,
    seed: options.seed,
    replayed,
    inputs: stats.inputs,
    seconds,
    inputsPerSecond: Math.round(stats.inputs / Math.max(seconds, 1e-3)),
    signatures: signatures.size,
    discovered: stats.discovered,
    saved,
    slowestMs: stats.slowestMs,
    slowestInput: stats.slowestInput,
    slowest: stats.slowest,
    slowInputs: stats.slowInputs,
    memoryGrowth: stats.memoryGrowth,
    crashes,
  }
}

/** One line per target, as CI prints it. */
export function formatStats(stats: TargetStats): string {
  return (
    `${stats.target}: ${stats.inputs} inputs (${stats.replayed} replayed), ${stats.inputsPerSecond}/s, ` +
    `${stats.signatures} signatures, ${stats.discovered} new, slowest ${stats.slowestMs.toFixed(1)} ms, ` +
    `memory +${Math.max(0, Math.round(stats.memoryGrowth / 1024))} KiB, ${stats.crashes.length} crashes`
  )
}
