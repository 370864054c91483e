// Quotas end to end: an admin lowers a tenant's vCPU quota on the Quotas page; the tenant's launch dialog
// marks the flavor in red and disables Launch; the server refuses such a launch anyway (API tests). The
// admin also sets the tenant's network quotas in the same form; they are there after a reload, and the
// tenant's Usage page shows them (enforcement: server/tests/api/network_quotas.rs).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, serverFn, signIn, signOut, unique, url, waitForPage } from './lib.mjs';

describe('quotas', () => {
  const tenant = unique('qt');
  const member = unique('quser');
  const password = `pw-${unique('x')}-Long!`;
  const step = browserSteps('quota');

  step('the admin lowers the tenant’s vCPU quota to 0 on the Quotas page', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'quota e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const u = await serverFn(page, 'create_user', {
      tenant_id: t.body.id, username: member, display_name: 'Quota tester', role: 'member', password,
    });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    await page.getByTestId('nav-quotas').click();
    await waitForPage(page, '/admin/quotas');
    const block = page.locator(`[data-testid="tenant-quota"][data-tenant="${tenant}"]`);
    await block.waitFor();
    await block.locator('input[name="vcpus"]').fill('0');
    await block.getByTestId('save-quota').click();
    // After saving, the list reloads with the new limit.
    await page.locator(`[data-testid="tenant-quota"][data-tenant="${tenant}"] input[name="vcpus"][value="0"]`).waitFor();
  });

  step('the admin sets the tenant’s network quotas; they are shown after a reload', async (page) => {
    const block = () => page.locator(`[data-testid="tenant-quota"][data-tenant="${tenant}"]`);
    assert.match(await block().locator('h3').innerText(), /0 networks, 0 floating IPs, 0 port forwards/);
    await block().locator('input[name="floating_ips"]').fill('1');
    await block().locator('input[name="port_forwards"]').fill('4');
    await block().getByTestId('save-quota').click();
    await block().getByTestId('quota-saved').filter({ hasText: 'Saved' }).waitFor();
    await page.reload();
    await waitForPage(page, '/admin/quotas');
    await block().locator('input[name="floating_ips"]').waitFor();
    assert.equal(await block().locator('input[name="floating_ips"]').inputValue(), '1');
    assert.equal(await block().locator('input[name="port_forwards"]').inputValue(), '4');
    // The other limits are as set before (vCPUs) or untouched (networks: the default 3).
    assert.equal(await block().locator('input[name="vcpus"]').inputValue(), '0');
    assert.equal(await block().locator('input[name="networks"]').inputValue(), '3');
    await page.screenshot({ path: path.join(env.output, 'quota-admin.png'), fullPage: true });
    await signOut(page);
  });

  step('the tenant sees the limit in red in the launch dialog and cannot press Launch', async (page) => {
    await signIn(page, member, password);
    await page.getByTestId('quota-vcpus').filter({ hasText: /0\s*\/\s*0/ }).waitFor();
    await page.getByTestId('launch-instance').first().click();
    const dialog = page.getByTestId('launch-dialog');
    await dialog.waitFor();
    const problem = dialog.getByTestId('quota-problem');
    await problem.waitFor();
    assert.match(await problem.textContent(), /Needs 1 vCPU;/);
    const color = await problem.evaluate((el) => getComputedStyle(el).color);
    assert.equal(color, 'rgb(217, 45, 32)', 'the problem is shown in red');
    await dialog.locator('input[name="name"]').fill('too-big');
    assert.equal(await dialog.getByTestId('launch-submit').isDisabled(), true, 'Launch is disabled over the quota');
    // Submitting anyway (Enter in the name field) launches nothing.
    await dialog.locator('input[name="name"]').press('Enter');
    await page.screenshot({ path: path.join(env.output, 'quota.png'), fullPage: true });
    await page.goto(url('/instances'));
    await page.getByTestId('empty-state').waitFor();
  });

  step('the tenant’s Usage page shows its network quotas', async (page) => {
    await page.getByTestId('nav-usage').click();
    await waitForPage(page, '/usage');
    const cards = page.getByTestId('network-quota');
    await cards.getByTestId('quota-floating-ips').filter({ hasText: /0\s*\/\s*1/ }).waitFor();
    await cards.getByTestId('quota-port-forwards').filter({ hasText: /0\s*\/\s*4/ }).waitFor();
    await cards.getByTestId('quota-networks').filter({ hasText: /0\s*\/\s*3/ }).waitFor();
    await page.screenshot({ path: path.join(env.output, 'quota-usage.png'), fullPage: true });
  });
});
