/**
 * Real brokers for the backplane tests: Debian's `redis-server` and
 * `nats-server`, started on 127.0.0.1 on a free port, stopped by the test.
 * `restart()` stops the process and starts a new one on the same port, as
 * an outage would.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HOST, withTimeout } from './net.js'

export interface Broker {
  readonly kind: 'redis' | 'nats'
  readonly port: number
  readonly url: string
  stop(): Promise<void>
  /** Starts it again on its port; `wipe` deletes what it persisted first (a broker that lost its disk). */
  start(options?: { wipe?: boolean }): Promise<void>
}

export interface BrokerOptions {
  /** nats-server with JetStream (`-js`), storing in a directory of its own. */
  jetstream?: boolean
  /** redis-server with an append-only file written before each answer (`appendfsync always`), so a restart keeps the data. */
  persist?: boolean
}

/** The broker's executable: on PATH, or where Debian puts it (nats-server is in /usr/sbin). */
export function executable(name: string): string {
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()
  if (onPath) return onPath
  for (const candidate of [`/usr/sbin/${name}`, `/usr/bin/${name}`]) if (existsSync(candidate)) return candidate
  // The tests fail, not skip, when a broker is missing: CI installs both.
  throw new Error(`${name} is not installed (Debian package ${name}; .ci/run installs it)`)
}

export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Starts a broker process and waits until it accepts TCP connections. */
export async function startBroker(kind: 'redis' | 'nats', options: BrokerOptions = {}): Promise<Broker> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const dir = options.jetstream || options.persist ? mkdtempSync(join(tmpdir(), `tether-${kind}-`)) : undefined
  const start = async (startOptions: { wipe?: boolean } = {}): Promise<void> => {
    if (startOptions.wipe && dir !== undefined) {
      for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true })
    }
    const persistence = options.persist ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir!] : ['--appendonly', 'no']
    const [command, args] =
      kind === 'redis'
        ? [executable('redis-server'), ['--port', String(port), '--bind', HOST, '--save', '', ...persistence]]
        : [executable('nats-server'), ['-a', HOST, '-p', String(port), ...(options.jetstream ? ['-js', '-sd', dir!] : [])]]
    const spawned = spawn(command, args, { stdio: 'ignore' })
    child = spawned
    const failed = new Promise<never>((_, reject) => spawned.once('error', reject))
    await withTimeout(Promise.race([failed, acceptsConnections(port)]), 10_000, `${kind} to start`)
  }
  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGKILL')
    await withTimeout(exited, 10_000, `${kind} to stop`)
  }
  await start()
  return {
    kind,
    port,
    url: kind === 'redis' ? `redis://${HOST}:${port}` : `nats://${HOST}:${port}`,
    start,
    async stop() {
      await stop()
    },
  }
}

async function acceptsConnections(port: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST)
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listens on port ${port}`)
}

/** A TCP server that accepts connections and never says a word: a broker that does not answer. */
export interface SilentServer {
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: number
  /** Accepted connections the client has not closed yet. */
  readonly open: number
  stop(): Promise<void>
}

export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const server = net.createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    // Read (and ignore) what the client says, so that its close is seen.
    socket.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    get accepted() {
      return accepted
    },
    get open() {
      return sockets.size
    },
    async stop() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * A TCP relay on loopback in front of a broker, for outages that are exact:
 * `hold()` swallows what clients send from then on (the broker never gets it),
 * `cut()` drops every relayed connection with what was held, and new
 * connections are relayed normally again.
 */
export interface Relay {
  readonly port: number
  hold(): void
  cut(): void
  stop(): Promise<void>
}

export async function startRelay(targetPort: number): Promise<Relay> {
  const pairs = new Set<[net.Socket, net.Socket]>()
  let holding = false
  const server = net.createServer((client) => {
    const broker = net.connect(targetPort, HOST)
    const pair: [net.Socket, net.Socket] = [client, broker]
    pairs.add(pair)
    const drop = (): void => {
      pairs.delete(pair)
      client.destroy()
      broker.destroy()
    }
    for (const socket of pair) socket.on('error', drop).on('close', drop)
    client.on('data', (chunk) => {
      if (!holding) broker.write(chunk)
    })
    broker.on('data', (chunk) => client.write(chunk))
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  const cut = (): void => {
    for (const [client, broker] of [...pairs]) {
      client.destroy()
      broker.destroy()
    }
    pairs.clear()
    holding = false
  }
  return {
    port: (server.address() as net.AddressInfo).port,
    hold() {
      holding = true
    },
    cut,
    async stop() {
      cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

export interface ForwardProxy {
  readonly port: number
  readonly url: string
  stop(): Promise<void>
}

/**
 * Debian's tinyproxy, a real forward proxy, on a free loopback port; with
 * `auth`, it asks for HTTP basic credentials (407 without them).
 */
export async function startTinyproxy(auth?: { user: string; password: string }): Promise<ForwardProxy> {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tether-tinyproxy-'))
  const config = join(dir, 'tinyproxy.conf')
  // No ConnectPort line: CONNECT is allowed to any port (the test servers use free ports).
  writeFileSync(
    config,
    [`Port ${port}`, `Listen ${HOST}`, 'Timeout 30', `Allow ${HOST}`, 'MaxClients 50', 'LogLevel Critical', auth ? `BasicAuth ${auth.user} ${auth.password}` : ''].join('\n') + '\n',
  )
  const proc = spawn(executable('tinyproxy'), ['-d', '-c', config], { stdio: 'ignore' })
  const failed = new Promise<never>((_, reject) => proc.once('error', reject))
  await withTimeout(Promise.race([failed, acceptsConnections(port)]), 10_000, 'tinyproxy to start')
  return {
    port,
    url: auth ? `http://${auth.user}:${auth.password}@${HOST}:${port}` : `http://${HOST}:${port}`,
    async stop() {
      if (proc.exitCode !== null) return
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
      proc.kill('SIGKILL')
      await withTimeout(exited, 10_000, 'tinyproxy to stop')
    },
  }
}

export interface Nginx {
  readonly port: number
  /** The stream (TLS-terminating TCP) listener's port, when one was configured. */
  readonly streamPort: number | undefined
  stop(): Promise<void>
}

/**
 * Debian's nginx on loopback, as a WebSocket reverse proxy in front of
 * `upstreamPort` (the configuration the README documents), and optionally a
 * TLS-terminating TCP relay (stream module) in front of `streamTo` with the
 * given certificate: an HTTPS forward proxy when put before tinyproxy.
 */
export async function startNginx(options: {
  upstreamPort?: number
  upstreamPorts?: number[]
  /**
   * How nginx picks an upstream, as its directive (e.g. `hash $cookie_node consistent`, sticky sessions by a
   * cookie); default round robin. Either way a connection refused by one goes to the next.
   */
  balance?: string
  streamTo?: number
  tls?: { cert: string; key: string }
}): Promise<Nginx> {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'tether-nginx-'))
  const port = await freePort()
  const streamPort = options.streamTo !== undefined ? await freePort() : undefined
  if (options.tls) {
    writeFileSync(join(dir, 'cert.pem'), options.tls.cert)
    writeFileSync(join(dir, 'key.pem'), options.tls.key)
  }
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `${name}_temp_path ${join(dir, name)};`).join(' ')
  const stream =
    streamPort === undefined
      ? ''
      : `stream { server { listen ${HOST}:${streamPort} ssl; ssl_certificate ${join(dir, 'cert.pem')}; ssl_certificate_key ${join(dir, 'key.pem')}; proxy_pass ${HOST}:${options.streamTo}; } }`
  // Several upstreams: round robin, and a connection refused by one goes to the next (proxy_next_upstream's default).
  const ports = options.upstreamPorts ?? [options.upstreamPort!]
  const upstream = `upstream tether { ${options.balance === undefined ? '' : `${options.balance};`} ${ports.map((upstreamPort) => `server ${HOST}:${upstreamPort} max_fails=1 fail_timeout=5s;`).join(' ')} }`
  const config = `
${streamPort === undefined ? '' : 'load_module /usr/lib/nginx/modules/ngx_stream_module.so;'}
daemon off;
# One process: stop() kills it with SIGKILL, which would leave a master's workers running, still listening.
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 2048; }
http {
  access_log off;
  ${temp}
  ${upstream}
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen ${HOST}:${port};
    location / {
      proxy_pass http://tether;
      proxy_connect_timeout 2s;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 120s;
    }
  }
}
${stream}
`
  const file = join(dir, 'nginx.conf')
  writeFileSync(file, config)
  const proc = spawn(executable('nginx'), ['-p', dir, '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr!.on('data', (chunk) => (stderr += chunk))
  const failed = new Promise<never>((_, reject) => {
    proc.once('error', reject)
    proc.once('exit', (code) => reject(new Error(`nginx exited ${code}: ${stderr}`)))
  })
  await withTimeout(Promise.race([failed, acceptsConnections(port)]), 10_000, 'nginx to start')
  if (streamPort !== undefined) await withTimeout(Promise.race([failed, acceptsConnections(streamPort)]), 10_000, 'nginx stream to start')
  failed.catch(() => {})
  return {
    port,
    streamPort,
    async stop() {
      if (proc.exitCode !== null) return
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
      proc.kill('SIGKILL')
      await withTimeout(exited, 10_000, 'nginx to stop')
    },
  }
}
