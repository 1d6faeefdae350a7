/**
 * A fuzz target that never returns on one input, for the hang watchdog's
 * test (fuzz.test.ts): run in a worker, it must be terminated and the input
 * it was on named.
 */
import type { Target } from '../../fuzz/oracle.js'

export const HANG_INPUT = Uint8Array.of(0x68, 0x61, 0x6e, 0x67) // "hang"

export const target: Target = {
  name: 'test-hang',
  corpus: 'test-hang',
  maxLength: 16,
  text: false,
  dictionary: [],
  memoryBound: 1 << 20,
  seeds: () => [['ok', Uint8Array.of(1)], ['hang', HANG_INPUT]],
  execute(input) {
    if (Buffer.from(input).equals(HANG_INPUT)) for (;;);
    return 'ok'
  },
}
