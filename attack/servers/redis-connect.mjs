#!/usr/bin/env node
// RedisBackplane.connect() against a URL, as an application calls it at startup:
//   node attack/servers/redis-connect.mjs redis://127.0.0.1:PORT
// Prints {"outcome": "connected" | "rejected", "ms": ..., "message": ...} when the promise
// settles, and exits. If it never settles, the harness kills it at its cap.
const url = process.argv[2]
// The harness holds stdin open: if it goes away, so does this process.
process.stdin.on('end', () => process.exit(0)).resume()
const started = performance.now()
const print = (message) => process.stdout.write(JSON.stringify({ ...message, ms: Math.round(performance.now() - started) }) + '\n')
const { RedisBackplane } = await import('tether-ws/pubsub/redis')
try {
  const backplane = await RedisBackplane.connect({ url })
  print({ outcome: 'connected' })
  await backplane.close()
} catch (error) {
  print({ outcome: 'rejected', message: error.message, cause: error.cause?.message ?? error.cause?.code })
}
process.exit(0)
