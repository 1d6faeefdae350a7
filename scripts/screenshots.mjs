#!/usr/bin/env node
// Takes the README's screenshots of the demo pages: starts `tether serve`, has two
// people chat in chromium, and saves docs/images/chat.png and docs/images/scores.png.
//   node scripts/screenshots.mjs
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'

const root = new URL('..', import.meta.url).pathname
const serve = spawn(process.execPath, ['dist/cli/main.js', 'serve', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
const first = await new Promise((resolve) => createInterface({ input: serve.stdout }).once('line', resolve))
const url = /on (http\S+)/.exec(first)[1]
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] })
try {
  const join = async (nick) => {
    const page = await (await browser.newContext({ viewport: { width: 960, height: 600 } })).newPage()
    await page.goto(`${url}/chat?room=lobby`)
    await page.locator('#status[data-state="open"]').waitFor()
    await page.fill('#nick', nick)
    await page.click('#join button')
    await page.locator('#log li.notice').first().waitFor()
    return page
  }
  const say = async (page, text) => {
    await page.fill('#text', text)
    await page.press('#text', 'Enter')
    await page.locator('#log li.message', { hasText: text }).waitFor()
  }
  const ada = await join('ada')
  const grace = await join('grace')
  await say(ada, 'Morning! Is the deploy still on for 10:00?')
  await say(grace, 'Yes, the canary looks healthy so far.')
  await say(ada, 'Great, I will watch the live scores meanwhile.')
  await ada.locator('#log li.message').nth(2).waitFor()
  await ada.screenshot({ path: `${root}docs/images/chat.png` })
  const scores = await (await browser.newContext({ viewport: { width: 960, height: 520 } })).newPage()
  await scores.goto(`${url}/scores`)
  await scores.locator('.match').nth(5).waitFor()
  await scores.waitForTimeout(1500)
  await scores.screenshot({ path: `${root}docs/images/scores.png` })
} finally {
  await browser.close()
  serve.kill('SIGTERM')
}
