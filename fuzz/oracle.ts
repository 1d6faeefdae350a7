/**
 * What every fuzz target shares: the Target shape, the exception an oracle
 * throws, and the limits an input is held to.
 *
 * An oracle is a function that looks at what a parser did with one input
 * and throws `OracleViolation` when that is wrong. Targets run their
 * oracles inside `execute`; the engine treats a violation, any other
 * exception (the parser threw: it must not) and an input slower than
 * `HANG_MS` as a crash.
 */
import type { Rng } from './rng.js'

/** An input slower than this is a hang (a failure); slower than `SLOW_MS` is reported. */
export const HANG_MS = 1000
export const SLOW_MS = 100

let measured = 0
let measuring = false

/**
 * Runs `fn` (the code under test) and adds its time to the current input's.
 * A target wraps the parser's work in it, so that the time bound judges the
 * parser and not the reference model or the oracles around it.
 */
export function measure<T>(fn: () => T): T {
  const t0 = performance.now()
  try {
    return fn()
  } finally {
    measured += performance.now() - t0
    measuring = true
  }
}

/** The engine's side of `measure`: the time measured since the last call, or undefined if nothing was. */
export function takeMeasured(): number | undefined {
  const result = measuring ? measured : undefined
  measured = 0
  measuring = false
  return result
}

export class OracleViolation extends Error {
  readonly oracle: string
  constructor(oracle: string, message: string) {
    super(`[${oracle}] ${message}`)
    this.oracle = oracle
  }
  override get name(): string {
    return 'OracleViolation'
  }
}

/** Throws an OracleViolation named `oracle` unless `condition` holds. */
export function check(condition: unknown, oracle: string, message: string | (() => string)): asserts condition {
  if (!condition) throw new OracleViolation(oracle, typeof message === 'string' ? message : message())
}

export interface Target {
  /** e.g. `frames-server`; `--target frames` selects every target whose name starts with it. */
  name: string
  /** The directory under fuzz/corpus/ holding its corpus (several targets may share one). */
  corpus: string
  /** Inputs are cut to this many bytes. */
  maxLength: number
  /** Text inputs (header values): mutations favour printable ASCII. */
  text: boolean
  /** Tokens for the `dictionary` mutation. */
  dictionary: readonly Uint8Array[]
  /**
   * How much `process.memoryUsage().arrayBuffers` may grow across a batch
   * of inputs (after a GC) beyond the corpus it keeps: tied to the limits
   * the target configures (maxPayload), not to the number of inputs.
   */
  memoryBound: number
  /** The seed inputs, by file name (seeds.ts writes them to the corpus directory). */
  seeds(): Array<[name: string, bytes: Uint8Array]>
  /** A fresh structured input, used for a share of the iterations. */
  generate?(rng: Rng): Uint8Array
  /** Runs one input through the parser and its oracles; returns the outcome's signature. */
  execute(input: Uint8Array): string
  /** A one-line description of an input, for crash reports. */
  describe?(input: Uint8Array): string
}
