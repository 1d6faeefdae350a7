/**
 * Connecting a broker backplane fails loudly (issue 13, part 5): a refused
 * port rejects at once, an address that accepts TCP and never answers
 * rejects at `connectTimeout`, both with an Error naming the URL, and what
 * the attempt opened is closed, so a process can exit after it.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { Backplane } from '../../src/pubsub/index.js'
import { NatsBackplane } from '../../src/pubsub/nats.js'
import { RedisBackplane } from '../../src/pubsub/redis.js'
import { freePort, startSilentServer, type SilentServer } from '../helpers/brokers.js'
import { HOST, ROOT, until, withTimeout } from '../helpers/net.js'

const KINDS = [
  { kind: 'redis', name: 'Redis', scheme: 'redis' },
  { kind: 'nats', name: 'NATS', scheme: 'nats' },
] as const

function connect(kind: 'redis' | 'nats', url: string, connectTimeout?: number): Promise<Backplane> {
  return kind === 'redis' ? RedisBackplane.connect({ url, connectTimeout }) : NatsBackplane.connect({ servers: url, connectTimeout })
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

let silent: SilentServer | undefined
after(async () => {
  await silent?.stop()
})

for (const { kind, name, scheme } of KINDS) {
  describe(`${name} backplane connect`, () => {
    test('a refused port rejects at once (not at the timeout), naming the URL', async () => {
      const url = `${scheme}://${HOST}:${await freePort()}`
      // A minute of connectTimeout: only a refusal seen at once can settle within the bound below.
      await assert.rejects(withTimeout(connect(kind, url, 60_000), 15_000, `${kind} connect to a refused port`), (error: Error) => {
        assert.match(error.message, new RegExp(`^Could not connect the ${name} backplane to ${escape(url)}: `))
        assert.match(error.message, /ECONNREFUSED|CONNECTION_REFUSED/)
        assert.doesNotMatch(error.message, /connectTimeout/)
        return true
      })
    })

    test('an address that accepts and never answers rejects at connectTimeout and closes its socket', async () => {
      silent ??= await startSilentServer()
      const before = silent.accepted
      const url = `${scheme}://${HOST}:${silent.port}`
      await assert.rejects(withTimeout(connect(kind, url, 300), 15_000, `${kind} connect to a silent port`), (error: Error) => {
        assert.equal(error.message, `Could not connect the ${name} backplane to ${url}: no answer within 300 ms (connectTimeout)`)
        return true
      })
      assert.ok(silent.accepted > before, 'the client did connect (TCP) before giving up')
      await until(() => silent!.open === 0, 10_000, 'the client to close its socket to the silent server')
    })

    test('credentials in the URL stay out of the message', async () => {
      const url = `${scheme}://user:s3cret@${HOST}:${await freePort()}`
      await assert.rejects(withTimeout(connect(kind, url), 15_000), (error: Error) => {
        assert.doesNotMatch(error.message, /s3cret|user/)
        assert.match(error.message, new RegExp(`to ${scheme}://\\*\\*\\*@${escape(HOST)}:`))
        return true
      })
    })

    test('a bad connectTimeout is a TypeError that says what to use', async () => {
      for (const bad of [0, -1, Number.NaN, Infinity, '5000', 2 ** 31]) {
        await assert.rejects(connect(kind, `${scheme}://${HOST}:1`, bad as number), (error: Error) => {
          assert.ok(error instanceof TypeError, String(error))
          assert.match(error.message, /connectTimeout must be a number of milliseconds from 1 to 2147483647/)
          return true
        })
      }
    })

    test('a process whose connects failed (refused, then silent) exits by itself', async () => {
      silent ??= await startSilentServer()
      const refused = `${scheme}://${HOST}:${await freePort()}`
      const quiet = `${scheme}://${HOST}:${silent.port}`
      const module = `tether-ws/pubsub/${kind}`
      const call = kind === 'redis' ? '{ url, connectTimeout: 300 }' : '{ servers: url, connectTimeout: 300 }'
      // No process.exit: the child ends only if every socket and timer of both attempts was released.
      const script = `
        const { ${name === 'Redis' ? 'RedisBackplane' : 'NatsBackplane'}: Backplane } = await import(${JSON.stringify(module)})
        for (const url of ${JSON.stringify([refused, quiet])}) {
          await Backplane.connect(${call}).then(() => console.log('connected?!'), (error) => console.log(error.message))
        }`
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (chunk) => (stdout += chunk))
      child.stderr.on('data', (chunk) => (stderr += chunk))
      const status = await withTimeout(
        new Promise<number | null>((resolve) => child.once('close', resolve)),
        15_000,
        'the child to exit on its own',
      ).catch((error) => {
        child.kill('SIGKILL')
        throw new Error(`${(error as Error).message}\nstdout: ${stdout}\nstderr: ${stderr}`)
      })
      assert.equal(status, 0, stderr)
      const lines = stdout.trim().split('\n')
      assert.equal(lines.length, 2, stdout)
      assert.match(lines[0]!, new RegExp(`^Could not connect the ${name} backplane to ${escape(refused)}: .*(ECONNREFUSED|CONNECTION_REFUSED)`))
      assert.equal(lines[1], `Could not connect the ${name} backplane to ${quiet}: no answer within 300 ms (connectTimeout)`)
      assert.equal(stderr, '')
    })
  })
}
