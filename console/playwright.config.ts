// The console's end-to-end tests: Debian's Chromium (no browser download) against a real
// `vectron dev` that tests/global-setup.ts starts (and tests/global-teardown.ts stops)
// with the built console (dist/, `npm run build` first). scripts/console-test.sh runs it.
//
// Environment: VECTRON_BIN (the server binary), VECTRON_CONSOLE_ARTIFACTS (screenshots,
// the server's log, traces), VECTRON_CONSOLE_REPORT (the JSON report), CHROMIUM (the
// browser, default /usr/bin/chromium).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from '@playwright/test';

const root = path.dirname(fileURLToPath(import.meta.url));
// Set once in the runner; its test workers inherit the same values.
process.env.VECTRON_CONSOLE_DIST ??= path.join(root, 'dist');
process.env.VECTRON_CONSOLE_ARTIFACTS ??= mkdtempSync(path.join(tmpdir(), 'vectron-console-artifacts-'));
const artifacts = process.env.VECTRON_CONSOLE_ARTIFACTS;
const report = process.env.VECTRON_CONSOLE_REPORT ?? path.join(artifacts, 'report.json');

export default defineConfig({
  testDir: './tests',
  // One server for the whole run, and the cluster test (which kills a worker) last:
  // files run one at a time in name order.
  workers: 1,
  fullyParallel: false,
  forbidOnly: true,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  outputDir: path.join(artifacts, 'test-results'),
  globalSetup: './tests/global-setup.ts',
  globalTeardown: './tests/global-teardown.ts',
  reporter: [['list'], ['json', { outputFile: report }]],
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // CI runs as root, where Chromium's sandbox cannot start.
      args: ['--no-sandbox'],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
