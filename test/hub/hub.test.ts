/**
 * The hub as a library (`createHub`, tether/hub): tokens (where they travel,
 * what they grant, expiry and refresh), apps that throw, and the topic
 * listener mechanism, over real sockets on loopback.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { SignJWT, exportJWK } from 'jose'
import { WebSocket as WsClient } from 'ws'
import { type App, type Hub, type HubConfig, createHub } from '../../src/hub/index.js'
import { Inbox, closed, delay, opened, until } from '../helpers/net.js'

const SECRET = 'a test secret that is long enough for HS256'
const hubs: Hub[] = []
after(async () => {
  for (const hub of hubs) await hub.close()
})

async function start(config: Partial<HubConfig> = {}, apps?: App[]): Promise<Hub> {
  const hub = await createHub({ port: 0, log: () => {}, ...config }, apps)
  hubs.push(hub)
  return hub
}

async function token(claims: Record<string, unknown>, expiresIn = '1h', key: Parameters<SignJWT['sign']>[0] = new TextEncoder().encode(SECRET), alg = 'HS256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt().setExpirationTime(expiresIn).sign(key)
}

/** Opens a WebSocket; resolves with it, or with the HTTP status that refused it. */
function connect(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WsClient | number> {
  const ws = new WsClient(url, protocols, { headers })
  ws.on('error', () => {})
  return new Promise((resolve) => {
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_request, response) => {
      ws.terminate()
      resolve(response.statusCode ?? 0)
    })
  })
}

const ws = (url: string) => url.replace(/^http/, 'ws')

describe('hub: tokens (--auth jwt)', () => {
  test('a token from the subprotocol, a cookie or the query; none or a bad one: 401', async () => {
    const hub = await start({ auth: { kind: 'jwt', secret: SECRET } })
    const good = await token({ sub: 'ada', tether: { subscribe: ['news'], publish: ['news'] } })
    const url = `${ws(hub.url)}/topics/news`
    const viaProtocol = await connect(url, ['tether', `tether.bearer.${good}`])
    assert.ok(viaProtocol instanceof WsClient)
    assert.equal(viaProtocol.protocol, 'tether', 'the hub selects tether, never the token')
    const viaCookie = await connect(url, [], { Cookie: `tether_token=${good}` })
    assert.ok(viaCookie instanceof WsClient)
    const viaQuery = await connect(`${url}?token=${good}`)
    assert.ok(viaQuery instanceof WsClient)
    assert.equal(await connect(url), 401)
    assert.equal(await connect(url, ['tether', 'tether.bearer.not.a.token']), 401)
    const otherKey = await token({ sub: 'eve', tether: { subscribe: ['*'] } }, '1h', new TextEncoder().encode('another secret, not the hub one!!!'))
    assert.equal(await connect(url, ['tether', `tether.bearer.${otherKey}`]), 401)
    const expired = await token({ sub: 'old', tether: { subscribe: ['*'] } }, '-1s')
    assert.equal(await connect(url, ['tether', `tether.bearer.${expired}`]), 401)
    assert.ok(hub.wss.limitStats.authRefused >= 4)
    for (const socket of [viaProtocol, viaCookie, viaQuery]) (socket as WsClient).terminate()
  })

  test('claims grant topics: subscribe elsewhere is 403, publishing elsewhere closes with 1008', async () => {
    const hub = await start({ auth: { kind: 'jwt', secret: SECRET } })
    const reader = await token({ sub: 'reader', tether: { subscribe: ['news.*'], publish: [] } })
    assert.equal(await connect(`${ws(hub.url)}/topics/sport`, ['tether', `tether.bearer.${reader}`]), 403)
    const socket = (await connect(`${ws(hub.url)}/topics/news.eu`, ['tether', `tether.bearer.${reader}`])) as WsClient
    const gone = closed(socket)
    socket.send('may I?')
    const [code, reason] = await gone
    assert.equal(code, 1008)
    assert.match(reason, /not allowed to publish on news\.eu/)
    const none = await token({ sub: 'nobody' })
    assert.equal(await connect(`${ws(hub.url)}/topics/news.eu`, ['tether', `tether.bearer.${none}`]), 403, 'no claim, no topic')
  })

  test('chat with a token: the nickname is the token\'s subject; a room it may not use is refused', async () => {
    const hub = await start({ auth: { kind: 'jwt', secret: SECRET } })
    const ada = await token({ sub: 'ada', tether: { subscribe: ['chat:lab'], publish: ['chat:lab'] } })
    const socket = (await connect(`${ws(hub.url)}/chat/ws`, ['tether', `tether.bearer.${ada}`])) as WsClient
    const inbox = new Inbox(socket)
    socket.send(JSON.stringify({ type: 'join', room: 'other', nick: 'ada' }))
    assert.equal(JSON.parse(String((await inbox.one()).data)).code, 'not-allowed')
    socket.send(JSON.stringify({ type: 'join', room: 'lab', nick: 'admin' }))
    const welcome = JSON.parse(String((await inbox.one()).data))
    assert.deepEqual([welcome.type, welcome.nick], ['welcome', 'ada'], 'nobody speaks as someone else')
    socket.terminate()
  })

  test('a connection whose token expires is closed with 4001, unless it sends a fresh token in time', async () => {
    const hub = await start({ auth: { kind: 'jwt', secret: SECRET } })
    const claims = { sub: 'ada', tether: { subscribe: ['news'], publish: ['news'] } }
    const short = await token(claims, '2s')
    const lapsing = (await connect(`${ws(hub.url)}/topics/news`, ['tether', `tether.bearer.${short}`])) as WsClient
    const refreshing = (await connect(`${ws(hub.url)}/topics/news`, ['tether', `tether.bearer.${short}`])) as WsClient
    refreshing.send(JSON.stringify({ type: 'tether.auth', token: await token(claims, '1h') }))
    const [code, reason] = await closed(lapsing, 10_000)
    assert.deepEqual([code, reason], [4001, 'token expired'])
    await delay(500)
    assert.equal(refreshing.readyState, WsClient.OPEN, 'refreshed in time')
    assert.equal(hub.stats.tokensRefreshed, 1)
    assert.equal(hub.stats.tokensExpired, 1)
    // A fresh token for someone else is refused.
    const gone = closed(refreshing)
    refreshing.send(JSON.stringify({ type: 'tether.auth', token: await token({ ...claims, sub: 'eve' }) }))
    assert.equal((await gone)[0], 1008)
  })

  test('RS256 with a public key (PEM), and ES256 with a JSON Web Key Set', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const rsHub = await start({ auth: { kind: 'jwt', publicKey: pem } })
    const rsToken = await token({ sub: 'a', tether: { subscribe: ['x'] } }, '1h', rsa.privateKey, 'RS256')
    const rsSocket = await connect(`${ws(rsHub.url)}/topics/x`, ['tether', `tether.bearer.${rsToken}`])
    assert.ok(rsSocket instanceof WsClient)
    rsSocket.terminate()
    // An HMAC token signed with the public key as its secret (algorithm confusion) is refused.
    const confused = await token({ sub: 'a', tether: { subscribe: ['x'] } }, '1h', new TextEncoder().encode(pem), 'HS256')
    assert.equal(await connect(`${ws(rsHub.url)}/topics/x`, ['tether', `tether.bearer.${confused}`]), 401)

    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256' }
    const esHub = await start({ auth: { kind: 'jwt', jwks: { keys: [jwk] } } })
    const esToken = await new SignJWT({ sub: 'b', tether: { subscribe: ['y'] } }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('1h').sign(ec.privateKey)
    const esSocket = await connect(`${ws(esHub.url)}/topics/y`, ['tether', `tether.bearer.${esToken}`])
    assert.ok(esSocket instanceof WsClient)
    esSocket.terminate()
  })
})

describe('hub: apps and listeners that throw (the process stays up)', () => {
  test('an app that throws on a message: its client is closed with 1011, counted, and the hub serves on', async () => {
    const faulty: App = {
      name: 'faulty',
      route: { path: '/faulty' },
      open() {},
      message() {
        throw new Error('bug in the app')
      },
    }
    const lines: string[] = []
    const hub = await createHub({ port: 0, log: (line) => lines.push(line) }, [faulty])
    hubs.push(hub)
    const socket = (await connect(`${ws(hub.url)}/faulty`)) as WsClient
    const gone = closed(socket)
    socket.send('boom')
    assert.deepEqual(await gone, [1011, 'internal error'])
    assert.equal(hub.stats.appErrors, 1)
    assert.ok(lines.some((line) => /app faulty threw: bug in the app/.test(line)))
    const again = await connect(`${ws(hub.url)}/faulty`)
    assert.ok(again instanceof WsClient, 'still serving')
    again.terminate()
  })

  test('a topic listener that throws (an app observing a topic): counted, reported, delivery goes on', async () => {
    let calls = 0
    const observing: App = {
      name: 'observing',
      route: { path: '/observe' },
      start(services) {
        services.onPublish('app:observing:t', () => {
          calls++
          throw new Error('listener bug')
        })
      },
      open(client) {
        client.subscribe('app:observing:t', 't')
      },
      message(client, data) {
        client.publish('app:observing:t', 't', data)
      },
    }
    const hub = await createHub({ port: 0, log: () => {} }, [observing])
    hubs.push(hub)
    const socket = (await connect(`${ws(hub.url)}/observe`)) as WsClient
    const inbox = new Inbox(socket)
    socket.send('one')
    socket.send('two')
    const received = await inbox.next(2)
    assert.deepEqual(received.map((m) => String(m.data)), ['one', 'two'])
    await until(() => calls === 2)
    assert.equal(hub.stats.appErrors, 2)
    socket.terminate()
  })
})
