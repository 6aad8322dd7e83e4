// Runs last (files run in name order): it adds a worker to the dev cluster and kills it.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { artifactsDir, freePorts, server, startProcess } from './server';
import { call, expect, login, ok, shot, test } from './fixtures';

interface Worker {
  id: number;
  address: string;
  state: string;
}

const workers = async (): Promise<Worker[]> => (await ok('GET', '/v1/admin/workers')).workers;

test('the workers page shows the dev worker', async ({ page }) => {
  const s = server();
  await login(page, '/console/workers');
  const dev = (await workers()).find((w) => w.address === s.worker);
  expect(dev, `the dev worker at ${s.worker} is registered`).toBeDefined();
  const row = page.getByTestId(`worker-${dev!.id}`);
  await expect(row).toContainText(s.worker);
  await expect(row).toContainText('up');
  await shot(page, 'workers');
});

test.describe.serial('a worker that dies', () => {
  let extra: ChildProcess | null = null;
  let id = 0;

  test.afterAll(() => {
    if (extra && extra.exitCode === null && extra.signalCode === null) extra.kill('SIGKILL');
  });

  test('raises an alert, which the console resolves', async ({ page }) => {
    test.setTimeout(120_000);
    const s = server();
    // No collections while it lives: the scheduler would move shards onto the new worker
    // (even a replication-factor-1 shard), and killing it would then leave them unserved.
    for (const c of (await ok('GET', '/v1/collections')).collections) await ok('DELETE', `/v1/collections/${c.name}`);

    const [port] = await freePorts(1);
    const dir = path.join(s.runDir, 'worker-extra');
    mkdirSync(dir, { recursive: true });
    const address = `127.0.0.1:${port}`;
    const args = ['worker', '--listen', address, '--placement', s.placement, '--data-dir', dir,
      '--cluster-secret-file', path.join(s.dataDir, 'cluster.secret')];
    extra = startProcess(s.runDir, 'worker-extra', s.bin, args, path.join(artifactsDir(), 'vectron-worker-extra.log'));
    await expect
      .poll(async () => (await workers()).find((w) => w.address === address)?.state, { timeout: 30_000 })
      .toBe('up');
    id = (await workers()).find((w) => w.address === address)!.id;

    extra.kill('SIGKILL');
    const subject = `worker ${id}`;
    const openAlert = async () =>
      (await ok('GET', '/v1/alerts')).alerts.find((a: { kind: string; subject: string }) => a.kind === 'worker_down' && a.subject === subject);
    await expect.poll(async () => (await openAlert())?.id, { timeout: 60_000, intervals: [500] }).toBeDefined();
    const alert = await openAlert();

    await login(page, '/console/alerts');
    const row = page.getByTestId(`alert-${alert.id}`);
    await expect(row).toContainText('worker_down');
    await expect(row).toContainText(subject);
    await expect(row).toContainText('open');
    await shot(page, 'alerts');
    await row.getByRole('button', { name: 'Resolve' }).click();
    await expect(row).toHaveCount(0); // open alerts only…
    await page.getByLabel('resolved ones too').check();
    await expect(row).toContainText('resolved'); // …unless asked for
    const all = (await ok('GET', '/v1/alerts?all=true')).alerts;
    expect(all.find((a: { id: number }) => a.id === alert.id)?.resolved_at_ms).toBeGreaterThan(0);
  });

  test('and the console removes it', async ({ page }) => {
    expect(id, 'the previous test started a worker').toBeGreaterThan(0);
    await login(page, '/console/workers');
    const row = page.getByTestId(`worker-${id}`);
    await expect(row).toContainText('down');
    await row.getByRole('button', { name: 'Remove' }).click();
    const dialog = page.getByRole('dialog', { name: `Remove worker ${id}?` });
    await shot(page, 'worker-remove');
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await expect(dialog).toHaveCount(0);
    await expect(row).toHaveCount(0);
    expect((await workers()).map((w) => w.id)).not.toContain(id);
    // Its id is gone for good: a second removal is refused.
    const again = await call('DELETE', `/v1/admin/workers/${id}`);
    expect(again.status).toBe(404);
  });
});
