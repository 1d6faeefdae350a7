/**
 * `tether serve` settings from three sources (issue 16): the command line
 * over the environment (TETHER_*) over a config file (--config, or
 * TETHER_CONFIG) over the defaults; a wrong value is one line naming the
 * variable, or the file and its key, exit 2.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { WebSocket as WsClient } from 'ws'
import { freePort } from '../helpers/brokers.js'
import { assertOneLineError, runCli, startServe } from '../helpers/cli.js'
import { opened, waitFor } from '../helpers/net.js'

const dir = mkdtempSync(join(tmpdir(), 'tether-config-'))

function configFile(name: string, content: unknown): string {
  const file = join(dir, name)
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content))
  return file
}

describe('tether serve settings: flags > env > file > defaults', () => {
  test('the port from each source, the highest one winning', async () => {
    const [fromFile, fromEnv, fromFlag] = await Promise.all([freePort(), freePort(), freePort()])
    const file = configFile('ports.json', { port: fromFile })
    for (const [args, env, expected] of [
      [['--config', file], {}, fromFile],
      [['--config', file], { TETHER_PORT: String(fromEnv) }, fromEnv],
      [['--config', file, '--port', String(fromFlag)], { TETHER_PORT: String(fromEnv) }, fromFlag],
      [[], { TETHER_CONFIG: file }, fromFile],
    ] as const) {
      const hub = await startServe([...args], null, { env })
      try {
        assert.equal(hub.port, expected, `${args.join(' ')} ${JSON.stringify(env)}`)
      } finally {
        await hub.stop()
      }
    }
  })

  test('lists and switches: origins from the file, replaced by TETHER_ALLOW_ORIGIN; compression off from the file', async () => {
    const file = configFile('origins.json', { allowOrigin: ['https://file.example'], compression: false, maxPayload: 4096 })
    const fromFile = await startServe(['--config', file])
    try {
      const ws = await opened(new WsClient(`${fromFile.wsUrl}/echo`, { origin: 'https://file.example' }))
      assert.equal(ws.extensions, '', 'compression: false')
      ws.terminate()
      assert.equal(await status(`${fromFile.wsUrl}/echo`, 'https://env.example'), 403)
    } finally {
      await fromFile.stop()
    }
    const fromEnv = await startServe(['--config', file], 0, { env: { TETHER_ALLOW_ORIGIN: 'https://env.example, https://other.example', TETHER_COMPRESSION: 'true' } })
    try {
      const ws = await opened(new WsClient(`${fromEnv.wsUrl}/echo`, { origin: 'https://other.example' }))
      assert.match(ws.extensions, /permessage-deflate/)
      ws.terminate()
      assert.equal(await status(`${fromEnv.wsUrl}/echo`, 'https://file.example'), 403, 'the environment replaced the list')
    } finally {
      await fromEnv.stop()
    }
  })

  test('wrong settings: one line naming the variable or the file and key, exit 2', async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[], { TETHER_PORT: 'eighty' }, /^tether: TETHER_PORT must be a whole number from 0 to 65535$/m],
      [[], { TETHER_COMPRESSION: 'maybe' }, /^tether: TETHER_COMPRESSION must be true or false, not "maybe"$/m],
      [[], { TETHER_REDIS_URL: 'notaurl' }, /^tether: TETHER_REDIS_URL "notaurl" is not a URL: use redis:\/\/127\.0\.0\.1:6379$/m],
      [['--config', configFile('key.json', { maxPayLoad: 10 })], {}, /^tether: \S+key\.json: unknown key "maxPayLoad" \(did you mean "maxPayload"\?\)$/m],
      [['--config', configFile('value.json', { maxPayload: 0 })], {}, /^tether: \S+value\.json: maxPayload must be a whole number from 1 to \d+$/m],
      [['--config', configFile('type.json', { allowOrigin: [1, 2] })], {}, /^tether: \S+type\.json: allowOrigin must be a list of strings$/m],
      [['--config', configFile('choice.json', { auth: 'magic' })], {}, /^tether: \S+choice\.json: auth must be one of none, jwt, not "magic"$/m],
      [['--config', configFile('json.json', '{ "port": 80,, }')], {}, /^tether: \S+json\.json is not JSON: /m],
      [['--config', configFile('array.json', [])], {}, /^tether: \S+array\.json: expected an object of settings/m],
      [['--config', join(dir, 'missing.json')], {}, /^tether: cannot read --config \S+missing\.json: ENOENT$/m],
      // The outsider's second round: the file named by the variable was reported as --config.
      [[], { TETHER_CONFIG: join(dir, 'missing.json') }, /^tether: cannot read TETHER_CONFIG \S+missing\.json: ENOENT$/m],
      [[], { TETHER_ALLOWED_HOST: ', ,' }, /^tether: TETHER_ALLOWED_HOST has no values/m],
    ]
    for (const [args, env, expected] of cases) {
      const result = await runCli(['serve', '--port', '0', ...args], { env })
      assert.equal(result.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${result.stderr}`)
      assert.equal(result.stdout, '')
      assertOneLineError(result.stderr, expected)
    }
  })
})

describe('settings errors name their source and exit 2; numbers are decimal digits (outsider findings 7, 8)', () => {
  test('addresses, origins and a JWT without a key: one line naming the flag, the variable or the file and key, exit 2', async () => {
    const jwks = configFile('bad.jwks', '{ "keys": [1, \n')
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--trusted-proxy', 'foo'], {}, /^tether: --trusted-proxy "foo" is not an IP address or a CIDR range, e.g. 10\.0\.0\.5 or 10\.0\.0\.0\/8 \(see tether serve --help\)$/m],
      [[], { TETHER_TRUSTED_PROXY: '999.1.1.1/99' }, /^tether: TETHER_TRUSTED_PROXY "999\.1\.1\.1\/99" is not an IP address or a CIDR range/m],
      [[], { TETHER_TRUSTED_PROXY: '10.0.0.0/33' }, /^tether: TETHER_TRUSTED_PROXY "10\.0\.0\.0\/33" is not/m],
      [['--config', configFile('proxy.json', { trustedProxy: ['10.0.0.1', 'nope'] })], {}, /^tether: \S+proxy\.json: trustedProxy "nope" is not an IP address/m],
      [['--allow-origin', 'notanorigin'], {}, /^tether: --allow-origin "notanorigin" is not an origin: scheme:\/\/host\[:port\]/m],
      [[], { TETHER_ALLOW_ORIGIN: 'https://a.example/path' }, /^tether: TETHER_ALLOW_ORIGIN "https:\/\/a\.example\/path" is not an origin/m],
      [[], { TETHER_AUTH: 'jwt' }, /^tether: TETHER_AUTH jwt needs a key to verify tokens with/m],
      [['--config', configFile('tls.json', { tlsCert: join(dir, 'no-cert.pem'), tlsKey: join(dir, 'no-key.pem') })], {}, /^tether: cannot read \S+tls\.json: tlsCert \S+no-cert\.pem: ENOENT$/m],
      [['--auth', 'jwt'], { TETHER_JWT_PUBLIC_KEY: join(dir, 'no-key.pem') }, /^tether: cannot read TETHER_JWT_PUBLIC_KEY \S+no-key\.pem: ENOENT$/m],
      [['--auth', 'jwt', '--jwt-jwks', jwks], {}, /^tether: --jwt-jwks \S+bad\.jwks is not a JSON Web Key Set: /m],
      [['--auth', 'jwt'], { TETHER_JWT_SECRET: 'short' }, /^tether: TETHER_JWT_SECRET is too short/m],
    ]
    for (const [args, env, expected] of cases) {
      const result = await runCli(['serve', '--port', '0', ...args], { env })
      assert.equal(result.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${result.stderr}`)
      assertOneLineError(result.stderr, expected)
    }
  })

  test('0x50, 1e3, 2.5e4, an empty variable and a string where the file needs a number are refused', async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[], { TETHER_PORT: '0x50' }, /^tether: TETHER_PORT must be a whole number from 0 to 65535$/m],
      [[], { TETHER_PORT: '1e3' }, /^tether: TETHER_PORT must be a whole number/m],
      [['--port', '2.5e4'], {}, /^tether: --port must be a whole number from 0 to 65535 \(see tether serve --help\)$/m],
      [['--max-payload', '0x10'], {}, /^tether: --max-payload must be a whole number/m],
      [['--history-age', '1e3'], {}, /^tether: --history-age must be a number of seconds above 0/m],
      [[], { TETHER_PORT: '' }, /^tether: TETHER_PORT is empty: give it a value, or unset it for the default$/m],
      [['--config', configFile('string-port.json', { port: '25011' })], {}, /^tether: \S+string-port\.json: port must be a number$/m],
      [['--config', configFile('fraction.json', { maxPayload: 2.5 })], {}, /^tether: \S+fraction\.json: maxPayload must be a whole number/m],
    ]
    for (const [args, env, expected] of cases) {
      const result = await runCli(['serve', ...(args.includes('--port') ? [] : ['--port', '0']), ...args], { env })
      assert.equal(result.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${result.stderr}`)
      assertOneLineError(result.stderr, expected)
    }
  })

  test('a TETHER_ variable that names no setting: one warning each on stderr, and the server starts', async () => {
    const hub = await startServe([], 0, { env: { TETHER_PORTT: '9999', TETHER_NO_COMPRESSION: '1' } })
    await hub.stop()
    const warnings = hub.stderr().split('\n').filter((line) => line.startsWith('tether: warning'))
    assert.deepEqual(warnings, [
      'tether: warning: TETHER_NO_COMPRESSION is not a tether setting, ignored (did you mean TETHER_COMPRESSION?)',
      'tether: warning: TETHER_PORTT is not a tether setting, ignored (did you mean TETHER_PORT?)',
    ])
  })
})

async function status(url: string, origin: string): Promise<number> {
  const ws = new WsClient(url, { origin })
  ws.on('error', () => {})
  const [, response] = await waitFor<[unknown, import('node:http').IncomingMessage]>(ws, 'unexpected-response')
  ws.terminate()
  return response.statusCode!
}
