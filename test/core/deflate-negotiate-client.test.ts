/**
 * permessage-deflate negotiation, client side (RFC 7692 §5, §7.1): the offer
 * built from the options, the checks on the server's response ("a client
 * MUST _Fail the WebSocket Connection_" on an answer it cannot accept), and
 * a property joining both roles through the wire form of the header.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  type DeflateNegotiationOptions,
  type DeflateParameters,
  acceptDeflateResponse,
  deflateOffer,
  negotiateDeflate,
} from '../../src/core/deflate/negotiate.js'
import { type ExtensionOffer, parseExtensions, serializeExtensions } from '../../src/core/handshake/headers.js'

const PMD = 'permessage-deflate'

function response(header: string): ExtensionOffer {
  const parsed = parseExtensions(header)
  assert.ok(parsed !== undefined && parsed.length === 1, `the fixture header must parse: ${header}`)
  return parsed[0]!
}

function accept(header: string, options?: DeflateNegotiationOptions): DeflateParameters | string {
  return acceptDeflateResponse(response(header), options)
}

function params(overrides: Partial<DeflateParameters> = {}): DeflateParameters {
  return { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15, ...overrides }
}

describe('deflateOffer: the client offer for each option', () => {
  const cases: Array<[DeflateNegotiationOptions | undefined, string]> = [
    // §7.1.2.2: offering client_max_window_bits without a value lets the server cap our window.
    [undefined, `${PMD}; client_max_window_bits`],
    [{}, `${PMD}; client_max_window_bits`],
    [{ clientMaxWindowBits: true }, `${PMD}; client_max_window_bits`],
    [{ clientMaxWindowBits: false }, PMD],
    [{ clientMaxWindowBits: 10 }, `${PMD}; client_max_window_bits=10`],
    [{ clientMaxWindowBits: 8 }, `${PMD}; client_max_window_bits=8`],
    [{ serverNoContextTakeover: true }, `${PMD}; server_no_context_takeover; client_max_window_bits`],
    [{ serverNoContextTakeover: false }, `${PMD}; client_max_window_bits`],
    [{ clientNoContextTakeover: true }, `${PMD}; client_no_context_takeover; client_max_window_bits`],
    [{ clientNoContextTakeover: false }, `${PMD}; client_max_window_bits`],
    [{ serverMaxWindowBits: 10 }, `${PMD}; server_max_window_bits=10; client_max_window_bits`],
    [{ serverMaxWindowBits: 15 }, `${PMD}; server_max_window_bits=15; client_max_window_bits`],
    // Without a number there is nothing to offer (the parameter needs a value).
    [{ serverMaxWindowBits: true }, `${PMD}; client_max_window_bits`],
    [{ serverMaxWindowBits: false }, `${PMD}; client_max_window_bits`],
    [
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 11 },
      `${PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11`,
    ],
    [{ serverNoContextTakeover: true, clientMaxWindowBits: false }, `${PMD}; server_no_context_takeover`],
  ]
  for (const [options, header] of cases) {
    it(`${JSON.stringify(options)} -> ${header}`, () => {
      const offer = deflateOffer(options)
      assert.equal(serializeExtensions([offer]), header)
      // The wire form parses back to the same offer.
      assert.deepEqual(parseExtensions(serializeExtensions([offer])), [offer])
    })
  }
})

describe('acceptDeflateResponse: answers the client accepts (§7.1)', () => {
  it('a bare answer: defaults', () => {
    assert.deepEqual(accept(PMD), params())
  })

  it('client_max_window_bits=N answers the default offer (sent without a value): the client uses N', () => {
    for (const bits of [8, 10, 15]) assert.deepEqual(accept(`${PMD}; client_max_window_bits=${bits}`), params({ clientMaxWindowBits: bits }))
  })

  it('server_no_context_takeover and server_max_window_bits the client did not ask for are allowed (the server MAY)', () => {
    assert.deepEqual(accept(`${PMD}; server_no_context_takeover`), params({ serverNoContextTakeover: true }))
    assert.deepEqual(accept(`${PMD}; server_max_window_bits=12`), params({ serverMaxWindowBits: 12 }))
  })

  it('client_no_context_takeover from the server binds the client (§7.1.1.2)', () => {
    assert.deepEqual(accept(`${PMD}; client_no_context_takeover`), params({ clientNoContextTakeover: true }))
  })

  it('clientNoContextTakeover: the client resets its context even if the server does not answer the hint', () => {
    assert.deepEqual(accept(PMD, { clientNoContextTakeover: true }), params({ clientNoContextTakeover: true }))
  })

  it('serverNoContextTakeover offered and granted', () => {
    assert.deepEqual(accept(`${PMD}; server_no_context_takeover`, { serverNoContextTakeover: true }), params({ serverNoContextTakeover: true }))
  })

  it('serverMaxWindowBits offered: the same or a smaller value is accepted (§7.1.2.1)', () => {
    assert.deepEqual(accept(`${PMD}; server_max_window_bits=10`, { serverMaxWindowBits: 10 }), params({ serverMaxWindowBits: 10 }))
    assert.deepEqual(accept(`${PMD}; server_max_window_bits=8`, { serverMaxWindowBits: 10 }), params({ serverMaxWindowBits: 8 }))
    assert.deepEqual(accept(`${PMD}; server_max_window_bits="9"`, { serverMaxWindowBits: 10 }), params({ serverMaxWindowBits: 9 }))
  })

  it('clientMaxWindowBits offered with a value: the server may lower it, or omit it and the client keeps its own', () => {
    assert.deepEqual(accept(PMD, { clientMaxWindowBits: 10 }), params({ clientMaxWindowBits: 10 }))
    assert.deepEqual(accept(`${PMD}; client_max_window_bits=10`, { clientMaxWindowBits: 10 }), params({ clientMaxWindowBits: 10 }))
    assert.deepEqual(accept(`${PMD}; client_max_window_bits=9`, { clientMaxWindowBits: 10 }), params({ clientMaxWindowBits: 9 }))
  })

  it('all parameters together', () => {
    assert.deepEqual(
      accept(`${PMD}; client_max_window_bits=9; server_max_window_bits=10; client_no_context_takeover; server_no_context_takeover`, {
        serverNoContextTakeover: true,
        serverMaxWindowBits: 11,
      }),
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
    )
  })
})

describe('acceptDeflateResponse: answers that fail the connection (§7.1: "a client MUST _Fail the WebSocket Connection_")', () => {
  const failures: Array<[string, string, DeflateNegotiationOptions?]> = [
    ['an unknown parameter', `${PMD}; foo`],
    ['an unknown parameter with a value', `${PMD}; client_max_window_bits=10; mux=2`],
    ['a duplicated server_no_context_takeover', `${PMD}; server_no_context_takeover; server_no_context_takeover`],
    ['a duplicated client_no_context_takeover', `${PMD}; client_no_context_takeover; client_no_context_takeover`],
    ['a duplicated server_max_window_bits', `${PMD}; server_max_window_bits=10; server_max_window_bits=10`],
    ['a duplicated client_max_window_bits', `${PMD}; client_max_window_bits=10; client_max_window_bits=10`],
    ['server_no_context_takeover with a value', `${PMD}; server_no_context_takeover=1`],
    ['client_no_context_takeover with a value', `${PMD}; client_no_context_takeover=1`],
    ['server_max_window_bits without a value', `${PMD}; server_max_window_bits`],
    ['server_max_window_bits=7', `${PMD}; server_max_window_bits=7`],
    ['server_max_window_bits=16', `${PMD}; server_max_window_bits=16`],
    ['server_max_window_bits=08', `${PMD}; server_max_window_bits=08`],
    ['server_max_window_bits=1a', `${PMD}; server_max_window_bits=1a`],
    ['client_max_window_bits=7', `${PMD}; client_max_window_bits=7`],
    ['client_max_window_bits=16', `${PMD}; client_max_window_bits=16`],
    ['client_max_window_bits=09', `${PMD}; client_max_window_bits=09`],
    ['client_max_window_bits without a value (§7.1.2.2: a response carries a value)', `${PMD}; client_max_window_bits`],
    ['client_max_window_bits not offered (clientMaxWindowBits: false)', `${PMD}; client_max_window_bits=10`, { clientMaxWindowBits: false }],
    ['client_max_window_bits larger than offered', `${PMD}; client_max_window_bits=11`, { clientMaxWindowBits: 10 }],
    ['server_max_window_bits larger than offered', `${PMD}; server_max_window_bits=11`, { serverMaxWindowBits: 10 }],
    ['server_max_window_bits missing when offered', PMD, { serverMaxWindowBits: 10 }],
    ['server_max_window_bits missing when offered, other parameters present', `${PMD}; client_max_window_bits=10`, { serverMaxWindowBits: 12 }],
    ['server_no_context_takeover missing when offered', PMD, { serverNoContextTakeover: true }],
    ['server_no_context_takeover missing when offered, other parameters present', `${PMD}; client_no_context_takeover`, { serverNoContextTakeover: true }],
  ]
  for (const [name, header, options] of failures) {
    it(`${name}: ${header}${options ? ` for ${JSON.stringify(options)}` : ''}`, () => {
      const result = accept(header, options)
      assert.equal(typeof result, 'string', `expected an error message, got ${JSON.stringify(result)}`)
      assert.ok((result as string).length > 0)
    })
  }

  it('the same answers without the fault are accepted (the failures above are caused by the fault alone)', () => {
    assert.equal(typeof accept(`${PMD}; client_max_window_bits=10`), 'object')
    assert.equal(typeof accept(`${PMD}; server_max_window_bits=10`, { serverMaxWindowBits: 10 }), 'object')
    assert.equal(typeof accept(`${PMD}; client_max_window_bits=10`, { clientMaxWindowBits: 10 }), 'object')
    assert.equal(typeof accept(`${PMD}; server_no_context_takeover`, { serverNoContextTakeover: true }), 'object')
    assert.equal(typeof accept(PMD, { clientMaxWindowBits: false }), 'object')
  })
})

describe('negotiation property: both roles agree through the wire form', () => {
  const bits = fc.integer({ min: 8, max: 15 })
  const options: fc.Arbitrary<DeflateNegotiationOptions> = fc.record(
    {
      serverNoContextTakeover: fc.boolean(),
      clientNoContextTakeover: fc.boolean(),
      serverMaxWindowBits: fc.oneof(fc.boolean(), bits),
      clientMaxWindowBits: fc.oneof(fc.boolean(), bits),
    },
    { requiredKeys: [] },
  )

  it('if the server accepts the offer, the client accepts the answer and both hold the same parameters', () => {
    let acceptedRuns = 0
    fc.assert(
      fc.property(options, options, (clientOptions, serverOptions) => {
        const offerHeader = serializeExtensions([deflateOffer(clientOptions)])
        const acceptance = negotiateDeflate(parseExtensions(offerHeader)!, serverOptions)

        // The server declines exactly when the two configurations conflict.
        const conflict =
          (clientOptions.serverNoContextTakeover === true && serverOptions.serverNoContextTakeover === false) ||
          (typeof clientOptions.serverMaxWindowBits === 'number' && serverOptions.serverMaxWindowBits === false) ||
          (typeof serverOptions.clientMaxWindowBits === 'number' && clientOptions.clientMaxWindowBits === false)
        assert.equal(acceptance === undefined, conflict, offerHeader)
        if (acceptance === undefined) return
        acceptedRuns++

        const answerHeader = serializeExtensions([acceptance.response])
        const answers = parseExtensions(answerHeader)!
        assert.equal(answers.length, 1)
        assert.equal(answers[0]!.name, PMD)
        const clientParameters = acceptDeflateResponse(answers[0]!, clientOptions)
        assert.deepEqual(clientParameters, acceptance.parameters, `${offerHeader} -> ${answerHeader}`)

        // And the agreement honours every option on either side.
        const agreed = acceptance.parameters
        for (const value of [agreed.serverMaxWindowBits, agreed.clientMaxWindowBits]) assert.ok(value >= 8 && value <= 15)
        if (clientOptions.serverNoContextTakeover || serverOptions.serverNoContextTakeover) assert.equal(agreed.serverNoContextTakeover, true)
        if (serverOptions.serverNoContextTakeover === false) assert.equal(agreed.serverNoContextTakeover, false)
        if (clientOptions.clientNoContextTakeover || serverOptions.clientNoContextTakeover) assert.equal(agreed.clientNoContextTakeover, true)
        for (const cap of [clientOptions.serverMaxWindowBits, serverOptions.serverMaxWindowBits]) {
          if (typeof cap === 'number') assert.ok(agreed.serverMaxWindowBits <= cap)
        }
        for (const cap of [clientOptions.clientMaxWindowBits, serverOptions.clientMaxWindowBits]) {
          if (typeof cap === 'number') assert.ok(agreed.clientMaxWindowBits <= cap)
        }
        // Nothing is capped that neither side asked to cap.
        if (typeof clientOptions.serverMaxWindowBits !== 'number' && typeof serverOptions.serverMaxWindowBits !== 'number') {
          assert.equal(agreed.serverMaxWindowBits, 15)
        }
        if (typeof clientOptions.clientMaxWindowBits !== 'number' && typeof serverOptions.clientMaxWindowBits !== 'number') {
          assert.equal(agreed.clientMaxWindowBits, 15)
        }
      }),
      { numRuns: 1000 },
    )
    assert.ok(acceptedRuns > 500, `most configurations are compatible (${acceptedRuns} accepted)`)
  })
})
