/**
 * The process-wide memory budgets (src/node/memory-budget.ts): one ceiling
 * on the bytes held for messages being received, across every connection
 * (past it, the connection holding the most fails with 1013; issue 13: thirty
 * connections each sending one unfinished compressed fragment held 2.6 GiB),
 * and one on the bytes waiting for peers that do not read (past it, the one
 * with the most waiting is terminated).
 */
import assert from 'node:assert/strict'
import { after, afterEach, describe, test } from 'node:test'
import { WebSocket, configureReceiveMemory, configureSendMemory, receiveMemoryStats, sendMemoryStats } from '../../src/index.js'
import { DEFAULT_MAX_RECEIVE_MEMORY, DEFAULT_MAX_SEND_MEMORY, MemoryBudget } from '../../src/node/memory-budget.js'
import { createLinkedPair } from '../../src/testing/index.js'
import { MiB, closeCodeOf, decompressionBomb, frame, rawDeflateClient, readUntilClose } from '../helpers/deflate.js'
import { type RawPeer, closed, delay, rawWebSocket, readFrame, serverPool, until } from '../helpers/net.js'

const server = serverPool()
const restore = (): void => {
  configureReceiveMemory({ limit: DEFAULT_MAX_RECEIVE_MEMORY })
  configureSendMemory({ limit: DEFAULT_MAX_SEND_MEMORY })
}
afterEach(restore)
after(restore)

class FakeHolder {
  failed = 0
}
/** A budget of its own, failing fake holders (the process's budgets are tested through connections below). */
function fakeBudget(limit: number, stalledFirst = true): MemoryBudget<FakeHolder> {
  return new MemoryBudget<FakeHolder>('test', limit, (holder) => holder.failed++, { stalledFirst })
}

describe('receive budget: accounting', () => {
  test('fails the largest holder when a holding passes the ceiling, and counts it', () => {
    const budget = fakeBudget(1000)
    const [a, b, c] = [new FakeHolder(), new FakeHolder(), new FakeHolder()]
    assert.equal(budget.hold(a, 500), true)
    assert.equal(budget.hold(b, 300), true)
    assert.equal(budget.held, 800)
    // c passes the ceiling: a holds the most and goes; c stays.
    assert.equal(budget.hold(c, 400), true)
    assert.deepEqual([a.failed, b.failed, c.failed], [1, 0, 0])
    assert.equal(budget.held, 700)
    assert.equal(budget.failures, 1)
    // c grows past everyone: c is the largest and fails itself.
    assert.equal(budget.hold(c, 900), false)
    assert.equal(c.failed, 1)
    budget.release(b)
    assert.deepEqual([budget.held, budget.stats().holders], [0, 0])
  })

  // Issue 13, found by an outsider: 256 stalled 1 MB first fragments filled the budget, and every real
  // 2 MB message, the largest holder while it arrived, was failed instead of them.
  test('a stalled holder goes first: one still receiving is failed only when no stalled one is left', async () => {
    const budget = fakeBudget(1000)
    const stalled = [new FakeHolder(), new FakeHolder(), new FakeHolder()]
    for (const holder of stalled) budget.hold(holder, 300)
    await delay(1_150)
    const receiving = new FakeHolder()
    for (const step of [200, 400, 600]) assert.equal(budget.hold(receiving, step), true, `still receiving at ${step}`)
    assert.equal(receiving.failed, 0)
    assert.equal(stalled.filter((holder) => holder.failed === 1).length, 2, 'two stalled holders made room')
    // Without the stalled-first rule (the send budget), the largest goes whatever its pace.
    const plain = fakeBudget(1000, false)
    const old = new FakeHolder()
    plain.hold(old, 300)
    await delay(1_150)
    const big = new FakeHolder()
    assert.equal(plain.hold(big, 800), false)
    assert.deepEqual([old.failed, big.failed], [0, 1])
  })

  // Found by stop 23's outsider: connections of 200-byte messages, paused by the application (their holding
  // stalled at a few KiB), were failed one after another while large messages filled the budget.
  test('a stalled holder too small to make room on its own is not failed for nothing: the largest goes', async () => {
    const budget = fakeBudget(1000)
    const paused = [new FakeHolder(), new FakeHolder(), new FakeHolder()]
    for (const holder of paused) budget.hold(holder, 5)
    await delay(1_150)
    const large = new FakeHolder()
    assert.equal(budget.hold(large, 900), true)
    const other = new FakeHolder()
    // 1,115 held: 115 over; no stalled holder frees that much, so the largest (900) goes.
    assert.equal(budget.hold(other, 200), true)
    assert.deepEqual(paused.map((holder) => holder.failed), [0, 0, 0])
    assert.equal(large.failed, 1)
    assert.equal(budget.held, 215)
  })

  test('shrinking never fails anyone, and 0 turns the ceiling off', () => {
    const budget = fakeBudget(0)
    const a = new FakeHolder()
    assert.equal(budget.hold(a, 10_000), true)
    budget.configure(100)
    assert.equal(budget.hold(a, 5_000), true, 'a smaller holding is always accepted')
    assert.equal(a.failed, 0)
    budget.release(a)
    assert.throws(() => configureReceiveMemory({ limit: -1 }), TypeError)
    assert.throws(() => configureSendMemory({ limit: Number.NaN }), TypeError)
  })
})

describe('receive budget: connections', () => {
  test('over a linked pair (no socket): unfinished messages past the budget fail the largest holder with 1013', async () => {
    configureReceiveMemory({ limit: 3 * MiB })
    const pairs = [createLinkedPair(), createLinkedPair(), createLinkedPair()]
    const closes = pairs.map(({ client }) => closed(client))
    // Each client sends the start of a fragmented message and never finishes it.
    pairs[0]!.client.send(Buffer.alloc(1 * MiB, 1), { fin: false })
    pairs[1]!.client.send(Buffer.alloc(1.5 * MiB, 2), { fin: false })
    await until(() => receiveMemoryStats().held >= 2.5 * MiB)
    pairs[2]!.client.send(Buffer.alloc(1 * MiB, 3), { fin: false })
    const [code, reason] = await closes[1]!
    assert.equal(code, 1013, `the largest holder closes with 1013 (${reason})`)
    assert.ok(receiveMemoryStats().held <= 3 * MiB, `${receiveMemoryStats().held} held`)
    for (const [i, { client }] of pairs.entries()) if (i !== 1) assert.equal(client.readyState, WebSocket.OPEN)
    for (const { client } of pairs) client.terminate()
    await Promise.all(closes)
    await until(() => receiveMemoryStats().held === 0)
  })

  test('a real server: the largest holder gets 1013, the error has its code, limitStats and load count it', async () => {
    const { wss, port } = await server({ maxReceiveMemory: 2 * MiB })
    const errors: string[] = []
    wss.on('connection', (ws) => ws.on('error', (error: Error & { code?: string }) => errors.push(String(error.code))))
    const small = await rawWebSocket(port)
    const large = await rawWebSocket(port)
    small.write(frame(0x2, Buffer.alloc(512 * 1024), { fin: false, mask: true }))
    await until(() => wss.load.receiveMemory >= 512 * 1024)
    large.write(frame(0x2, Buffer.alloc(1.75 * MiB), { fin: false, mask: true }))
    const closeFrame = await readFrame(large)
    assert.equal(closeFrame.opcode, 0x8)
    assert.equal(closeFrame.payload.readUInt16BE(0), 1013)
    await until(() => errors.length === 1)
    assert.deepEqual(errors, ['TETHER_ERR_RECEIVE_MEMORY'])
    assert.equal(wss.limitStats.receiveMemoryExceeded, 1)
    assert.ok(wss.load.receiveMemory <= 2 * MiB)
    // The small holder is unharmed: it finishes its message and is echoed nothing but stays open.
    small.write(frame(0x0, Buffer.alloc(10), { fin: true, mask: true }))
    await until(() => wss.load.receiveMemory === 0)
    assert.equal(small.closed, false)
    small.destroy()
    large.destroy()
  })

  test('compressed fragments that inflate past the budget: 1013, the inflated output never passes budget + one piece', async () => {
    const { wss, port } = await server({ perMessageDeflate: true, maxReceiveMemory: 8 * MiB })
    const bomb = await decompressionBomb(20) // 20 MiB of zeros in ~20 KiB, under the 100 MiB maxPayload
    const peers: RawPeer[] = []
    let peak = 0
    const timer = setInterval(() => (peak = Math.max(peak, wss.load.receiveMemory)), 1)
    try {
      for (let i = 0; i < 3; i++) {
        const { peer } = await rawDeflateClient(port)
        peers.push(peer)
        peer.write(frame(0x2, bomb, { fin: false, rsv1: true, mask: true }))
      }
      const frames = await Promise.all(peers.map((peer) => readUntilClose(peer)))
      const codes = frames.map((list) => closeCodeOf(list.at(-1)!))
      assert.deepEqual(codes, [1013, 1013, 1013], 'each holds more than the budget alone')
      assert.ok(peak <= 8 * MiB + 64 * 1024, `peak ${peak} bytes held`)
      assert.equal(wss.limitStats.receiveMemoryExceeded, 3)
      assert.equal(wss.limitStats.payloadTooBig, 0, 'the messages were within maxPayload: it is the budget')
    } finally {
      clearInterval(timer)
      for (const peer of peers) peer.destroy()
    }
  })

  // Issue 13, found by an outsider: 20 clients that never read, each sent 100 MiB of echoes, held 1.4 GiB
  // (64 MiB each, the per-connection send buffer).
  test('the send budget: peers that do not read hold at most maxSendMemory; the one with most waiting is terminated (1006, a reason)', async () => {
    const { wss, port } = await server({ maxSendMemory: 8 * MiB })
    const reasons: string[] = []
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => ws.send(data))
      ws.on('close', (_code, reason) => reasons.push(String(reason)))
    })
    const peers: RawPeer[] = []
    for (let i = 0; i < 4; i++) {
      const peer = await rawWebSocket(port)
      // Never read: the kernel's buffers fill, then the server's.
      peer.socket.pause()
      peers.push(peer)
    }
    let peak = 0
    for (let round = 0; round < 40 && reasons.length === 0; round++) {
      for (const peer of peers) if (!peer.closed) peer.write(frame(0x2, Buffer.alloc(256 * 1024), { mask: true }))
      await delay(20)
      peak = Math.max(peak, wss.load.sendMemory)
    }
    await until(() => reasons.length >= 1, 10_000)
    assert.match(reasons[0]!, /send memory budget exceeded/)
    assert.ok(wss.limitStats.sendMemoryExceeded >= 1)
    assert.ok(peak <= 8 * MiB + 2 * MiB, `peak ${peak} bytes waiting`)
    assert.ok(sendMemoryStats().held <= 8 * MiB)
    for (const peer of peers) peer.destroy()
    await until(() => wss.clients.size === 0)
    assert.equal(sendMemoryStats().held, 0, 'released when they are gone')
  })
})
