import { call, collectionWith, expect, login, ok, shot, test, unique } from './fixtures';

test('creates an API key, shows its secret once, and revokes it', async ({ page }) => {
  const name = unique('keys');
  await collectionWith(name, 2, []);
  await login(page, '/console/keys');
  const form = page.getByRole('form', { name: 'New API key' });
  await form.getByLabel('Scope').selectOption('write');
  await form.getByLabel(name).check();
  await form.getByRole('button', { name: 'Create key' }).click();

  const box = page.getByRole('status', { name: 'New API key' });
  const secret = (await box.getByTestId('secret-key').textContent())!.trim();
  expect(secret).toMatch(/^vx_[0-9a-f]{16}_[0-9a-f]+$/);
  const keyId = secret.split('_')[1];
  await expect(box).toContainText('shown this once');
  await shot(page, 'keys');

  // The key works, with what it was given.
  const me = await call('GET', '/v1/auth/me', undefined, { 'x-api-key': secret });
  expect(me.status).toBe(200);
  expect(me.body).toMatchObject({ principal: 'admin', scope: 'write', collections: [name] });
  const row = page.getByTestId(`key-${keyId}`);
  await expect(row).toContainText('write');
  await expect(row).toContainText(name);
  await expect(row).toContainText('active');

  // Shown once: gone once dismissed, and not after a reload either.
  await box.getByRole('button', { name: 'I have saved it' }).click();
  await expect(box).toHaveCount(0);
  await page.reload();
  await expect(row).toBeVisible();
  expect(await page.content()).not.toContain(secret.split('_')[2]);

  await row.getByRole('button', { name: 'Revoke' }).click();
  const dialog = page.getByRole('dialog', { name: `Revoke key ${keyId}?` });
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(row).toHaveCount(0); // revoked keys are hidden…
  await page.getByLabel('revoked keys').check();
  await expect(row).toContainText('revoked'); // …unless asked for
  const listed = await ok('GET', '/v1/auth/keys');
  expect(listed.keys.find((k: { key_id: string }) => k.key_id === keyId)?.revoked).toBe(true);
  // The gateway caches credentials for auth_cache_ttl (2 s): refused within a few seconds.
  await expect
    .poll(async () => (await call('GET', '/v1/auth/me', undefined, { 'x-api-key': secret })).status, { timeout: 15_000 })
    .toBe(401);
  const refused = await call('GET', `/v1/collections/${name}`, undefined, { 'x-api-key': secret });
  expect(refused.status).toBe(401);
  expect(refused.body.error.code).toBe('UNAUTHENTICATED');
});

test('an admin creates a user, changes their role and password, and deletes them', async ({ page }) => {
  const username = unique('user');
  const first = 'first-password-1';
  const second = 'second-password-2';
  const loginAs = (password: string) => call('POST', '/v1/auth/login', { username, password }, {});

  await login(page, '/console/users');
  const form = page.getByRole('form', { name: 'New user' });
  await form.getByLabel('Username').fill(username);
  await form.getByLabel('Password').fill(first);
  await form.getByRole('button', { name: 'Create user' }).click();
  const row = page.getByTestId(`user-${username}`);
  await expect(row).toBeVisible();
  await expect(row.getByLabel(`role of ${username}`)).toHaveValue('user');
  expect((await loginAs(first)).status).toBe(200);

  await row.getByLabel(`role of ${username}`).selectOption('admin');
  await expect.poll(async () => (await call('GET', `/v1/auth/users/${username}`)).body.role).toBe('admin');

  await row.getByRole('button', { name: 'Set password' }).click();
  const reset = page.getByRole('dialog', { name: `New password for ${username}` });
  await reset.getByLabel('New password').fill(second);
  await reset.getByRole('button', { name: 'Set password' }).click();
  await expect(reset).toHaveCount(0);
  expect((await loginAs(second)).status).toBe(200);
  expect((await loginAs(first)).status).toBe(401);
  await shot(page, 'users');

  await row.getByRole('button', { name: 'Delete' }).click();
  const dialog = page.getByRole('dialog', { name: `Delete user ${username}?` });
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await expect(row).toHaveCount(0);
  expect((await call('GET', `/v1/auth/users/${username}`)).status).toBe(404);
  // The signed-in admin cannot delete themself from here.
  await expect(page.getByTestId('user-admin').getByRole('button', { name: 'Delete' })).toBeDisabled();
});
