/**
 * The process-wide receive budget (src/node/receive-budget.ts): one ceiling
 * on the bytes held for messages being received, across every connection;
 * past it, the connection holding the most fails with 1013 (issue 13: thirty
 * connections each sending one unfinished compressed fragment held 2.6 GiB).
 */
import assert from 'node:assert/strict'
import { after, afterEach, describe, test } from 'node:test'
import { WebSocket, configureReceiveMemory, receiveMemoryStats } from '../../src/index.js'
import { type BudgetHolder, DEFAULT_MAX_RECEIVE_MEMORY, holdReceived, releaseReceived } from '../../src/node/receive-budget.js'
import { createLinkedPair } from '../../src/testing/index.js'
import { MiB, closeCodeOf, decompressionBomb, frame, rawDeflateClient, readUntilClose } from '../helpers/deflate.js'
import { type RawPeer, closed, rawWebSocket, readFrame, serverPool, until } from '../helpers/net.js'

const server = serverPool()
afterEach(() => configureReceiveMemory({ limit: DEFAULT_MAX_RECEIVE_MEMORY }))
after(() => configureReceiveMemory({ limit: DEFAULT_MAX_RECEIVE_MEMORY }))

class FakeHolder implements BudgetHolder {
  budgetHeld = 0
  failed = 0
  failForBudget(): void {
    this.failed++
  }
}

describe('receive budget: accounting', () => {
  test('fails the largest holder when a holding passes the ceiling, and counts it', () => {
    configureReceiveMemory({ limit: 1000 })
    const before = receiveMemoryStats()
    const [a, b, c] = [new FakeHolder(), new FakeHolder(), new FakeHolder()]
    assert.equal(holdReceived(a, 500), true)
    assert.equal(holdReceived(b, 300), true)
    assert.equal(receiveMemoryStats().held - before.held, 800)
    // c passes the ceiling: a holds the most and goes; c stays.
    assert.equal(holdReceived(c, 400), true)
    assert.deepEqual([a.failed, b.failed, c.failed], [1, 0, 0])
    assert.equal(a.budgetHeld, 0)
    assert.equal(receiveMemoryStats().held - before.held, 700)
    assert.equal(receiveMemoryStats().failures - before.failures, 1)
    // c grows past everyone: c is the largest and fails itself.
    assert.equal(holdReceived(c, 900), false)
    assert.equal(c.failed, 1)
    releaseReceived(b)
    assert.equal(receiveMemoryStats().held, before.held)
    assert.equal(receiveMemoryStats().holders, before.holders)
  })

  test('shrinking never fails anyone, and 0 turns the ceiling off', () => {
    configureReceiveMemory({ limit: 100 })
    const a = new FakeHolder()
    configureReceiveMemory({ limit: 0 })
    assert.equal(holdReceived(a, 10_000), true)
    configureReceiveMemory({ limit: 100 })
    assert.equal(holdReceived(a, 5_000), true, 'a smaller holding is always accepted')
    assert.equal(a.failed, 0)
    releaseReceived(a)
    assert.throws(() => configureReceiveMemory({ limit: -1 }), TypeError)
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
})
