// Boot progress, by clicking: an admin reads the KVM mode on the Host page, launches the minimal Linux image
// from the dialog, sees its badge say "booting" with the guest's last console line under it, then "running"
// once the guest's /init announces readiness, opens the VM, finds the time to ready on the page and in its
// history, and deletes it. Skipped (loudly) without KVM. Run by scripts/e2e.sh (E2E_SPECS=./boot.test.mjs).
//
// A real Linux boot: on a KVM that emulates guest instructions it takes minutes, so its bound is its own
// (E2E_LINUX_BOOT_TIMEOUT_MS, default 15 min); every wait returns as soon as its condition holds.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, signIn, timeouts, unique, waitForPage } from './lib.mjs';

const linuxBoot = Number(process.env.E2E_LINUX_BOOT_TIMEOUT_MS || 900000);

describe('boot progress', () => {
  const vmName = unique('boot').slice(0, 30);
  const step = browserSteps('boot', { vms: true });
  let emulated = false;
  let vmHref = '';

  const row = (page) => page.locator(`[data-testid="vm-row"][data-vm-name="${vmName}"]`);

  step('an admin opens the Host page from the menu and sees CPUs, memory and disk', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    await page.getByTestId('nav-host').click();
    await waitForPage(page, '/admin/host');
    for (const r of ['cpus', 'memory', 'disk']) {
      const cells = page.getByTestId(`host-${r}`);
      await cells.waitFor();
      const physical = await cells.getByTestId('physical').innerText();
      assert.match(physical, /\d/, `${r} physical: ${physical}`);
    }
    emulated = (await page.getByTestId('kvm-mode').innerText()).startsWith('emulated');
  });

  step('the admin launches the minimal Linux image and its badge says booting, with the console line', async (page) => {
    await page.getByTestId('nav-instances').click();
    await waitForPage(page, '/instances');
    await page.getByTestId('launch-instance').first().click();
    const dialog = page.getByTestId('launch-dialog');
    await dialog.waitFor();
    await dialog.locator('input[name="name"]').fill(vmName);
    const minimal = dialog.getByTestId('launch-image').locator('option', { hasText: /^minimal — / });
    await dialog.getByTestId('launch-image').selectOption(await minimal.getAttribute('value'));
    const small = dialog.getByTestId('launch-flavor').locator('option', { hasText: 'm1.small' });
    await dialog.getByTestId('launch-flavor').selectOption(await small.getAttribute('value'));
    await dialog.getByTestId('launch-submit').click();
    await dialog.waitFor({ state: 'detached' });
    const badge = row(page).getByTestId('vm-state');
    // Running (the VMM runs the guest) but booting: the same data-state, the phase and the label differ.
    const booting = row(page).locator('[data-testid="vm-state"][data-phase="booting"]');
    const ready = row(page).locator('[data-phase="ready"]');
    await booting.or(ready).first().waitFor({ timeout: timeouts.guest });
    if (emulated) {
      // Minutes of emulated boot: the phase must have been seen, and the guest's console lines follow live.
      assert.equal(await booting.count(), 1, 'a booting guest shows "booting"');
      assert.equal(await badge.getAttribute('data-state'), 'running');
      assert.equal((await badge.innerText()).toLowerCase(), 'booting');
      const line = row(page).getByTestId('boot-line');
      await line.or(ready).first().waitFor({ timeout: linuxBoot });
      if (await line.count()) {
        const text = await line.innerText();
        assert.ok(text.trim().length > 0 && !text.includes('\u001b'), `console line: ${JSON.stringify(text)}`);
        console.log(`console line under the booting badge: ${JSON.stringify(text)}`);
        await page.screenshot({ path: path.join(env.output, 'boot-booting.png'), fullPage: true });
      }
    }
  });

  step('once the guest announces readiness the badge says running and the history has the time to ready', async (page) => {
    await row(page).locator('[data-phase="ready"] [data-testid="vm-state"][data-state="running"]').waitFor({ timeout: linuxBoot });
    assert.equal(await row(page).getByTestId('boot-line').count(), 0, 'no console line once ready');
    const link = row(page).getByRole('link', { name: vmName });
    vmHref = await link.getAttribute('href');
    await link.click();
    await waitForPage(page, vmHref);
    const summary = await page.getByTestId('vm-boot').innerText();
    assert.match(summary, /^ready after \d+(\.\d)? s$/);
    const entry = page.getByTestId('vm-event').filter({ hasText: /guest ready after \d+(\.\d)? s \(cloud-portal: ready\)/ });
    await entry.waitFor();
    console.log(`time to ready of the minimal Linux image: ${summary}`);
    await page.screenshot({ path: path.join(env.output, 'boot-ready.png'), fullPage: true });
  });

  step('the admin deletes the VM', async (page) => {
    await page.getByTestId('vm-delete').click();
    await page.getByTestId('confirm-action').click();
    await page.getByTestId('vm-gone').waitFor({ timeout: timeouts.guest });
  });
});
