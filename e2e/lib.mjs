// Shared helpers of the browser tests: environment, browser launch, waiting for hydration, signing in/out.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required (scripts/e2e.sh sets it)`);
  return value;
}

export const env = {
  baseUrl: required('BASE_URL').replace(/\/$/, ''),
  adminUser: required('ADMIN_USER'),
  adminPassword: required('ADMIN_PASSWORD'),
  output: process.env.E2E_OUTPUT || path.join(import.meta.dirname ?? '.', 'output'),
};
mkdirSync(env.output, { recursive: true });

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(Number(process.env.E2E_TIMEOUT_MS || 15000));
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  return { browser, context, page, consoleErrors };
}

export const url = (p) => `${env.baseUrl}${p}`;

/** Waits until the page's wasm has hydrated (the app sets <body data-hydrated="true"> from an Effect). */
export async function waitHydrated(page) {
  await page.locator('body[data-hydrated="true"]').waitFor({ state: 'attached' });
}

/** Waits for a full page load at `pathname` that has hydrated. */
export async function waitForPage(page, pathname) {
  await page.waitForURL((u) => new URL(u).pathname === pathname);
  await waitHydrated(page);
}

/** Fills and submits the sign-in form; the caller checks the outcome. */
export async function submitLogin(page, username, password) {
  if (new URL(page.url()).pathname !== '/login') await page.goto(url('/login'));
  await waitHydrated(page);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(password);
  await page.getByTestId('sign-in').click();
}

export async function signIn(page, username, password) {
  await submitLogin(page, username, password);
  await waitForPage(page, '/');
  await page.getByTestId('tenant-name').waitFor();
}

export async function signOut(page) {
  await page.getByTestId('user-menu').locator('summary').click();
  await page.getByTestId('sign-out').click();
  await waitForPage(page, '/login');
}

export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
}

/**
 * One browser for a describe() block whose steps run in order on the same page. Returns `step(name, fn)`;
 * `fn(page)` runs as a test. After a failed step, a screenshot `<label>-failure.png` and the browser's
 * console errors are kept.
 */
export function browserSteps(label) {
  let session;
  let failed = false;
  before(async () => {
    session = await launch();
  });
  after(async () => {
    if (failed && session) {
      await session.page.screenshot({ path: path.join(env.output, `${label}-failure.png`), fullPage: true });
      if (session.consoleErrors.length) console.error('browser console errors:', session.consoleErrors);
    }
    await session?.browser.close();
  });
  return (name, fn) =>
    it(name, async () => {
      try {
        await fn(session.page);
      } catch (err) {
        failed = true;
        throw err;
      }
    });
}

/** Calls a server function from the page (same origin, session cookie), as the app's forms do. */
export async function serverFn(page, endpoint, fields) {
  return page.evaluate(
    async ([endpoint, fields]) => {
      const res = await fetch(`/api/fn/${endpoint}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      });
      return { status: res.status, body: await res.json() };
    },
    [endpoint, fields],
  );
}
