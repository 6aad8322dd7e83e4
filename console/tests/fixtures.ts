// What every test shares: the `test` whose pages fail on content-security-policy
// violations and uncaught errors, the server's address as baseURL, API calls with the
// admin key, the log-in, screenshots, unique names.

import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { test as base, expect, type Page } from '@playwright/test';
import { artifactsDir, server } from './server';

export { expect };

export const test = base.extend({
  baseURL: async ({}, use) => {
    await use(server().url);
  },
  page: async ({ page }, use) => {
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to (load|execute|apply|connect)/i.test(m.text())) {
        problems.push(`CSP: ${m.text()}`);
      }
    });
    await use(page);
    expect(problems, 'the page had no CSP violations and no uncaught errors').toEqual([]);
  },
});

export interface Answer<T = any> {
  status: number;
  body: T;
}

/** A call of the HTTP API with `headers` (default: the admin key). */
export async function call<T = any>(
  method: string,
  urlPath: string,
  body?: unknown,
  headers: Record<string, string> = { 'x-api-key': server().adminKey },
): Promise<Answer<T>> {
  const r = await fetch(`${server().url}${urlPath}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (e.g. /metrics)
  }
  return { status: r.status, body: parsed as T };
}

/** An API call that must succeed; answers its body. */
export async function ok<T = any>(method: string, urlPath: string, body?: unknown): Promise<T> {
  const r = await call<T>(method, urlPath, body);
  expect(r.status, `${method} ${urlPath}: ${JSON.stringify(r.body)}`).toBe(200);
  return r.body;
}

export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Creates a collection and upserts `points` into it, through the API. */
export async function collectionWith(
  name: string,
  dimension: number,
  points: Array<{ id: number | string; vector: number[]; payload?: object }>,
  shards = 1,
): Promise<void> {
  await ok('POST', '/v1/collections', { name, dimension, distance: 'cosine', shard_count: shards });
  if (points.length) await ok('POST', `/v1/collections/${name}/points`, { points, wait: true });
}

/** Signs in through the log-in form with the admin's password, at `at` (a console path). */
export async function login(page: Page, at = '/console/'): Promise<void> {
  await page.goto(at);
  const form = page.getByRole('form', { name: 'Sign in' });
  await form.getByLabel('Username').fill('admin');
  await form.getByLabel('Password').fill(server().adminPassword);
  await form.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('who')).toContainText('admin');
}

/** Signs in with an API key through the log-in form. */
export async function loginWithKey(page: Page, key: string, at = '/console/'): Promise<void> {
  await page.goto(at);
  const form = page.getByRole('form', { name: 'Sign in' });
  await form.getByRole('tab', { name: 'API key' }).click();
  await form.getByLabel('API key').fill(key);
  await form.getByRole('button', { name: 'Sign in' }).click();
}

/** A full-page screenshot into the artifacts directory. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(artifactsDir(), 'screenshots', `${name}.png`), fullPage: true });
}
