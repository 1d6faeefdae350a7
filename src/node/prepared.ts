/**
 * A message framed once (and compressed once) for many server connections:
 * the unit of broadcast and, later, of topics.
 *
 * Theory of operation: the plain frame is built on first use. A compressed
 * variant is built with the shared stateless context on first use for each
 * (window bits, zlib settings) pair and reused for every connection that
 * negotiated permessage-deflate with those settings: a stateless compressed
 * message is valid for any receiver, with or without context takeover,
 * because it refers to nothing sent before (RFC 7692 §7.2.3).
 *
 * Rule 1: only servers send prepared frames; a client masks each frame with
 * its own key, so it sends the payload as usual.
 */
import { prepareFrame } from '../core/prepare.js'
import { deflateStateless } from './zlib-codec.js'
import type { ZlibCodec } from './zlib-codec.js'

/** Counts of work done, so tests and benchmarks can see that a broadcast compressed once. */
export const preparedStats = { framed: 0, compressed: 0 }

export class PreparedMessage {
  readonly data: Buffer
  readonly binary: boolean
  /** Whether to compress it for connections with permessage-deflate (publish's `compress`). */
  readonly compress: boolean
  private plain: Uint8Array | undefined
  /** Compressed frames by codec settings; null when the message does not shrink. */
  private readonly variants = new Map<string, Uint8Array | null>()

  constructor(data: Buffer, binary: boolean, compress = true) {
    this.data = data
    this.binary = binary
    this.compress = compress
  }

  /** The frame for a server connection with `codec` (undefined: no permessage-deflate). */
  frameFor(codec: ZlibCodec | undefined, compress: boolean): Uint8Array {
    if (codec !== undefined && compress && codec.shouldCompress(this.data.length)) {
      const key = codec.settingsKey
      let frame = this.variants.get(key)
      if (frame === undefined) {
        const payload = deflateStateless(this.data, codec.ownWindowBits, codec.compressionSettings)
        frame = payload === undefined ? null : prepareFrame(this.binary, payload, true)
        if (frame !== null) preparedStats.compressed++
        this.variants.set(key, frame)
      }
      if (frame !== null) return frame
    }
    if (this.plain === undefined) {
      this.plain = prepareFrame(this.binary, this.data)
      preparedStats.framed++
    }
    return this.plain
  }
}
