/**
 * graphql-ws on tether (issue 15): its server (`useServer`) on tether's
 * WebSocketServer and its client with tether's WebSocket as
 * `webSocketImpl`, both from the npm registry. Queries, subscriptions
 * streaming to two clients, refusals (onConnect says no: 4403; a subprotocol
 * it does not speak: 4406), and its keep-alive, which pings every client and
 * terminates one that does not answer: a client whose `ws.pong` was replaced
 * by a no-op (graphql-ws's own tests play an unresponsive peer so) must be
 * dropped, and the others kept.
 */
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { GraphQLInt, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, GraphQLString } from 'graphql'
import { type Client, createClient } from 'graphql-ws'
import { useServer } from 'graphql-ws/use/ws'
import { WebSocket, WebSocketServer } from 'tether-ws'
import { HOST, delay, withTimeout } from '../helpers/net.js'

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: { hello: { type: GraphQLString, args: { name: { type: GraphQLString } }, resolve: (_, { name }) => `hello ${name ?? 'world'}` } },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      count: {
        type: new GraphQLNonNull(GraphQLInt),
        args: { to: { type: new GraphQLNonNull(GraphQLInt) } },
        subscribe: async function* (_: unknown, { to }: { to: number }) {
          for (let n = 1; n <= to; n++) {
            await delay(5)
            yield { count: n }
          }
        },
      },
    },
  }),
})

interface Started {
  wss: WebSocketServer
  url: string
  requests: IncomingMessage[]
  stop(): Promise<void>
}

interface Options {
  schema: GraphQLSchema
  onConnect?: (context: { connectionParams?: Readonly<Record<string, unknown>> | undefined }) => boolean
}

async function startGraphql(options: Options = { schema }, keepAlive?: number): Promise<Started> {
  const wss = new WebSocketServer({ port: 0, host: HOST, path: '/graphql' })
  await new Promise((resolve) => wss.once('listening', resolve))
  const requests: IncomingMessage[] = []
  const disposable = useServer(
    {
      ...options,
      onConnect: (context) => {
        requests.push(context.extra.request)
        return options.onConnect ? options.onConnect(context) : true
      },
    },
    // useServer's parameter is typed as @types/ws's server class, which a tether server is not (its
    // events and options are tether's); at run time it takes any ws-compatible server, as here.
    wss as unknown as Parameters<typeof useServer>[1],
    keepAlive,
  )
  return {
    wss,
    url: `ws://${HOST}:${(wss.address() as AddressInfo).port}/graphql`,
    requests,
    stop: async () => {
      await disposable.dispose()
      await new Promise((resolve) => wss.close(resolve))
    },
  }
}

function clientFor(url: string, extra: Partial<Parameters<typeof createClient>[0]> = {}): Client {
  return createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, ...extra })
}

function query<T>(client: Client, payload: { query: string; variables?: Record<string, unknown> }): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve, reject) => {
      let result: T
      client.subscribe<T>(payload, { next: (value) => (result = value as T), error: reject, complete: () => resolve(result) })
    }),
    10_000,
    payload.query,
  )
}

describe('graphql-ws on tether', () => {
  it('answers queries and streams a subscription to two clients; the server sees an http.IncomingMessage', async () => {
    const started = await startGraphql()
    const first = clientFor(started.url)
    const second = clientFor(started.url)
    try {
      assert.deepEqual(await query(first, { query: '{ hello }' }), { data: { hello: 'hello world' } })
      assert.deepEqual(await query(second, { query: 'query ($n: String) { hello(name: $n) }', variables: { n: 'tether' } }), {
        data: { hello: 'hello tether' },
      })
      const counts = await Promise.all(
        [first, second].map((client) =>
          withTimeout(
            new Promise<number[]>((resolve, reject) => {
              const seen: number[] = []
              client.subscribe<{ count: number }>(
                { query: 'subscription { count(to: 5) }' },
                { next: (value) => seen.push(value.data!.count), error: reject, complete: () => resolve(seen) },
              )
            }),
            10_000,
            'the subscription',
          ),
        ),
      )
      assert.deepEqual(counts, [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
      assert.ok(started.requests.length >= 2)
      for (const request of started.requests) assert.ok(request instanceof (await import('node:http')).IncomingMessage)
    } finally {
      await first.dispose()
      await second.dispose()
      await started.stop()
    }
  })

  it('onConnect refusing closes with 4403 Forbidden; a subprotocol graphql-ws does not speak gets 4406', async () => {
    const started = await startGraphql({ schema, onConnect: (context) => context.connectionParams?.token === 'good' })
    try {
      const closes: number[] = []
      const refused = clientFor(started.url, { connectionParams: { token: 'bad' }, on: { closed: (event) => closes.push((event as { code: number }).code) } })
      const error = await withTimeout(
        new Promise<unknown>((resolve) => refused.subscribe({ query: '{ hello }' }, { next: () => {}, error: resolve, complete: () => resolve(undefined) })),
        10_000,
        'the refusal',
      )
      assert.equal((error as { code?: number } | undefined)?.code, 4403)
      assert.deepEqual(closes, [4403])
      await refused.dispose()

      const admitted = clientFor(started.url, { connectionParams: { token: 'good' } })
      assert.deepEqual(await query(admitted, { query: '{ hello }' }), { data: { hello: 'hello world' } })
      await admitted.dispose()

      const stranger = new WebSocket(started.url, 'not-graphql')
      const [code] = await withTimeout(
        new Promise<[number]>((resolve) => stranger.once('close', (closeCode) => resolve([closeCode]))),
        10_000,
        'the 4406 close',
      )
      assert.equal(code, 4406)
    } finally {
      await started.stop()
    }
  })

  it('keep-alive: a client that answers pings stays; one whose ws.pong was replaced by a no-op is terminated', async () => {
    const started = await startGraphql({ schema }, 100)
    const sockets: WebSocket[] = []
    // graphql-ws's client makes its WebSocket through webSocketImpl: keep them, to silence one.
    class Tracked extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args)
        sockets.push(this)
      }
    }
    const closes: Array<{ which: string; code: number }> = []
    const steady = clientFor(started.url, { webSocketImpl: Tracked, on: { closed: (event) => closes.push({ which: 'steady', code: (event as { code: number }).code }) } })
    const silent = clientFor(started.url, { webSocketImpl: Tracked, on: { closed: (event) => closes.push({ which: 'silent', code: (event as { code: number }).code }) } })
    try {
      await query(steady, { query: '{ hello }' })
      await query(silent, { query: '{ hello }' })
      assert.equal(sockets.length, 2)
      let pings = 0
      sockets[0]!.on('ping', () => pings++)
      sockets[1]!.pong = () => {}
      await withTimeout(
        (async () => {
          while (!closes.some((close) => close.which === 'silent')) await delay(20)
        })(),
        5_000,
        'the silent client to be terminated',
      )
      // Terminated by the server: no close frame, so the client sees 1006.
      assert.deepEqual(closes, [{ which: 'silent', code: 1006 }])
      await delay(400)
      assert.ok(pings >= 3, `the steady client kept answering (${pings} pings)`)
      assert.deepEqual(await query(steady, { query: '{ hello }' }), { data: { hello: 'hello world' } })
      assert.equal(closes.length, 1)
    } finally {
      await steady.dispose()
      await silent.dispose()
      await started.stop()
    }
  })
})
