/**
 * permessage-deflate negotiation, server side (RFC 7692 §5, §7.1): which
 * offers are declined (never a handshake failure), which offer wins among
 * several, what the response says and which parameters both sides then use.
 * Offers are written as header text and parsed with the real header parser,
 * so quoting and ordering are exercised as on the wire.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type DeflateNegotiationOptions,
  type DeflateParameters,
  checkDeflateOptions,
  negotiateDeflate,
} from '../../src/core/deflate/negotiate.js'
import { type ExtensionOffer, parseExtensions, serializeExtensions } from '../../src/core/handshake/headers.js'

function offers(header: string): ExtensionOffer[] {
  const parsed = parseExtensions(header)
  assert.ok(parsed !== undefined, `the fixture header must parse: ${header}`)
  return parsed
}

/** The server's acceptance of `header` as [parameters, response header], or undefined when it declines. */
function negotiate(header: string, options?: DeflateNegotiationOptions): [DeflateParameters, string] | undefined {
  const acceptance = negotiateDeflate(offers(header), options)
  return acceptance && [acceptance.parameters, serializeExtensions([acceptance.response])]
}

function params(overrides: Partial<DeflateParameters> = {}): DeflateParameters {
  return { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15, ...overrides }
}

const PMD = 'permessage-deflate'
const BITS = [8, 9, 10, 11, 12, 13, 14, 15]
/** Not "a decimal integer value without leading zeroes between 8 to 15, inclusive" (§7.1.2.1). */
const BAD_BITS = ['7', '16', '08', '1a', '0', '-9', '+9', '9.0', '015', '150', '1e1', 'fifteen']

describe('negotiateDeflate: each offer parameter (§7.1)', () => {
  it('accepts a bare offer: defaults, context takeover both ways, 15-bit windows, response without parameters', () => {
    assert.deepEqual(negotiate(PMD), [params(), PMD])
  })

  it('server_no_context_takeover: accepted and echoed (§7.1.1.1: the response MUST include it)', () => {
    assert.deepEqual(negotiate(`${PMD}; server_no_context_takeover`), [
      params({ serverNoContextTakeover: true }),
      `${PMD}; server_no_context_takeover`,
    ])
  })

  it('server_no_context_takeover with a value declines the offer (§7.1.1.1: "has no value")', () => {
    assert.equal(negotiate(`${PMD}; server_no_context_takeover=1`), undefined)
    assert.equal(negotiate(`${PMD}; server_no_context_takeover="true"`), undefined)
  })

  it('client_no_context_takeover: the hint is honoured and answered (§7.1.1.2)', () => {
    assert.deepEqual(negotiate(`${PMD}; client_no_context_takeover`), [
      params({ clientNoContextTakeover: true }),
      `${PMD}; client_no_context_takeover`,
    ])
  })

  it('client_no_context_takeover with a value declines the offer', () => {
    assert.equal(negotiate(`${PMD}; client_no_context_takeover=x`), undefined)
  })

  for (const bits of BITS) {
    it(`server_max_window_bits=${bits} is accepted, used and answered (§7.1.2.1)`, () => {
      assert.deepEqual(negotiate(`${PMD}; server_max_window_bits=${bits}`), [
        params({ serverMaxWindowBits: bits }),
        `${PMD}; server_max_window_bits=${bits}`,
      ])
    })
  }

  it('server_max_window_bits as a quoted-string is the same value (the header parser unquotes it)', () => {
    assert.deepEqual(negotiate(`${PMD}; server_max_window_bits="10"`), [
      params({ serverMaxWindowBits: 10 }),
      `${PMD}; server_max_window_bits=10`,
    ])
  })

  it('server_max_window_bits without a value declines the offer (the value is required)', () => {
    assert.equal(negotiate(`${PMD}; server_max_window_bits`), undefined)
  })

  for (const value of BAD_BITS) {
    it(`server_max_window_bits=${value} declines the offer (§7.1.2.1)`, () => {
      assert.equal(negotiate(`${PMD}; server_max_window_bits=${value}`), undefined)
      assert.equal(negotiate(`${PMD}; server_max_window_bits="${value}"`), undefined)
    })
  }

  it('window values no header could carry unquoted are declined too (empty, spaces)', () => {
    for (const value of ['', ' 9', '9 ', '\t10']) {
      for (const name of ['server_max_window_bits', 'client_max_window_bits']) {
        assert.equal(negotiateDeflate([{ name: PMD, params: [[name, value]] }]), undefined, `${name}=${JSON.stringify(value)}`)
      }
    }
  })

  it('client_max_window_bits without a value: accepted, the client keeps 15 bits, the response omits it (§7.1.2.2)', () => {
    assert.deepEqual(negotiate(`${PMD}; client_max_window_bits`), [params(), PMD])
  })

  for (const bits of BITS) {
    it(`client_max_window_bits=${bits}: the client uses at most ${bits} bits`, () => {
      assert.deepEqual(negotiate(`${PMD}; client_max_window_bits=${bits}`), [
        params({ clientMaxWindowBits: bits }),
        `${PMD}; client_max_window_bits=${bits}`,
      ])
    })
  }

  for (const value of BAD_BITS) {
    it(`client_max_window_bits=${value} declines the offer (§7.1.2.2)`, () => {
      assert.equal(negotiate(`${PMD}; client_max_window_bits=${value}`), undefined)
    })
  }

  for (const param of [
    'server_no_context_takeover',
    'client_no_context_takeover',
    'server_max_window_bits=10',
    'client_max_window_bits',
    'client_max_window_bits=10',
  ]) {
    it(`a duplicated ${param} declines the offer (§7.1: "multiple parameters with the same name")`, () => {
      assert.equal(negotiate(`${PMD}; ${param}; ${param}`), undefined)
      // Also when the duplicates are not adjacent.
      assert.equal(negotiate(`${PMD}; ${param}; ${param.startsWith('server_no') ? 'client_no_context_takeover' : 'server_no_context_takeover'}; ${param}`), undefined)
    })
  }

  it('a parameter given twice with different values declines the offer', () => {
    assert.equal(negotiate(`${PMD}; server_max_window_bits=10; server_max_window_bits=11`), undefined)
    assert.equal(negotiate(`${PMD}; client_max_window_bits; client_max_window_bits=9`), undefined)
  })

  it('an unknown parameter declines the offer (§7.1), with or without a value', () => {
    assert.equal(negotiate(`${PMD}; foo`), undefined)
    assert.equal(negotiate(`${PMD}; client_max_window_bits; mux=1`), undefined)
    // Parameter names are matched exactly.
    assert.equal(negotiate(`${PMD}; Server_No_Context_Takeover`), undefined)
  })
})

describe('negotiateDeflate: several offers and other extensions (§5.1)', () => {
  it('takes the first acceptable offer: an invalid first offer is skipped for a valid second one', () => {
    assert.deepEqual(negotiate(`${PMD}; server_max_window_bits=7, ${PMD}; server_max_window_bits=10`), [
      params({ serverMaxWindowBits: 10 }),
      `${PMD}; server_max_window_bits=10`,
    ])
    assert.deepEqual(negotiate(`${PMD}; foo, ${PMD}; server_no_context_takeover; server_no_context_takeover, ${PMD}; client_max_window_bits=9`), [
      params({ clientMaxWindowBits: 9 }),
      `${PMD}; client_max_window_bits=9`,
    ])
  })

  it('takes the first offer when several are acceptable (the client lists them by preference)', () => {
    assert.deepEqual(negotiate(`${PMD}; client_max_window_bits=9, ${PMD}`), [params({ clientMaxWindowBits: 9 }), `${PMD}; client_max_window_bits=9`])
    assert.deepEqual(negotiate(`${PMD}, ${PMD}; client_max_window_bits=9`), [params(), PMD])
  })

  it('skips offers of other extensions, before and after', () => {
    assert.deepEqual(negotiate(`x-webkit-deflate-frame, foo; bar=1, ${PMD}; client_no_context_takeover, baz`), [
      params({ clientNoContextTakeover: true }),
      `${PMD}; client_no_context_takeover`,
    ])
    // Another extension's parameters do not make the permessage-deflate offer invalid, and vice versa.
    assert.deepEqual(negotiate(`deflate-frame; server_max_window_bits=99, ${PMD}`), [params(), PMD])
  })

  it('no acceptable offer means running without compression: undefined, not a failure', () => {
    assert.equal(negotiateDeflate([]), undefined)
    assert.equal(negotiate('x-webkit-deflate-frame'), undefined)
    assert.equal(negotiate(`${PMD}; server_max_window_bits=7, ${PMD}; foo, x-webkit-deflate-frame`), undefined)
  })

  it('declined and accepted alike, the offers are not modified', () => {
    const list = offers(`${PMD}; foo, ${PMD}; server_max_window_bits=12; client_max_window_bits`)
    const before = JSON.stringify(list)
    negotiateDeflate(list, { serverMaxWindowBits: 10, clientMaxWindowBits: 9, serverNoContextTakeover: true })
    assert.equal(JSON.stringify(list), before)
  })
})

describe('negotiateDeflate: the server options shape the response', () => {
  it('serverNoContextTakeover true: the server says it resets its context, even unasked', () => {
    assert.deepEqual(negotiate(PMD, { serverNoContextTakeover: true }), [
      params({ serverNoContextTakeover: true }),
      `${PMD}; server_no_context_takeover`,
    ])
  })

  it('serverNoContextTakeover false declines offers requesting it, and accepts a later one that does not', () => {
    assert.equal(negotiate(`${PMD}; server_no_context_takeover`, { serverNoContextTakeover: false }), undefined)
    assert.deepEqual(negotiate(`${PMD}; server_no_context_takeover, ${PMD}`, { serverNoContextTakeover: false }), [params(), PMD])
  })

  it('serverNoContextTakeover unset: the client decides', () => {
    assert.deepEqual(negotiate(PMD, {}), [params(), PMD])
    assert.deepEqual(negotiate(`${PMD}; server_no_context_takeover`, {})?.[0], params({ serverNoContextTakeover: true }))
  })

  it('serverMaxWindowBits caps the server window at min(cap, offered) and is announced', () => {
    assert.deepEqual(negotiate(PMD, { serverMaxWindowBits: 10 }), [params({ serverMaxWindowBits: 10 }), `${PMD}; server_max_window_bits=10`])
    assert.deepEqual(negotiate(`${PMD}; server_max_window_bits=12`, { serverMaxWindowBits: 10 }), [
      params({ serverMaxWindowBits: 10 }),
      `${PMD}; server_max_window_bits=10`,
    ])
    assert.deepEqual(negotiate(`${PMD}; server_max_window_bits=9`, { serverMaxWindowBits: 10 }), [
      params({ serverMaxWindowBits: 9 }),
      `${PMD}; server_max_window_bits=9`,
    ])
    assert.deepEqual(negotiate(`${PMD}; server_max_window_bits=8`, { serverMaxWindowBits: 15 }), [
      params({ serverMaxWindowBits: 8 }),
      `${PMD}; server_max_window_bits=8`,
    ])
  })

  it('serverMaxWindowBits 15 (the default size) needs no announcement when not offered', () => {
    assert.deepEqual(negotiate(PMD, { serverMaxWindowBits: 15 }), [params(), PMD])
  })

  it('serverMaxWindowBits false declines offers that cap the server window, and accepts the others', () => {
    assert.equal(negotiate(`${PMD}; server_max_window_bits=10`, { serverMaxWindowBits: false }), undefined)
    assert.deepEqual(negotiate(`${PMD}; server_max_window_bits=10, ${PMD}`, { serverMaxWindowBits: false }), [params(), PMD])
  })

  it('clientMaxWindowBits declines offers without client_max_window_bits (§7.1.2.2: the response MUST NOT include it)', () => {
    assert.equal(negotiate(PMD, { clientMaxWindowBits: 10 }), undefined)
    assert.equal(negotiate(`${PMD}; client_no_context_takeover`, { clientMaxWindowBits: 10 }), undefined)
    assert.deepEqual(negotiate(`${PMD}, ${PMD}; client_max_window_bits`, { clientMaxWindowBits: 10 }), [
      params({ clientMaxWindowBits: 10 }),
      `${PMD}; client_max_window_bits=10`,
    ])
  })

  it('clientMaxWindowBits answers min(cap, offered) to an offer carrying the parameter', () => {
    const cases: Array<[string, number]> = [
      ['client_max_window_bits', 10],
      ['client_max_window_bits=12', 10],
      ['client_max_window_bits=10', 10],
      ['client_max_window_bits=9', 9],
    ]
    for (const [param, bits] of cases) {
      assert.deepEqual(negotiate(`${PMD}; ${param}`, { clientMaxWindowBits: 10 }), [
        params({ clientMaxWindowBits: bits }),
        `${PMD}; client_max_window_bits=${bits}`,
      ], param)
    }
  })

  it('clientNoContextTakeover true asks the client to reset its context', () => {
    assert.deepEqual(negotiate(PMD, { clientNoContextTakeover: true }), [
      params({ clientNoContextTakeover: true }),
      `${PMD}; client_no_context_takeover`,
    ])
  })

  it('never answers client_max_window_bits to an offer without it, whatever the options', () => {
    const choices: DeflateNegotiationOptions[] = []
    for (const serverNoContextTakeover of [undefined, true, false]) {
      for (const clientNoContextTakeover of [undefined, true, false]) {
        for (const serverMaxWindowBits of [undefined, true, false, 8, 12, 15]) {
          for (const clientMaxWindowBits of [undefined, true, false, 8, 12, 15]) {
            choices.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits })
          }
        }
      }
    }
    let accepted = 0
    for (const options of choices) {
      for (const header of [PMD, `${PMD}; server_no_context_takeover; server_max_window_bits=9`, `${PMD}; client_no_context_takeover`]) {
        const acceptance = negotiateDeflate(offers(header), options)
        if (acceptance === undefined) continue
        accepted++
        assert.ok(!acceptance.response.params.some(([name]) => name === 'client_max_window_bits'), JSON.stringify(options))
        assert.equal(acceptance.parameters.clientMaxWindowBits, 15)
      }
    }
    assert.ok(accepted > choices.length, 'most combinations are accepted')
  })

  it('all parameters together, in the response’s fixed order', () => {
    assert.deepEqual(
      negotiate(`${PMD}; client_max_window_bits=12; server_max_window_bits=11; client_no_context_takeover; server_no_context_takeover`, {
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 9,
      }),
      [
        { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
        `${PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9`,
      ],
    )
  })
})

describe('checkDeflateOptions', () => {
  it('accepts window sizes 8 to 15 and booleans', () => {
    for (const value of [undefined, true, false, ...BITS]) {
      checkDeflateOptions({ serverMaxWindowBits: value, clientMaxWindowBits: value })
    }
  })

  it('throws RangeError for other window sizes', () => {
    for (const value of [7, 16, 0, -1, 9.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => checkDeflateOptions({ serverMaxWindowBits: value }), RangeError)
      assert.throws(() => checkDeflateOptions({ clientMaxWindowBits: value }), RangeError)
    }
  })
})
