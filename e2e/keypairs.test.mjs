// Key pairs, rename and lists whose filters live in the URL, by clicking: a member saves a key pair (its
// SHA256 fingerprint shown), launches a VM picking it, renames the VM on its page, searches and sorts the
// instance list (the URL keeps both, so back/forward and reload restore them); an admin filters the view of
// every tenant's VMs by tenant, and back/forward keep that too. The key pair page on a 390x844 phone.
// Skipped (loudly) without KVM. Run by scripts/e2e.sh (E2E_SPECS=./keypairs.test.mjs for this one).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, serverFn, signIn, signOut, unique, until, url, waitForPage } from './lib.mjs';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKN5C7LDhkyyST5qiBbSjsKYV0/8adrS5YukC4c+YExk alice@laptop';
const FINGERPRINT = 'SHA256:sf8CpO5+SaW8pFhkpky/2QVsWx57O67vgC2SBphIAtc';

describe('key pairs, rename and filtered lists', () => {
  const tenant = unique('kpt');
  const member = unique('kpuser');
  const password = `pw-${unique('x')}-Long!`;
  const suffix = Date.now().toString(36).slice(-5);
  const web = `web-${suffix}`;
  const renamed = `api-${suffix}`;
  const db = `db-${suffix}`;
  const adminVm = `adm-${suffix}`;
  const step = browserSteps('keypairs', { vms: true });

  const rows = (page) => page.getByTestId('vm-row');
  const names = async (page) => rows(page).evaluateAll((els) => els.map((e) => e.dataset.vmName));
  const query = (page) => new URL(page.url()).searchParams;

  step('an admin sets up a tenant with a member and launches a VM of its own', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'key pair e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const u = await serverFn(page, 'create_user', {
      tenant_id: t.body.id, username: member, display_name: 'Key tester', role: 'member', password,
    });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    const images = await serverFn(page, 'list_images', {});
    const flavors = await serverFn(page, 'list_flavors', {});
    const probe = images.body.find((i) => i.is_test);
    const micro = flavors.body.find((f) => f.name === 't1.micro');
    const vm = await serverFn(page, 'launch_vm', {
      name: adminVm, image_id: probe.id, flavor_id: micro.id, ssh_key: '', user_data: '',
    });
    assert.equal(vm.status, 200, JSON.stringify(vm.body));
    await signOut(page);
  });

  step('the member saves a key pair and sees its fingerprint; a bad key is refused', async (page) => {
    await signIn(page, member, password);
    await page.getByTestId('nav-key-pairs').click();
    await waitForPage(page, '/key-pairs');
    await page.locator('input[name="name"]').fill('laptop');
    await page.getByTestId('key-pair-public-key').fill('ssh-ed25519 AAAAnotakey');
    await page.getByTestId('save-key-pair').click();
    await page.getByTestId('field-error-public_key').waitFor();
    await page.getByTestId('key-pair-public-key').fill(KEY);
    await page.getByTestId('save-key-pair').click();
    await page.getByTestId('key-pair-saved').waitFor();
    const row = page.locator('[data-testid="key-pair-row"][data-key-name="laptop"]');
    assert.equal(await row.getByTestId('key-pair-fingerprint').textContent(), FINGERPRINT);
  });

  step('the member launches two VMs, the first with the key pair picked in the dialog', async (page) => {
    await page.getByTestId('nav-instances').click();
    await waitForPage(page, '/instances');
    for (const [name, withKey] of [[web, true], [db, false]]) {
      await page.getByTestId('launch-instance').first().click();
      const dialog = page.getByTestId('launch-dialog');
      await dialog.waitFor();
      await dialog.locator('input[name="name"]').fill(name);
      const probe = dialog.getByTestId('launch-image').locator('option', { hasText: '(test)' });
      await dialog.getByTestId('launch-image').selectOption(await probe.getAttribute('value'));
      const micro = dialog.getByTestId('launch-flavor').locator('option', { hasText: 't1.micro' });
      await dialog.getByTestId('launch-flavor').selectOption(await micro.getAttribute('value'));
      const key = dialog.locator('[data-testid="launch-key-pair"][data-key-name="laptop"]');
      if (withKey) await key.check();
      await dialog.getByTestId('launch-submit').click();
      await dialog.waitFor({ state: 'detached' });
      await page.locator(`[data-testid="vm-row"][data-vm-name="${name}"]`).waitFor();
    }
  });

  step('the member renames a VM on its page; the list shows the new name after going back', async (page) => {
    const link = page.locator(`[data-testid="vm-row"][data-vm-name="${web}"]`).getByRole('link', { name: web });
    const href = await link.getAttribute('href');
    await link.click();
    await waitForPage(page, href);
    await page.getByTestId('vm-name').filter({ hasText: web }).waitFor();
    await page.getByTestId('vm-rename').click();
    await page.getByTestId('rename-name').fill('Not_Valid');
    await page.getByTestId('rename-save').click();
    await page.getByTestId('field-error-name').waitFor();
    await page.getByTestId('rename-name').fill(renamed);
    await page.getByTestId('rename-save').click();
    await page.getByTestId('vm-name').filter({ hasText: renamed }).waitFor();
    await page.goBack();
    await waitForPage(page, '/instances');
    await page.locator(`[data-testid="vm-row"][data-vm-name="${renamed}"]`).waitFor();
    assert.equal(await page.locator(`[data-testid="vm-row"][data-vm-name="${web}"]`).count(), 0);
  });

  step('the member searches and sorts the list; back, forward and reload keep the URL state', async (page) => {
    await page.getByTestId('filter-q').fill(renamed);
    await page.getByTestId('filter-q').press('Enter');
    await page.waitForURL((u) => new URL(u).searchParams.get('q') === renamed);
    await until('only the renamed VM listed', async () => (await names(page)).join() === renamed);

    await page.getByTestId('clear-filters').click();
    await page.waitForURL((u) => !new URL(u).searchParams.has('q'));
    await until('both VMs listed', async () => (await names(page)).length === 2);
    await page.getByTestId('sort-name').click();
    await page.waitForURL((u) => new URL(u).searchParams.get('sort') === 'name');
    await until('sorted by name', async () => (await names(page)).join() === [renamed, db].sort().join());
    await page.getByTestId('sort-name').click();
    await page.waitForURL((u) => new URL(u).searchParams.get('sort') === '-name');
    await until('sorted by name, descending', async () => (await names(page)).join() === [renamed, db].sort().reverse().join());

    await page.goBack();
    await page.waitForURL((u) => new URL(u).searchParams.get('sort') === 'name');
    await until('ascending again after Back', async () => (await names(page)).join() === [renamed, db].sort().join());
    await page.goBack();
    await page.goBack();
    await page.waitForURL((u) => new URL(u).searchParams.get('q') === renamed);
    await until('the search is back after Back', async () => (await names(page)).join() === renamed);
    assert.equal(await page.getByTestId('filter-q').inputValue(), renamed);
    await page.goForward();
    await page.goForward();
    await page.waitForURL((u) => new URL(u).searchParams.get('sort') === 'name');
    await page.reload();
    await waitForPage(page, '/instances');
    assert.equal(query(page).get('sort'), 'name');
    await until('sorted after a reload', async () => (await names(page)).join() === [renamed, db].sort().join());
    await page.screenshot({ path: path.join(env.output, 'instances-sorted.png'), fullPage: true });
  });

  step('the key pair page fits a 390x844 phone', async (page) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url('/key-pairs'));
    await waitForPage(page, '/key-pairs');
    await page.locator('[data-testid="key-pair-row"][data-key-name="laptop"]').waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.screenshot({ path: path.join(env.output, 'key-pairs-phone.png'), fullPage: true });
    assert.ok(width <= 390, `the page is ${width} px wide on a 390 px screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await signOut(page);
  });

  step('an admin filters every tenant\'s VMs by tenant; back and forward keep the filter', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    await page.getByTestId('nav-admin-vms').click();
    await waitForPage(page, '/admin/vms');
    const adminRows = page.getByTestId('admin-vm-row');
    const shown = () => adminRows.evaluateAll((els) => els.map((e) => `${e.dataset.tenant}/${e.dataset.vmName}`));
    await until('VMs of two tenants listed', async () => {
      const s = await shown();
      return s.includes(`${tenant}/${renamed}`) && s.some((r) => r.endsWith(`/${adminVm}`));
    });
    await page.getByTestId('filter-tenant').selectOption(tenant);
    await page.waitForURL((u) => new URL(u).searchParams.get('tenant') === tenant);
    await until('only the tenant\'s VMs', async () => {
      const s = await shown();
      return s.length === 2 && s.every((r) => r.startsWith(`${tenant}/`));
    });
    await page.getByTestId('sort-name').click();
    await page.waitForURL((u) => new URL(u).searchParams.get('sort') === 'name');
    await page.goBack();
    await page.goBack();
    await page.waitForURL((u) => !new URL(u).searchParams.has('tenant'));
    await until('every tenant again after Back', async () => (await shown()).some((r) => r.endsWith(`/${adminVm}`)));
    await page.goForward();
    await page.waitForURL((u) => new URL(u).searchParams.get('tenant') === tenant);
    await until('filtered again after Forward', async () => (await shown()).every((r) => r.startsWith(`${tenant}/`)));
    assert.equal(await page.getByTestId('filter-tenant').inputValue(), tenant);
    await page.screenshot({ path: path.join(env.output, 'admin-vms.png'), fullPage: true });
  });
});
