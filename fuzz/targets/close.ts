/**
 * Fuzz target for close payloads (RFC 6455 §5.5.1, §7.4): parseClose on
 * its own, and a Connection receiving the payload in a close frame.
 *
 * An input is `[flags][payload...]`: flags bit 0 skipUTF8Validation, bit 1
 * client role (else server), bits 2-4 the chunking (as frames.ts), bit 5
 * receiveEof afterwards. Payloads longer than 125 bytes are sent anyway
 * (with a 16-bit length): the frame must then be refused.
 *
 * ORACLES:
 * - no exception (engine);
 * - `checkParseClose`: parseClose gives exactly the reference result: 1005
 *   for an empty payload, 1002 for one byte or a code a peer may not send,
 *   1007 for a reason that is not UTF-8 (unless skipped), else the code and
 *   reason; serializeClose gives the payload back;
 * - `checkCloseConsistency`: the close code parseClose refuses with is the
 *   one protocolErrorCloseCodes gives the error the Connection reports;
 * - every frames oracle (frames.ts) on the Connection's run, including the
 *   reference receiver.
 */
import { isCloseParseFailure, parseClose, serializeClose } from '../../src/core/close.js'
import type { ConnectionEvent, Side } from '../../src/core/connection.js'
import { protocolErrorCloseCodes } from '../../src/core/errors.js'
import { INTERESTING_16, UTF8_EDGES } from '../mutate.js'
import { check, measure, type Target } from '../oracle.js'
import { buildFrame, concatBytes, hex, isCompleteUtf8 } from '../wire.js'
import { referenceReceive } from './frames-model.js'
import { type FrameRunOptions, checkFrames, chunk, runFrames } from './frames.js'

export type CloseModel = { code: number; reason: Uint8Array } | { closeCode: 1002 | 1007; problem: 'length' | 'code' | 'utf8' }

/** The codes a peer may put in a close frame, listed from §7.4.1 and the IANA registry. */
const SENDABLE = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014])

export function modelParseClose(payload: Uint8Array, skipUtf8: boolean): CloseModel {
  if (payload.length === 0) return { code: 1005, reason: new Uint8Array(0) }
  if (payload.length === 1) return { closeCode: 1002, problem: 'length' }
  const code = payload[0]! * 256 + payload[1]!
  if (!SENDABLE.has(code) && !(code >= 3000 && code < 5000)) return { closeCode: 1002, problem: 'code' }
  const reason = payload.slice(2)
  if (!skipUtf8 && !isCompleteUtf8(reason)) return { closeCode: 1007, problem: 'utf8' }
  return { code, reason }
}

export function checkParseClose(payload: Uint8Array, skipUtf8: boolean, result: ReturnType<typeof parseClose>): void {
  const expected = modelParseClose(payload, skipUtf8)
  const show = (r: CloseModel | ReturnType<typeof parseClose>): string =>
    'problem' in r ? `refused ${r.closeCode} (${r.problem})` : `close ${r.code} reason ${hex(r.reason, 32)}`
  const same = isCloseParseFailure(result)
    ? 'problem' in expected && expected.problem === result.problem && expected.closeCode === result.closeCode
    : 'code' in expected && expected.code === result.code && Buffer.from(result.reason).equals(expected.reason)
  check(same, 'parse-close', () => `parseClose(${hex(payload)}, ${skipUtf8}) = ${show(result)}, expected ${show(expected)}`)
  if (!isCloseParseFailure(result)) {
    const back = serializeClose(result.code, result.reason)
    check(Buffer.from(back).equals(payload), 'close-round-trip', `serializeClose(${result.code}) = ${hex(back)}, not ${hex(payload)}`)
  }
}

/** parseClose's refusal and the error the Connection reports for the same payload mean the same close code. */
export function checkCloseConsistency(result: ReturnType<typeof parseClose>, events: readonly ConnectionEvent[]): void {
  const error = events.find((e) => e.type === 'error')
  if (!isCloseParseFailure(result)) return
  check(error !== undefined, 'close-consistency', `parseClose refuses (${result.problem}) but the connection did not fail`)
  const expected = { length: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', code: 'WS_ERR_INVALID_CLOSE_CODE', utf8: 'WS_ERR_INVALID_UTF8' }[result.problem]
  check(error.error.code === expected, 'close-consistency', `parseClose refuses (${result.problem}), the connection fails with ${error.error.code}`)
  check(protocolErrorCloseCodes[error.error.code] === result.closeCode, 'close-consistency', `parseClose says ${result.closeCode}, ${error.error.code} maps to ${protocolErrorCloseCodes[error.error.code]}`)
}

function decode(input: Uint8Array): { options: FrameRunOptions; payload: Uint8Array } {
  const flags = input[0] ?? 0
  const side: Side = (flags & 0x02) !== 0 ? 'client' : 'server'
  return {
    options: {
      side,
      deflate: false,
      chunking: (flags >> 2) & 7,
      skipUtf8: (flags & 0x01) !== 0,
      maxPayload: 64 * 1024,
      takeover: false,
      windowBits: 15,
      autoPong: true,
      eof: (flags & 0x20) !== 0,
      lateInflate: false,
    },
    payload: input.subarray(1),
  }
}

function codeClass(payload: Uint8Array): string {
  if (payload.length < 2) return `len${payload.length}`
  const code = payload[0]! * 256 + payload[1]!
  const edges = [1000, 1004, 1007, 1015, 3000, 5000]
  return `c${edges.filter((edge) => code >= edge).length}`
}

const u16 = (n: number): Uint8Array => Uint8Array.of(n >> 8, n & 0xff)
const text = (t: string): Uint8Array => new TextEncoder().encode(t)

const SEEDS: Array<[string, Uint8Array]> = [
  ['empty', new Uint8Array(0)],
  ['one-byte', Uint8Array.of(0x03)],
  ['1000', u16(1000)],
  ['1000-reason', concatBytes([u16(1000), text('normal closure')])],
  ['1001', u16(1001)],
  ['1003', u16(1003)],
  ['1004-reserved', u16(1004)],
  ['1005-local-only', u16(1005)],
  ['1006-local-only', u16(1006)],
  ['1007', u16(1007)],
  ['1011', u16(1011)],
  ['1012-iana', u16(1012)],
  ['1014-iana', u16(1014)],
  ['1015-local-only', u16(1015)],
  ['1016-unassigned', u16(1016)],
  ['0', u16(0)],
  ['999', u16(999)],
  ['2999', u16(2999)],
  ['3000', u16(3000)],
  ['4999', u16(4999)],
  ['5000', u16(5000)],
  ['65535', u16(65535)],
  ['reason-unicode', concatBytes([u16(4000), text('\u00e9t\u00e9 \u2603 \u{1f600}')])],
  ['reason-123-bytes', concatBytes([u16(1000), new Uint8Array(123).fill(0x61)])],
  ['reason-124-bytes-too-long', concatBytes([u16(1000), new Uint8Array(124).fill(0x61)])],
  ['reason-invalid-utf8', concatBytes([u16(1000), Uint8Array.of(0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64)])],
  ['reason-truncated-codepoint', concatBytes([u16(1000), Uint8Array.of(0xe2, 0x82)])],
  ['reason-overlong', concatBytes([u16(1000), Uint8Array.of(0xc0, 0x80)])],
  ['reason-nul', concatBytes([u16(1000), Uint8Array.of(0)])],
  ['reason-bom', concatBytes([u16(1000), Uint8Array.of(0xef, 0xbb, 0xbf)])],
]

export const closeTarget: Target = {
  name: 'close',
  corpus: 'close',
  maxLength: 200,
  text: false,
  dictionary: [...INTERESTING_16.map(u16), ...UTF8_EDGES],
  memoryBound: 1024 * 1024,
  seeds: () => {
    const out: Array<[string, Uint8Array]> = []
    for (const [name, payload] of SEEDS) {
      out.push([`seed-${name}.bin`, concatBytes([Uint8Array.of(0x00), payload])])
    }
    // A few in the other role, skipping UTF-8, byte by byte, and with EOF.
    out.push(['seed-client-1000.bin', concatBytes([Uint8Array.of(0x02), u16(1000)])])
    out.push(['seed-skip-utf8-invalid-reason.bin', concatBytes([Uint8Array.of(0x01), u16(1000), Uint8Array.of(0xff)])])
    out.push(['seed-bytewise-reason.bin', concatBytes([Uint8Array.of(0x04), u16(3001), text('bytewise')])])
    out.push(['seed-eof.bin', concatBytes([Uint8Array.of(0x20), u16(1000)])])
    return out
  },
  execute(input) {
    const { options, payload } = decode(input)
    const parsed = measure(() => parseClose(payload.slice(), options.skipUtf8))
    checkParseClose(payload, options.skipUtf8, parsed)
    const stream = buildFrame({ opcode: 0x8, payload, mask: options.side === 'server' ? Uint8Array.of(0x12, 0x34, 0x56, 0x78) : undefined })
    const model = referenceReceive(stream.slice(), { side: options.side, maxPayload: options.maxPayload, skipUtf8: options.skipUtf8 })
    const pieces = chunk(stream, options.chunking)
    const outcome = measure(() => runFrames(pieces, options))
    checkFrames(outcome, model)
    if (payload.length <= 125) checkCloseConsistency(parsed, outcome.events)
    const error = outcome.connectionError?.code ?? '-'
    const kind = isCloseParseFailure(parsed) ? parsed.problem : 'ok'
    const reason = payload.length <= 2 ? 'none' : payload.length > 125 ? 'long' : isCompleteUtf8(payload.subarray(2)) ? 'utf8' : 'bytes'
    return `${kind}|${codeClass(payload)}|${reason}|${error}|${options.skipUtf8 ? 'skip' : ''}`
  },
  describe: (input) => {
    const { options, payload } = decode(input)
    return `${options.side} skipUtf8=${options.skipUtf8} chunking=${options.chunking} eof=${options.eof} payload=${hex(payload, 130)}`
  },
}
