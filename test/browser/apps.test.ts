/**
 * The demo pages of `tether serve` in a real browser (Debian's chromium via
 * playwright-core): two people chat in a room, the live-scores page updates,
 * a page reconnects after the server restarts, and two `tether serve` nodes
 * joined by a real Redis carry a chat between a user on each.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import type { Browser, Page } from 'playwright-core'
import { launchChromium } from '../helpers/browser.js'
import { type Broker, startBroker } from '../helpers/brokers.js'
import { type ServeProcess, startServe } from '../helpers/cli.js'

let browser: Browser
const stops: Array<() => Promise<unknown>> = []
before(async () => {
  browser = await launchChromium()
})
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {})
  await browser?.close()
})

async function serveFor(args: string[] = [], port = 0): Promise<ServeProcess> {
  const serve = await startServe(args, port)
  stops.push(() => serve.stop('SIGKILL'))
  return serve
}

async function joinChat(url: string, nick: string, room: string, token?: string): Promise<Page> {
  const context = await browser.newContext()
  stops.push(() => context.close())
  const page = await context.newPage()
  await page.goto(`${url}/chat?room=${room}${token ? `&token=${token}` : ''}`)
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
  await page.fill('#nick', nick)
  await page.click('#join button')
  await page.locator('#log li.notice', { hasText: `You joined #${room} as ${nick}` }).waitFor({ timeout: 10_000 })
  return page
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.press('#text', 'Enter')
}

const messageIn = (page: Page, nick: string, text: string) =>
  page.locator('#log li.message', { hasText: text }).filter({ has: page.locator('strong', { hasText: nick }) })

describe('the demo pages in chromium', { timeout: 120_000 }, () => {
  test('two people chat in a room: each sees the other, who is online, join notices', async () => {
    const serve = await serveFor()
    const ada = await joinChat(serve.url, 'ada', 'garden')
    const bob = await joinChat(serve.url, 'bob', 'garden')
    await ada.locator('#log li.notice', { hasText: 'bob joined.' }).waitFor({ timeout: 10_000 })
    await say(ada, 'hello from ada')
    await messageIn(bob, 'ada', 'hello from ada').waitFor({ timeout: 10_000 })
    await say(bob, 'hi ada, bob here')
    await messageIn(ada, 'bob', 'hi ada, bob here').waitFor({ timeout: 10_000 })
    assert.deepEqual(await bob.locator('#online li').allTextContents(), ['ada', 'bob'])
    assert.equal(await ada.locator('#online-count').textContent(), '2')
    // A third person gets the room's recent messages on join.
    const cy = await joinChat(serve.url, 'cy', 'garden')
    await messageIn(cy, 'ada', 'hello from ada').waitFor({ timeout: 10_000 })
    await messageIn(cy, 'bob', 'hi ada, bob here').waitFor({ timeout: 10_000 })
    await cy.context().close()
    await ada.locator('#log li.notice', { hasText: 'cy left.' }).waitFor({ timeout: 10_000 })
  })

  test('with --auth jwt: the chat page works with a token (the hub names you after it), and without one it is refused', async () => {
    const secret = 'the browser test secret, long enough for HS256'
    const serve = await serveFor(['--auth', 'jwt', '--jwt-secret', secret])
    // A token helper, as an app's login would issue them.
    const issue = (sub: string) =>
      new SignJWT({ sub, tether: { subscribe: ['chat:*'], publish: ['chat:*'] } })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(secret))
    const ada = await joinChat(serve.url, 'ada', 'vault', await issue('ada'))
    // bob types another name: the hub names him after his token.
    const bob = await joinChat(serve.url, 'bob', 'vault', await issue('bob'))
    assert.equal(new URL(ada.url()).searchParams.has('token'), false, 'the token left the address bar')
    await say(bob, 'signed in')
    await messageIn(ada, 'bob', 'signed in').waitFor({ timeout: 10_000 })
    assert.deepEqual(await ada.locator('#online li').allTextContents(), ['ada', 'bob'])
    // No token: the WebSocket is refused (401) and the page says it is not connected.
    const anonymous = await (await browser.newContext()).newPage()
    stops.push(() => anonymous.context().close())
    await anonymous.goto(`${serve.url}/chat`)
    await anonymous.locator('#status[data-state="closed"]').waitFor({ timeout: 10_000 })
    assert.match(serve.stderr() + serve.logs().join('\n'), /^(?!.*eyJ)/s, 'no token in the server output')
  })

  test('the live-scores page shows every match and updates its clocks', async () => {
    const serve = await serveFor()
    const page = await (await browser.newContext()).newPage()
    stops.push(() => page.context().close())
    await page.goto(`${serve.url}/scores`)
    await page.locator('.match').nth(5).waitFor({ timeout: 10_000 })
    assert.equal(await page.locator('.match').count(), 6)
    const before = await page.locator('#updated').textContent()
    const clocks = await page.locator('.match .clock').allTextContents()
    await page.waitForFunction(`document.getElementById('updated').textContent !== ${JSON.stringify(before)}`, undefined, { timeout: 5_000 })
    await page.waitForFunction(
      `[...document.querySelectorAll('.match .clock')].some((clock, i) => clock.textContent !== ${JSON.stringify(clocks)}[i])`,
      undefined,
      { timeout: 5_000 },
    )
  })

  test('a page reconnects after the server restarts, and updates resume', async () => {
    const first = await serveFor()
    const page = await (await browser.newContext()).newPage()
    stops.push(() => page.context().close())
    await page.goto(`${first.url}/scores`)
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
    assert.equal(await first.stop('SIGTERM'), 0)
    await page.locator('#status[data-state="closed"]').waitFor({ timeout: 10_000 })
    // Issue 16: while disconnected, the scores say they may be out of date.
    await page.locator('#board[data-stale="true"]').waitFor({ timeout: 5_000 })
    assert.equal(await page.locator('#stale').isVisible(), true)
    // Same port, new process.
    await serveFor([], first.port)
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 20_000 })
    await page.locator('#board[data-stale="false"]').waitFor({ timeout: 5_000 })
    assert.equal(await page.locator('#stale').isVisible(), false)
    const stamp = await page.locator('#updated').textContent()
    await page.waitForFunction(`document.getElementById('updated').textContent !== ${JSON.stringify(stamp)}`, undefined, { timeout: 5_000 })
  })

  test('two tether serve nodes joined by a real Redis: a user on node A chats with a user on node B', async () => {
    const redis: Broker = await startBroker('redis')
    stops.push(() => redis.stop())
    const nodeA = await serveFor(['--redis', redis.url])
    const nodeB = await serveFor(['--redis', redis.url])
    const health = (await (await fetch(`${nodeA.url}/health`)).json()) as { backplane: unknown }
    assert.deepEqual(health.backplane, { kind: 'redis', state: 'connected' })
    const ada = await joinChat(nodeA.url, 'ada', 'cluster')
    const bob = await joinChat(nodeB.url, 'bob', 'cluster')
    await ada.locator('#log li.notice', { hasText: 'bob joined.' }).waitFor({ timeout: 10_000 })
    await say(ada, 'sent on node A')
    await messageIn(bob, 'ada', 'sent on node A').waitFor({ timeout: 10_000 })
    await say(bob, 'answered on node B')
    await messageIn(ada, 'bob', 'answered on node B').waitFor({ timeout: 10_000 })
    // Who is online spans both nodes.
    await bob.waitForFunction(`document.getElementById('online-count').textContent === '2'`, undefined, { timeout: 10_000 })
    assert.deepEqual(await ada.locator('#online li').allTextContents(), ['ada', 'bob'])
  })
})

// Issue 16: what a new user noticed in the first hour.
describe('the demo pages, polish (issue 16)', { timeout: 120_000 }, () => {
  test('chat: leave a room and join another without reloading; a nickname taken in the room is refused beside the form', async () => {
    const serve = await serveFor()
    const ada = await joinChat(serve.url, 'ada', 'first')
    await ada.click('#leave')
    await ada.locator('#join').waitFor({ state: 'visible', timeout: 10_000 })
    await ada.fill('#room', 'second')
    await ada.click('#join button')
    await ada.locator('#log li.notice', { hasText: 'You joined #second as ada' }).waitFor({ timeout: 10_000 })
    assert.equal(await ada.locator('#room-title').textContent(), '#second')
    const impostor = await (await browser.newContext()).newPage()
    stops.push(() => impostor.context().close())
    await impostor.goto(`${serve.url}/chat?room=second`)
    await impostor.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
    await impostor.fill('#nick', 'ada')
    await impostor.click('#join button')
    await impostor.locator('#join-error', { hasText: 'ada is taken' }).waitFor({ timeout: 10_000 })
    assert.equal(await impostor.locator('#room-view').isVisible(), false)
    assert.deepEqual(await ada.locator('#online li').allTextContents(), ['ada'])
  })

  test('chat on a 390 px screen: messages, then the input, then who is online (never between them)', async () => {
    const serve = await serveFor()
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 })
    stops.push(() => context.close())
    const page = await context.newPage()
    await page.goto(`${serve.url}/chat?room=phone`)
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
    await page.fill('#nick', 'ada')
    await page.click('#join button')
    await page.locator('#log li.notice', { hasText: 'You joined #phone' }).waitFor({ timeout: 10_000 })
    const box = async (selector: string) => (await page.locator(selector).boundingBox())!
    const [log, say, online] = [await box('#log'), await box('#say'), await box('#room-view aside')]
    assert.ok(log.y + log.height <= say.y + 1, 'the input right under the messages')
    assert.ok(say.y + say.height <= online.y + 1, 'who is online after the input')
    assert.ok(say.x + say.width <= 390 + 1, 'nothing wider than the screen')
  })

  test('contrast: text and buttons meet WCAG AA (4.5:1), in the light and the dark scheme', async () => {
    const serve = await serveFor()
    for (const colorScheme of ['light', 'dark'] as const) {
      const context = await browser.newContext({ colorScheme })
      stops.push(() => context.close())
      const page = await context.newPage()
      await page.goto(`${serve.url}/chat?room=contrast`)
      await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
      await page.fill('#nick', 'ada')
      await page.click('#join button')
      await page.locator('#log li.notice').first().waitFor({ timeout: 10_000 })
      const ratios: Array<[string, number]> = await page.evaluate(`(() => {
        const parse = (color) => (color.match(/[\\d.]+/g) || []).map(Number)
        const luminance = ([r, g, b]) => {
          const channel = (value) => { const c = value / 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4 }
          return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
        }
        const background = (element) => {
          for (let node = element; node; node = node.parentElement) {
            const color = parse(getComputedStyle(node).backgroundColor)
            if (color.length === 3 || (color.length === 4 && color[3] > 0)) return color.slice(0, 3)
          }
          return parse(getComputedStyle(document.body).backgroundColor).slice(0, 3)
        }
        const selectors = ['header h1', 'header nav a', '#status', '#join-error', '#log li', '#log time', '#say button', '#leave', '#online-title', '#text']
        const out = []
        for (const selector of selectors) {
          for (const element of document.querySelectorAll(selector)) {
            const fg = luminance(parse(getComputedStyle(element).color))
            const bg = luminance(background(element))
            out.push([selector, (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05)])
          }
        }
        return out
      })()`)
      assert.ok(ratios.length >= 8, `${ratios.length} elements checked`)
      for (const [selector, ratio] of ratios) assert.ok(ratio >= 4.5, `${colorScheme}: ${selector} at ${ratio.toFixed(2)}:1`)
      // The scores page too.
      await page.goto(`${serve.url}/scores`)
      await page.locator('.match').nth(5).waitFor({ timeout: 10_000 })
      const scores: Array<[string, number]> = await page.evaluate(`(() => {
        const parse = (color) => (color.match(/[\\d.]+/g) || []).map(Number)
        const luminance = ([r, g, b]) => {
          const channel = (value) => { const c = value / 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4 }
          return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
        }
        const background = (element) => {
          for (let node = element; node; node = node.parentElement) {
            const color = parse(getComputedStyle(node).backgroundColor)
            if (color.length === 3 || (color.length === 4 && color[3] > 0)) return color.slice(0, 3)
          }
          return [255, 255, 255]
        }
        const measure = (label) => [...document.querySelectorAll('.match .score, .match .clock, .match .home, main small')].map((element) => {
          const fg = luminance(parse(getComputedStyle(element).color))
          const bg = luminance(background(element))
          return [(element.className || element.tagName) + label, (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05)]
        })
        const now = measure('')
        // A goal flashes its match from --goal back to the card: the text must read on where the flash starts
        // (CI once measured the dark clock mid-flash at 4.03:1).
        for (const match of document.querySelectorAll('.match')) {
          match.style.animation = 'none'
          match.style.background = 'var(--goal)'
        }
        return now.concat(measure(' (goal)'))
      })()`)
      for (const [selector, ratio] of scores) assert.ok(ratio >= 4.5, `${colorScheme} scores: ${selector} at ${ratio.toFixed(2)}:1`)
    }
  })
})

// Issue 17: the pages read through tether-ws/client on /v1.
describe('the demo pages on the reliable-delivery client (issue 17)', { timeout: 120_000 }, () => {
  test('scores: one connection, a tether.v1 session, and the newest snapshot at once', async () => {
    const serve = await serveFor()
    const page = await (await browser.newContext()).newPage()
    stops.push(() => page.context().close())
    await page.goto(`${serve.url}/scores`)
    await page.locator('.match').nth(5).waitFor({ timeout: 10_000 })
    const health = (await (await fetch(`${serve.url}/health`)).json()) as { connections: number; apps: { delivery: { sessions: number } } }
    assert.deepEqual([health.connections, health.apps.delivery.sessions], [1, 1])
  })

  test('chat: a page kept away longer than the room keeps says how many messages it missed, then goes on', async () => {
    const redis: Broker = await startBroker('redis')
    stops.push(() => redis.stop())
    const nodeA = await serveFor(['--redis', redis.url])
    const nodeB = await serveFor(['--redis', redis.url])
    const ada = await joinChat(nodeA.url, 'ada', 'busy')
    await say(ada, 'before the outage')
    await messageIn(ada, 'ada', 'before the outage').waitFor({ timeout: 10_000 })
    // ada's node goes away; 130 messages are said on node B meanwhile (a room keeps 100).
    await nodeA.stop('SIGKILL')
    await ada.locator('#status[data-state="closed"]').waitFor({ timeout: 10_000 })
    const { WebSocket: WsClient } = await import('ws')
    const bob = new WsClient(`${nodeB.wsUrl}/chat/ws`)
    await new Promise((resolve) => bob.once('open', resolve))
    const answers: string[] = []
    bob.on('message', (data) => answers.push(JSON.parse(String(data)).type))
    bob.send(JSON.stringify({ type: 'join', room: 'busy', nick: 'bob' }))
    for (let i = 1; i <= 130; i++) bob.send(JSON.stringify({ type: 'say', text: `busy ${i}`, id: `b${i}` }))
    for (let i = 0; i < 200 && answers.filter((type) => type === 'said').length < 130; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(answers.filter((type) => type === 'said').length, 130)
    // The node comes back (same port, new process): the page resumes, and says what the room no longer has.
    await serveFor(['--redis', redis.url], nodeA.port)
    await ada.locator('#log li.error', { hasText: '30 messages could not be recovered.' }).waitFor({ timeout: 30_000 })
    await messageIn(ada, 'bob', 'busy 130').waitFor({ timeout: 10_000 })
    const texts = await ada.locator('#log li.message').allTextContents()
    assert.equal(texts.length, 1 + 100, 'the one before, then the 100 the room kept')
    assert.match(texts[1]!, /busy 31$/)
    await say(ada, 'back')
    await messageIn(ada, 'ada', 'back').waitFor({ timeout: 10_000 })
    bob.terminate()
  })
})
