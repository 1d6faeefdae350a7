/**
 * Debian's chromium, driven by playwright-core, for the tests that need a
 * real browser. A missing browser fails the test with what to install; it
 * is never skipped.
 */
import { existsSync } from 'node:fs'
import type { Browser } from 'playwright-core'
import { withTimeout } from './net.js'

export const CHROMIUM = process.env.TETHER_CHROMIUM ?? '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--ignore-certificate-errors',
]
export async function launchChromium(): Promise<Browser> {
  const hint =
    `The browser tests need Debian's chromium at ${CHROMIUM} (override with TETHER_CHROMIUM) and the npm ` +
    'package playwright-core: .ci/run installs chromium (apt-get install chromium) and `npm ci` installs playwright-core.'
  if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}. ${hint}`)
  let playwright: typeof import('playwright-core')
  try {
    playwright = await import('playwright-core')
  } catch (error) {
    throw new Error(`playwright-core cannot be loaded (${(error as Error).message}). ${hint}`)
  }
  try {
    return await withTimeout(
      playwright.chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 }),
      35_000,
      'chromium to start',
    )
  } catch (error) {
    throw new Error(`chromium at ${CHROMIUM} did not start (${(error as Error).message}). ${hint}`)
  }
}

