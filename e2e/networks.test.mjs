// Tenant networks end to end, all by clicking: a member launches a VM from the dialog (default network and
// group), opens it from the list, sees its 10.x address, forwards SSH with one click and copies the `ssh`
// command; opens SSH on the default group, creates a group and rules (a bad block is refused next to its
// field), moves the VM into the new group, allocates/attaches/detaches/releases a floating IP, creates and
// deletes a network; on a 390×844 phone viewport the network pages do not overflow. The admin sees the
// cloud's pools and uplink. Skipped (loudly) without KVM or without tenant networks.
// Run by scripts/e2e.sh, which gives the portal networks and an uplink inside namespaces of the run.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe } from 'node:test';

import {
  browserSteps, env, serverFn, signIn, signOut, timeouts, unique, url, waitForPage, waitHydrated,
} from './lib.mjs';

describe('tenant networks', () => {
  const tenant = unique('nett');
  const member = unique('netuser');
  const password = `pw-${unique('x')}-Long!`;
  const vmName = unique('net').slice(0, 30);
  const group = unique('web').slice(0, 30);
  const network = unique('backend').slice(0, 30);
  const step = browserSteps('networks', { vms: true, networks: true });
  let vmPath;
  let sshCommand;

  const card = (page, name) => page.locator(`[data-testid="group-card"][data-name="${name}"]`);
  const networkRow = (page, name) => page.locator(`[data-testid="network-row"][data-name="${name}"]`);

  /** Elements of `root` (default: the page) whose right edge is past the viewport, and the page's scroll width. */
  const overflow = (page, root = 'body') =>
    page.evaluate((root) => {
      const width = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll(`${root}, ${root} *`)]
        .filter((el) => {
          const r = el.getBoundingClientRect();
          return r.width > 0 && r.right > width + 1;
        })
        .map((el) => `${el.tagName.toLowerCase()}.${el.className} (${Math.round(el.getBoundingClientRect().right)}px)`);
      return { width, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 8) };
    }, root);

  step('an admin sets up a tenant with a member and sees the cloud’s pools and uplink', async (page) => {
    await signIn(page, env.adminUser, env.adminPassword);
    const t = await serverFn(page, 'create_tenant', { name: tenant, description: 'networks e2e' });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const u = await serverFn(page, 'create_user', {
      tenant_id: t.body.id, username: member, display_name: 'Net tester', role: 'member', password,
    });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    await page.getByTestId('nav-networks').click();
    await waitForPage(page, '/networks');
    await page.getByTestId('network-pools').waitFor();
    assert.match(await page.getByTestId('network-uplink').textContent(), /^\d+\.\d+\.\d+\.\d+\/\d+$/);
    await signOut(page);
  });

  step('the member launches a VM from the dialog with the default network and group', async (page) => {
    await signIn(page, member, password);
    await page.getByTestId('launch-instance').first().click();
    const dialog = page.getByTestId('launch-dialog');
    await dialog.waitFor();
    await dialog.locator('input[name="name"]').fill(vmName);
    const probe = dialog.getByTestId('launch-image').locator('option', { hasText: '(test)' });
    await dialog.getByTestId('launch-image').selectOption(await probe.getAttribute('value'));
    const micro = dialog.getByTestId('launch-flavor').locator('option', { hasText: 't1.micro' });
    await dialog.getByTestId('launch-flavor').selectOption(await micro.getAttribute('value'));
    // A first VM: its tenant's default network and group are made with it.
    const choice = dialog.getByTestId('launch-network').locator('option:checked');
    assert.match(await choice.textContent(), /default/);
    await dialog.getByTestId('launch-groups').waitFor();
    await dialog.getByTestId('launch-submit').click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator(`[data-testid="vm-row"][data-vm-name="${vmName}"]`).waitFor();
  });

  step('the VM page shows its 10.x address; "Forward SSH" gives an ssh command that copies', async (page) => {
    const link = page.locator(`[data-testid="vm-row"][data-vm-name="${vmName}"]`).getByRole('link', { name: vmName });
    vmPath = await link.getAttribute('href');
    await link.click();
    await waitForPage(page, vmPath);
    const panel = page.getByTestId('vm-network');
    await panel.waitFor();
    assert.match(await panel.getByTestId('vm-ip').textContent(), /^10\.\d+\.\d+\.\d+$/);
    assert.match(await panel.getByTestId('vm-mac').textContent(), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.match(await panel.getByTestId('vm-groups').textContent(), /default/);
    await panel.getByTestId('forward-ssh').click();
    const field = page.getByTestId('vm-ssh');
    await field.waitFor();
    sshCommand = await field.inputValue();
    assert.match(sshCommand, /^ssh -p \d+ root@\d+\.\d+\.\d+\.\d+$/);
    const [, port] = sshCommand.match(/-p (\d+)/);
    assert.match(await page.getByTestId('vm-forwards').textContent(), new RegExp(`:${port} \u2192 tcp/22`));
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.baseUrl });
    await page.getByTestId('vm-ssh-copy').click();
    await page.getByTestId('vm-ssh-copy').filter({ hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), sshCommand);
    await panel.screenshot({ path: path.join(env.output, 'vm-network.png') });
  });

  step('the member opens SSH on the default group and builds a group with rules by clicking', async (page) => {
    await page.getByTestId('nav-security-groups').click();
    await waitForPage(page, '/security-groups');
    const def = card(page, 'default');
    await def.getByTestId('allow-ssh').click();
    await def.getByTestId('ssh-open').waitFor();
    await def.getByTestId('rule-row').filter({ hasText: 'tcp' }).filter({ hasText: '0.0.0.0/0' }).waitFor();

    await page.locator('#group-name').fill(group);
    await page.locator('#group-description').fill('web servers');
    await page.getByTestId('create-group').click();
    const web = card(page, group);
    await web.getByTestId('no-rules').waitFor();

    // A bad block is refused next to its field; the corrected rule is added.
    await web.getByTestId('rule-protocol').selectOption('tcp');
    await web.getByTestId('rule-port-min').fill('8080');
    await web.getByTestId('rule-port-max').fill('8090');
    await web.getByTestId('rule-cidr').fill('not-a-block');
    await web.getByTestId('add-rule').click();
    await web.getByTestId('field-error-source_cidr').filter({ hasText: /IPv4 block/ }).waitFor();
    await web.getByTestId('rule-cidr').fill('192.0.2.0/24');
    await web.getByTestId('add-rule').click();
    await web.getByTestId('rule-row').filter({ hasText: '8080-8090' }).filter({ hasText: '192.0.2.0/24' }).waitFor();
    assert.equal(await web.getByTestId('field-error-source_cidr').count(), 0);

    // ICMP from the VMs of the default group (no ports for ICMP), then deleted again.
    await web.getByTestId('rule-protocol').selectOption('icmp');
    assert.equal(await web.getByTestId('rule-port-min').isDisabled(), true);
    await web.getByTestId('rule-source').selectOption({ label: 'VMs in group default' });
    await web.getByTestId('add-rule').click();
    const icmp = web.getByTestId('rule-row').filter({ hasText: 'group default' });
    await icmp.waitFor();
    await icmp.getByTestId('delete-rule').click();
    await icmp.waitFor({ state: 'detached' });
    assert.equal(await web.getByTestId('rule-row').count(), 1);
    await page.screenshot({ path: path.join(env.output, 'security-groups.png'), fullPage: true });
  });

  step('the VM joins the new group from its page', async (page) => {
    await page.goto(url(vmPath));
    await waitHydrated(page);
    await page.getByTestId('edit-vm-groups').click();
    await page.locator(`[data-testid="vm-group-choice"][data-name="${group}"] input`).check();
    await page.getByTestId('save-vm-groups').click();
    await page.getByTestId('vm-groups').filter({ hasText: group }).filter({ hasText: 'default' }).waitFor();
  });

  step('the member allocates a floating IP, attaches it, detaches it and releases it', async (page) => {
    await page.getByTestId('nav-public-access').click();
    await waitForPage(page, '/public-access');
    await page.getByTestId('forward-row').filter({ hasText: vmName }).waitFor();
    assert.equal(await page.getByTestId('no-uplink').count(), 0);
    await page.getByTestId('allocate-ip').click();
    const row = page.getByTestId('floating-row');
    await row.waitFor();
    await row.getByTestId('attach-ip').click();
    await row.getByRole('link', { name: vmName }).waitFor();
    await page.screenshot({ path: path.join(env.output, 'public-access.png'), fullPage: true });
    const address = await row.getAttribute('data-address');
    await row.getByTestId('detach-ip').click();
    await row.getByText('not attached').waitFor();
    await row.getByTestId('release-ip').click();
    await row.getByTestId('confirm-release-ip').click();
    await page.locator(`[data-testid="floating-row"][data-address="${address}"]`).waitFor({ state: 'detached' });
  });

  step('the member creates a network (a taken name is refused at its field) and deletes it', async (page) => {
    await page.getByTestId('nav-networks').click();
    await waitForPage(page, '/networks');
    const def = networkRow(page, 'default');
    await def.getByTestId('network-default').waitFor();
    assert.equal(await def.getByTestId('network-ports').textContent(), '1');
    assert.equal(await def.getByTestId('delete-network').isDisabled(), true, 'a network with a VM cannot go');
    await page.locator('#network-name').fill(network);
    await page.getByTestId('create-network').click();
    const row = networkRow(page, network);
    await row.waitFor();
    assert.match(await row.locator('code').first().textContent(), /^10\.\d+\.\d+\.0\/24$/);
    await page.locator('#network-name').fill(network);
    await page.getByTestId('create-network').click();
    await page.getByTestId('field-error-name').filter({ hasText: /already have a network/ }).waitFor();
    await row.getByTestId('delete-network').click();
    await row.getByTestId('confirm-delete-network').click();
    await row.waitFor({ state: 'detached' });
  });

  step('on a 390×844 phone the network pages fit the screen', async (page) => {
    await page.setViewportSize({ width: 390, height: 844 });
    const pages = [
      ['/networks', 'networks-table', 'body'],
      ['/security-groups', 'rules-table', 'body'],
      ['/public-access', 'forwards-table', 'body'],
      [vmPath, 'vm-network', '[data-testid="vm-network"]'],
    ];
    for (const [p, ready, root] of pages) {
      await page.goto(url(p));
      await waitHydrated(page);
      await page.getByTestId(ready).first().waitFor();
      const o = await overflow(page, root);
      assert.ok(o.scrollWidth <= o.width && o.wide.length === 0, `${p} overflows ${o.width}px: ${JSON.stringify(o)}`);
      if (p === '/networks') await page.screenshot({ path: path.join(env.output, 'networks-phone.png'), fullPage: true });
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  step('the member deletes the VM', async (page) => {
    await page.goto(url(vmPath));
    await waitHydrated(page);
    // Delete is offered once the launch has moved past "creating".
    await page.getByTestId('vm-delete').click({ timeout: timeouts.guest });
    await page.getByTestId('confirm-action').click();
    await page.getByTestId('vm-gone').waitFor({ timeout: timeouts.guest });
  });
});
