/**
 * Verdicts: what happened on the wire, compared with what the case expects.
 *
 * OK: exactly the expected messages and pongs (data in order, pongs in
 * order; a pong may come before or after an echo, as RFC 6455 leaves the
 * timing of a pong open), the expected close code, and TCP closed by the
 * right side within the bound. NON-STRICT: acceptable, but not what the RFC
 * recommends: a fail-fast case failed only once the message was complete,
 * the testee dropped TCP where it should have sent a close frame first, or a
 * client ended TCP before the server did (§7.1.1: the server closes first,
 * "the client SHOULD wait for the server to close the connection"). FAILED:
 * anything else, including a hang past a bound.
 *
 * The permessage-deflate negotiation is checked here too: the server's
 * answer against the offer it accepted (RFC 7692 §5, §7.1), the client's
 * offer against its options, and the parameters both sides agreed on.
 */
import type { DeflateParam, DeflateSpec, ExpectedItem, OfferRule, Plan, ResponseRule, Role } from './cases.js'
import { type CloseInfo, type DeflateAgreement, type ParsedExtension, type ReceivedItem, parseExtensionHeader } from './peers.js'

export type Verdict = 'OK' | 'NON-STRICT' | 'FAILED'

/** Everything the suite saw of one case. */
export interface Observation {
  role: Role
  items: ReceivedItem[]
  violations: string[]
  testeeClose: CloseInfo | undefined
  peerCloseAt: number | undefined
  /** The peer's close frame answered the testee's (the testee closed first). */
  peerAnsweredClose: boolean
  /** The testee did not fail when it should have, so the runner closed the connection itself. */
  wrapUpClose: boolean
  testeeFinAt: number | undefined
  closedAt: number | undefined
  /** The testee ended TCP while the peer had not. */
  testeeEndedFirst: boolean
  /** A socket error (ECONNRESET: the testee reset TCP instead of closing it). */
  transportError: string | undefined
  /** TCP was still open at the end of the bounded wait. */
  tcpOpen: boolean
  /** Fail fast: the testee failed before the withheld rest was sent (undefined: no checkpoint reached). */
  failFastEarly: boolean | undefined
  /** Handshake, negotiation or runner problems (each fails the case). */
  problems: string[]
  /** The testee's WebSocket never emitted 'close' after TCP closed. */
  closeEventMissing: boolean
  /** Whether permessage-deflate was agreed. */
  deflate: boolean
  timedOut: string | undefined
}

export interface CaseResult {
  id: string
  group: number
  description: string
  role: Role
  verdict: Verdict
  reason: string
  durationMs: number
}

const describeCode = (code: number): string => (code === 1005 ? 'an empty close' : `close ${code}`)

function describeItem(item: { type: string; data: Buffer }): string {
  return `${item.type} of ${item.data.length} B`
}

/** Compares the data messages and the pongs with the expectation; a reason for FAILED, or undefined. */
function compareItems(expected: ExpectedItem[], received: ReceivedItem[], deflate: boolean): string | undefined {
  const pings = received.filter((item) => item.type === 'ping')
  if (pings.length > 0) return `unexpected ping from the testee`
  const gotData = received.filter((item) => item.type === 'text' || item.type === 'binary')
  const wantData = expected.filter((item) => item.type === 'text' || item.type === 'binary')
  for (let i = 0; i < Math.max(gotData.length, wantData.length); i++) {
    const got = gotData[i]
    const want = wantData[i]
    if (want === undefined) return `unexpected ${describeItem(got!)} (message ${i + 1})`
    if (got === undefined) return `missing echo ${i + 1} of ${wantData.length} (${describeItem(want)})`
    if (got.type !== want.type) return `echo ${i + 1} is ${got.type}, expected ${want.type}`
    if (!got.data.equals(want.data)) return `echo ${i + 1} differs: ${got.data.length} B, expected ${want.data.length} B`
    if (got.type === 'text' || got.type === 'binary') {
      const rule = 'compressed' in want && want.compressed !== undefined ? want.compressed : deflate ? 'any' : 'no'
      if (rule === 'yes' && !got.compressed) return `echo ${i + 1} (${describeItem(got)}) was not compressed`
      if (rule === 'no' && got.compressed) return `echo ${i + 1} was compressed without permessage-deflate agreed`
    }
  }
  const gotPongs = received.filter((item) => item.type === 'pong')
  const wantPongs = expected.filter((item) => item.type === 'pong')
  for (let i = 0; i < Math.max(gotPongs.length, wantPongs.length); i++) {
    const got = gotPongs[i]
    const want = wantPongs[i]
    if (want === undefined) return `unexpected pong (${got!.data.length} B)`
    if (got === undefined) return `missing pong ${i + 1} of ${wantPongs.length}`
    if (!got.data.equals(want.data)) return `pong ${i + 1} carries different bytes`
  }
  return undefined
}

/** The verdict and its reason for one case. */
export function judge(plan: Plan, observation: Observation): { verdict: Verdict; reason: string } {
  const failed = (reason: string): { verdict: Verdict; reason: string } => ({ verdict: 'FAILED', reason })
  const o = observation
  if (o.timedOut !== undefined) return failed(o.timedOut)
  if (o.problems.length > 0) return failed(o.problems[0]!)
  if (o.violations.length > 0) return failed(`protocol violation by the testee: ${o.violations[0]}`)
  const mismatch = compareItems(plan.items, o.items, o.deflate)
  if (mismatch !== undefined) return failed(mismatch)

  const lax: string[] = []
  const close = o.testeeClose
  const dropped = close === undefined && (o.testeeFinAt !== undefined || o.closedAt !== undefined)
  const { ending } = plan
  const codes = ending.codes.map(describeCode).join(' or ')
  if (ending.by === 'peer') {
    if (close === undefined) {
      if (!dropped) return failed('no close frame in answer to the peer\'s close')
      lax.push('dropped TCP without answering the close frame')
    } else if (o.peerAnsweredClose) {
      return failed(`the testee closed on its own with ${describeCode(close.code)}`)
    } else if (!ending.codes.includes(close.code)) {
      return failed(`answered the close with ${describeCode(close.code)}, expected ${codes}`)
    }
  } else {
    if (close === undefined) {
      if (!dropped) return failed(`did not fail the connection (expected ${codes})`)
      lax.push('dropped TCP without sending a close frame')
    } else if (o.wrapUpClose) {
      return failed(`did not fail the connection; only answered the peer's closing close (expected ${codes})`)
    } else if (!ending.codes.includes(close.code)) {
      return failed(`failed with ${describeCode(close.code)}, expected ${codes}`)
    }
  }
  if (o.tcpOpen) {
    return failed(o.role === 'server' ? 'the server did not close TCP after the closing handshake' : 'TCP still open after the server closed it')
  }
  if (o.role === 'client' && o.testeeEndedFirst) lax.push('the client ended TCP before the server did (§7.1.1)')
  // §7.1.1: "An endpoint SHOULD use a method that cleanly closes the TCP connection".
  if (o.testeeFinAt === undefined && o.closedAt !== undefined) lax.push(`TCP was not closed cleanly (${o.transportError ?? 'no FIN'})`)
  if (o.closeEventMissing) return failed("the testee WebSocket did not emit 'close'")
  if (plan.failFast && o.failFastEarly !== true) {
    if (o.failFastEarly === undefined) return failed('fail-fast checkpoint not reached')
    lax.push('failed only after the rest of the message was sent (not fail-fast)')
  }
  if (lax.length > 0) return { verdict: 'NON-STRICT', reason: lax.join('; ') }

  const data = o.items.filter((item) => item.type === 'text' || item.type === 'binary').length
  const pongs = o.items.filter((item) => item.type === 'pong').length
  const parts: string[] = []
  if (data > 0) parts.push(`${data} echo${data === 1 ? '' : 'es'}${o.deflate ? ` (${o.items.filter((i) => 'compressed' in i && i.compressed).length} compressed)` : ''}`)
  if (pongs > 0) parts.push(`${pongs} pong${pongs === 1 ? '' : 's'}`)
  if (ending.by === 'peer') parts.push(`close answered with ${close!.code === 1005 ? 'an empty close' : close!.code}`)
  else parts.push(`failed with ${close!.code}${plan.failFast ? ' before the rest was sent' : ''}`)
  return { verdict: 'OK', reason: parts.join(', ') }
}

// ------------------------------------------------------- permessage-deflate

const KNOWN: DeflateParam[] = ['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits']

interface DeflateParams {
  server_no_context_takeover: boolean
  client_no_context_takeover: boolean
  server_max_window_bits: number | undefined
  /** true: present without a value. */
  client_max_window_bits: number | true | undefined
}

/** The parameters of one permessage-deflate element; a string says why it is not acceptable (RFC 7692 §7.1). */
function readParams(extension: ParsedExtension, response: boolean): DeflateParams | string {
  const out: DeflateParams = {
    server_no_context_takeover: false,
    client_no_context_takeover: false,
    server_max_window_bits: undefined,
    client_max_window_bits: undefined,
  }
  const seen = new Set<string>()
  for (const [name, value] of extension.params) {
    if (!KNOWN.includes(name as DeflateParam)) return `unknown parameter ${name}`
    if (seen.has(name)) return `duplicated parameter ${name}`
    seen.add(name)
    if (name.endsWith('no_context_takeover')) {
      if (value !== true) return `${name} with a value`
      out[name as 'server_no_context_takeover'] = true
      continue
    }
    if (value === true) {
      if (name === 'server_max_window_bits' || response) return `${name} without a value`
      out.client_max_window_bits = true
      continue
    }
    // §7.1.2.1: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
    if (!/^(8|9|1[0-5])$/.test(value)) return `${name}=${value} is not 8..15`
    out[name as 'server_max_window_bits'] = Number(value)
  }
  return out
}

/**
 * Server role: checks the server's Sec-WebSocket-Extensions against our
 * offer and the case's rules. Returns the agreement (undefined: declined)
 * and the problems found.
 */
export function checkServerAnswer(spec: DeflateSpec, header: string | undefined): { agreed: DeflateAgreement | undefined; peerTakeover: boolean; problems: string[] } {
  const problems: string[] = []
  const answered = parseExtensionHeader(header)
  if (answered === undefined) return { agreed: undefined, peerTakeover: true, problems: [`malformed Sec-WebSocket-Extensions: ${header}`] }
  const offers = parseExtensionHeader(spec.offer)!
  // The offer a server without preferences accepts: the first acceptable one (§5.1).
  const accepted = offers.map((offer) => (offer.name === 'permessage-deflate' ? readParams(offer, false) : 'other extension')).find((p) => typeof p !== 'string') as DeflateParams | undefined
  if (answered.length === 0) {
    if (spec.response !== null) problems.push('permessage-deflate was declined although an offer was acceptable')
    return { agreed: undefined, peerTakeover: true, problems }
  }
  if (spec.response === null) problems.push(`accepted although no offer was acceptable: ${header}`)
  if (answered.length !== 1 || answered[0]!.name !== 'permessage-deflate') {
    problems.push(`unexpected extensions in the answer: ${header}`)
    return { agreed: undefined, peerTakeover: true, problems }
  }
  const response = readParams(answered[0]!, true)
  if (typeof response === 'string') {
    problems.push(`invalid answer (${response}): ${header}`)
    return { agreed: undefined, peerTakeover: true, problems }
  }
  if (accepted !== undefined) {
    // §7.1.1.1: an accepted server_no_context_takeover must be in the answer.
    if (accepted.server_no_context_takeover && !response.server_no_context_takeover) problems.push('server_no_context_takeover offered but not in the answer')
    // §7.1.2.1: an accepted server_max_window_bits is answered with the same or a smaller value.
    if (accepted.server_max_window_bits !== undefined &&
      (response.server_max_window_bits === undefined || response.server_max_window_bits > accepted.server_max_window_bits)) {
      problems.push(`server_max_window_bits=${accepted.server_max_window_bits} offered, answered ${response.server_max_window_bits ?? 'nothing'}`)
    }
    // §7.1.2.2: client_max_window_bits in an answer only if offered, and not above an offered value.
    if (response.client_max_window_bits !== undefined) {
      if (accepted.client_max_window_bits === undefined) problems.push('client_max_window_bits answered but not offered')
      else if (typeof accepted.client_max_window_bits === 'number' && (response.client_max_window_bits as number) > accepted.client_max_window_bits) {
        problems.push('client_max_window_bits answered above the offered value')
      }
    }
  }
  for (const [name, rule] of Object.entries(spec.response ?? {}) as Array<[DeflateParam, ResponseRule]>) {
    const value = response[name]
    const present = value !== undefined && value !== false
    if (rule === 'present' && !present) problems.push(`the answer lacks ${name}: ${header}`)
    else if (rule === 'absent' && present) problems.push(`the answer has ${name}: ${header}`)
    else if (typeof rule === 'object') {
      if (!present && !rule.optional) problems.push(`the answer lacks ${name}: ${header}`)
      else if (present && (typeof value !== 'number' || value > rule.atMost)) problems.push(`${name}=${String(value)} in the answer, expected at most ${rule.atMost}`)
    }
  }
  const offeredClientBits = typeof accepted?.client_max_window_bits === 'number' ? accepted.client_max_window_bits : 15
  const agreed: DeflateAgreement = {
    serverNoContextTakeover: response.server_no_context_takeover,
    clientNoContextTakeover: response.client_no_context_takeover,
    serverMaxWindowBits: response.server_max_window_bits ?? 15,
    clientMaxWindowBits: typeof response.client_max_window_bits === 'number' ? response.client_max_window_bits : offeredClientBits,
  }
  // Our own offer's client_no_context_takeover is a promise (§7.1.1.2): keep it when compressing.
  const peerTakeover = !agreed.clientNoContextTakeover && !(accepted?.client_no_context_takeover ?? false)
  return { agreed, peerTakeover, problems }
}

/**
 * Client role: checks the tether client's offer against the case's rules and
 * derives what the raw server's answer makes both sides agree to.
 */
export function checkClientOffer(spec: DeflateSpec, header: string | undefined): { agreed: DeflateAgreement | undefined; testeeTakeover: boolean; problems: string[] } {
  const problems: string[] = []
  const offers = parseExtensionHeader(header)
  if (offers === undefined || offers.length !== 1 || offers[0]!.name !== 'permessage-deflate') {
    return { agreed: undefined, testeeTakeover: true, problems: [`expected one permessage-deflate offer, got: ${header ?? 'none'}`] }
  }
  const offer = readParams(offers[0]!, false)
  if (typeof offer === 'string') return { agreed: undefined, testeeTakeover: true, problems: [`invalid offer (${offer}): ${header}`] }
  for (const [name, rule] of Object.entries(spec.clientOffer) as Array<[DeflateParam, OfferRule]>) {
    const value = offer[name]
    const present = value !== undefined && value !== false
    if (rule === 'present' && !present) problems.push(`the offer lacks ${name}: ${header}`)
    else if (rule === 'absent' && present) problems.push(`the offer has ${name}: ${header}`)
    else if (rule === 'novalue' && value !== true) problems.push(`the offer should carry ${name} without a value: ${header}`)
    else if (typeof rule === 'number' && value !== rule) problems.push(`the offer should carry ${name}=${rule}: ${header}`)
  }
  if (spec.answer === null) return { agreed: undefined, testeeTakeover: true, problems }
  const answer = readParams(parseExtensionHeader(spec.answer)![0]!, true)
  if (typeof answer === 'string') throw new Error(`catalogue error: the answer is invalid (${answer})`)
  const agreed: DeflateAgreement = {
    serverNoContextTakeover: answer.server_no_context_takeover,
    clientNoContextTakeover: answer.client_no_context_takeover,
    serverMaxWindowBits: answer.server_max_window_bits ?? 15,
    // §7.1.2.2: the client never uses a window larger than it offered, whatever the answer says.
    clientMaxWindowBits: typeof answer.client_max_window_bits === 'number'
      ? answer.client_max_window_bits
      : typeof offer.client_max_window_bits === 'number' ? offer.client_max_window_bits : 15,
  }
  // A client_no_context_takeover in the offer is the client's promise (§7.1.1.2).
  const testeeTakeover = !agreed.clientNoContextTakeover && !offer.client_no_context_takeover
  return { agreed, testeeTakeover, problems }
}
