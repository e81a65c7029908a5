import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGate, memoryFixture, serve, XSS, type Fixture, type Served } from './fixture.js';

/**
 * The dashboard in headless Chromium, driven by playwright-core (a devDependency) against the
 * system Chromium. Skipped with a warning when either is missing on a developer machine; fails
 * in CI, where both must be installed.
 */

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TOKEN = 'browser-token-0123456789abcdef';

type Playwright = typeof import('playwright-core');
/** The page's localStorage, typed here because the test's lib has no DOM. */
interface PageGlobals {
  localStorage: { getItem(key: string): string | null; setItem(key: string, value: string): void };
  __xss?: unknown;
}

let playwright: Playwright | null = null;
try {
  playwright = await import('playwright-core');
} catch {
  playwright = null;
}
const missing =
  playwright === null ? 'playwright-core (npm devDependency)' : existsSync(CHROMIUM) ? null : CHROMIUM;

if (missing && process.env.CI) {
  describe('dashboard in a browser', () => {
    it('has a browser to run in', () => {
      throw new Error(`the browser test needs ${missing}, which is missing in CI`);
    });
  });
} else if (missing) {
  console.warn(`\u26a0 skipping test/server/browser.test.ts: ${missing} is not installed`);
  // Skipped only outside CI, when Chromium or playwright-core is missing: the warning above says which.
  describe.skip('dashboard in a browser', () => {
    it('skipped', () => undefined);
  });
} else {
  describe('dashboard in a browser', () => {
    let f: Fixture;
    let s: Served;
    let loop: NodeJS.Timeout;
    let browser: Awaited<ReturnType<Playwright['chromium']['launch']>>;

    beforeAll(async () => {
      f = memoryFixture();
      await f.run('broken');
      s = await serve(f, { token: TOKEN });
      // Stands in for the scheduler of `weft serve`: takes run requests and executes them.
      loop = setInterval(() => void f.serveRequests().catch(() => undefined), 100);
      browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    }, 60_000);

    afterAll(async () => {
      clearInterval(loop);
      await browser?.close();
      await s?.close();
      await f?.cleanup();
    });

    it('asks for the token, runs a pipeline with the button, follows it and shows a <script> log line as text', async () => {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error' && !message.text().includes('401')) problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));

      await page.goto(`${s.url}/`);
      // The shell loads without data; the script asks for the token once.
      await page.locator('#token-input').waitFor({ state: 'visible', timeout: 10_000 });
      expect(await page.locator('table.pipelines').count()).toBe(0);
      await page.fill('#token-input', TOKEN);
      await page.click('#token-form button[type=submit]');
      await page.locator('table.pipelines a[href="/pipelines/demo"]').waitFor({ timeout: 10_000 });
      expect(
        await page.evaluate(() => (globalThis as unknown as PageGlobals).localStorage.getItem('weft.token')),
      ).toBe(TOKEN);

      const form = page.locator('form.run-form[data-pipeline="demo"]');
      await form.locator('input[data-param="who"]').fill('browser');
      await form.locator('button.run-now').click();
      await page.waitForURL(/\/runs\/r_[0-9A-Z]+$/, { timeout: 15_000 });
      const runId = page.url().split('/').pop()!;

      await page.locator('.run[data-run-state="succeeded"]').waitFor({ timeout: 15_000 });
      expect(await page.locator('svg.dag rect.st-succeeded').count()).toBe(3);
      const run = await f.store.getRun(runId);
      expect(run!.params).toEqual({ who: 'browser', count: 1 });

      await page.click('button[data-log-task="greet"]');
      await page.locator('#log-lines .log-line').first().waitFor({ timeout: 10_000 });
      const text = await page.locator('#log-lines').textContent();
      expect(text).toContain(XSS);
      expect(await page.locator('#log-lines script').count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__xss)).toBeUndefined();
      expect(text).not.toContain('sk-live');
      expect(problems).toEqual([]);
      await page.close();
    }, 60_000);

    it('follows the log of a running task over SSE until the run ends', async () => {
      const page = await browser.newPage();
      await page.addInitScript(
        (token) => (globalThis as unknown as PageGlobals).localStorage.setItem('weft.token', token),
        TOKEN,
      );
      f.gate = createGate();
      const run = await f.create('slow');
      const done = f.execute(run.id);
      await page.goto(`${s.url}/runs/${run.id}`);
      await page.locator('.run[data-run-state="running"]').waitFor({ timeout: 10_000 });
      await page.click('button[data-log-task="hold"]');
      await page.locator('#log-lines', { hasText: 'waiting for the gate' }).waitFor({ timeout: 10_000 });
      await page.locator('#log-state', { hasText: 'following' }).waitFor({ timeout: 10_000 });
      f.gate.open();
      await done;
      await page.locator('#log-lines', { hasText: 'gate opened' }).waitFor({ timeout: 10_000 });
      await page.locator('#log-state', { hasText: 'run succeeded' }).waitFor({ timeout: 10_000 });
      await page.locator('.run[data-run-state="succeeded"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('#log-lines .log-line').count()).toBe(2);
      await page.close();
    }, 30_000);

    it('shows a failed run with its error as text and a resume button', async () => {
      const page = await browser.newPage();
      await page.addInitScript(
        (token) => (globalThis as unknown as PageGlobals).localStorage.setItem('weft.token', token),
        TOKEN,
      );
      const [failed] = await f.store.listRuns({ pipeline: 'broken', limit: 1 });
      await page.goto(`${s.url}/runs/${failed!.id}`);
      await page.locator('.run[data-run-state="failed"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('button[data-action="resume"]').count()).toBe(1);
      expect(await page.locator('.tasks img').count()).toBe(0);
      expect(await page.locator('.tasks').textContent()).toContain('boom <img src=x onerror=alert(2)>');
      await page.close();
    }, 30_000);
  });
}
