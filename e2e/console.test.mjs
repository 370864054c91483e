// The VM console end to end, on a running probe-guest VM: a member opens /instances/{id}/console, the
// noVNC screen connects, typed text reaches the guest (the probe prints `KEY <c>` on serial — seen in the
// serial console tab — and draws the glyphs on its framebuffer — seen in the noVNC canvas), "paste as
// keystrokes" types a string, the serial console echoes, and Ctrl-Alt-Del powers the probe off.
// Run by scripts/e2e.sh (BASE_URL, ADMIN_USER, ADMIN_PASSWORD, E2E_OUTPUT; the portal has the probe image).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { env, launch, signIn, signOut, unique, url, waitHydrated } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value. */
async function until(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

describe('console', () => {
  let session;
  let failed = false;
  let vmId;
  let token;
  const tenant = unique('e2e-console');
  const member = unique('console-member');
  const password = `pw-${unique('x')}-Long!`;

  /** A server function call with the page's session cookie (same-origin header for the CSRF check). */
  async function serverFn(page, endpoint, form) {
    const res = await page.request.post(url(`/api/fn/${endpoint}`), {
      form,
      headers: { origin: env.baseUrl },
    });
    const text = await res.text();
    assert.equal(res.status(), 200, `${endpoint}: ${text}`);
    return JSON.parse(text);
  }

  /** A REST call with the member's API token. */
  async function api(page, method, p, data) {
    const res = await page.request.fetch(url(`/api/v1${p}`), {
      method,
      data,
      headers: { authorization: `Bearer ${token}`, origin: env.baseUrl },
    });
    return { status: res.status(), body: await res.json().catch(() => null) };
  }

  const consoleLog = async (page) => (await api(page, 'GET', `/vms/${vmId}/console-log`)).body?.text ?? '';
  /** The characters the probe reported as typed, in order (`KEY <c>` lines). */
  const typed = (log) => [...log.matchAll(/KEY (\S)\r?\n/g)].map((m) => m[1]).join('');

  /** Sum of the canvas pixels around the probe's text cursor start (0, 32): 40 glyphs × 2 rows. */
  const textPixels = (page) =>
    page.evaluate(() => {
      const canvas = document.querySelector('[data-screen] canvas');
      if (!canvas || canvas.width < 320) return null;
      const data = canvas.getContext('2d').getImageData(0, 32, 320, 32).data;
      let sum = 0;
      for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
      return sum;
    });

  const notFound = [];

  before(async () => {
    session = await launch();
    session.page.on('response', (res) => {
      if (res.status() === 404) notFound.push(new URL(res.url()).pathname);
    });
  });

  after(async () => {
    if (failed && session) {
      await session.page.screenshot({ path: path.join(env.output, 'console-failure.png'), fullPage: true });
      if (session.consoleErrors.length) console.error('browser console errors:', session.consoleErrors);
    }
    await session?.browser.close();
  });

  const step = (name, fn) =>
    it(name, async () => {
      try {
        await fn(session.page);
      } catch (err) {
        failed = true;
        throw err;
      }
    });

  step('a member with a running probe VM', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'console e2e' });
    await serverFn(page, 'create_user', {
      tenant_id: t.id,
      username: member,
      display_name: 'Console Tester',
      role: 'member',
      password,
    });
    await signOut(page);
    await signIn(page, member, password);
    token = (await serverFn(page, 'create_token', { name: 'console e2e', expires_in_days: '' })).secret;
    const images = (await api(page, 'GET', '/images')).body;
    const probe = images.find((i) => i.is_test);
    assert.ok(probe, `the probe image is registered (PORTAL_GUEST_DIR): ${JSON.stringify(images)}`);
    const flavor = (await api(page, 'GET', '/flavors')).body.find((f) => f.name === 't1.micro');
    const launched = await api(page, 'POST', '/vms', { name: 'console-e2e', image_id: probe.id, flavor_id: flavor.id });
    assert.equal(launched.status, 202, JSON.stringify(launched.body));
    vmId = launched.body.id;
    await until('the VM running', async () => (await api(page, 'GET', `/vms/${vmId}`)).body?.state === 'running', 60000);
    await until('the probe banner', async () => (await consoleLog(page)).includes('PROBE-GUEST READY'));
  });

  step('the console page connects to the screen', async (page) => {
    await page.goto(url(`/instances/${vmId}/console`));
    await waitHydrated(page);
    await page.locator('[data-status][data-state="connected"]').waitFor({ timeout: 30000 });
    assert.equal(await page.locator('[data-status]').innerText(), 'Connected');
    await page.getByTestId('console-vm-name').filter({ hasText: 'console-e2e' }).waitFor();
    await until('the first frame', () => textPixels(page));
  });

  step('the serial console tab connects and echoes what is typed', async (page) => {
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await page.locator('[data-serial-status]').filter({ hasText: /^Connected$/ }).waitFor({ timeout: 30000 });
    await page.locator('[data-terminal] .xterm').click();
    await page.keyboard.type('echo e2e-serial-ok');
    await page.keyboard.press('Enter');
    const rows = page.locator('[data-terminal] .xterm-rows');
    await until('the serial echo and answer', async () => ((await rows.innerText()).match(/e2e-serial-ok/g) || []).length >= 2);
    await page.getByRole('tab', { name: 'Screen' }).click();
  });

  step('typing into the canvas reaches the guest: serial shows KEY lines, the canvas shows glyphs', async (page) => {
    const before = await textPixels(page);
    await page.locator('[data-screen] canvas').click();
    await page.keyboard.type('hello');
    await until('KEY h..o in the console log', async () => typed(await consoleLog(page)).includes('hello'));
    const after = await until('the glyphs on the canvas', async () => {
      const now = await textPixels(page);
      return now !== null && now !== before ? now : null;
    });
    assert.ok(after > before, `text is drawn light on dark: ${before} -> ${after}`);
    await page.getByRole('tab', { name: 'Serial console' }).click();
    const rows = page.locator('[data-terminal] .xterm-rows');
    await until('KEY h in the serial tab', async () => (await rows.innerText()).includes('KEY h'));
    await page.getByRole('tab', { name: 'Console log' }).click();
    await until('KEY o in the console log tab', async () => (await page.locator('[data-log]').innerText()).includes('KEY o'));
    await page.getByRole('tab', { name: 'Screen' }).click();
  });

  step('paste as keystrokes types a string into the guest', async (page) => {
    await page.getByRole('button', { name: 'Paste as keystrokes' }).click();
    await page.locator('[data-paste-text]').fill('Paste-OK!');
    await page.getByRole('button', { name: 'Type it' }).click();
    await until('the pasted text in the guest', async () => typed(await consoleLog(page)).includes('Paste-OK!'));
    await sleep(300);
    await page.screenshot({ path: path.join(env.output, 'console.png'), fullPage: true });
  });

  step('Ctrl-Alt-Del powers the probe off and the console shows it', async (page) => {
    await page.getByRole('button', { name: 'Ctrl-Alt-Del' }).click();
    await page.locator('[data-status][data-state="disconnected"], [data-status][data-state="stopped"]').waitFor({ timeout: 30000 });
    await until('the VM stopped', async () => (await api(page, 'GET', `/vms/${vmId}`)).body?.state === 'stopped', 60000);
    await page.locator('[data-status][data-state="stopped"]').waitFor({ timeout: 15000 });
    // Every script, style and vendored module loaded (the browser itself asks for /favicon.ico).
    assert.deepEqual(notFound.filter((p) => p !== '/favicon.ico'), []);
    const errors = session.consoleErrors.filter((e) => !/WebSocket|ERR_CONNECTION|status of (404|409)/.test(e));
    assert.deepEqual(errors, []);
  });
});
