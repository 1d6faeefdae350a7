/**
 * What a transport provides to run permessage-deflate (RFC 7692) for one
 * connection. The core never compresses: it asks for inflation with an
 * `inflate` event and takes the answer through `receiveInflated`; senders
 * compress before calling `sendText`/`sendBinary` with `compressed: true`.
 * Node has no public synchronous zlib with a persistent context (node#35295,
 * ws#1369), so a codec may answer now or later; the core and the driver keep
 * messages in order either way.
 */

/** The outcome of inflating one piece of a compressed message. */
export type InflateOutcome =
  | { ok: true; data: Uint8Array[] }
  /** `too-big`: the output would pass the limit (1009); `corrupt`: not a valid DEFLATE stream (1007). */
  | { ok: false; reason: 'too-big' | 'corrupt'; message: string }

export interface InflateCodec {
  /**
   * Inflates the next piece of a compressed message; `end` marks the
   * message's last piece (the codec appends the 00 00 FF FF tail that
   * RFC 7692 §7.2.2 removes). At most `limit` bytes may come out: beyond it
   * the codec answers `too-big` without producing more. `done` is called
   * exactly once, before `inflate` returns or later.
   *
   * With `output`, the codec may hand over its output as it produces it
   * instead of in the outcome: each piece is valid only during the call (it
   * may be the codec's scratch memory), so the receiver copies it where the
   * message is assembled and no second copy of the output is ever held.
   * `output` returning false stops the work (the receiver failed the
   * connection); `done` then answers `too-big` and the context is spent.
   */
  inflate(
    data: Uint8Array,
    end: boolean,
    limit: number,
    done: (outcome: InflateOutcome) => void,
    output?: (piece: Uint8Array) => boolean,
  ): void
}

export interface DeflateCodec {
  /**
   * Compresses a message (`end`) or one fragment of it. The output of the
   * message's last piece has its 00 00 FF FF tail removed (RFC 7692 §7.2.1).
   * Answers undefined when the message should go out uncompressed (for
   * example, the memory budget has no room).
   */
  deflate(data: Uint8Array, end: boolean, done: (output: Uint8Array | undefined) => void): void
}

/** Both directions, plus release of whatever the connection holds. */
export interface MessageCodec extends InflateCodec, DeflateCodec {
  close(): void
}
