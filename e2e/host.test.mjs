// The admin Host page, by clicking: a member's VM (the probe test image) and an admin's own VM run; the admin
// opens Host from the menu and reads CPUs, memory and disk (physical, what VMs may commit, committed, used),
// finds both VMs with their tenants, resident memory and jail (uid, CPU, memory and task limits), follows the link to their own VM and comes back with
// Back and Forward; the page fits a 390x844 phone; a member is refused. Skipped (loudly) without KVM. Run by
// scripts/e2e.sh (E2E_SPECS=./host.test.mjs).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, serverFn, signIn, signOut, timeouts, unique, url, waitForPage } from './lib.mjs';

describe('host page', () => {
  const tenant = unique('hst');
  const member = unique('hstuser');
  const password = `pw-${unique('x')}-Long!`;
  const memberVm = unique('mvm').slice(0, 30);
  const adminVm = unique('avm').slice(0, 30);
  const step = browserSteps('host', { vms: true });
  let adminVmHref = '';

  const hostRow = (page, name) => page.locator(`[data-testid="host-vm"][data-vm-name="${name}"]`);

  async function launchProbe(page, name) {
    await page.getByTestId('nav-instances').click();
    await waitForPage(page, '/instances');
    await page.getByTestId('launch-instance').first().click();
    const dialog = page.getByTestId('launch-dialog');
    await dialog.waitFor();
    await dialog.locator('input[name="name"]').fill(name);
    const probe = dialog.getByTestId('launch-image').locator('option', { hasText: '(test)' });
    await dialog.getByTestId('launch-image').selectOption(await probe.getAttribute('value'));
    const micro = dialog.getByTestId('launch-flavor').locator('option', { hasText: 't1.micro' });
    await dialog.getByTestId('launch-flavor').selectOption(await micro.getAttribute('value'));
    await dialog.getByTestId('launch-submit').click();
    await dialog.waitFor({ state: 'detached' });
    const row = page.locator(`[data-testid="vm-row"][data-vm-name="${name}"]`);
    await row.locator('[data-phase="ready"] [data-testid="vm-state"][data-state="running"]').waitFor({ timeout: timeouts.guest });
    return row.getByRole('link', { name }).getAttribute('href');
  }

  step('a member launches a VM and cannot see the Host page', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'host e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const u = await serverFn(page, 'create_user', {
      tenant_id: t.body.id, username: member, display_name: 'Host tester', role: 'member', password,
    });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    await signOut(page);
    await signIn(page, member, password);
    await launchProbe(page, memberVm);
    assert.equal(await page.getByTestId('nav-host').count(), 0, 'no Host entry in a member\'s menu');
    await page.goto(url('/admin/host'));
    await page.getByTestId('admin-required').waitFor();
    await signOut(page);
  });

  step('the admin opens Host from the menu: resources and every tenant\'s VMs', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    adminVmHref = await launchProbe(page, adminVm);
    await page.getByTestId('nav-host').click();
    await waitForPage(page, '/admin/host');
    for (const r of ['cpus', 'memory', 'disk']) {
      const cells = page.getByTestId(`host-${r}`);
      assert.match(await cells.getByTestId('physical').innerText(), /\d/, r);
      assert.match(await cells.getByTestId('committed').innerText(), /\d/, r);
    }
    assert.match(await page.getByTestId('host-memory').getByTestId('used').innerText(), /\d+(\.\d)? (MiB|GiB)/);
    assert.match(await page.getByTestId('kvm-mode').innerText(), /^(hardware|emulated)/);
    for (const name of [memberVm, adminVm]) {
      const row = hostRow(page, name);
      await row.waitFor();
      assert.match(await row.getByTestId('vm-rss').innerText(), /\d+(\.\d)? (KiB|MiB|GiB)/, name);
    }
    // Each VM's jail as the kernel enforces it (t1.micro: 1 vCPU, 128 MiB): its own uid, 1.5 CPUs of quota,
    // guest RAM + 1/8 + 160 MiB of memory, 256 tasks; "—" when the sandbox is off.
    const jailed = (await page.getByTestId('sandbox-mode').innerText()).startsWith('jailed');
    const uids = [];
    for (const name of [memberVm, adminVm]) {
      const row = hostRow(page, name);
      const cell = async (id) => (await row.getByTestId(id).innerText()).trim();
      if (jailed) {
        assert.match(await cell('vm-uid'), /^[1-9]\d*$/, name);
        uids.push(await cell('vm-uid'));
        assert.equal(await cell('vm-cpu-limit'), '1.5 CPUs', name);
        assert.equal(await cell('vm-memory-limit'), '304 MiB', name);
        assert.equal(await cell('vm-tasks-limit'), '256', name);
      } else {
        assert.equal(await cell('vm-uid'), '—', name);
      }
    }
    if (jailed) assert.notEqual(uids[0], uids[1], 'two VMs, two uids');
    assert.match(await hostRow(page, memberVm).innerText(), new RegExp(tenant));
    // Another tenant's VM is listed without a link to the tenant's own instance page.
    assert.equal(await hostRow(page, memberVm).getByRole('link').count(), 0);
    await page.screenshot({ path: path.join(env.output, 'host.png'), fullPage: true });
  });

  step('the link leads to the admin\'s VM; Back and Forward return', async (page) => {
    await hostRow(page, adminVm).getByRole('link', { name: adminVm }).click();
    await page.getByTestId('vm-name').filter({ hasText: adminVm }).waitFor();
    assert.equal(new URL(page.url()).pathname, adminVmHref);
    await page.goBack();
    await hostRow(page, adminVm).waitFor();
    assert.equal(new URL(page.url()).pathname, '/admin/host');
    await page.goForward();
    await page.getByTestId('vm-name').filter({ hasText: adminVm }).waitFor();
    await page.goBack();
    await hostRow(page, adminVm).waitFor();
  });

  step('on a 390x844 phone the page stays within the screen', async (page) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url('/admin/host'));
    await hostRow(page, adminVm).waitFor();
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll('main .panel')].map((p) => Math.round(p.getBoundingClientRect().right)).filter((r) => r > 390));
    assert.deepEqual(wide, [], 'panels wider than the screen (their tables scroll inside them)');
    await page.screenshot({ path: path.join(env.output, 'host-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});
