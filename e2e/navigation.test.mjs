// Finding one's way like a person does, without VMs: the phone layout (a Menu button that opens the side
// menu from the keyboard, every main page no wider than a 390 px screen), downloading the usage CSV by
// clicking its link (tenant and admin), the month in the URL (back, forward, reload), the launch dialog
// (focus moves in, Escape closes it and gives the focus back, the busybox image pre-selected, "1 vCPU"),
// the quota defaults form (values in force, "Saved"), a flavor's new price, and the audit log naming
// its targets. Run by scripts/e2e.sh.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, serverFn, signIn, unique, url, waitForPage, waitHydrated } from './lib.mjs';

const PHONE = { width: 390, height: 844 };

/** Pages reached from the side menu, by their nav test id. */
const MAIN_PAGES = [
  ['nav-instances', '/instances'],
  ['nav-usage', '/usage'],
  ['nav-networks', '/networks'],
  ['nav-security-groups', '/security-groups'],
  ['nav-public-access', '/public-access'],
  ['nav-tokens', '/tokens'],
  ['nav-account', '/account'],
  ['nav-tenants', '/admin/tenants'],
  ['nav-users', '/admin/users'],
  ['nav-quotas', '/admin/quotas'],
  ['nav-flavors', '/admin/flavors'],
  ['nav-images', '/admin/images'],
  ['nav-admin-usage', '/admin/usage'],
  ['nav-audit', '/admin/audit'],
];

const thisMonth = () => new Date().toISOString().slice(0, 7);
const previousMonth = () => {
  const d = new Date();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() - 1);
  return d.toISOString().slice(0, 7);
};

/** The document's width: nothing may be wider than the screen. */
const pageWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

describe('navigation', () => {
  const step = browserSteps('navigation');
  const tenant = unique('nav');

  /** Responses with a 404 other than the browser's own favicon request. */
  const notFound = [];

  step('on a 390x844 phone the Menu button opens the side menu from the keyboard', async (page) => {
    page.on('response', (res) => {
      const p = new URL(res.url()).pathname;
      if (res.status() === 404 && p !== '/favicon.ico') notFound.push(p);
    });
    await page.setViewportSize(PHONE);
    await signIn(page, env.adminUser, env.adminPassword);
    const nav = page.locator('nav.sidenav');
    assert.equal(await nav.isVisible(), false, 'the menu is folded away on a phone');
    const toggle = page.getByTestId('nav-toggle');
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
    await toggle.focus();
    await page.keyboard.press('Enter');
    await nav.waitFor({ state: 'visible' });
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
    // Escape folds it again and leaves the focus on the button.
    await page.getByTestId('nav-usage').focus();
    await page.keyboard.press('Escape');
    await nav.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'nav-toggle');
  });

  step('on the phone, Back and Forward after following a menu link leave the menu closed', async (page) => {
    const nav = page.locator('nav.sidenav');
    const toggle = page.getByTestId('nav-toggle');
    const pathname = () => new URL(page.url()).pathname;
    /** The menu is folded and the page's heading is what a tap at its centre reaches (no scrim over it). */
    const closedAndReachable = async (where) => {
      await nav.waitFor({ state: 'hidden' });
      assert.equal(await toggle.getAttribute('aria-expanded'), 'false', `${where}: the button says closed`);
      assert.equal(await page.locator('.nav-scrim').count(), 0, `${where}: nothing dims the page`);
      const heading = page.locator('main h1').first();
      await heading.waitFor();
      const box = await heading.boundingBox();
      const hit = await page.evaluate(
        ({ x, y }) => document.elementFromPoint(x, y)?.closest('main') !== null,
        { x: box.x + box.width / 2, y: box.y + box.height / 2 },
      );
      assert.ok(hit, `${where}: a tap on the page's heading reaches the page`);
    };
    await page.goto(url('/instances'));
    await waitHydrated(page);
    await toggle.click();
    await nav.waitFor({ state: 'visible' });
    await page.getByTestId('nav-usage').click();
    await page.waitForURL((u) => new URL(u).pathname === '/usage');
    await closedAndReachable('after the menu link');
    await page.goBack();
    await page.waitForURL((u) => new URL(u).pathname === '/instances');
    await closedAndReachable('after Back');
    // Open it, then go Forward (and Back again) with the menu open: any route change folds it.
    await toggle.click();
    await nav.waitFor({ state: 'visible' });
    await page.goForward();
    await page.waitForURL((u) => new URL(u).pathname === '/usage');
    await closedAndReachable('after Forward with the menu open');
    await toggle.click();
    await nav.waitFor({ state: 'visible' });
    await page.goBack();
    await page.waitForURL((u) => new URL(u).pathname === '/instances');
    await closedAndReachable('after Back with the menu open');
    assert.equal(pathname(), '/instances');
  });

  step('every main page fits the phone’s width, reached through the menu', async (page) => {
    const widths = {};
    for (const [link, pathname] of MAIN_PAGES) {
      await page.getByTestId('nav-toggle').click();
      await page.getByTestId(link).click();
      await page.waitForURL((u) => new URL(u).pathname === pathname);
      await page.locator('main h1').first().waitFor();
      await page.locator('nav.sidenav').waitFor({ state: 'hidden' });
      // Lists and tables load after the heading: wait until nothing is loading any more.
      await page.waitForFunction(() => !document.querySelector('.loading'));
      widths[pathname] = await pageWidth(page);
    }
    await page.screenshot({ path: path.join(env.output, 'phone-usage.png'), fullPage: true });
    const tooWide = Object.entries(widths).filter(([, w]) => w > PHONE.width);
    assert.deepEqual(tooWide, [], `pages wider than ${PHONE.width} px: ${JSON.stringify(widths)}`);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  step('Download CSV on the usage pages downloads the invoice', async (page) => {
    for (const [pathname, link, header] of [
      ['/usage', 'usage-csv', 'month,tenant,vm_id'],
      ['/admin/usage', 'admin-usage-csv', 'month,tenant,vm_id'],
    ]) {
      await page.goto(url(pathname));
      await waitHydrated(page);
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId(link).click()]);
      const file = path.join(env.output, `${link}.csv`);
      await download.saveAs(file);
      const text = await readFile(file, 'utf8');
      assert.ok(text.startsWith(header), `${link}: ${text}`);
      assert.match(text, new RegExp(`^${thisMonth()},total,`, 'm'), `${link} totals this month: ${text}`);
      assert.equal(new URL(page.url()).pathname, pathname, 'the page stays where it was');
    }
  });

  step('the month is a real month and lives in the URL: back, forward and reload keep it', async (page) => {
    await page.goto(url('/usage'));
    await waitHydrated(page);
    const picker = page.getByTestId('usage-month');
    await page.waitForFunction(() => document.querySelector('[data-testid=usage-month]')?.value);
    assert.equal(await picker.inputValue(), thisMonth());
    await picker.fill(previousMonth());
    await picker.dispatchEvent('change');
    await page.waitForURL((u) => new URL(u).searchParams.get('month') === previousMonth());
    await page.getByRole('heading', { name: `Invoice ${previousMonth()}` })
      .or(page.getByText('No usage in this month'))
      .first()
      .waitFor();
    await page.goBack();
    await page.waitForURL((u) => !new URL(u).searchParams.get('month'));
    await page.waitForFunction((m) => document.querySelector('[data-testid=usage-month]')?.value === m, thisMonth());
    await page.goForward();
    await page.waitForURL((u) => new URL(u).searchParams.get('month') === previousMonth());
    await page.reload();
    await waitHydrated(page);
    await page.waitForFunction((m) => document.querySelector('[data-testid=usage-month]')?.value === m, previousMonth());
    const href = await page.getByTestId('usage-csv').getAttribute('href');
    assert.equal(href, `/api/v1/usage.csv?month=${previousMonth()}`);
  });

  step('the launch dialog takes the focus, pre-selects the busybox image and closes on Escape', async (page) => {
    await page.goto(url('/instances'));
    await waitHydrated(page);
    const open = page.getByTestId('launch-instance').first();
    await open.click();
    const dialog = page.getByTestId('launch-dialog');
    await dialog.locator('input[name="name"]').waitFor();
    await page.waitForFunction(() => document.activeElement?.name === 'name');
    const selected = await dialog.getByTestId('launch-image').evaluate((s) => s.selectedOptions[0]?.textContent ?? '');
    assert.match(selected, /^minimal/, `the minimal busybox image is pre-selected: ${selected}`);
    assert.match(await dialog.getByTestId('image-hint').innerText(), /shell/);
    const flavors = await dialog.getByTestId('launch-flavor').locator('option').allTextContents();
    assert.ok(flavors.some((f) => / 1 vCPU,/.test(f)), `"1 vCPU": ${flavors}`);
    assert.ok(!flavors.some((f) => / 1 vCPUs/.test(f)), `never "1 vCPUs": ${flavors}`);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    await page.waitForFunction(() => document.activeElement?.dataset.testid === 'launch-instance');
  });

  step('the quota defaults form shows the limits in force and confirms a save', async (page) => {
    await page.getByTestId('nav-quotas').click();
    await waitForPage(page, '/admin/quotas');
    const defaults = page.locator('section.panel').first();
    const vcpus = defaults.locator('input[name="vcpus"]');
    await vcpus.waitFor();
    await page.waitForFunction(() => document.querySelector('input#q-defaults-vcpus')?.value !== '');
    const before = await vcpus.inputValue();
    assert.match(before, /^\d+$/, `the defaults in force: ${before}`);
    assert.equal(await defaults.locator('input[name="instances"]').inputValue(), '10');
    const saved = defaults.getByTestId('quota-saved');
    assert.equal((await saved.innerText()).trim(), '');
    await defaults.getByTestId('save-quota').click();
    await saved.filter({ hasText: 'Saved' }).waitFor();
  });

  step('an admin changes a flavor’s price on the Flavors page', async (page) => {
    await page.getByTestId('nav-flavors').click();
    await waitForPage(page, '/admin/flavors');
    const row = page.locator('[data-testid="flavor-row"][data-flavor="t1.micro"]');
    const input = row.getByTestId('flavor-price-input');
    const before = Number(await input.inputValue());
    await input.fill(String(before + 1));
    await row.getByTestId('flavor-price-save').click();
    await page.locator(`[data-testid="flavor-row"][data-flavor="t1.micro"] [data-testid="flavor-price-input"][value="${before + 1}"]`).waitFor();
    // Back to the price it had, so other specs see the usual catalogue.
    const again = page.locator('[data-testid="flavor-row"][data-flavor="t1.micro"]');
    await again.getByTestId('flavor-price-input').fill(String(before));
    await again.getByTestId('flavor-price-save').click();
    await page.locator(`[data-testid="flavor-row"][data-flavor="t1.micro"] [data-testid="flavor-price-input"][value="${before}"]`).waitFor();
  });

  step('the audit log names its targets instead of showing raw ids', async (page) => {
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'audit e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    await page.getByTestId('nav-audit').click();
    await waitForPage(page, '/admin/audit');
    const entry = page.getByTestId('audit-entry').filter({ hasText: 'tenant_create' }).first();
    await entry.waitFor();
    const target = await entry.getByTestId('audit-target').innerText();
    assert.equal(target, `tenant ${tenant} (${t.body.id.slice(0, 8)})`);
    await page.getByTestId('audit-entry').filter({ hasText: 'flavor_price' }).first().waitFor();
  });

  step('the audit log filters by action from its form; back, forward and reload keep the filter', async (page) => {
    const rows = page.getByTestId('audit-entry');
    const select = page.getByTestId('filter-action');
    const rowActions = () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.action));
    /** Waits until the table lists only `action` (at least one row), or holds some other action too. */
    const onlyAction = (action) =>
      page.waitForFunction((a) => {
        const trs = [...document.querySelectorAll('[data-testid=audit-entry]')];
        return trs.length > 0 && trs.every((tr) => tr.dataset.action === a);
      }, action);
    const mixed = () =>
      page.waitForFunction(() => {
        const trs = [...document.querySelectorAll('[data-testid=audit-entry]')];
        return new Set(trs.map((tr) => tr.dataset.action)).size > 1;
      });
    await mixed();
    // Chosen in the form like a person does: the drop-down lists the log's actions.
    await select.selectOption('flavor_price');
    await page.waitForURL((u) => new URL(u).searchParams.get('action') === 'flavor_price');
    await onlyAction('flavor_price');
    // This spec changed the price twice (up and back).
    assert.ok((await rowActions()).length >= 2, `both price changes listed: ${await rowActions()}`);
    await page.goBack();
    await page.waitForURL((u) => new URL(u).pathname === '/admin/audit' && !new URL(u).searchParams.get('action'));
    await mixed();
    assert.equal(await select.inputValue(), '');
    await page.goForward();
    await page.waitForURL((u) => new URL(u).searchParams.get('action') === 'flavor_price');
    await onlyAction('flavor_price');
    assert.equal(await select.inputValue(), 'flavor_price');
    await page.reload();
    await waitHydrated(page);
    await onlyAction('flavor_price');
    await page.waitForFunction(() => document.querySelector('[data-testid=filter-action]')?.value === 'flavor_price');
    // The chain is checked whole, whatever the page shows.
    await page.getByTestId('verify-audit').click();
    const ok = page.getByTestId('audit-ok');
    await ok.waitFor();
    const checked = Number((await ok.innerText()).match(/All (\d+) entries/)[1]);
    assert.ok(checked > (await rowActions()).length, `${checked} entries verified, more than the filtered rows`);
    assert.deepEqual(notFound, [], 'nothing the pages asked for was missing');
    const errors = step.session().consoleErrors.filter((e) => !/status of 404/.test(e));
    assert.deepEqual(errors, [], 'no errors in the browser console');
  });
});
