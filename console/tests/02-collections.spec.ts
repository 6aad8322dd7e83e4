import { call, collectionWith, expect, login, ok, shot, test, unique } from './fixtures';

test.describe.serial('collections', () => {
  const name = unique('books');

  test('creates a collection through the form', async ({ page }) => {
    await login(page, '/console/collections');
    await page.getByRole('button', { name: 'New collection' }).click();
    const form = page.getByRole('form', { name: 'New collection' });
    await form.getByLabel('Name').fill(name);
    await form.getByLabel('Dimension').fill('4');
    await form.getByLabel('Distance').selectOption('euclid');
    await form.getByLabel('Shards').fill('2');
    await form.getByLabel('Replication factor').fill('1');
    await form.getByLabel('HNSW m').fill('24');
    await form.getByRole('button', { name: 'Add a payload index' }).click();
    await form.getByLabel('index 1 key').fill('genre');
    await form.getByLabel('index 1 kind').selectOption('keyword');
    await shot(page, 'collection-form');
    await form.getByRole('button', { name: 'Create collection' }).click();

    await expect(page.getByRole('status')).toContainText(`Created collection ${name}`);
    const row = page.getByTestId(`collection-${name}`);
    await expect(row).toBeVisible();
    await expect(row.getByTestId('points')).toHaveText('0');

    const info = await ok('GET', `/v1/collections/${name}`);
    expect(info.collection).toMatchObject({
      name,
      dimension: 4,
      distance: 'euclid',
      shard_count: 2,
      replication_factor: 1,
      hnsw: { m: 24 },
      payload_indexes: [{ key: 'genre', kind: 'keyword' }],
    });
  });

  test('a refused creation shows the server’s error code', async ({ page }) => {
    await login(page, '/console/collections');
    await page.getByRole('button', { name: 'New collection' }).click();
    const form = page.getByRole('form', { name: 'New collection' });
    await form.getByLabel('Name').fill(name); // exists already
    await form.getByLabel('Dimension').fill('4');
    await form.getByRole('button', { name: 'Create collection' }).click();
    await expect(form.getByRole('alert')).toContainText('COLLECTION_ALREADY_EXISTS');
  });

  test('lists the collection with the points upserted through the API', async ({ page }) => {
    const points = [1, 2, 3].map((i) => ({ id: i, vector: [i, 1, 0, 0], payload: { genre: i === 2 ? 'poetry' : 'novel' } }));
    await ok('POST', `/v1/collections/${name}/points`, { points, wait: true });
    await login(page, '/console/collections');
    const row = page.getByTestId(`collection-${name}`);
    await expect(row.getByTestId('points')).toHaveText('3');
    await expect(row).toContainText('euclid');
    await shot(page, 'collections');
  });

  test('its status page shows shards, replicas and leaders', async ({ page }) => {
    await login(page, '/console/collections');
    await page.getByTestId(`collection-${name}`).getByRole('link', { name }).click();
    await expect(page).toHaveURL(new RegExp(`/console/collections/${name}$`));
    await expect(page.getByTestId('points-count')).toHaveText('3');
    const shards = page.getByRole('table', { name: 'Shards' }).locator('tbody tr');
    await expect(shards).toHaveCount(2);
    const status = await ok('GET', `/v1/collections/${name}/status`);
    for (const s of status.shards) {
      const leader = s.replicas.find((r: { leader: boolean }) => r.leader);
      const row = page.getByTestId(`shard-${s.shard_id}`);
      await expect(row.getByTestId('leader')).toHaveText(`worker ${leader.worker_id}`);
      await expect(row).toContainText(leader.address);
      await expect(row).toContainText('active');
    }
    await page.getByRole('button', { name: 'Show points' }).click();
    await expect(page.getByRole('table', { name: 'Points' }).locator('tbody tr')).toHaveCount(3);
    await expect(page.getByRole('table', { name: 'Points' })).toContainText('poetry');
    await shot(page, 'collection-status');
  });

  test('deletes a collection only after confirmation', async ({ page }) => {
    const doomed = unique('doomed');
    await collectionWith(doomed, 2, [{ id: 1, vector: [0, 1] }]);
    await login(page, '/console/collections');
    const row = page.getByTestId(`collection-${doomed}`);

    // Cancelled: still there.
    await row.getByRole('button', { name: 'Delete' }).click();
    let dialog = page.getByRole('dialog', { name: `Delete collection ${doomed}?` });
    await expect(dialog).toBeVisible();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
    expect((await call('GET', `/v1/collections/${doomed}`)).status).toBe(200);

    // Confirmed by typing the name.
    await row.getByRole('button', { name: 'Delete' }).click();
    dialog = page.getByRole('dialog', { name: `Delete collection ${doomed}?` });
    const confirm = dialog.getByRole('button', { name: 'Delete' });
    await expect(confirm).toBeDisabled();
    await dialog.getByLabel('confirmation').fill(doomed);
    await shot(page, 'collection-delete');
    await confirm.click();
    await expect(dialog).toHaveCount(0);
    await expect(row).toHaveCount(0);
    await expect(page.getByTestId(`collection-${name}`)).toBeVisible();
    const gone = await call('GET', `/v1/collections/${doomed}`);
    expect(gone.status).toBe(404);
  });
});
