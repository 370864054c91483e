// Shared helpers of the browser tests: environment, browser launch, waiting for hydration and for conditions,
// signing in/out, and skipping the specs that start VMs where there is no KVM.
import { closeSync, mkdirSync, openSync } from 'node:fs';
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

/**
 * Upper bounds, not expectations: every wait is on a condition and returns as soon as it holds, so these
 * only decide how long a broken run takes to fail. Machines differ several times in speed, and guests are
 * emulated where the CPU has no virtualisation extensions, so the bounds are generous.
 * `E2E_TIMEOUT_MS`: one browser action or UI change (default 30 s).
 * `E2E_GUEST_TIMEOUT_MS`: anything that waits on a guest — a VM starting or stopping, keys reaching it, its
 * screen being drawn (default 180 s).
 */
export const timeouts = {
  action: Number(process.env.E2E_TIMEOUT_MS || 30000),
  guest: Number(process.env.E2E_GUEST_TIMEOUT_MS || 180000),
};

/** The KVM device the VMM opens; `E2E_KVM_DEVICE` points elsewhere to check the skip path. */
const kvmDevice = process.env.E2E_KVM_DEVICE || '/dev/kvm';

/** Why VMs cannot run here (no read-write KVM device), or null when they can. */
function kvmUnavailable() {
  try {
    closeSync(openSync(kvmDevice, 'r+'));
    return null;
  } catch (err) {
    return err.code === 'ENOENT' ? `${kvmDevice} absent` : `${kvmDevice} not usable (${err.code})`;
  }
}

/**
 * For a spec that starts VMs: null where KVM is usable, else the reason its tests are skipped — printed
 * loudly once, and passed to node:test's `skip` so every step shows as skipped rather than failed.
 */
export function kvmSkip(spec) {
  const why = kvmUnavailable();
  if (!why) return null;
  const reason = `${why}: the ${spec} e2e starts VMs and needs KVM (it runs wherever ${kvmDevice} is usable)`;
  console.error(`\n!!!!!!!! SKIP: ${reason} !!!!!!!!\n`);
  return reason;
}

/**
 * For a spec that needs tenant networks: null where the portal has them (scripts/e2e.sh sets
 * E2E_NETWORKS=1), else the reason its steps are skipped, printed loudly once.
 */
export function networksSkip(spec) {
  if (process.env.E2E_NETWORKS === '1') return null;
  const reason = `tenant networks are off (E2E_NETWORKS unset): the ${spec} e2e needs them (scripts/e2e.sh turns them on)`;
  console.error(`\n!!!!!!!! SKIP: ${reason} !!!!!!!!\n`);
  return reason;
}

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
  context.setDefaultTimeout(timeouts.action);
  // Every Content-Security-Policy violation the page reports (the portal's CSP must block nothing of its own).
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  const page = await context.newPage();
  const consoleErrors = [];
  const cspViolations = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    consoleErrors.push(text);
    if (text.includes('CSP violation') || text.includes('Content Security Policy')) cspViolations.push(text);
  });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  return { browser, context, page, consoleErrors, cspViolations };
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` (every 200 ms) until it returns a truthy value, and returns that value. A condition checked
 * outside the page (an API, the guest's console log); inside the page prefer locators or `waitForFunction`.
 */
export async function until(what, fn, timeoutMs = timeouts.action) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) break;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
}

/**
 * One browser for a describe() block whose steps run in order on the same page. Returns `step(name, fn)`;
 * `fn(page)` runs as a test, and `step.session()` is the browser session (page, consoleErrors). After a
 * failed step, a screenshot `<label>-failure.png` and the browser's console errors are kept, and the
 * remaining steps are skipped. `{ vms: true }`: the steps start VMs, so without KVM each is skipped
 * (node:test skip, with the reason) and no browser is launched; `{ networks: true }` likewise without
 * tenant networks.
 */
export function browserSteps(label, { vms = false, networks = false } = {}) {
  const skip = (networks ? networksSkip(label) : null) ?? (vms ? kvmSkip(label) : null);
  let session;
  let failed = false;
  before(async () => {
    if (!skip) session = await launch();
  });
  after(async () => {
    if (failed && session) {
      await session.page.screenshot({ path: path.join(env.output, `${label}-failure.png`), fullPage: true });
      if (session.consoleErrors.length) console.error('browser console errors:', session.consoleErrors);
    }
    await session?.browser.close();
  });
  const step = (name, fn) =>
    skip
      ? it(name, { skip }, () => {})
      : it(name, async (t) => {
          // Each step builds on the previous ones: after a failure the rest would only time out.
          if (failed) return t.skip('an earlier step failed');
          try {
            await fn(session.page);
            if (session.cspViolations.length) {
              throw new Error(`the page reported CSP violations: ${session.cspViolations.join('\n')}`);
            }
          } catch (err) {
            failed = true;
            throw err;
          }
        });
  step.session = () => session;
  step.skipped = Boolean(skip);
  return step;
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
