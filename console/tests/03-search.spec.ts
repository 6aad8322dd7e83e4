import type { Page } from '@playwright/test';
import { call, collectionWith, expect, login, shot, test, unique } from './fixtures';

const name = unique('search');

test.beforeAll(async () => {
  await collectionWith(name, 4, [
    { id: 1, vector: [1, 0, 0, 0], payload: { title: 'alpha', city: 'London' } },
    { id: 2, vector: [0, 1, 0, 0], payload: { title: 'beta', city: 'Paris' } },
    { id: 'doc-3', vector: [0.9, 0.1, 0, 0], payload: { title: 'gamma', city: 'London' } },
  ]);
});

async function open(page: Page) {
  await login(page, `/console/search?collection=${name}`);
  const form = page.getByRole('form', { name: 'Search' });
  await expect(form.getByRole('combobox', { name: /^Collection/ })).toHaveValue(name);
  return form;
}

const hits = (page: Page) => page.getByTestId('hit');

test('searches by vector and shows scores and payloads', async ({ page }) => {
  const form = await open(page);
  await form.getByRole('textbox', { name: /^Vector/ }).fill('[1, 0, 0, 0]');
  await form.getByLabel('Top k').fill('2');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(hits(page)).toHaveCount(2);
  await expect(hits(page).nth(0).getByTestId('hit-id')).toHaveText('1');
  await expect(hits(page).nth(0).getByTestId('hit-score')).toHaveText('1.0000');
  await expect(hits(page).nth(0)).toContainText('"title": "alpha"');
  await expect(hits(page).nth(1).getByTestId('hit-id')).toHaveText('"doc-3"');
  await expect(hits(page).nth(1)).toContainText('gamma');
  await shot(page, 'search');
});

test('filters with the JSON filter editor', async ({ page }) => {
  const form = await open(page);
  await form.getByRole('textbox', { name: /^Vector/ }).fill('1 0 0 0');
  const filter = form.getByLabel('Filter (JSON, optional)');
  await filter.fill('{"must": [{"key": "city", "match": {"value": "Paris"}}');
  await expect(form.getByText('Invalid JSON')).toBeVisible();
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(form.getByRole('alert')).toContainText('the filter is not JSON');
  await filter.fill('{"must": [{"key": "city", "match": {"value": "Paris"}}]}');
  await expect(form.getByText('Invalid JSON')).toHaveCount(0);
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(hits(page)).toHaveCount(1);
  await expect(hits(page).nth(0).getByTestId('hit-id')).toHaveText('2');
  await expect(hits(page).nth(0)).toContainText('Paris');
  // A filter the server refuses shows its code.
  await filter.fill('{"must": [{"nonsense": true}]}');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(form.getByRole('alert')).toContainText('INVALID_FILTER');
});

test('searches by point id, numeric and string', async ({ page }) => {
  const form = await open(page);
  await form.getByRole('radio', { name: 'point id' }).check();
  await form.getByRole('textbox', { name: /^Point id/ }).fill('2');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(hits(page).nth(0).getByTestId('hit-id')).toHaveText('2');
  await expect(hits(page).nth(0).getByTestId('hit-score')).toHaveText('1.0000');
  await expect(hits(page).nth(0)).toContainText('beta');

  await form.getByRole('textbox', { name: /^Point id/ }).fill('doc-3');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(hits(page).nth(0).getByTestId('hit-id')).toHaveText('"doc-3"');
  await expect(hits(page).nth(1).getByTestId('hit-id')).toHaveText('1');

  await form.getByRole('textbox', { name: /^Point id/ }).fill('404');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(form.getByRole('alert')).toContainText('POINT_NOT_FOUND');
});

test('sends feedback on a hit', async ({ page }) => {
  const form = await open(page);
  await form.getByRole('textbox', { name: /^Vector/ }).fill('[1, 0, 0, 0]');
  await form.getByRole('textbox', { name: /^Query text/ }).fill('alpha things');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(hits(page)).toHaveCount(3);
  const sent = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/feedback');
  await hits(page).nth(0).getByRole('button', { name: 'Relevant', exact: true }).click();
  const answer = await sent;
  expect(answer.status()).toBe(200);
  expect(await answer.json()).toEqual({ accepted: true });
  const body = answer.request().postDataJSON();
  expect(body).toMatchObject({ collection: name, point_id: 1, relevance: 1, position: 0, query_text: 'alpha things' });
  expect(body.query_id).toMatch(/^[0-9a-f]+$/);
  await expect(hits(page).nth(0).getByRole('status')).toHaveText('feedback recorded');

  await hits(page).nth(2).getByRole('button', { name: 'Not relevant' }).click();
  await expect(hits(page).nth(2).getByRole('status')).toHaveText('feedback recorded');
  await expect
    .poll(async () => (await call('GET', `/v1/collections/${name}/feedback/stats`)).body.count)
    .toBe(2);
  const stats = (await call('GET', `/v1/collections/${name}/feedback/stats`)).body;
  expect(stats).toMatchObject({ positive: 1, negative: 1, queries: 1 });
});
