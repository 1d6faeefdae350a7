/**
 * The zlib engines of zlib-engine.ts, synchronous (a persistent context
 * driven through the native handle) and asynchronous (the stream API): round
 * trips, context takeover and reset, corrupt input, the output limit against
 * a real decompression bomb, and the 8-bit window.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import zlib from 'node:zlib'
import { AsyncZlib, type EngineOptions, type EngineResult, SyncZlib, supportsSyncZlib } from '../../src/node/zlib-engine.js'
import { compressibleBytes, countInflated, decompressionBomb, GiB, KiB, memorySampler, MiB, TAIL } from '../helpers/deflate.js'
import { delay, withTimeout } from '../helpers/net.js'

type Engine = SyncZlib | AsyncZlib
const { Z_SYNC_FLUSH } = zlib.constants

const kinds = {
  SyncZlib: (kind: 'deflate' | 'inflate', options: EngineOptions): Engine => new SyncZlib(kind, options),
  AsyncZlib: (kind: 'deflate' | 'inflate', options: EngineOptions): Engine => new AsyncZlib(kind, options),
}

/** One call of either engine, as a promise; a missing answer fails the test instead of hanging it. */
function run(engine: Engine, input: Uint8Array, limit = Number.POSITIVE_INFINITY): Promise<EngineResult> {
  if (engine instanceof SyncZlib) return Promise.resolve(engine.process(input, limit))
  return withTimeout(new Promise<EngineResult>((resolve) => engine.process(input, limit, resolve)), 5000, 'the engine to answer')
}

function bytesOf(result: EngineResult): Buffer {
  assert.equal(result.ok, true, result.ok ? '' : `${result.reason}: ${result.message}`)
  return Buffer.concat((result as Extract<EngineResult, { ok: true }>).chunks)
}

/** Inflates with an independent zlib stream whose window really is `windowBits` (a 64-byte output buffer forces back-references through the window). */
function strictInflate(payloads: Buffer[], windowBits: number): Promise<Buffer | Error> {
  return new Promise((resolve) => {
    const inflater = zlib.createInflateRaw({ windowBits, chunkSize: 64 })
    const out: Buffer[] = []
    inflater.on('data', (chunk: Buffer) => out.push(chunk))
    inflater.on('error', (error) => resolve(error))
    for (const payload of payloads) inflater.write(payload)
    inflater.flush(Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)))
  })
}

let bomb: Buffer
before(async () => {
  bomb = await decompressionBomb(1024)
})

describe('the decompression bomb fixture', () => {
  it('is about 1 MiB and really expands to 1 GiB of zeros (counted while streaming)', async () => {
    assert.ok(bomb.length > 900 * KiB && bomb.length < 1100 * KiB, `bomb is ${bomb.length} bytes`)
    const { length, nonZero } = await countInflated(bomb)
    assert.equal(length, GiB)
    assert.equal(nonZero, false)
  })
})

it('this Node offers the synchronous handle (so the SyncZlib tests below exercise it)', () => {
  assert.equal(supportsSyncZlib, true)
})

for (const [name, make] of Object.entries(kinds)) {
  describe(name, () => {
    const open: Engine[] = []
    const engine = (kind: 'deflate' | 'inflate', options: EngineOptions = { windowBits: 15 }): Engine => {
      const created = make(kind, options)
      open.push(created)
      return created
    }
    after(() => {
      for (const created of open) created.close()
    })

    it('round trips 0 B to 1 MiB, random and compressible, output ending with the sync-flush tail', async () => {
      const deflater = engine('deflate')
      const inflater = engine('inflate')
      for (const input of [Buffer.alloc(0), Buffer.from('a'), randomBytes(125), randomBytes(64 * KiB), compressibleBytes(MiB)]) {
        const compressed = bytesOf(await run(deflater, input))
        assert.ok(compressed.length >= 4 && compressed.subarray(-4).equals(TAIL), `tail for ${input.length} B`)
        // The deflater keeps its context, so a persistent inflater follows it message by message.
        const result = await run(inflater, compressed)
        assert.ok(bytesOf(result).equals(input), `round trip of ${input.length} B`)
        if (input.length === MiB) {
          assert.ok(compressed.length < input.length / 20, 'compressible data shrinks')
          // 1 MiB of output does not fit in one 64 KiB scratch buffer: several chunks, all kept.
          assert.ok((result as Extract<EngineResult, { ok: true }>).chunks.length > 1)
          assert.equal((result as Extract<EngineResult, { ok: true }>).length, MiB)
        }
      }
    })

    it('keeps its context across messages: a repeated message compresses to a fraction, and only a persistent inflater reads it', async () => {
      const deflater = engine('deflate')
      const message = randomBytes(4 * KiB)
      const first = bytesOf(await run(deflater, message))
      const second = bytesOf(await run(deflater, message))
      assert.ok(first.length > 4 * KiB, `random data does not shrink (${first.length})`)
      assert.ok(second.length < first.length / 10, `second copy ${second.length} B vs first ${first.length} B`)
      const inflater = engine('inflate')
      assert.ok(bytesOf(await run(inflater, first)).equals(message))
      assert.ok(bytesOf(await run(inflater, second)).equals(message))
      // Without the history, the second message cannot be inflated (it refers back to the first).
      const fresh = await run(engine('inflate'), second)
      assert.ok(!fresh.ok || !Buffer.concat(fresh.chunks).equals(message))
    })

    it('reset() forgets the history: the repeated message compresses like the first, and stands alone', async () => {
      const deflater = engine('deflate')
      const message = randomBytes(4 * KiB)
      const first = bytesOf(await run(deflater, message))
      deflater.reset()
      const second = bytesOf(await run(deflater, message))
      assert.ok(second.length > first.length * 0.9, `after reset ${second.length} B vs ${first.length} B`)
      assert.ok(bytesOf(await run(engine('inflate'), second)).equals(message))
      // An inflater reset between messages reads each on its own.
      const inflater = engine('inflate')
      assert.ok(bytesOf(await run(inflater, first)).equals(message))
      inflater.reset()
      assert.ok(bytesOf(await run(inflater, second)).equals(message))
    })

    it("corrupt input answers {ok: false, reason: 'corrupt'}, breaks the engine, and neither throws nor emits an unhandled 'error'", async () => {
      const uncaught: unknown[] = []
      const onUncaught = (error: unknown): void => {
        uncaught.push(error)
      }
      process.on('uncaughtException', onUncaught)
      try {
        const inflater = engine('inflate')
        const good = zlib.deflateRawSync(Buffer.from('fine'), { finishFlush: Z_SYNC_FLUSH })
        assert.equal(bytesOf(await run(inflater, good)).toString(), 'fine')
        // 0xff: BTYPE 11 is reserved ("invalid block type").
        const result = await run(inflater, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01, 0x02]))
        assert.equal(result.ok, false)
        assert.equal((result as { reason: string }).reason, 'corrupt')
        assert.equal(inflater.broken, true)
        // Unusable from now on, still without throwing.
        const again = await run(inflater, good)
        assert.deepEqual([again.ok, (again as { reason: string }).reason], [false, 'corrupt'])
        assert.doesNotThrow(() => inflater.reset())
        await delay(20)
        assert.deepEqual(uncaught, [])
      } finally {
        process.removeListener('uncaughtException', onUncaught)
      }
    })

    it('honours the output limit exactly: limit = size passes, limit = size - 1 is too big', async () => {
      const input = compressibleBytes(200 * KiB)
      const compressed = zlib.deflateRawSync(input, { finishFlush: Z_SYNC_FLUSH })
      const exact = await run(engine('inflate'), compressed, input.length)
      assert.ok(bytesOf(exact).equals(input))
      const short = await run(engine('inflate'), compressed, input.length - 1)
      assert.deepEqual([short.ok, (short as { reason: string }).reason], [false, 'too-big'])
    })

    it("a 1 MiB bomb expanding to 1 GiB, limit 1 MiB: 'too-big', memory growth far below the expanded size, work stops early", async () => {
      const inflater = engine('inflate')
      const sampler = memorySampler()
      const started = Date.now()
      const result = await run(inflater, Buffer.concat([bomb, TAIL]), MiB)
      const elapsed = Date.now() - started
      const growth = sampler.stop()
      assert.deepEqual([result.ok, (result as { reason: string }).reason], [false, 'too-big'])
      assert.ok(growth.arrayBuffers < 64 * MiB, `arrayBuffers grew by ${growth.arrayBuffers / MiB} MiB`)
      assert.ok(growth.rss < 64 * MiB, `rss grew by ${growth.rss / MiB} MiB`)
      // Stopping early: the engine must not go on inflating the other 1023 MiB. Its input
      // consumption shows it (the sync engine stops within one scratch buffer).
      await delay(50)
      const consumed = (inflater as unknown as { stream: zlib.InflateRaw }).stream.bytesWritten
      assert.ok(consumed < bomb.length / 8, `${name} consumed ${consumed} of ${bomb.length} input bytes (${elapsed} ms)`)
    })

    it('windowBits 8 is accepted; the deflater then uses 9 bits but never refers back further than an 8-bit window allows', async () => {
      const deflater = engine('deflate', { windowBits: 8 })
      const inflater = engine('inflate', { windowBits: 8 })
      // Repeats 240 and 440 bytes back: within 9 bits (512), not all within 8 (256).
      const block = randomBytes(240)
      const messages = [Buffer.concat([block, randomBytes(200), block, block]), Buffer.concat([block, randomBytes(60), block])]
      const payloads: Buffer[] = []
      for (const message of messages) {
        const compressed = bytesOf(await run(deflater, message))
        payloads.push(compressed)
        assert.ok(bytesOf(await run(inflater, compressed)).equals(message))
      }
      const strict = await strictInflate(payloads, 8)
      assert.ok(Buffer.isBuffer(strict), `a real 8-bit window inflater failed: ${String(strict)}`)
      assert.ok(strict.equals(Buffer.concat(messages)))
      // The check discriminates: 15-bit output of the same data does not fit an 8-bit window.
      const wide = zlib.deflateRawSync(messages[0]!, { finishFlush: Z_SYNC_FLUSH })
      assert.ok((await strictInflate([wide], 8)) instanceof Error)
    })
  })
}
