/**
 * The seam between the hub and its apps (echo, relay, chat, scores): an app
 * declares where it is reached and reacts to clients; the hub owns
 * everything else (HTTP, origins, tokens, limits, errors).
 *
 * Rule 1: an app never sees a client it may not serve: the hub checked the
 * route, the origin and the token before calling `open`.
 * Rule 2: what an app throws is caught by the hub, counted and reported,
 * and the client's connection closed with 1011; the process goes on.
 * Rule 3: an app publishes and subscribes through its `HubClient` and
 * `AppServices`, on topic names the hub namespaces (topics.ts), with the
 * client's permissions and publish limits applied. An app that keeps a log
 * declares it (`history`) and appends to it through `AppServices.history`;
 * clients read it on `/v1` and cannot write it (history.ts).
 */
import type { WebSocket } from 'tether-ws'
import type { DeliverySession, Position } from 'tether-ws/pubsub'
import type { Identity } from './auth.js'
import type { AppHistory } from './history.js'
import type { HubError } from './wire.js'

/** Where an app is reached: one path, or every path under a prefix (the rest is the app's parameter). */
export type Route = { path: string } | { prefix: string }

export type PublishOutcome = 'published' | 'not-allowed' | 'dropped' | 'closed'

/** Whether a client may publish a message now: `ok`, or why not (as `PublishOutcome`). */
export type AdmitOutcome = 'ok' | 'not-allowed' | 'dropped' | 'closed'

/** A refusal of an upgrade: HTTP status and a one-line reason. */
export interface Refusal {
  status: number
  message: string
  /** What metrics count it under (default `authenticate`): `path` for no endpoint, `host` for a Host not served. */
  reason?: 'authenticate' | 'path' | 'host'
}

/** A client of an app. */
export interface HubClient {
  readonly ws: WebSocket
  readonly identity: Identity
  /** The rest of the path after a prefix route, decoded (e.g. the relay's topic). */
  readonly param: string
  /** Sends a JSON message. */
  send(message: object): void
  /** Tells the client about a problem it caused, with a stable code (and the id of the request it answers, if any). */
  error(code: HubError['code'], message: string, id?: string): void
  /**
   * Publishes for this client on an internal topic, named for permissions
   * and limits by its public name. `published`; `not-allowed` (the token does
   * not grant it: the app says so, or closes); `dropped` (over the publish
   * limit with the `drop` action: counted); `closed` (over the limit with the
   * `close` action: the hub closed the connection with 1008).
   */
  publish(internalTopic: string, publicName: string, data: Buffer | string, options?: { binary?: boolean }): PublishOutcome
  /**
   * Checks a message of `bytes` bytes the client would publish on
   * `publicName` against its permission and publish limits, as `publish`
   * does, without publishing it (the app then writes it elsewhere, e.g. to a
   * history topic): `ok`, or the outcome `publish` would have had.
   * `overLimit: 'refuse'`: over the connection's limit, `dropped` instead of
   * closing it (tether.v1, whose client sends a refused message again later,
   * in order).
   */
  admit(publicName: string, bytes: number, overLimit?: 'close' | 'refuse'): AdmitOutcome
  /** Subscribes to an internal topic if the client may (public name for the permission). */
  subscribe(internalTopic: string, publicName: string): boolean
}

/** Topic history for apps (history.ts): an app's own topics, `$APP:NAME` on `/v1`. */
export interface HistoryServices {
  /**
   * Appends to this app's history topic NAME (declared in `App.history`) as
   * the app: no client permission or limit applies, and only the app can
   * (history.ts Rule 1). Resolves with the position once the store has it,
   * the same on every node; a `key` already appended within the topic's
   * window is not appended again (its answer is the position it has).
   */
  append(name: string, data: string | Uint8Array, options?: { key?: string }): Promise<Position>
  /** Serves tether.v1 to a client, with its permissions and publish limits (the `/v1` door). */
  serve(client: HubClient): DeliverySession
  /** The store's kind and the delivery node's counters (for /health). */
  stats(): object
}

/** What the hub gives apps for themselves (not on behalf of a client). */
export interface AppServices {
  /** This node's id (random per process). */
  readonly node: string
  /** Publishes as the app itself: no client permission or limit applies. */
  publish(internalTopic: string, data: Buffer | string, options?: { local?: boolean; key?: string; binary?: boolean }): void
  /** Calls `listener` with every message on an internal topic, from any node; its throws are caught (Rule 2). */
  onPublish(internalTopic: string, listener: (data: Buffer, isBinary: boolean) => void): () => void
  /** Sets a topic's slow-consumer policy. */
  setTopicPolicy(internalTopic: string, policy: { policy?: 'drop' | 'close' | 'latest'; backpressureLimit?: number }): void
  /** Topic history: this app's own topics, and tether.v1 sessions. */
  readonly history: HistoryServices
  /** A line for the operator. */
  log(line: string): void
}

export interface App {
  readonly name: string
  readonly route: Route
  /** The app keeps history on its topics: served read-only on `/v1` as `$NAME:TOPIC` (history.ts). */
  readonly history?: AppHistory
  /** Checks an upgrade before it is accepted (e.g. the relay's topic name); a refusal gets its status. */
  check?(param: string, identity: Identity): Refusal | undefined
  /** Work before the hub listens (connecting a broker); a rejection stops the hub from starting. */
  prepare?(): Promise<void>
  /** Starts the app (timers, observers). */
  start?(services: AppServices): void
  /** A client connected (Rule 1). */
  open(client: HubClient): void
  /** A message from the client (never a `tether.auth` one: the hub takes those). */
  message?(client: HubClient, data: Buffer, isBinary: boolean): void
  /** The client's connection closed. */
  close?(client: HubClient): void
  /**
   * The backplane is back after an outage: what the app told other nodes meanwhile was not sent, so it
   * may tell it again now (the chat repeats who is in its rooms).
   */
  backplaneReconnected?(): void
  /** Stops timers and closes what `prepare` opened; called once at shutdown (awaited). */
  stop?(): void | Promise<void>
  /** What the app reports in /health. */
  summary?(): unknown
}
