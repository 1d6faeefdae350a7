/**
 * Worker-thread entry: runs one target with `runTarget` and posts its
 * statistics. Before each input it copies the input into shared memory and
 * bumps a heartbeat, so the parent can name the input if the worker hangs
 * (parallel.ts).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { type RunOptions, runTarget } from './engine.js'
import type { Target } from './oracle.js'
import { targetByName } from './targets/index.js'

interface WorkerInput {
  target: string
  /** A module exporting `target` (tests), instead of a target of the registry. */
  targetModule: string | undefined
  options: Omit<RunOptions, 'beforeInput'>
  shared: SharedArrayBuffer
}

const { target, targetModule, options, shared } = workerData as WorkerInput
const header = new Int32Array(shared, 0, 2)
const data = new Uint8Array(shared, 8)
const chosen: Target = targetModule === undefined ? targetByName(target) : ((await import(targetModule)) as { target: Target }).target

const stats = await runTarget(chosen, {
  ...options,
  beforeInput(input) {
    const length = Math.min(input.length, data.length)
    data.set(input.subarray(0, length), 0)
    Atomics.store(header, 1, length)
    Atomics.add(header, 0, 1)
  },
})
parentPort!.postMessage(stats)
