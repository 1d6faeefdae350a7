/**
 * The core's only door to the platform: hashing, randomness and a fast UTF-8
 * check. Everything here is synchronous and exists in Node, Bun and Deno's
 * Node compatibility layer, so the rest of the core stays free of `node:*`
 * imports and of anything that touches the network.
 */
import { isUtf8 } from 'node:buffer'
import { createHash, randomFillSync } from 'node:crypto'

/** base64(SHA-1(text)), as the opening handshake needs (RFC 6455 §4.2.2). */
export function sha1Base64(text: string): string {
  return createHash('sha1').update(text).digest('base64')
}

/** Fills `target` with cryptographically strong random bytes. */
export function fillRandom(target: Uint8Array): Uint8Array {
  return randomFillSync(target)
}

/** Whether `bytes` is entirely well-formed UTF-8 (native, vectorised). */
export function isWellFormedUtf8(bytes: Uint8Array): boolean {
  return bytes.length === 0 || isUtf8(bytes)
}
