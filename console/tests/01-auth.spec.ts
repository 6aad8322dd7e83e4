import { call, collectionWith, expect, login, loginWithKey, ok, shot, test, unique } from './fixtures';
import { server } from './server';

const STORAGE_KEY = 'vectron.console.credential';

test('shows nothing but the log-in form before a log-in, and the API refuses the page', async ({ page }) => {
  const secret = unique('hidden');
  await collectionWith(secret, 2, []);
  const answered: string[] = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if ((u.pathname.startsWith('/v1/') || u.pathname === '/metrics') && r.ok()) answered.push(`${r.status()} ${u.pathname}`);
  });

  const response = await page.goto('/console/collections');
  expect(response?.status()).toBe(200); // the app's index.html, for a path of its own
  const csp = response?.headers()['content-security-policy'] ?? '';
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("connect-src 'self'");

  await expect(page.getByRole('form', { name: 'Sign in' })).toBeVisible();
  await expect(page.getByRole('table')).toHaveCount(0);
  await expect(page.getByRole('navigation', { name: 'Main' })).toHaveCount(0);
  await expect(page.locator('body')).not.toContainText(secret);
  await shot(page, 'login');

  // Without credentials the API answers nothing either (the static files are public, the data is not).
  const direct = await page.evaluate(async () => {
    const r = await fetch('/v1/collections');
    return { status: r.status, body: await r.json() };
  });
  expect(direct.status).toBe(401);
  expect(direct.body.error.code).toBe('UNAUTHENTICATED');
  expect(answered, 'no API call succeeded without credentials').toEqual([]);
});

test('a wrong password is refused with the server’s error code', async ({ page }) => {
  await page.goto('/console/');
  const form = page.getByRole('form', { name: 'Sign in' });
  await form.getByLabel('Username').fill('admin');
  await form.getByLabel('Password').fill('not-the-password');
  await form.getByRole('button', { name: 'Sign in' }).click();
  await expect(form.getByRole('alert')).toContainText('UNAUTHENTICATED');
  await expect(page.getByTestId('who')).toHaveCount(0);
});

test('logs in with user and password, opens the page the URL named, and logs out', async ({ page }) => {
  await login(page, '/console/collections');
  await expect(page.getByRole('heading', { name: 'Collections' })).toBeVisible();
  await expect(page.getByTestId('who')).toContainText('session');

  const credential = JSON.parse((await page.evaluate((k) => sessionStorage.getItem(k), STORAGE_KEY)) ?? 'null');
  expect(credential?.kind).toBe('token');
  expect((await call('GET', '/v1/auth/me', undefined, { authorization: `Bearer ${credential.accessToken}` })).status).toBe(200);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('form', { name: 'Sign in' })).toBeVisible();
  await expect(page.getByText('Signed out.')).toBeVisible();
  expect(await page.evaluate((k) => sessionStorage.getItem(k), STORAGE_KEY)).toBeNull();
  // The log-out revoked the session's refresh token.
  await expect
    .poll(async () => (await call('POST', '/v1/auth/refresh', { refresh_token: credential.refreshToken }, {})).status)
    .toBe(401);
  // After a reload too, nothing but the log-in.
  await page.reload();
  await expect(page.getByRole('form', { name: 'Sign in' })).toBeVisible();
});

test('an access token the server refuses is refreshed once with the refresh token', async ({ page }) => {
  await login(page);
  const before = JSON.parse((await page.evaluate((k) => sessionStorage.getItem(k), STORAGE_KEY))!);
  // Spoil the access token, as if it had expired, and reload: the app's first call gets a 401.
  await page.evaluate(
    ([k, c]) => sessionStorage.setItem(k, JSON.stringify({ ...JSON.parse(c), accessToken: 'spoiled' })),
    [STORAGE_KEY, JSON.stringify(before)],
  );
  const refreshes: number[] = [];
  page.on('response', (r) => {
    if (new URL(r.url()).pathname === '/v1/auth/refresh') refreshes.push(r.status());
  });
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
  await expect(page.getByTestId('who')).toContainText('admin');
  expect(refreshes).toEqual([200]);
  const after = JSON.parse((await page.evaluate((k) => sessionStorage.getItem(k), STORAGE_KEY))!);
  expect(after.accessToken).not.toBe('spoiled');
  expect(after.refreshToken).not.toBe(before.refreshToken); // refresh tokens rotate
});

test('logs in with an API key, which sees what its scope allows', async ({ page }) => {
  const name = unique('keyed');
  await collectionWith(name, 2, [{ id: 1, vector: [1, 0] }]);
  const created = await ok('POST', '/v1/auth/keys', { scope: 'read', collections: [name] });

  // A wrong key first: refused, with the code.
  await loginWithKey(page, 'vx_0000000000000000_00');
  await expect(page.getByRole('form', { name: 'Sign in' }).getByRole('alert')).toContainText('UNAUTHENTICATED');

  await loginWithKey(page, created.secret_key, '/console/collections');
  await expect(page.getByTestId('who')).toContainText('read');
  await expect(page.getByTestId('who')).toContainText('API key');
  await expect(page.getByTestId(`collection-${name}`).getByTestId('points')).toHaveText('1');
  // A read key is no admin: no admin pages in the navigation.
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Collections' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'Workers' })).toHaveCount(0);
  expect(server().adminKey).not.toBe(created.secret_key);

  // Revoked while in use: the next call is refused and the console returns to the log-in.
  await ok('DELETE', `/v1/auth/keys/${created.key.key_id}`);
  const form = page.getByRole('form', { name: 'Sign in' });
  await expect(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    await expect(form).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expect(form).toContainText('Your session has ended');
  await expect(page.getByTestId(`collection-${name}`)).toHaveCount(0);
});
