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
    ]
    for (const [args, env, expected] of cases) {
      const result = await runCli(['serve', '--port', '0', ...args], { env })
      assert.equal(result.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${result.stderr}`)
      assert.equal(result.stdout, '')
      assertOneLineError(result.stderr, expected)
    }
  })
})

async function status(url: string, origin: string): Promise<number> {
  const ws = new WsClient(url, { origin })
  ws.on('error', () => {})
  const [, response] = await waitFor<[unknown, import('node:http').IncomingMessage]>(ws, 'unexpected-response')
  ws.terminate()
  return response.statusCode!
}
