// VM metrics graphs end to end, on a running probe-guest VM: a member clicks from the instance list to the
// VM, the metrics panel draws CPU, memory and disk graphs as SVG with data points (sampled by the portal;
// scripts/e2e.sh samples every 2 s), the Day tab switches range, and on a 390x844 phone the graphs fit the
// screen. Skipped (loudly) without KVM. Run by scripts/e2e.sh (BASE_URL, ADMIN_USER, ADMIN_PASSWORD).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import { browserSteps, env, serverFn, signIn, signOut, timeouts, unique, until, url, waitForPage, waitHydrated } from './lib.mjs';

describe('vm metrics', () => {
  const step = browserSteps('metrics', { vms: true });
  const tenant = unique('e2e-metrics');
  const member = unique('metrics-member');
  const password = `pw-${unique('x')}-Long!`;
  const vmName = unique('graphs').slice(0, 30);
  let token;
  let vmId;

  /** A REST call with the member's API token. */
  async function api(page, method, p, data) {
    const res = await page.request.fetch(url(`/api/v1${p}`), {
      method,
      data,
      headers: { authorization: `Bearer ${token}`, origin: env.baseUrl },
    });
    return { status: res.status(), body: await res.json().catch(() => null) };
  }

  /** The number of points a chart's SVG says it draws (0 while absent). */
  const pointsOf = (page, name) =>
    page.evaluate(
      (name) => Number(document.querySelector(`[data-testid="metrics-chart-${name}"] svg`)?.dataset.points ?? 0),
      name,
    );

  step('a member with a running probe VM', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'metrics e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const u = await serverFn(page, 'create_user', {
      tenant_id: t.body.id, username: member, display_name: 'Metrics Tester', role: 'member', password,
    });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    await signOut(page);
    await signIn(page, member, password);
    const created = await serverFn(page, 'create_token', { name: 'metrics e2e', expires_in_days: '' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    token = created.body.secret;
    const probe = (await api(page, 'GET', '/images')).body.find((i) => i.is_test);
    assert.ok(probe, 'the probe image is registered (PORTAL_GUEST_DIR)');
    const flavor = (await api(page, 'GET', '/flavors')).body.find((f) => f.name === 't1.micro');
    const launched = await api(page, 'POST', '/vms', { name: vmName, image_id: probe.id, flavor_id: flavor.id });
    assert.equal(launched.status, 202, JSON.stringify(launched.body));
    vmId = launched.body.id;
    await until(
      'the VM running',
      async () => {
        const state = (await api(page, 'GET', `/vms/${vmId}`)).body?.state;
        assert.ok(!['crashed', 'stopped', 'deleted'].includes(state), `the VM did not start: ${state}`);
        return state === 'running';
      },
      timeouts.guest,
    );
  });

  step('clicking from the list to the VM shows CPU, memory and disk graphs with data points', async (page) => {
    await page.goto(url('/instances'));
    await waitHydrated(page);
    await page.getByRole('link', { name: vmName }).first().click();
    await waitForPage(page, `/instances/${vmId}`);
    await page.getByTestId('metrics-panel').waitFor();
    // Two samples make a point; the panel refetches on its own (every 30 s) and when the VM changes.
    await until(
      'the CPU graph has points',
      async () => {
        if ((await pointsOf(page, 'cpu')) > 0) return true;
        await page.getByTestId('metrics-range-1d').click();
        await page.getByTestId('metrics-range-1h').click();
        return false;
      },
      timeouts.guest,
    );
    for (const name of ['cpu', 'memory', 'disk']) {
      const chart = page.getByTestId(`metrics-chart-${name}`);
      assert.ok((await pointsOf(page, name)) > 0, `${name} has points`);
      const d = await chart.locator('path.metrics-line').first().getAttribute('d');
      assert.match(d, /^M\d/, `${name} draws a line: ${d}`);
    }
    assert.equal(await page.getByTestId('metrics-chart-disk').locator('path.metrics-line').count(), 2, 'read and write');
    await page.getByTestId('metrics-chart-memory').locator('.metrics-now').filter({ hasText: /MiB/ }).waitFor();
    await page.screenshot({ path: path.join(env.output, 'metrics.png'), fullPage: true });
  });

  step('the Day tab shows the day range; back and forward keep the graphs', async (page) => {
    await page.getByTestId('metrics-range-1d').click();
    await page.locator('[data-testid="metrics-range-1d"][aria-pressed="true"]').waitFor();
    await page.locator('[data-testid="metrics-chart-cpu"] svg[aria-label="CPU, last day"]').waitFor();
    await page.goBack();
    await waitForPage(page, '/instances');
    await page.goForward();
    await waitForPage(page, `/instances/${vmId}`);
    await until('the graphs after forward', async () => (await pointsOf(page, 'cpu')) > 0, timeouts.guest);
  });

  step('on a 390x844 phone the graphs fit the screen', async (page) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url(`/instances/${vmId}`));
    await waitHydrated(page);
    await until('the graphs on the phone', async () => (await pointsOf(page, 'cpu')) > 0, timeouts.guest);
    for (const name of ['cpu', 'memory', 'disk']) {
      const box = await page.locator(`[data-testid="metrics-chart-${name}"] svg`).boundingBox();
      assert.ok(box && box.width > 200 && box.x >= 0 && box.x + box.width <= 390, `${name}: ${JSON.stringify(box)}`);
    }
    await page.getByTestId('metrics-panel').screenshot({ path: path.join(env.output, 'metrics-phone.png') });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  step('the VM is deleted', async (page) => {
    const res = await api(page, 'DELETE', `/vms/${vmId}`);
    assert.equal(res.status, 202, JSON.stringify(res.body));
  });
});
