/**
 * The fuzz harness in CI (fuzz/): every target replays its whole corpus
 * (fuzz/corpus/<target>/) and then mutates for FUZZ_SECONDS seconds
 * (default 3; FUZZ_SEED picks the seed, default 1), in a worker with the
 * hang watchdog. The per-target counts are printed ("frames-server: 123456
 * inputs ..., 0 crashes") and any oracle violation, exception, hang or
 * memory growth fails the test, naming the file its input was written to
 * under fuzz/crashes/ (replay it with `npm run fuzz -- --target NAME
 * --replay FILE`).
 *
 * Before that, each oracle is shown to be able to fail: it is handed a
 * deliberately wrong outcome (an event after an error, a close code that
 * disagrees with the table, a message over maxPayload, an oversized
 * buffer, a wrong status, a parse that does not round-trip...). An oracle
 * that cannot fail would make the run above prove nothing.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { ConnectionEvent } from '../../src/core/connection.js'
import { HandshakeError, ProtocolError } from '../../src/core/errors.js'
import { parseClose } from '../../src/core/close.js'
import { acceptDeflateResponse, negotiateDeflate } from '../../src/core/deflate/negotiate.js'
import { type AcceptedRequest, acceptResponseLines } from '../../src/core/handshake/http1.js'
import { formatStats, runTarget } from '../../fuzz/engine.js'
import { applyMutation, mutate, mutationNames } from '../../fuzz/mutate.js'
import { OracleViolation, type Target } from '../../fuzz/oracle.js'
import { runInWorker } from '../../fuzz/parallel.js'
import { Rng } from '../../fuzz/rng.js'
import { checkCloseConsistency, checkParseClose } from '../../fuzz/targets/close.js'
import { checkClientAcceptance, checkNegotiation, checkParse, checkRoundTrip } from '../../fuzz/targets/extensions.js'
import { referenceReceive } from '../../fuzz/targets/frames-model.js'
import {
  type FramesOutcome,
  checkAgainstModel,
  checkBuffers,
  checkDeliveries,
  checkErrorMapping,
  checkEventOrder,
  checkInflateLimit,
  checkInflateRequests,
  checkOutput,
  chunk,
  decodeOptions,
  runFrames,
} from '../../fuzz/targets/frames.js'
import { CLIENT_KEY, checkClientModel, checkServerError, checkServerModel, checkServerToClient, clientVerdicts, decodeResponse, serverVerdicts } from '../../fuzz/targets/handshake.js'
import { targets } from '../../fuzz/targets/index.js'
import { buildFrame, concatBytes } from '../../fuzz/wire.js'
import { HANG_INPUT, target as hangTarget } from './hang-target.js'

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 3)
const SEED = Number(process.env.FUZZ_SEED ?? 1)

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const MASK = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d)

/** Asserts that `fn` throws the OracleViolation of `oracle`. */
function violates(oracle: string, fn: () => void): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof OracleViolation, `expected an OracleViolation, got ${String(error)}`)
    assert.equal(error.oracle, oracle, error.message)
    return true
  })
}

/** Runs `frames` (server role, unless `side`) through the frames harness; returns the outcome and the model. */
function framesRun(frames: Uint8Array[], options: { side?: 'server' | 'client'; flags?: number } = {}) {
  const side = options.side ?? 'server'
  const input = concatBytes([Uint8Array.of(0, options.flags ?? 0), ...frames])
  const decoded = decodeOptions(input, side, false)
  const model = referenceReceive(decoded.stream.slice(), { side, maxPayload: decoded.options.maxPayload, skipUtf8: decoded.options.skipUtf8 })
  const outcome = runFrames(chunk(decoded.stream, 0), decoded.options)
  return { outcome, model }
}

const masked = (opcode: number, payload: Uint8Array, fin = true): Uint8Array => buildFrame({ opcode, payload, mask: MASK, fin })

describe('fuzz oracles: each can fail (frames)', () => {
  // A text message, a ping and a close: every oracle passes on the real run.
  const { outcome: good, model } = framesRun([masked(0x1, utf8('Hello')), masked(0x9, utf8('p')), masked(0x8, Uint8Array.of(0x03, 0xe8))])
  // An unmasked frame to a server: the connection fails with 1002.
  const { outcome: failed, model: failedModel } = framesRun([buildFrame({ opcode: 0x1, payload: utf8('x') })])
  const error = failed.events.find((e) => e.type === 'error')!

  it('the real runs pass every oracle', () => {
    for (const [o, m] of [[good, model], [failed, failedModel]] as const) {
      checkEventOrder(o)
      checkErrorMapping(o)
      checkDeliveries(o)
      checkInflateRequests(o)
      checkOutput(o)
      checkBuffers(o)
      checkAgainstModel(o, m)
    }
    assert.deepEqual(good.events.map((e) => e.type), ['message', 'ping', 'close'])
    assert.equal(error.type, 'error')
  })

  it('event-order: nothing may follow an error or a close', () => {
    violates('event-order', () => checkEventOrder({ ...failed, events: [...failed.events, { type: 'ping', data: new Uint8Array(0) }] }))
    violates('event-order', () => checkEventOrder({ ...good, events: [...good.events, { type: 'message', data: utf8('late'), binary: false }] }))
    violates('event-order', () => checkEventOrder({ ...failed, events: [error, error] }))
  })

  it('error-mapping: the close code must be the table\'s', () => {
    const wrong = new ProtocolError('WS_ERR_EXPECTED_MASK', 'masked', 1011)
    violates('error-mapping', () => checkErrorMapping({ ...failed, events: [{ type: 'error', error: wrong }], connectionError: wrong }))
    violates('error-mapping', () => checkErrorMapping({ ...failed, connectionError: undefined }))
  })

  it('max-payload, utf8, control-length, close-code, close-reason: what is delivered', () => {
    const with_ = (event: ConnectionEvent): FramesOutcome => ({ ...good, events: [event] })
    violates('max-payload', () => checkDeliveries(with_({ type: 'message', data: new Uint8Array(65537), binary: true })))
    violates('utf8', () => checkDeliveries(with_({ type: 'message', data: Uint8Array.of(0xed, 0xa0, 0x80), binary: false })))
    violates('control-length', () => checkDeliveries(with_({ type: 'pong', data: new Uint8Array(126) })))
    violates('close-code', () => checkDeliveries(with_({ type: 'close', code: 1006, reason: new Uint8Array(0) })))
    violates('close-reason', () => checkDeliveries(with_({ type: 'close', code: 1000, reason: new Uint8Array(124) })))
    violates('utf8', () => checkDeliveries(with_({ type: 'close', code: 1000, reason: Uint8Array.of(0xff) })))
    // skipUTF8Validation lets invalid text through.
    checkDeliveries({ ...with_({ type: 'message', data: Uint8Array.of(0xff), binary: false }), options: { ...good.options, skipUtf8: true } })
  })

  it('inflate-requests and inflate-limit: only with deflate, one at a time, within the limit', () => {
    const inflate: ConnectionEvent = { type: 'inflate', data: new Uint8Array(1), end: true, limit: 10 }
    violates('inflate-requests', () => checkInflateRequests({ ...good, events: [inflate] }))
    const deflate = { ...good.options, deflate: true }
    checkInflateRequests({ ...good, options: deflate, events: [inflate] })
    violates('inflate-requests', () => checkInflateRequests({ ...good, options: deflate, events: [{ ...inflate, limit: 70_000 }] }))
    violates('inflate-requests', () => checkInflateRequests({ ...good, options: deflate, events: [inflate], overlappingInflate: true }))
    checkInflateLimit(10, 10)
    violates('inflate-limit', () => checkInflateLimit(11, 10))
  })

  it('output: pongs echo pings, one close frame last with the right code, EOF and state by §7.1', () => {
    const frames = good.output
    violates('output', () => checkOutput({ ...good, output: frames.subarray(0, frames.length - 1) }))
    // The pong dropped (server output: 8a 01 70, then 88 02 03 e8).
    violates('output', () => checkOutput({ ...good, output: frames.subarray(3) }))
    // The close frame of the failure carries 1000 instead of 1002.
    violates('output', () => checkOutput({ ...failed, output: Uint8Array.of(0x88, 0x02, 0x03, 0xe8) }))
    // A masked frame from a server.
    violates('output', () => checkOutput({ ...failed, output: buildFrame({ opcode: 0x8, payload: Uint8Array.of(0x03, 0xea), mask: MASK }) }))
    violates('output', () => checkOutput({ ...failed, eofSent: false }))
    violates('output', () => checkOutput({ ...good, state: 'open' }))
  })

  it('memory: past 1 MiB the message buffer follows data, not claims', () => {
    checkBuffers({ ...good, buffers: { messageLength: 100, messageCapacity: 200, control: 0, pending: 0 } })
    checkBuffers({ ...good, buffers: { messageLength: 100, messageCapacity: 1024 * 1024, control: 0, pending: 0 } })
    checkBuffers({ ...good, options: { ...good.options, maxPayload: 0 }, buffers: { messageLength: 2 * 1024 * 1024, messageCapacity: 100 * 1024 * 1024, control: 0, pending: 0 } })
    violates('memory', () => checkBuffers({ ...good, buffers: { messageLength: 100, messageCapacity: 1024 * 1024 + 1, control: 0, pending: 0 } }))
    violates('memory', () => checkBuffers({ ...good, buffers: { messageLength: 70_000, messageCapacity: 70_000, control: 0, pending: 0 } }))
    violates('memory', () => checkBuffers({ ...good, buffers: { messageLength: 0, messageCapacity: 0, control: 0, pending: good.inputLength + 1 } }))
  })

  it('model: events and error code as the reference receiver says', () => {
    const message = good.events[0] as Extract<ConnectionEvent, { type: 'message' }>
    violates('model', () => checkAgainstModel({ ...good, events: [{ ...message, data: utf8('Hellp') }, ...good.events.slice(1)] }, model))
    violates('model', () => checkAgainstModel({ ...good, events: good.events.slice(1) }, model))
    violates('model', () => checkAgainstModel(good, { ...model, failure: ['WS_ERR_INVALID_UTF8'] }))
    violates('model', () => checkAgainstModel(failed, { ...failedModel, failure: ['WS_ERR_UNEXPECTED_RSV_2_3'] }))
    violates('model', () => checkAgainstModel(failed, { ...failedModel, failure: undefined }))
  })
})

describe('fuzz oracles: each can fail (close, handshake, extensions)', () => {
  it('parse-close, close-round-trip, close-consistency', () => {
    const payload = Uint8Array.of(0x03, 0xe8, 0x68, 0x69)
    checkParseClose(payload, false, parseClose(payload))
    violates('parse-close', () => checkParseClose(payload, false, { code: 1001, reason: utf8('hi') }))
    violates('parse-close', () => checkParseClose(payload, false, { closeCode: 1002, problem: 'code' }))
    violates('parse-close', () => checkParseClose(Uint8Array.of(0x03, 0xe8, 0xff), false, { closeCode: 1002, problem: 'utf8' }))
    const { outcome } = framesRun([masked(0x8, Uint8Array.of(0x03, 0xed))])
    checkCloseConsistency(parseClose(Uint8Array.of(0x03, 0xed)), outcome.events)
    violates('close-consistency', () => checkCloseConsistency({ closeCode: 1007, problem: 'utf8' }, outcome.events))
    violates('close-consistency', () => checkCloseConsistency({ closeCode: 1002, problem: 'code' }, []))
  })

  const request = { method: 'GET', httpVersion: '1.1', headers: { host: 'a', upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': CLIENT_KEY, 'sec-websocket-version': '13' } }

  it('handshake-status, reject-response: statuses from the table and the RFC, a well-formed rejection', () => {
    checkServerError(new HandshakeError('TETHER_ERR_HANDSHAKE_KEY', 'bad key'))
    violates('handshake-status', () => checkServerError(new HandshakeError('TETHER_ERR_HANDSHAKE_KEY', 'bad key', {}, 403)))
    violates('handshake-status', () => checkServerError(new HandshakeError('TETHER_ERR_HANDSHAKE_METHOD', 'bad', {}, 400)))
    violates('reject-response', () => checkServerError(new HandshakeError('TETHER_ERR_HANDSHAKE_KEY', 'bad', { 'X-Bad Name': 'v' })))
  })

  it('handshake-model and server-to-client: the server verdict, and the client accepting the server\'s 101', () => {
    const verdicts = serverVerdicts(request)
    const accepted: AcceptedRequest = { key: CLIENT_KEY, protocols: [], extensions: [], origin: undefined }
    checkServerModel(accepted, verdicts)
    violates('handshake-model', () => checkServerModel(new HandshakeError('TETHER_ERR_HANDSHAKE_HOST', 'no host'), verdicts))
    violates('handshake-model', () => checkServerModel({ ...accepted, protocols: ['chat'] }, verdicts))
    checkServerToClient(accepted)
    checkServerToClient({ ...accepted, protocols: ['chat'], extensions: [{ name: 'permessage-deflate', params: [] }] })
    // A 101 with a wrong accept value, with an injected line, without the subprotocol chosen.
    const lines = (options: Parameters<typeof acceptResponseLines>[0]) => acceptResponseLines(options)
    violates('server-to-client', () => checkServerToClient(accepted, (o) => lines({ ...o, key: 'x' })))
    violates('server-to-client', () => checkServerToClient(accepted, (o) => [...lines(o), 'X-Injected: a\r\nSet-Cookie: b']))
    violates('server-to-client', () => checkServerToClient({ ...accepted, protocols: ['chat'] }, (o) => lines({ ...o, protocol: undefined })))
  })

  it('handshake-client: the client verdict and its status', () => {
    const c = decodeResponse(utf8('200'))
    const verdicts = clientVerdicts(c)
    checkClientModel(c, new HandshakeError('TETHER_ERR_HANDSHAKE_STATUS', 'x', {}, 200), verdicts)
    violates('handshake-client', () => checkClientModel(c, new HandshakeError('TETHER_ERR_HANDSHAKE_STATUS', 'x', {}, 101), verdicts))
    violates('handshake-client', () => checkClientModel(c, new HandshakeError('TETHER_ERR_HANDSHAKE_KEY', 'x', {}, 200), verdicts))
    violates('handshake-model', () => checkClientModel(c, new HandshakeError('TETHER_ERR_HANDSHAKE_ACCEPT', 'x', {}, 200), verdicts))
    violates('handshake-model', () => checkClientModel(c, { protocol: '', extensions: [] }, verdicts))
  })

  it('extensions-model, token-list-model, round-trip, negotiation, client-acceptance', () => {
    const value = 'permessage-deflate; client_max_window_bits, x-foo'
    const parsed = [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] as Array<[string, string | true]> }, { name: 'x-foo', params: [] }]
    checkParse(value, parsed)
    violates('extensions-model', () => checkParse(value, parsed.slice(1)))
    violates('extensions-model', () => checkParse('a b', [{ name: 'a', params: [] }]))
    checkRoundTrip(parsed)
    violates('round-trip', () => checkRoundTrip([{ name: 'x', params: [['p', 'a b']] }]))
    violates('round-trip', () => checkRoundTrip([{ name: 'x\r\ny', params: [] }]))
    checkNegotiation(parsed, {}, negotiateDeflate(parsed, {}))
    const agreed = negotiateDeflate(parsed, {})!
    // Accepting an offer that must be declined (an unknown parameter), declining an acceptable one,
    // dropping server_no_context_takeover that the offer asked for, answering a window not offered.
    const unknown = [{ name: 'permessage-deflate', params: [['x', true]] as Array<[string, string | true]> }]
    checkNegotiation(unknown, {}, negotiateDeflate(unknown, {}))
    violates('negotiation', () => checkNegotiation(unknown, {}, agreed))
    violates('negotiation', () => checkNegotiation(parsed, {}, undefined))
    const noTakeover = [{ name: 'permessage-deflate', params: [['server_no_context_takeover', true]] as Array<[string, string | true]> }]
    violates('negotiation', () => checkNegotiation(noTakeover, {}, negotiateDeflate([{ name: 'permessage-deflate', params: [] }], {})))
    violates('negotiation', () =>
      checkNegotiation([{ name: 'permessage-deflate', params: [] }], {}, { ...agreed, response: { name: 'permessage-deflate', params: [['client_max_window_bits', '10']] } }),
    )
    const plain = { name: 'permessage-deflate', params: [] }
    assert.equal(checkClientAcceptance(plain, {}), 'agreed')
    assert.equal(checkClientAcceptance({ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }, {}), 'refused')
    // Accepting what RFC 7692 §7.1 refuses, refusing what it accepts, agreeing on other parameters.
    violates('client-acceptance', () => checkClientAcceptance(plain, { serverNoContextTakeover: true }, acceptDeflateResponse(plain, {})))
    violates('client-acceptance', () => checkClientAcceptance(plain, {}, 'refused'))
    violates('client-acceptance', () => checkClientAcceptance(plain, {}, { ...(acceptDeflateResponse(plain, {}) as object), serverMaxWindowBits: 9 } as never))
  })
})

describe('fuzz engine: crashes, time, memory, hangs, determinism', () => {
  const root = mkdtempSync(join(tmpdir(), 'tether-fuzz-'))
  after(() => rmSync(root, { recursive: true, force: true }))

  const fake = (name: string, execute: (input: Uint8Array) => string, extra: Partial<Target> = {}): Target => ({
    name,
    corpus: name,
    maxLength: 64,
    text: false,
    dictionary: [],
    memoryBound: 1 << 20,
    seeds: () => [['a', Uint8Array.of(1, 2, 3)], ['b', Uint8Array.of(0xff)]],
    execute,
    ...extra,
  })

  it('an exception and an oracle violation are crashes, with their input written under fuzz/crashes/', async () => {
    const stats = await runTarget(
      fake('test-throw', (input) => {
        if (input[0] === 0xff) throw new TypeError('boom')
        if (input.length === 3) throw new OracleViolation('test', 'wrong')
        return 'ok'
      }),
      { seconds: 0, seed: 1, replayOnly: true, root },
    )
    assert.deepEqual(stats.crashes.map((c) => c.kind).sort(), ['exception', 'oracle'])
    for (const crash of stats.crashes) {
      assert.ok(crash.file !== undefined && existsSync(crash.file))
      assert.deepEqual(new Uint8Array(readFileSync(crash.file)), crash.input)
    }
  })

  it('an input slower than 1 s is a hang; the slowest input is reported', async () => {
    const stats = await runTarget(
      fake('test-slow', (input) => {
        const until = performance.now() + (input[0] === 0xff ? 1100 : 0)
        while (performance.now() < until);
        return 'ok'
      }),
      { seconds: 0, seed: 1, replayOnly: true, root },
    )
    assert.deepEqual(stats.crashes.map((c) => c.kind), ['hang'])
    assert.ok(stats.slowestMs >= 1000)
  })

  it('memory that grows across a batch beyond the bound is a crash', async () => {
    const kept: Uint8Array[] = []
    const stats = await runTarget(
      fake('test-leak', () => {
        kept.push(new Uint8Array(64 * 1024))
        return 'ok'
      }, { memoryBound: 1024 * 1024 }),
      { seconds: 10, maxInputs: 100, seed: 1, root },
    )
    assert.ok(stats.crashes.some((c) => c.kind === 'memory'), formatStats(stats))
    kept.length = 0
  })

  it('a worker stuck in one input is terminated and the input named', async () => {
    const stats = await runInWorker('test-hang', { seconds: 5, seed: 1, hangSeconds: 1, root }, {
      target: hangTarget,
      targetModule: new URL('./hang-target.js', import.meta.url).href,
    })
    assert.equal(stats.crashes.length, 1)
    assert.equal(stats.crashes[0]!.kind, 'hang')
    assert.deepEqual(stats.crashes[0]!.input, HANG_INPUT)
    assert.ok(existsSync(stats.crashes[0]!.file!))
  })

  it('a run is a function of its seed', async () => {
    const record = async (seed: number): Promise<string[]> => {
      const seen: string[] = []
      const target = targets.find((t) => t.name === 'extensions')!
      await runTarget({ ...target, execute: (input) => (seen.push(Buffer.from(input).toString('hex')), target.execute(input)) }, { seconds: 10, maxInputs: 300, seed, root })
      return seen
    }
    const [a, b, c] = [await record(7), await record(7), await record(8)]
    assert.deepEqual(a, b)
    assert.notDeepEqual(a, c)
  })

  it('mutations stay within maxLength and are reproducible', () => {
    const corpus = [utf8('permessage-deflate; a=1'), Uint8Array.of(0x81, 0x85, 1, 2, 3, 4)]
    for (const name of mutationNames) {
      for (let seed = 0; seed < 50; seed++) {
        const ctx = { rng: new Rng(seed), corpus, dictionary: [utf8('token')], maxLength: 32 }
        const out = applyMutation(name, corpus[seed % 2]!, ctx)
        assert.ok(out.length <= 32, name)
        assert.deepEqual(applyMutation(name, corpus[seed % 2]!, { ...ctx, rng: new Rng(seed) }), out, name)
      }
    }
    const rng = new Rng(3)
    const inputs = Array.from({ length: 200 }, () => mutate(corpus[0]!, { rng, corpus, dictionary: [], maxLength: 40 }))
    assert.ok(inputs.every((input) => input.length <= 40))
    assert.ok(new Set(inputs.map((i) => Buffer.from(i).toString('hex'))).size > 150, 'mutations vary')
  })
})

describe(`fuzz: every target, its corpus replayed, then ${SECONDS} s of mutation (seed ${SEED})`, () => {
  for (const target of targets) {
    it(target.name, async () => {
      const stats = await runInWorker(target.name, { seconds: SECONDS, seed: SEED })
      console.log(formatStats(stats))
      assert.ok(stats.replayed > 0, 'the corpus was replayed')
      const crashes = stats.crashes.map((c) => `${c.kind}: ${c.message.split('\n')[0]}${c.file ? ` (${c.file})` : ''}`)
      assert.deepEqual(crashes.slice(0, 10), [], `${target.name}: ${stats.crashes.length} crashes`)
    })
  }
})
