// The VM console end to end, on a running probe-guest VM: a member opens /instances/{id}/console, the
// noVNC screen connects and shows the guest's first frame, typed text reaches the guest (the probe prints
// `KEY <c>` on serial — seen in the serial console tab — and draws the glyphs on its framebuffer — seen in
// the noVNC canvas), the serial tab replays the boot banner printed before it was opened (plain text, once,
// also after switching tabs and reconnecting), "paste as keystrokes" types a string, the serial console
// echoes, and Ctrl-Alt-Del powers the probe off. Skipped (loudly) without KVM.
// Run by scripts/e2e.sh (BASE_URL, ADMIN_USER, ADMIN_PASSWORD, E2E_OUTPUT; the portal has the probe image).
//
// Every wait is on something the guest or the page did, never on time: the guest's screen is read from the
// canvas (vmm/probe-guest/src/fb.rs draws a title bar first, then white 8x16 glyphs from pixel (0, 32)).
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe } from 'node:test';

import { browserSteps, env, signIn, signOut, timeouts, unique, until, url, waitHydrated } from './lib.mjs';

/** The probe's screen (vmm/probe-guest/src/fb.rs): title bar colour, glyph cell size, first text row. */
const PROBE = { titleBar: [0x30, 0x50, 0xa0], cellW: 8, cellH: 16, textY: 32 };

describe('console', () => {
  const step = browserSteps('console', { vms: true });
  let vmId;
  let token;
  const tenant = unique('e2e-console');
  const member = unique('console-member');
  const password = `pw-${unique('x')}-Long!`;
  const notFound = [];

  before(() => {
    step.session()?.page.on('response', (res) => {
      if (res.status() === 404) notFound.push(new URL(res.url()).pathname);
    });
  });

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

  const vmState = async (page) => (await api(page, 'GET', `/vms/${vmId}`)).body?.state;
  const consoleLog = async (page) => (await api(page, 'GET', `/vms/${vmId}/console-log`)).body?.text ?? '';
  /** The characters the probe reported as typed, in order (`KEY <c>` lines). */
  const typed = (log) => [...log.matchAll(/KEY (\S)\r?\n/g)].map((m) => m[1]).join('');

  const screen = (page) => page.locator('[data-screen] canvas');
  const status = (page, state) => page.locator(`[data-status][data-state="${state}"]`);

  /** Waits until the canvas shows the probe's title bar: noVNC has drawn the guest's first frame. */
  const firstFrame = (page) =>
    page.waitForFunction(
      (bar) => {
        const canvas = document.querySelector('[data-screen] canvas');
        if (!canvas || canvas.width < 16 || canvas.height < 16) return false;
        const [r, g, b] = canvas.getContext('2d').getImageData(2, 2, 1, 1).data;
        return r === bar[0] && g === bar[1] && b === bar[2];
      },
      PROBE.titleBar,
      { polling: 100, timeout: timeouts.guest },
    );

  /**
   * Waits until text cells `from`..`to` (exclusive) of the probe's first text row all hold white glyph
   * pixels on the canvas, i.e. the guest drew those characters and noVNC showed them.
   */
  const glyphsDrawn = (page, from, to) =>
    page.waitForFunction(
      ({ from, to, p }) => {
        const canvas = document.querySelector('[data-screen] canvas');
        if (!canvas || canvas.width < to * p.cellW) return false;
        const data = canvas.getContext('2d').getImageData(0, p.textY, to * p.cellW, p.cellH).data;
        const rowLen = to * p.cellW;
        for (let cell = from; cell < to; cell++) {
          let lit = false;
          for (let y = 0; y < p.cellH && !lit; y++) {
            for (let x = cell * p.cellW; x < (cell + 1) * p.cellW && !lit; x++) {
              const i = (y * rowLen + x) * 4;
              lit = data[i] > 200 && data[i + 1] > 200 && data[i + 2] > 200;
            }
          }
          if (!lit) return false;
        }
        return true;
      },
      { from, to, p: PROBE },
      { polling: 100, timeout: timeouts.guest },
    );

  /** The number of white (glyph) pixels in the probe's first text row; null before the first frame. */
  const textRowGlyphPixels = (page) =>
    page.evaluate((p) => {
      const canvas = document.querySelector('[data-screen] canvas');
      if (!canvas || canvas.width < 320) return null;
      const data = canvas.getContext('2d').getImageData(0, p.textY, 320, p.cellH).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) n += data[i] > 200 && data[i + 1] > 200 && data[i + 2] > 200;
      return n;
    }, PROBE);

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
    await until(
      'the VM running',
      async () => {
        const state = await vmState(page);
        assert.ok(!['crashed', 'stopped', 'deleted'].includes(state), `the VM did not start: ${state}`);
        return state === 'running';
      },
      timeouts.guest,
    );
    await until('the probe banner', async () => (await consoleLog(page)).includes('PROBE-GUEST READY'), timeouts.guest);
  });

  step('clicking from the list to the VM connects its console; back and forward keep it working', async (page) => {
    // In-app navigation, the path most people take: no full page load of the VM page (issue 16).
    await page.goto(url('/instances'));
    await waitHydrated(page);
    await page.getByRole('link', { name: 'console-e2e' }).first().click();
    await page.waitForURL((u) => u.pathname === `/instances/${vmId}`);
    await status(page, 'connected').waitFor({ timeout: timeouts.guest });
    await page.goBack();
    await page.waitForURL((u) => u.pathname === '/instances');
    await page.locator('[data-console]').waitFor({ state: 'detached' });
    await page.goForward();
    await page.waitForURL((u) => u.pathname === `/instances/${vmId}`);
    await status(page, 'connected').waitFor({ timeout: timeouts.guest });
  });

  step('the console page connects to the screen and shows the guest’s first frame', async (page) => {
    await page.goto(url(`/instances/${vmId}/console`));
    await waitHydrated(page);
    // The console's stylesheet gives the screen its size. Without it the console is unstyled and noVNC's
    // fit-to-window scales the screen to nothing once its tab has been hidden (issue 16): say so here
    // rather than as a canvas that never becomes visible two steps later.
    const styled = () =>
      [...document.styleSheets].some((s) => s.href && new URL(s.href).pathname === '/style/console.css');
    await page.waitForFunction(styled).catch(async (err) => {
      const sheets = await page.evaluate(() => [...document.styleSheets].map((s) => s.href));
      throw new Error(
        'the console page has no /style/console.css: the server-rendered <head> lacks it and hydration does not ' +
          `add it (loaded stylesheets: ${sheets.join(', ')}; issue 16)`,
        { cause: err },
      );
    });
    await status(page, 'connected').waitFor({ timeout: timeouts.guest });
    assert.equal(await page.locator('[data-status]').innerText(), 'Connected');
    await page.getByTestId('console-vm-name').filter({ hasText: 'console-e2e' }).waitFor();
    await firstFrame(page);
  });

  step('the serial tab replays what the guest printed before it was opened, as plain text, once', async (page) => {
    // Nothing typed yet: the banner on the terminal can only come from the server's replay of recent output.
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await page.locator('[data-serial-status]').filter({ hasText: /^Connected$/ }).waitFor({ timeout: timeouts.guest });
    const rows = page.locator('[data-terminal] .xterm-rows');
    const banners = async () => ((await rows.innerText()).match(/PROBE-GUEST READY/g) || []).length;
    await until('the replayed banner in the serial tab', async () => (await banners()) === 1);
    const text = await rows.innerText();
    // xterm.js interprets escape sequences it is sent; raw ones (ESC, or a CSI whose ESC went missing) show.
    assert.doesNotMatch(text, /\x1b|\u241b|\^\[|\[(\d+(;\d+)*|\?\d+)[A-HJKSTfhlmnsu]/, `no escape sequences on screen: ${text}`);
    // Away and back: the terminal keeps what it showed, without a second copy.
    await page.getByRole('tab', { name: 'Screen' }).click();
    await page.locator('[data-pane="serial"]').waitFor({ state: 'hidden' });
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await rows.waitFor();
    assert.equal(await banners(), 1, 'the banner once after switching back');
    // Reconnecting starts the terminal afresh with the replay: the banner again, still once.
    // (A command typed after reconnecting is answered after the replay, so its answer shows the replay arrived.)
    await page.getByRole('button', { name: 'Reconnect' }).click();
    await page.locator('[data-serial-status]').filter({ hasText: /^Connected$/ }).waitFor({ timeout: timeouts.guest });
    await page.locator('[data-terminal] .xterm').click();
    await page.keyboard.type('echo after-reconnect');
    await page.keyboard.press('Enter');
    await until(
      'the echo after reconnecting',
      async () => ((await rows.innerText()).match(/after-reconnect/g) || []).length >= 2,
      timeouts.guest,
    );
    assert.equal(await banners(), 1, 'the banner once after reconnecting');
    await page.getByRole('tab', { name: 'Screen' }).click();
  });

  step('the serial console tab connects and echoes what is typed', async (page) => {
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await page.locator('[data-serial-status]').filter({ hasText: /^Connected$/ }).waitFor({ timeout: timeouts.guest });
    await page.locator('[data-terminal] .xterm').click();
    await page.keyboard.type('echo e2e-serial-ok');
    await page.keyboard.press('Enter');
    const rows = page.locator('[data-terminal] .xterm-rows');
    await until(
      'the serial echo and answer',
      async () => ((await rows.innerText()).match(/e2e-serial-ok/g) || []).length >= 2,
      timeouts.guest,
    );
    await page.getByRole('tab', { name: 'Screen' }).click();
  });

  step('typing into the canvas reaches the guest: serial shows KEY lines, the canvas shows glyphs', async (page) => {
    // Nothing typed yet: the first text row holds no glyph.
    assert.equal(await textRowGlyphPixels(page), 0, 'the probe’s text row is empty before typing');
    await screen(page).click();
    // noVNC takes keys only while its canvas has the focus (it focuses on mousedown).
    await page.waitForFunction(() => document.activeElement === document.querySelector('[data-screen] canvas'));
    await page.keyboard.type('hello');
    await until('KEY h..o in the console log', async () => typed(await consoleLog(page)).includes('hello'), timeouts.guest);
    await glyphsDrawn(page, 0, 5);
    await page.getByRole('tab', { name: 'Serial console' }).click();
    const rows = page.locator('[data-terminal] .xterm-rows');
    await until('KEY h in the serial tab', async () => (await rows.innerText()).includes('KEY h'));
    await page.getByRole('tab', { name: 'Console log' }).click();
    await until('KEY o in the console log tab', async () => (await page.locator('[data-log]').innerText()).includes('KEY o'));
    await page.getByRole('tab', { name: 'Screen' }).click();
  });

  step('paste as keystrokes types a string into the guest', async (page) => {
    await page.getByRole('button', { name: 'Paste as keystrokes' }).click();
    // The panel is ready once it has tried the clipboard and focused its text box (a late clipboard read
    // must not overwrite what is filled in).
    await page.waitForFunction(() => document.activeElement?.matches('[data-paste-text]'));
    await page.locator('[data-paste-text]').fill('Paste-OK!');
    await page.getByRole('button', { name: 'Type it' }).click();
    await until('the pasted text in the guest', async () => typed(await consoleLog(page)).includes('Paste-OK!'), timeouts.guest);
    // "hello" took cells 0-4; the 9 pasted characters follow.
    await glyphsDrawn(page, 5, 14);
    await page.screenshot({ path: path.join(env.output, 'console.png'), fullPage: true });
  });

  step('Ctrl-Alt-Del powers the probe off and the console shows it', async (page) => {
    await status(page, 'connected').waitFor();
    await page.getByRole('button', { name: 'Ctrl-Alt-Del' }).click();
    await page
      .locator('[data-status][data-state="disconnected"], [data-status][data-state="stopped"]')
      .waitFor({ timeout: timeouts.guest });
    await until('the VM stopped', async () => (await vmState(page)) === 'stopped', timeouts.guest);
    // The page re-reads the VM's state every few seconds; a stopped VM shows a plain line, not a console.
    await page.getByTestId('console-off').filter({ hasText: 'stopped' }).waitFor();
    // Every script, style and vendored module loaded (the browser itself asks for /favicon.ico).
    assert.deepEqual(notFound.filter((p) => p !== '/favicon.ico'), []);
    const errors = step.session().consoleErrors.filter((e) => !/WebSocket|ERR_CONNECTION|status of (404|409)/.test(e));
    assert.deepEqual(errors, []);
  });
});
