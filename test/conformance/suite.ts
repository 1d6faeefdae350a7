/**
 * Runs the catalogue against tether in one role and returns a result per case.
 *
 * Server role: a tether WebSocketServer on 127.0.0.1:0 whose application
 * echoes every message with its type (a second one with permessage-deflate
 * for groups 12 and 13), driven by the raw client of peers.ts.
 * Client role: the raw server of peers.ts; for each case a tether WebSocket
 * connects to it, with the same echo application (and the case's
 * `perMessageDeflate` options in groups 12 and 13).
 *
 * Over HTTP/2 (`transport: 'h2'`, RFC 8441) the same cases run on streams:
 * the server's echo servers own their ports with `http2` (clear-text h2c)
 * and the raw client opens each case as an extended CONNECT on one shared
 * connection; in the client role tether's client opens each case's WebSocket
 * on its pooled connection to a raw HTTP/2 server. END_STREAM stands where
 * the verdicts say FIN, RST_STREAM where they say reset.
 *
 * Theory of operation: cases run one after another. For each: the opening
 * handshake (checked by hand, and for compression the negotiation), the
 * steps of the plan, then the ending: the peer waits (bounded) for the
 * expected echoes and closes with 1000, or waits for the testee to fail the
 * connection; then waits for TCP to close and for the testee's WebSocket to
 * report 'close'. Every wait has a bound and the whole case has one too, so
 * the suite cannot hang; what was seen goes to `judge`.
 */
import { WebSocket, WebSocketServer } from '../../src/index.js'
import { type ConformanceCase, type Plan, type Role, CASES } from './cases.js'
import http2, { type ClientHttp2Session } from 'node:http2'
import { type DeflateAgreement, type FrameSpec, HOST, Op, PeerDeflate, RawH2Server, RawServer, type Wire, connectRawClient, connectRawH2Client, delay, headerOf, now } from './peers.js'
import { type CaseResult, type Observation, checkClientOffer, checkServerAnswer, judge } from './verdict.js'

/** Bounds, in ms. */
const HANDSHAKE_WAIT = 3000
const ITEMS_WAIT = 3000
const ITEMS_WAIT_LARGE = 30_000
const ITEMS_WAIT_DEFLATE = 8000
const FAIL_WAIT = 3000
const TCP_WAIT = 3000
const CLOSE_EVENT_WAIT = 1000
const CASE_TIMEOUT = 15_000
/** After the expected echoes, how long to leave for anything unexpected before closing. */
const SETTLE = 10

/** What carries the WebSockets: TCP connections, or streams of HTTP/2 connections (RFC 8441, clear-text h2c). */
export type Transport = 'tcp' | 'h2'

export interface SuiteOptions {
  /** Default 'tcp'. */
  transport?: Transport
  /** Only these groups (all if empty). */
  groups?: number[]
  /** Only these case ids, or id prefixes such as "6.4" (all if empty). */
  ids?: string[]
  /** Called after each case. */
  onResult?: (result: CaseResult) => void
  /**
   * A bound on the whole role, ms: once used up, the remaining cases are reported
   * FAILED without being run, so a badly broken testee still yields a report.
   */
  budgetMs?: number
}

/** The cases `options` selects, in catalogue order. */
export function selectCases(options: SuiteOptions = {}): ConformanceCase[] {
  return CASES.filter(
    (c) =>
      (!options.groups?.length || options.groups.includes(c.group)) &&
      (!options.ids?.length || options.ids.some((id) => c.id === id || c.id.startsWith(id + '.'))),
  )
}

/** A testee WebSocket's fate, as its application saw it. */
interface TesteeSocket {
  ws: WebSocket | undefined
  /** What went wrong inside the echo application (a send that threw). */
  errors: string[]
  readonly closed: boolean
  /** Resolves when the socket emitted 'close' (or the wait ended). */
  waitClosed(ms: number): Promise<boolean>
}

function trackSocket(ws: WebSocket): TesteeSocket {
  let closed = false
  const waiters: Array<() => void> = []
  const socket: TesteeSocket = {
    ws,
    errors: [],
    get closed() {
      return closed
    },
    waitClosed(ms: number) {
      if (closed) return Promise.resolve(true)
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(closed), ms)
        waiters.push(() => {
          clearTimeout(timer)
          resolve(true)
        })
      })
    },
  }
  ws.on('message', (data, isBinary) => {
    // The application under test: echo with the same type. A throw here would be a
    // testee bug (and would take the suite down): it is recorded instead.
    try {
      ws.send(data as Buffer, { binary: isBinary })
    } catch (error) {
      socket.errors.push(`ws.send() threw in the message handler: ${(error as Error).message}`)
    }
  })
  ws.on('error', () => {})
  ws.on('close', () => {
    closed = true
    for (const waiter of waiters.splice(0)) waiter()
  })
  return socket
}

/** A tether echo server. Connections are found by request path (one case per path). */
class EchoServer {
  readonly wss: WebSocketServer
  readonly port: number
  private readonly sockets = new Map<string, TesteeSocket>()
  private readonly waiting = new Map<string, (socket: TesteeSocket) => void>()

  private constructor(wss: WebSocketServer, port: number) {
    this.wss = wss
    this.port = port
    wss.on('connection', (ws, request) => {
      const socket = trackSocket(ws)
      const path = request.url ?? ''
      this.sockets.set(path, socket)
      this.waiting.get(path)?.(socket)
    })
  }

  static async start(deflate: boolean, transport: Transport): Promise<EchoServer> {
    // Default limits: groups 9.3 and 9.4 (4 MiB in 64-byte fragments, 65,536 frames) must pass with them (issue 13).
    const wss = new WebSocketServer({ host: HOST, port: 0, perMessageDeflate: deflate ? { threshold: 0 } : false, ...(transport === 'h2' ? { http2: true } : {}) })
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve)
      wss.once('error', reject)
    })
    const address = wss.address()
    return new EchoServer(wss, typeof address === 'object' && address ? address.port : 0)
  }

  /** The server-side socket of the connection to `path`, once it exists (bounded). */
  socketFor(path: string, ms: number): Promise<TesteeSocket | undefined> {
    const known = this.sockets.get(path)
    if (known) return Promise.resolve(known)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(path)
        resolve(undefined)
      }, ms)
      this.waiting.set(path, (socket) => {
        clearTimeout(timer)
        this.waiting.delete(path)
        resolve(socket)
      })
    })
  }

  forget(path: string): void {
    this.sockets.delete(path)
  }

  async stop(): Promise<void> {
    for (const client of this.wss.clients) client.terminate()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }
}

/** Runs the selected cases in one role. */
export async function runRole(role: Role, options: SuiteOptions = {}): Promise<CaseResult[]> {
  const cases = selectCases(options)
  const results: CaseResult[] = []
  const transport = options.transport ?? 'tcp'
  const env = role === 'server' ? await ServerEnv.start(transport) : await ClientEnv.start(transport)
  const deadline = options.budgetMs === undefined ? Infinity : now() + options.budgetMs
  try {
    for (const c of cases) {
      const result = now() < deadline
        ? await runCase(c, role, env)
        : {
            id: c.id,
            group: c.group,
            description: role === 'client' && c.clientDescription ? c.clientDescription : c.description,
            role,
            verdict: 'FAILED' as const,
            reason: `not run: the time budget of ${options.budgetMs} ms for this role was used up`,
            durationMs: 0,
          }
      results.push(result)
      options.onResult?.(result)
    }
  } finally {
    await env.stop()
  }
  return results
}

/** A connection to drive, however it was made, and what to check at the end. */
interface Connected {
  wire: Wire
  testee: TesteeSocket | undefined
  /** Permessage-deflate as agreed, if it was. */
  deflate: boolean
  problems: string[]
}

interface Env {
  connect(c: ConformanceCase, state: CaseState): Promise<Connected>
  stop(): Promise<void>
}

/** What a running case has opened, so a timeout can tear it down. */
interface CaseState {
  wire?: Wire
  testee?: TesteeSocket
  client?: WebSocket
}

class ServerEnv implements Env {
  private readonly plain: EchoServer
  private readonly deflating: EchoServer
  private readonly transport: Transport
  /** Over HTTP/2: one connection per server, its streams the cases' WebSockets (a new one if it was lost). */
  private readonly sessions = new Map<EchoServer, ClientHttp2Session>()

  private constructor(plain: EchoServer, deflating: EchoServer, transport: Transport) {
    this.plain = plain
    this.deflating = deflating
    this.transport = transport
  }

  static async start(transport: Transport): Promise<ServerEnv> {
    return new ServerEnv(await EchoServer.start(false, transport), await EchoServer.start(true, transport), transport)
  }

  private async session(server: EchoServer): Promise<ClientHttp2Session> {
    const known = this.sessions.get(server)
    if (known !== undefined && !known.closed && !known.destroyed) return known
    const session = http2.connect(`http://${HOST}:${server.port}`)
    session.on('error', () => {})
    this.sessions.set(server, session)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no HTTP/2 SETTINGS within ${HANDSHAKE_WAIT} ms`)), HANDSHAKE_WAIT)
      session.once('remoteSettings', () => {
        clearTimeout(timer)
        resolve()
      })
    })
    return session
  }

  async connect(c: ConformanceCase, state: CaseState): Promise<Connected> {
    const server = c.deflate ? this.deflating : this.plain
    const path = `/case/${c.id}`
    const options = { path, extensions: c.deflate?.offer, ms: HANDSHAKE_WAIT }
    const { wire, head } = this.transport === 'h2'
      ? await connectRawH2Client(await this.session(server), `${HOST}:${server.port}`, options)
      : await connectRawClient(server.port, options)
    state.wire = wire
    const problems: string[] = []
    const testee = await server.socketFor(path, HANDSHAKE_WAIT)
    server.forget(path)
    if (testee === undefined) problems.push('the server emitted no connection event')
    else state.testee = testee
    let deflate = false
    if (c.deflate) {
      const checked = checkServerAnswer(c.deflate, headerOf(head, 'sec-websocket-extensions'))
      problems.push(...checked.problems)
      if (checked.agreed) {
        deflate = true
        wire.deflate = peerDeflate(checked.agreed, 'client', checked.peerTakeover, !checked.agreed.serverNoContextTakeover)
      }
    } else if (headerOf(head, 'sec-websocket-extensions') !== undefined) {
      problems.push('extensions answered although none were offered')
    }
    return { wire, testee, deflate, problems }
  }

  async stop(): Promise<void> {
    for (const session of this.sessions.values()) session.destroy()
    await this.plain.stop()
    await this.deflating.stop()
  }
}

class ClientEnv implements Env {
  private readonly raw: RawServer | RawH2Server
  private readonly port: number
  private readonly transport: Transport

  private constructor(raw: RawServer | RawH2Server, port: number, transport: Transport) {
    this.raw = raw
    this.port = port
    this.transport = transport
  }

  static async start(transport: Transport): Promise<ClientEnv> {
    const raw = transport === 'h2' ? new RawH2Server() : new RawServer()
    return new ClientEnv(raw, await raw.listen(), transport)
  }

  async connect(c: ConformanceCase, state: CaseState): Promise<Connected> {
    const spec = c.deflate
    const accepted = this.raw.accept(() => (spec?.answer ? { extensions: spec.answer } : {}), HANDSHAKE_WAIT)
    // Groups 12 and 13 configure compression; elsewhere the client offers it by default and the server declines.
    // Over HTTP/2 every case's WebSocket is a stream of the client's one pooled connection to the raw server.
    const ws = new WebSocket(`ws://${HOST}:${this.port}/case/${c.id}`, {
      perMessageDeflate: spec ? { threshold: 0, ...spec.client } : true,
      ...(this.transport === 'h2' ? { http2: true } : {}),
    })
    state.client = ws
    const testee = trackSocket(ws)
    state.testee = testee
    const opened = new Promise<string | undefined>((resolve) => {
      ws.once('open', () => resolve(undefined))
      ws.once('close', (code) => resolve(`the client closed (${code}) instead of opening`))
    })
    const { wire, head } = await accepted
    state.wire = wire
    const problems: string[] = []
    let deflate = false
    if (spec) {
      const checked = checkClientOffer(spec, headerOf(head, 'sec-websocket-extensions'))
      problems.push(...checked.problems)
      if (checked.agreed) {
        deflate = true
        wire.deflate = peerDeflate(checked.agreed, 'server', !checked.agreed.serverNoContextTakeover, checked.testeeTakeover)
      }
    }
    // The peer may start sending at once (frames can arrive with the 101); 'open' must still follow.
    void opened.then((problem) => {
      if (problem !== undefined) problems.push(problem)
      else if (spec && ws.extensions !== (deflate ? 'permessage-deflate' : '')) problems.push(`ws.extensions is "${ws.extensions}"`)
    })
    return { wire, testee, deflate, problems }
  }

  async stop(): Promise<void> {
    await this.raw.close()
  }
}

/** The peer's compressor and its check of the testee's messages, from what was agreed. */
function peerDeflate(agreed: DeflateAgreement, peer: 'client' | 'server', peerTakeover: boolean, testeeTakeover: boolean): PeerDeflate {
  return peer === 'client'
    ? new PeerDeflate({ sendBits: agreed.clientMaxWindowBits, sendTakeover: peerTakeover, recvBits: agreed.serverMaxWindowBits, recvTakeover: testeeTakeover })
    : new PeerDeflate({ sendBits: agreed.serverMaxWindowBits, sendTakeover: peerTakeover, recvBits: agreed.clientMaxWindowBits, recvTakeover: testeeTakeover })
}

async function runCase(c: ConformanceCase, role: Role, env: Env): Promise<CaseResult> {
  const started = now()
  const plan = c.plan()
  const state: CaseState = {}
  const limit = c.timeoutMs ?? CASE_TIMEOUT
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), limit)
  })
  let observation: Observation
  try {
    const outcome = await Promise.race([play(c, plan, role, env, state), timeout])
    observation = outcome === 'timeout' ? timedOut(role, state, `case timed out after ${limit} ms`) : outcome
  } catch (error) {
    observation = timedOut(role, state, (error as Error).message)
    observation.timedOut = undefined
    observation.problems.push((error as Error).message)
  } finally {
    clearTimeout(timer)
    state.wire?.destroy()
    if (state.client && state.client.readyState !== state.client.CLOSED) state.client.terminate()
  }
  const { verdict, reason } = judge(plan, observation)
  const end = observation.closedAt ?? now()
  return {
    id: c.id,
    group: c.group,
    description: role === 'client' && c.clientDescription ? c.clientDescription : c.description,
    role,
    verdict,
    reason,
    durationMs: Math.round(end - started),
  }
}

function timedOut(role: Role, state: CaseState, reason: string): Observation {
  const wire = state.wire
  return {
    role,
    items: wire?.items ?? [],
    violations: wire?.violations ?? [],
    testeeClose: wire?.testeeClose,
    peerCloseAt: wire?.peerCloseAt,
    peerAnsweredClose: wire?.peerAnsweredClose ?? false,
    wrapUpClose: false,
    testeeFinAt: wire?.testeeFinAt,
    closedAt: wire?.closedAt,
    testeeEndedFirst: wire?.testeeEndedFirst ?? false,
    transportError: wire?.transportError,
    tcpOpen: wire?.closedAt === undefined,
    failFastEarly: undefined,
    problems: [],
    closeEventMissing: false,
    deflate: wire?.deflate !== undefined,
    timedOut: reason,
  }
}

/** Connects, plays the steps, ends the connection and reports what was seen. */
async function play(c: ConformanceCase, plan: Plan, role: Role, env: Env, state: CaseState): Promise<Observation> {
  const { wire, testee, deflate, problems } = await env.connect(c, state)
  let failFastEarly: boolean | undefined
  const checkpoint = async (ms: number): Promise<void> => {
    failFastEarly = await wire.until(() => wire.testeeGaveUp, ms)
  }
  const itemsWait = c.group === 9 ? ITEMS_WAIT_LARGE : c.group >= 12 ? ITEMS_WAIT_DEFLATE : ITEMS_WAIT

  for (const step of plan.steps) {
    switch (step.kind) {
      case 'send': {
        const bytes = Buffer.concat(step.frames.map((frame) => wire.serialize(frame)))
        if (step.chop !== undefined) await wire.writeChopped(bytes, step.chop, step.pause)
        else wire.write(bytes)
        break
      }
      case 'pieces': {
        const bytes = wire.serialize(step.frame)
        const header = bytes.length - (step.frame.payload?.length ?? 0)
        const bounds = [0, ...step.cuts.map((cut) => header + cut), bytes.length]
        for (let i = 0; i + 1 < bounds.length; i++) {
          wire.write(bytes.subarray(bounds[i], bounds[i + 1]))
          const gap = step.gaps[i]
          if (gap === undefined || i + 2 === bounds.length) continue
          if ('pause' in gap) await delay(gap.pause)
          else await checkpoint(gap.checkpoint)
        }
        break
      }
      case 'wait':
        await delay(step.ms)
        break
      case 'checkpoint':
        await checkpoint(step.ms)
        break
      case 'deflated':
        for (const message of step.messages) {
          const compress = deflate && message.compress !== false
          const payload = compress ? await wire.deflate!.compress(message.data) : message.data
          wire.sendFrames(fragments(message.type === 'text' ? Op.Text : Op.Binary, payload, message.fragment, compress))
        }
        break
      case 'roundTrips': {
        const base = wire.items.length
        for (const [i, message] of step.messages.entries()) {
          wire.sendFrames([{ opcode: message.type === 'text' ? Op.Text : Op.Binary, payload: message.data }])
          const ok = await wire.until(() => wire.items.length > base + i || wire.settled, step.ms)
          if (!ok) {
            problems.push(`no echo of round trip ${i + 1} within ${step.ms} ms`)
            break
          }
          if (wire.settled) break
        }
        break
      }
    }
  }

  // The ending.
  let wrapUpClose = false
  if (plan.ending.by === 'peer') {
    await wire.until(() => wire.items.length >= plan.items.length || wire.settled, itemsWait)
    if (wire.peerCloseAt === undefined && !wire.testeeGaveUp) {
      await delay(SETTLE)
      wire.sendClose(1000)
    }
  } else {
    await wire.until(() => wire.testeeGaveUp, FAIL_WAIT)
    // The testee did not fail: end the connection anyway (the verdict will say so).
    if (!wire.testeeGaveUp && wire.peerCloseAt === undefined) {
      wrapUpClose = true
      wire.sendClose(1000)
    }
  }
  const tcpClosed = await wire.until(() => wire.closedAt !== undefined, TCP_WAIT)
  const closeEvent = tcpClosed && testee ? await testee.waitClosed(CLOSE_EVENT_WAIT) : true
  return {
    role,
    items: wire.items,
    violations: wire.violations,
    testeeClose: wire.testeeClose,
    peerCloseAt: wire.peerCloseAt,
    peerAnsweredClose: wire.peerAnsweredClose,
    wrapUpClose,
    testeeFinAt: wire.testeeFinAt,
    closedAt: wire.closedAt,
    testeeEndedFirst: wire.testeeEndedFirst,
    transportError: wire.transportError,
    tcpOpen: !tcpClosed,
    failFastEarly,
    problems: [...problems, ...(testee?.errors ?? [])],
    closeEventMissing: !closeEvent,
    deflate,
    timedOut: undefined,
  }
}

/** The frames of one message: RSV1 on the first only (RFC 7692 §6), split every `size` bytes. */
function fragments(opcode: number, payload: Buffer, size: number | undefined, compressed: boolean): FrameSpec[] {
  const rsv = compressed ? 4 : 0
  if (size === undefined || payload.length <= size) return [{ opcode, payload, rsv }]
  const frames: FrameSpec[] = []
  for (let at = 0; at < payload.length; at += size) {
    frames.push({
      opcode: at === 0 ? opcode : Op.Continuation,
      payload: payload.subarray(at, at + size),
      fin: at + size >= payload.length,
      rsv: at === 0 ? rsv : 0,
    })
  }
  return frames
}
