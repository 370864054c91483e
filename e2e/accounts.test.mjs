// Accounts end to end: an admin creates a tenant and a member, the member signs in, sees the dashboard and
// makes an API token. Run by scripts/e2e.sh (BASE_URL, ADMIN_USER, ADMIN_PASSWORD, E2E_OUTPUT).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, signIn, signOut, submitLogin, unique, url, waitForPage, waitHydrated } from './lib.mjs';

describe('accounts', () => {
  const tenant = unique('e2e-tenant');
  const member = unique('member');
  const memberPassword = `pw-${unique('x')}-Long!`;
  const step = browserSteps('accounts');

  step('a signed-out visitor is sent to the sign-in page', async (page) => {
    await page.goto(url('/'));
    await waitForPage(page, '/login');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  });

  step('the admin signs in and sees the administration section', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    await page.getByTestId('nav-admin').waitFor();
  });

  step('the admin creates a tenant', async (page) => {
    await page.getByTestId('nav-tenants').click();
    await page.waitForURL(url('/admin/tenants'));
    await page.locator('input[name="name"]').fill(tenant);
    await page.locator('input[name="description"]').fill('Created by the e2e test');
    await page.getByTestId('create-tenant').click();
    await page.getByTestId('tenant-created').waitFor();
    const row = page.locator(`[data-testid="tenant-row"][data-name="${tenant}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /Active/);
  });

  step('the admin creates a member in that tenant', async (page) => {
    await page.getByTestId('nav-users').click();
    await page.waitForURL(url('/admin/users'));
    const tenantSelect = page.locator('select[name="tenant_id"]');
    await tenantSelect.locator('option', { hasText: tenant }).waitFor({ state: 'attached' });
    await tenantSelect.selectOption({ label: tenant });
    await page.locator('input[name="username"]').fill(member);
    await page.locator('input[name="display_name"]').fill('E2E Member');
    await page.locator('#user-role').selectOption('member');
    await page.locator('input[name="password"]').fill(memberPassword);
    await page.getByTestId('create-user').click();
    await page.getByTestId('user-created').waitFor();
    const row = page.locator(`[data-testid="user-row"][data-username="${member}"]`);
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, new RegExp(tenant));
    assert.match(text, /member/i);
  });

  step('the admin signs out', async (page) => {
    await signOut(page);
  });

  step('a wrong password shows an error and keeps the username', async (page) => {
    await submitLogin(page, member, 'definitely-not-the-password');
    const alert = page.locator('.login-card [role="alert"]').first();
    await alert.waitFor();
    assert.match(await alert.innerText(), /invalid|incorrect|wrong/i);
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.equal(await page.locator('input[name="username"]').inputValue(), member);
  });

  step('the member signs in and sees the tenant dashboard, hydrated', async (page) => {
    await page.locator('input[name="password"]').fill(memberPassword);
    await page.getByTestId('sign-in').click();
    await waitForPage(page, '/');
    await page.getByText('No instances yet').waitFor();
    assert.equal(await page.getByTestId('tenant-name').innerText(), tenant);
    assert.equal(await page.getByTestId('nav-admin').count(), 0, 'members have no administration section');
    await waitHydrated(page);
    await page.screenshot({ path: path.join(env.output, 'dashboard.png'), fullPage: true });
  });

  step('a member is told admin pages are for administrators', async (page) => {
    await page.goto(url('/admin/users'));
    await waitHydrated(page);
    await page.getByText('You need to be an administrator').waitFor();
  });

  step('the member creates an API token and sees its secret once', async (page) => {
    await page.getByTestId('nav-tokens').click();
    await page.waitForURL(url('/tokens'));
    const name = unique('cli');
    await page.locator('input[name="name"]').fill(name);
    await page.locator('input[name="expires_in_days"]').fill('30');
    await page.getByTestId('create-token').click();
    const secret = page.getByTestId('token-secret');
    await secret.waitFor();
    const value = (await secret.innerText()).trim();
    assert.ok(value.length >= 20, `the secret looks like a token: ${value.length} chars`);
    await page.getByText('shown only once').waitFor();
    const row = page.getByTestId('token-row').filter({ hasText: name });
    await row.waitFor();
    await page.screenshot({ path: path.join(env.output, 'token-created.png'), fullPage: true });

    await page.reload();
    await waitHydrated(page);
    await row.waitFor();
    assert.equal(await page.getByTestId('token-secret').count(), 0, 'the secret is not shown again');
    assert.ok(!(await page.content()).includes(value), 'the secret is nowhere in the page');
  });
});
