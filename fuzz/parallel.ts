/**
 * Runs a target in a worker thread with a hang watchdog.
 *
 * Theory of operation: a parser stuck in an endless loop never returns, so
 * the time bound per input cannot be checked by the loop that called it.
 * The worker bumps a heartbeat in shared memory before each input and
 * copies the input there; if the heartbeat stops for `hangSeconds`, the
 * parent terminates the worker and records the input it was on as a hang.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { type RunOptions, type TargetStats, crashDir, inputHash } from './engine.js'
import type { Target } from './oracle.js'
import { targetByName } from './targets/index.js'

export interface WorkerRunOptions extends Omit<RunOptions, 'beforeInput'> {
  /** A worker whose heartbeat stops this long is hung (default 10 s). */
  hangSeconds?: number
}

/** Runs the registry's target `targetName`, or `target` loaded from `targetModule` (a URL; tests). */
export function runInWorker(targetName: string, options: WorkerRunOptions, custom?: { target: Target; targetModule: string }): Promise<TargetStats> {
  const target = custom?.target ?? targetByName(targetName)
  const { hangSeconds = 10, ...runOptions } = options
  const shared = new SharedArrayBuffer(8 + Math.max(target.maxLength, 1))
  const header = new Int32Array(shared, 0, 2)
  const data = new Uint8Array(shared, 8)
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { target: targetName, targetModule: custom?.targetModule, options: runOptions, shared },
  })
  return new Promise((resolve, reject) => {
    let last = -1
    let lastChange = Date.now()
    let settled = false
    const finish = (action: () => void): void => {
      if (settled) return
      settled = true
      clearInterval(timer)
      action()
    }
    const timer = setInterval(() => {
      const beat = Atomics.load(header, 0)
      if (beat !== last) {
        last = beat
        lastChange = Date.now()
        return
      }
      if (Date.now() - lastChange < hangSeconds * 1000) return
      const input = data.slice(0, Atomics.load(header, 1))
      let file: string | undefined
      if (options.writeCrashes !== false) {
        const dir = crashDir(target, options.root)
        mkdirSync(dir, { recursive: true })
        file = join(dir, `${inputHash(input)}.bin`)
        writeFileSync(file, input)
        writeFileSync(join(dir, `${inputHash(input)}.txt`), `target: ${target.name}\nkind: hang\n${target.describe?.(input) ?? ''}\n`)
      }
      void worker.terminate()
      finish(() =>
        resolve({
          target: target.name,
          seed: options.seed,
          replayed: 0,
          inputs: beat,
          seconds: 0,
          inputsPerSecond: 0,
          signatures: 0,
          discovered: 0,
          saved: [],
          slowestMs: hangSeconds * 1000,
          slowestInput: target.describe?.(input) ?? '',
          slowInputs: 1,
          memoryGrowth: 0,
          crashes: [{ kind: 'hang', message: `no progress for ${hangSeconds} s`, file, input }],
        }),
      )
    }, 250)
    worker.once('message', (stats: TargetStats) => finish(() => resolve(stats)))
    worker.once('error', (error) => finish(() => reject(error)))
    worker.once('exit', (code) => finish(() => reject(new Error(`fuzz worker for ${targetName} exited with code ${code}`))))
  })
}
