import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  type ExtensionOffer,
  hasToken,
  isToken,
  joinHeader,
  parseExtensions,
  parseSubprotocols,
  parseTokenList,
  serializeExtensions,
} from '../../src/core/handshake/headers.js'

/** tchar of RFC 7230 §3.2.6, spelled out independently of the implementation. */
const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
/** The RFC 7230 §3.2.6 delimiters, plus the characters that are never in a token. */
const NOT_TCHARS = ['"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}', ' ', '\t', '\x00', '\r', '\n', '\x7f', 'é', '\u00a0', '😀']

const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 })

/** 1 MiB: comfortably more than any HTTP server lets through in one header. */
const MB = 1 << 20

/** Runs `fn` and returns its result and the time it took, in milliseconds. */
function timed<T>(fn: () => T): { result: T; ms: number } {
  const start = performance.now()
  const result = fn()
  return { result, ms: performance.now() - start }
}

/**
 * A coarse guard against super-linear parsing (ws had a ReDoS, CVE-2021-32640):
 * a linear scan of 1 MiB takes milliseconds; a quadratic one takes minutes.
 */
const LINEAR_BUDGET_MS = 2000

describe('isToken (RFC 7230 §3.2.6)', () => {
  it('accepts every tchar, alone and together', () => {
    for (const c of TCHARS) assert.equal(isToken(c), true, JSON.stringify(c))
    assert.equal(isToken(TCHARS), true)
    assert.equal(isToken('permessage-deflate'), true)
  })

  it('rejects the empty string', () => {
    assert.equal(isToken(''), false)
  })

  it('rejects delimiters, whitespace, controls and non-ASCII anywhere in the string', () => {
    for (const c of NOT_TCHARS) {
      assert.equal(isToken(c), false, JSON.stringify(c))
      assert.equal(isToken(`a${c}`), false, JSON.stringify(`a${c}`))
      assert.equal(isToken(`${c}a`), false, JSON.stringify(`${c}a`))
    }
  })

  it('agrees with the tchar set for arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 8 }), (text) => {
        const expected = text.length > 0 && [...text].every((c) => TCHARS.includes(c))
        assert.equal(isToken(text), expected)
      }),
    )
  })
})

describe('joinHeader (RFC 7230 §3.2.2)', () => {
  it('passes a single value and absence through', () => {
    assert.equal(joinHeader(undefined), undefined)
    assert.equal(joinHeader(''), '')
    assert.equal(joinHeader('a, b'), 'a, b')
  })

  it('joins repeated header lines with a comma, in order', () => {
    assert.equal(joinHeader(['a', 'b, c']), 'a, b, c')
    assert.equal(joinHeader(['only']), 'only')
    assert.equal(joinHeader([]), '')
  })
})

describe('parseTokenList', () => {
  it('reads an absent or empty header as no tokens', () => {
    assert.deepEqual(parseTokenList(undefined), [])
    assert.deepEqual(parseTokenList(''), [])
    assert.deepEqual(parseTokenList('   '), [])
  })

  it('splits on commas and trims optional whitespace (spaces and tabs)', () => {
    assert.deepEqual(parseTokenList('a'), ['a'])
    assert.deepEqual(parseTokenList('a,b'), ['a', 'b'])
    assert.deepEqual(parseTokenList(' a ,\tb\t, c '), ['a', 'b', 'c'])
    assert.deepEqual(parseTokenList(TCHARS), [TCHARS])
  })

  it('ignores empty list elements (RFC 7230 §7)', () => {
    assert.deepEqual(parseTokenList('a, , b'), ['a', 'b'])
    assert.deepEqual(parseTokenList(',a,,b,'), ['a', 'b'])
    assert.deepEqual(parseTokenList(',,,'), [])
  })

  it('keeps case and order', () => {
    assert.deepEqual(parseTokenList('B, a, A'), ['B', 'a', 'A'])
  })

  it('joins repeated header lines', () => {
    assert.deepEqual(parseTokenList(['a, b', 'c']), ['a', 'b', 'c'])
    assert.deepEqual(parseTokenList(['a', '', 'b']), ['a', 'b'])
  })

  it('rejects an element that is not one token', () => {
    for (const bad of ['web socket', 'websocket;', 'a, b c', '"a"', 'a/b', 'a=b', 'é', 'a\x00', 'a\r\nb', 'a;q=1']) {
      assert.equal(parseTokenList(bad), undefined, JSON.stringify(bad))
    }
    assert.equal(parseTokenList(['a', 'b c']), undefined)
  })

  it('round-trips any list of tokens joined with optional whitespace', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(token, fc.constantFrom('', ' ', '\t', '  ')), { maxLength: 8 }),
        fc.constantFrom(',', ', ', ' ,', ' , '),
        (items, comma) => {
          const text = items.map(([t, ws]) => ws + t + ws).join(comma)
          assert.deepEqual(
            parseTokenList(text),
            items.map(([t]) => t),
          )
        },
      ),
    )
  })
})

describe('hasToken', () => {
  it('finds a token in a list, ASCII case-insensitively', () => {
    assert.equal(hasToken('websocket', 'websocket'), true)
    assert.equal(hasToken('WebSocket', 'websocket'), true)
    assert.equal(hasToken('foo, websocket', 'websocket'), true)
    assert.equal(hasToken('keep-alive, Upgrade', 'upgrade'), true)
    assert.equal(hasToken('UPGRADE', 'upgrade'), true)
    assert.equal(hasToken('upgrade', 'Upgrade'), true)
    assert.equal(hasToken(['keep-alive', 'Upgrade'], 'upgrade'), true)
  })

  it('matches whole elements, never substrings', () => {
    assert.equal(hasToken('websockets', 'websocket'), false)
    assert.equal(hasToken('xwebsocket', 'websocket'), false)
    assert.equal(hasToken('web', 'websocket'), false)
  })

  it('is false for an absent header, and for a malformed list even if the token is in it', () => {
    assert.equal(hasToken(undefined, 'websocket'), false)
    assert.equal(hasToken('', 'websocket'), false)
    assert.equal(hasToken('web socket', 'websocket'), false)
    assert.equal(hasToken('websocket;', 'websocket'), false)
    assert.equal(hasToken('websocket, web socket', 'websocket'), false)
  })
})

describe('parseSubprotocols (RFC 6455 §4.1, §11.3.4)', () => {
  it('reads a list of tokens in the client order', () => {
    assert.deepEqual(parseSubprotocols('chat, superchat'), ['chat', 'superchat'])
    assert.deepEqual(parseSubprotocols(['chat', 'superchat']), ['chat', 'superchat'])
    assert.deepEqual(parseSubprotocols(undefined), [])
  })

  it('tolerates empty list elements', () => {
    assert.deepEqual(parseSubprotocols('a, , b'), ['a', 'b'])
  })

  it('is case-sensitive: names differing in case are distinct', () => {
    assert.deepEqual(parseSubprotocols('chat, Chat'), ['chat', 'Chat'])
  })

  it('rejects a name offered twice, on one line or across lines', () => {
    assert.equal(parseSubprotocols('chat, chat'), undefined)
    assert.equal(parseSubprotocols('a, b, a'), undefined)
    assert.equal(parseSubprotocols(['chat', 'chat']), undefined)
  })

  it('rejects non-token names and quoted strings', () => {
    for (const bad of ['a b', 'a;b', 'ch@t', '"chat"', 'chat, "superchat"', 'a/b', 'ch\u00e4t']) {
      assert.equal(parseSubprotocols(bad), undefined, JSON.stringify(bad))
    }
  })
})

describe('parseExtensions (RFC 6455 §9.1)', () => {
  it('reads an absent or empty header as no offers', () => {
    assert.deepEqual(parseExtensions(undefined), [])
    assert.deepEqual(parseExtensions(''), [])
  })

  it('reads an extension with a parameter without value as `true`', () => {
    assert.deepEqual(parseExtensions('permessage-deflate; client_max_window_bits'), [
      { name: 'permessage-deflate', params: [['client_max_window_bits', true]] },
    ])
  })

  it('reads a token value', () => {
    assert.deepEqual(parseExtensions('permessage-deflate; client_max_window_bits=10'), [
      { name: 'permessage-deflate', params: [['client_max_window_bits', '10']] },
    ])
  })

  it('unquotes a quoted-string value', () => {
    assert.deepEqual(parseExtensions('permessage-deflate; client_max_window_bits="10"'), [
      { name: 'permessage-deflate', params: [['client_max_window_bits', '10']] },
    ])
  })

  it('unescapes quoted-pairs (RFC 7230 §3.2.6)', () => {
    assert.deepEqual(parseExtensions('a; x="\\1\\0"'), [{ name: 'a', params: [['x', '10']] }])
  })

  it('accepts optional whitespace around ";" and "="', () => {
    assert.deepEqual(parseExtensions('a ;x = 1 ;\ty\t, b'), [
      { name: 'a', params: [['x', '1'], ['y', true]] },
      { name: 'b', params: [] },
    ])
  })

  it('keeps several offers, and several parameters, in order (an extension may be offered twice)', () => {
    assert.deepEqual(parseExtensions('a; x=1, b, a; y'), [
      { name: 'a', params: [['x', '1']] },
      { name: 'b', params: [] },
      { name: 'a', params: [['y', true]] },
    ])
    assert.deepEqual(parseExtensions('permessage-deflate; server_no_context_takeover; client_max_window_bits=15; server_max_window_bits=10'), [
      {
        name: 'permessage-deflate',
        params: [
          ['server_no_context_takeover', true],
          ['client_max_window_bits', '15'],
          ['server_max_window_bits', '10'],
        ],
      },
    ])
  })

  it('joins repeated header lines', () => {
    assert.deepEqual(parseExtensions(['a; x=1', 'b']), [
      { name: 'a', params: [['x', '1']] },
      { name: 'b', params: [] },
    ])
  })

  it('ignores empty list elements (RFC 7230 §7)', () => {
    assert.deepEqual(parseExtensions(', a, , b ,'), [
      { name: 'a', params: [] },
      { name: 'b', params: [] },
    ])
    assert.deepEqual(parseExtensions(',,'), [])
  })

  it('rejects malformed headers', () => {
    const malformed = [
      'a; x="10', // unterminated quoted-string
      'a; x="10\\"', // the closing quote is escaped
      'a; x="1 0"', // not a token once unquoted
      'a; x=""', // empty is not a token
      'a; x="1,0"', // a comma inside a quoted value
      'a; x="a;b"',
      'a;', // missing parameter name
      'a; ', //
      'a; =1',
      'a; x=', // missing value
      'a; x= , b',
      'a b',
      'a;; b',
      'a; x=1 2',
      'a; x="1"2',
      '; x',
      '"a"',
      'a; "x"',
      'a; x=1=2',
      'a/b',
      'a, b c',
      'é', // non-ASCII
      'a; é',
      'a; x=é',
      'a; x="é"',
      'a; x="1\r\n0"',
      'a\x00',
    ]
    for (const bad of malformed) assert.equal(parseExtensions(bad), undefined, JSON.stringify(bad))
  })

  it('rejects a malformed line among good ones', () => {
    assert.equal(parseExtensions(['a', 'b;']), undefined)
  })
})

describe('serializeExtensions', () => {
  it('writes the §9.1 form', () => {
    assert.equal(serializeExtensions([]), '')
    assert.equal(
      serializeExtensions([
        { name: 'permessage-deflate', params: [['client_max_window_bits', true], ['server_max_window_bits', '10']] },
        { name: 'x-foo', params: [] },
      ]),
      'permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-foo',
    )
  })

  it('quotes values that are not tokens, escaping quotes and backslashes', () => {
    assert.equal(serializeExtensions([{ name: 'a', params: [['x', '1 0']] }]), 'a; x="1 0"')
    assert.equal(serializeExtensions([{ name: 'a', params: [['x', 'a,b']] }]), 'a; x="a,b"')
    assert.equal(serializeExtensions([{ name: 'a', params: [['x', '']] }]), 'a; x=""')
    assert.equal(serializeExtensions([{ name: 'a', params: [['x', 'say "hi"\\']] }]), 'a; x="say \\"hi\\"\\\\"')
  })

  it('does not quote token values', () => {
    assert.equal(serializeExtensions([{ name: 'a', params: [['x', "10!#$%&'*+-.^_`|~"]] }]), "a; x=10!#$%&'*+-.^_`|~")
  })

  it('quotes exactly the non-token values, reversibly', () => {
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 12 })
    fc.assert(
      fc.property(printable, (value) => {
        const out = serializeExtensions([{ name: 'a', params: [['x', value]] }])
        const written = out.slice('a; x='.length)
        if (isToken(value)) {
          assert.equal(written, value)
        } else {
          assert.ok(written.length >= 2 && written.startsWith('"') && written.endsWith('"'), out)
          // Undo the quoted-pairs: what is inside the quotes is the value again.
          assert.equal(written.slice(1, -1).replace(/\\(.)/g, '$1'), value)
        }
      }),
    )
  })

  it('round-trips: parseExtensions(serializeExtensions(x)) deep-equals x', () => {
    const offer: fc.Arbitrary<ExtensionOffer> = fc
      .tuple(token, fc.array(fc.tuple(token, fc.oneof(fc.constant<true>(true), token)), { maxLength: 5 }))
      .map(([name, params]) => ({ name, params }))
    fc.assert(
      fc.property(fc.array(offer, { maxLength: 5 }), (offers) => {
        assert.deepEqual(parseExtensions(serializeExtensions(offers)), offers)
      }),
    )
  })

  it('parses a quoted value that is a token, however it is escaped', () => {
    fc.assert(
      fc.property(token, fc.infiniteStream(fc.boolean()), (value, escapes) => {
        let quoted = '"'
        for (const c of value) quoted += (escapes.next().value ? '\\' : '') + c
        quoted += '"'
        assert.deepEqual(parseExtensions(`a; x=${quoted}`), [{ name: 'a', params: [['x', value]] }])
      }),
    )
  })
})

describe('hostile headers parse in linear time', () => {
  it('parseExtensions: "a;a;a;..." (valid and invalid)', () => {
    const valid = timed(() => parseExtensions('a;'.repeat(MB / 2) + 'a'))
    assert.equal(valid.result?.length, 1)
    assert.equal(valid.result?.[0]?.params.length, MB / 2)
    assert.ok(valid.ms < LINEAR_BUDGET_MS, `${valid.ms} ms`)

    const invalid = timed(() => parseExtensions('a;'.repeat(MB / 2)))
    assert.equal(invalid.result, undefined)
    assert.ok(invalid.ms < LINEAR_BUDGET_MS, `${invalid.ms} ms`)
  })

  it('parseExtensions: ",,,,," and runs of whitespace', () => {
    const commas = timed(() => parseExtensions(','.repeat(MB)))
    assert.deepEqual(commas.result, [])
    assert.ok(commas.ms < LINEAR_BUDGET_MS, `${commas.ms} ms`)

    const spaces = timed(() => parseExtensions('a' + ' '.repeat(MB) + 'b'))
    assert.equal(spaces.result, undefined)
    assert.ok(spaces.ms < LINEAR_BUDGET_MS, `${spaces.ms} ms`)

    const paramSpaces = timed(() => parseExtensions('a;' + ' '.repeat(MB) + 'x' + ' '.repeat(MB) + '=' + ' '.repeat(MB) + '1'))
    assert.deepEqual(paramSpaces.result, [{ name: 'a', params: [['x', '1']] }])
    assert.ok(paramSpaces.ms < LINEAR_BUDGET_MS, `${paramSpaces.ms} ms`)
  })

  it('parseExtensions: long runs of quotes and backslashes', () => {
    const bare = timed(() => parseExtensions('"' + '\\'.repeat(MB)))
    assert.equal(bare.result, undefined)
    assert.ok(bare.ms < LINEAR_BUDGET_MS, `${bare.ms} ms`)

    const unterminated = timed(() => parseExtensions('a; x="' + '\\'.repeat(MB)))
    assert.equal(unterminated.result, undefined)
    assert.ok(unterminated.ms < LINEAR_BUDGET_MS, `${unterminated.ms} ms`)

    const escapedQuotes = timed(() => parseExtensions('a; x="' + '\\"'.repeat(MB / 2)))
    assert.equal(escapedQuotes.result, undefined)
    assert.ok(escapedQuotes.ms < LINEAR_BUDGET_MS, `${escapedQuotes.ms} ms`)

    const escapedToken = timed(() => parseExtensions('a; x="' + '\\a'.repeat(MB / 2) + '"'))
    assert.equal((escapedToken.result?.[0]?.params[0]?.[1] as string | undefined)?.length, MB / 2)
    assert.ok(escapedToken.ms < LINEAR_BUDGET_MS, `${escapedToken.ms} ms`)

    const manyQuoted = timed(() => parseExtensions('a' + '; x="1"'.repeat(MB / 8) + ';'))
    assert.equal(manyQuoted.result, undefined)
    assert.ok(manyQuoted.ms < LINEAR_BUDGET_MS, `${manyQuoted.ms} ms`)
  })

  it('parseTokenList and parseSubprotocols: 1 MiB of spaces, commas, and the ws ReDoS shape', () => {
    const spaces = timed(() => parseTokenList(' '.repeat(MB)))
    assert.deepEqual(spaces.result, [])
    assert.ok(spaces.ms < LINEAR_BUDGET_MS, `${spaces.ms} ms`)

    // CVE-2021-32640: "b" followed by many spaces and a non-space.
    const redos = timed(() => parseTokenList('b' + ' '.repeat(MB) + 'x'))
    assert.equal(redos.result, undefined)
    assert.ok(redos.ms < LINEAR_BUDGET_MS, `${redos.ms} ms`)

    const many = timed(() => parseSubprotocols('a,'.repeat(MB / 2)))
    assert.equal(many.result, undefined) // the same name many times
    assert.ok(many.ms < LINEAR_BUDGET_MS, `${many.ms} ms`)

    const hasIt = timed(() => hasToken(' ,'.repeat(MB / 2) + 'websocket', 'websocket'))
    assert.equal(hasIt.result, true)
    assert.ok(hasIt.ms < LINEAR_BUDGET_MS, `${hasIt.ms} ms`)
  })
})
