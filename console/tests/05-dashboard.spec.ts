import { collectionWith, expect, login, ok, shot, test, unique } from './fixtures';

test('the dashboard shows health, the cluster, traffic from two /metrics samples, and open alerts', async ({ page }) => {
  const name = unique('dash');
  await collectionWith(name, 2, [{ id: 1, vector: [1, 0] }]);
  await login(page);
  await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
  await expect(page.getByTestId('health')).toContainText('ok');
  const stats = await ok('GET', '/v1/admin/stats');
  await expect(page.getByTestId('stat-workers')).toContainText(`${stats.workers_up} / ${stats.workers}`);
  await expect(page.getByTestId('stat-collections')).toContainText(String(stats.collections));

  // Until a second sample, no rates; then requests per second and latencies.
  await expect(page.getByTestId('traffic-pending')).toBeVisible();
  // Searches until an interval between two samples holds some (the first sample may come after a search).
  const routes = page.getByRole('table', { name: 'Traffic by route' });
  await expect(async () => {
    await ok('POST', `/v1/collections/${name}/points/search`, { vector: [1, 0], top_k: 1 });
    await expect(routes).toContainText('/v1/collections/{name}/points/search', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  const qps = page.getByTestId('stat-qps');
  const value = Number((await qps.locator('.stat-value').textContent())!.replace(/,/g, ''));
  expect(value).toBeGreaterThan(0);
  await expect(page.getByTestId('stat-latency-p95')).toContainText('ms');
  const alerts = await ok('GET', '/v1/alerts');
  await expect(page.getByTestId('open-alerts')).toHaveText(String(alerts.alerts.length));
  await shot(page, 'dashboard');
});
