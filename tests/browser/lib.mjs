// lib.mjs: what the browser tests share: launching Debian's Chromium through
// playwright-core, waiting for a condition, and where screenshots go.

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

// A page that fails the test on any uncaught script error or dialog
// (an alert() would mean injected HTML ran), and on anything the pages'
// Content-Security-Policy blocks: a blocked script, worker, media or
// websocket breaks the page quietly, so every violation is reported from
// inside the page (securitypolicyviolation, also from workers' owners) and
// from Chromium's console line ("Refused to ...").
export async function newPage(browser, { width = 1280, height = 800, problems } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale: 'zh-CN' });
  await context.exposeBinding('__cspViolation', (_source, text) => problems?.push(`CSP violation: ${text}`));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} in ${e.documentURI}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to (load|connect|execute|create|frame|apply)/.test(msg.text()))
      problems?.push(`CSP console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems?.push(`page error: ${err.message}`));
  page.on('dialog', async (d) => {
    problems?.push(`dialog: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  return page;
}

export async function waitFor(what, fn, { timeout = 10000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export function outDir() {
  const dir = process.env.BROWSER_OUT || join(tmpdir(), 'galarelay-browser-out');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
