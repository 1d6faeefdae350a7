/**
 * The browser-style event API of `ws` v8 on top of Node's EventEmitter:
 * `addEventListener`/`removeEventListener` and the `onopen`, `onmessage`,
 * `onclose`, `onerror` attributes, with `Event`, `MessageEvent`,
 * `CloseEvent` and `ErrorEvent` shaped as ws shapes them.
 *
 * Theory of operation: each listener is wrapped in an EventEmitter listener
 * that builds the event object from the emitter's arguments. The wrapper
 * remembers the original handler, so duplicates are ignored and removal
 * works, and whether it was installed by an `on*` attribute.
 */
import type { EventEmitter } from 'node:events'
import type { Data } from './types.js'
import type { WebSocket } from './websocket.js'

const kTarget = Symbol('tether.event.target')
export const kListener = Symbol('tether.event.listener')
export const kForOnEventAttribute = Symbol('tether.event.onAttribute')

/** A minimal DOM-like Event. */
export class Event {
  readonly type: string;
  [kTarget]: unknown = null
  constructor(type: string) {
    this.type = type
  }
  /** The WebSocket that dispatched the event. */
  get target(): WebSocket {
    return this[kTarget] as WebSocket
  }
}

export class CloseEvent extends Event {
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean
  constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type)
    this.code = init.code ?? 0
    this.reason = init.reason ?? ''
    this.wasClean = init.wasClean ?? false
  }
}

export class ErrorEvent extends Event {
  readonly error: any
  readonly message: string
  constructor(type: string, init: { error?: unknown; message?: string } = {}) {
    super(type)
    this.error = init.error ?? null
    this.message = init.message ?? ''
  }
}

export class MessageEvent extends Event {
  /** A string for a text message; for binary, as `binaryType` says (a Blob with 'blob'). */
  readonly data: Data
  constructor(type: string, init: { data?: unknown } = {}) {
    super(type)
    this.data = (init.data ?? null) as Data
  }
}

export type EventHandler = ((event: never) => void) | { handleEvent(event: never): void }

interface EventTargetHost extends EventEmitter {
  /** Whether both close frames were exchanged (CloseEvent.wasClean). */
  readonly wasClean: boolean
}

type Wrapper = ((...args: any[]) => void) & { [kListener]: EventHandler; [kForOnEventAttribute]: boolean }

function callListener(handler: EventHandler, thisArg: unknown, event: Event): void {
  if (typeof handler === 'object' && typeof handler.handleEvent === 'function') {
    handler.handleEvent.call(handler, event as never)
  } else {
    ;(handler as (event: Event) => void).call(thisArg, event)
  }
}

/** ws `addEventListener`: only `open`, `message`, `close` and `error` are dispatched as events. */
export function addEventListener(
  this: EventTargetHost,
  type: string,
  handler: EventHandler,
  options: { once?: boolean; [kForOnEventAttribute]?: boolean } = {},
): void {
  if (handler === null || (typeof handler !== 'function' && typeof handler !== 'object')) return
  for (const listener of this.listeners(type) as Wrapper[]) {
    if (!options[kForOnEventAttribute] && listener[kListener] === handler && !listener[kForOnEventAttribute]) return
  }
  const target = this
  let wrapper: Wrapper
  if (type === 'message') {
    wrapper = function onMessage(data: Buffer, isBinary: boolean) {
      const event = new MessageEvent('message', { data: isBinary ? data : data.toString() })
      event[kTarget] = target
      callListener(handler, target, event)
    } as Wrapper
  } else if (type === 'close') {
    wrapper = function onClose(code: number, reason: Buffer) {
      const event = new CloseEvent('close', { code, reason: reason.toString(), wasClean: target.wasClean })
      event[kTarget] = target
      callListener(handler, target, event)
    } as Wrapper
  } else if (type === 'error') {
    wrapper = function onError(error: Error) {
      const event = new ErrorEvent('error', { error, message: error.message })
      event[kTarget] = target
      callListener(handler, target, event)
    } as Wrapper
  } else if (type === 'open') {
    wrapper = function onOpen() {
      const event = new Event('open')
      event[kTarget] = target
      callListener(handler, target, event)
    } as Wrapper
  } else {
    return
  }
  wrapper[kForOnEventAttribute] = !!options[kForOnEventAttribute]
  wrapper[kListener] = handler
  if (options.once) this.once(type, wrapper)
  else this.on(type, wrapper)
}

export function removeEventListener(this: EventEmitter, type: string, handler: EventHandler): void {
  for (const listener of this.listeners(type) as Wrapper[]) {
    if (listener[kListener] === handler && !listener[kForOnEventAttribute]) {
      this.removeListener(type, listener)
      break
    }
  }
}

/** Defines `onopen`, `onmessage`, `onclose`, `onerror` on a prototype. */
export function defineEventAttributes(prototype: object): void {
  for (const type of ['open', 'error', 'close', 'message']) {
    Object.defineProperty(prototype, `on${type}`, {
      enumerable: true,
      configurable: true,
      get(this: EventEmitter) {
        for (const listener of this.listeners(type) as Wrapper[]) {
          if (listener[kForOnEventAttribute]) return listener[kListener]
        }
        return null
      },
      set(this: EventTargetHost, handler: unknown) {
        for (const listener of this.listeners(type) as Wrapper[]) {
          if (listener[kForOnEventAttribute]) {
            this.removeListener(type, listener)
            break
          }
        }
        if (typeof handler !== 'function') return
        addEventListener.call(this, type, handler as EventHandler, { [kForOnEventAttribute]: true })
      },
    })
  }
}
