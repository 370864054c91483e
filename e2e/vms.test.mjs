// VM lifecycle end to end: a tenant member launches a VM (the probe test image) from the launch dialog,
// watches it reach "running" without reloading, opens it, stops it, and deletes it. Skipped (loudly) without
// KVM. Run by scripts/e2e.sh.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, serverFn, signIn, signOut, timeouts, unique, url, waitForPage } from './lib.mjs';

describe('vm lifecycle', () => {
  const tenant = unique('vmt');
  const member = unique('vmuser');
  const password = `pw-${unique('x')}-Long!`;
  const vmName = unique('web').slice(0, 30);
  const step = browserSteps('vms', { vms: true });

  const row = (page) => page.locator(`[data-testid="vm-row"][data-vm-name="${vmName}"]`);

  step('an admin sets up a tenant with a member', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'vm e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const u = await serverFn(page, 'create_user', {
      tenant_id: t.body.id, username: member, display_name: 'VM tester', role: 'member', password,
    });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    await signOut(page);
  });

  step('the member launches a VM from the dialog and sees it reach running live', async (page) => {
    await signIn(page, member, password);
    await page.getByTestId('launch-instance').first().click();
    const dialog = page.getByTestId('launch-dialog');
    await dialog.waitFor();
    await dialog.locator('input[name="name"]').fill(vmName);
    const probe = dialog.getByTestId('launch-image').locator('option', { hasText: '(test)' });
    await dialog.getByTestId('launch-image').selectOption(await probe.getAttribute('value'));
    const micro = dialog.getByTestId('launch-flavor').locator('option', { hasText: 't1.micro' });
    await dialog.getByTestId('launch-flavor').selectOption(await micro.getAttribute('value'));
    await dialog.getByTestId('launch-submit').click();
    await dialog.waitFor({ state: 'detached' });
    // No reload: the row appears and moves to running through the event stream.
    await row(page).locator('[data-testid="vm-state"][data-state="running"]').waitFor({ timeout: timeouts.guest });
    // The dashboard's quota cards count it.
    await page.getByTestId('quota-instances').filter({ hasText: /^Instances\s*1\s*\// }).waitFor();
  });

  step('the VM page shows its history; stopping it is followed live', async (page) => {
    const link = row(page).getByRole('link', { name: vmName });
    const href = await link.getAttribute('href');
    assert.match(href, /^\/instances\/[^/]+$/);
    await link.click();
    await waitForPage(page, href);
    await page.getByTestId('vm-name').filter({ hasText: vmName }).waitFor();
    // creating, starting, running recorded
    await page.getByTestId('vm-event').nth(2).waitFor();
    await page.getByTestId('vm-stop').click();
    await page.locator('[data-testid="vm-state"][data-state="stopped"]').waitFor({ timeout: timeouts.guest });
    await page.screenshot({ path: path.join(env.output, 'instance.png'), fullPage: true });
  });

  step('the member deletes the VM and it disappears from the list', async (page) => {
    await page.getByTestId('vm-delete').click();
    await page.getByTestId('confirm-action').click();
    await page.getByTestId('vm-gone').waitFor({ timeout: timeouts.guest });
    await page.goto(url('/instances'));
    await page.getByTestId('empty-state').waitFor();
    assert.equal(await row(page).count(), 0);
  });
});
