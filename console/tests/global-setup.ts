// Starts the `vectron dev` the suite runs against: every listener on a free loopback
// port, the built console from dist/, a known admin password (VECTRON__AUTH__ADMIN_PASSWORD,
// so the browser can log in as `admin`), data in a fresh directory. Waits for
// GET /v1/system/health, reads the admin API key from <data>/admin.key, and records it all
// in the state file (VECTRON_CONSOLE_STATE) for the tests and the teardown.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { artifactsDir, freePorts, startProcess, stopAll, waitFor, writeState, type ServerState } from './server';

function binary(): string {
  const target = process.env.CARGO_TARGET_DIR ?? path.join(process.env.HOME ?? '/root', '.cache/vectron/target');
  const bin = process.env.VECTRON_BIN ?? path.join(target, 'debug/vectron');
  if (!existsSync(bin)) throw new Error(`no vectron binary at ${bin} (set VECTRON_BIN)`);
  return bin;
}

/** /dev/shm when it has 1 GiB free (faster fsyncs), else the temp dir. */
function dataRoot(): string {
  try {
    const s = statfsSync('/dev/shm');
    if (s.bavail * s.bsize >= 1 << 30) return '/dev/shm';
  } catch {
    // no /dev/shm
  }
  return tmpdir();
}

/**
 * The console's files must load without credentials (the app asks for them itself): its
 * index.html and every file it names. Checked here so a gateway that refuses them fails
 * the run at once, saying so, instead of every test timing out on a blank page.
 */
async function checkConsoleIsPublic(url: string): Promise<void> {
  const index = await fetch(`${url}/console/`);
  const html = await index.text();
  if (!index.ok) throw new Error(`GET /console/ without credentials answered ${index.status}: ${html.slice(0, 300)}`);
  const files = [...html.matchAll(/(?:src|href)="(\/console\/[^"]+)"/g)].map((m) => m[1]);
  for (const file of [...files, '/console/collections']) {
    const r = await fetch(`${url}${file}`);
    if (!r.ok) {
      throw new Error(
        `the gateway refused the console's ${file} without credentials: ${r.status} ${(await r.text()).slice(0, 300)}`,
      );
    }
  }
}

export default async function globalSetup(): Promise<void> {
  const bin = binary();
  const dist = process.env.VECTRON_CONSOLE_DIST!;
  if (!existsSync(path.join(dist, 'index.html'))) throw new Error(`no built console in ${dist}: run npm run build`);
  const artifacts = artifactsDir();
  mkdirSync(artifacts, { recursive: true });
  // VECTRON_CONSOLE_RUN_DIR: a directory of the caller's (scripts/console-test.sh stops its *.pid if the run is cut short).
  const runDir = process.env.VECTRON_CONSOLE_RUN_DIR ?? mkdtempSync(path.join(dataRoot(), 'vectron-console-'));
  mkdirSync(runDir, { recursive: true });
  process.env.VECTRON_CONSOLE_STATE ??= path.join(runDir, 'server.json');
  const dataDir = path.join(runDir, 'dev');

  const [http, grpc, placement, worker, auth, reranker] = await freePorts(6);
  const at = (port: number) => `127.0.0.1:${port}`;
  const adminPassword = randomBytes(12).toString('hex');
  const args = [
    'dev',
    '--data-dir', dataDir,
    '--http', at(http),
    '--grpc', at(grpc),
    '--placement', at(placement),
    '--worker', at(worker),
    '--auth', at(auth),
    '--reranker', at(reranker),
    '--console-dir', dist,
  ];
  const log = path.join(artifacts, 'vectron-dev.log');
  console.log(`console tests: starting ${bin} ${args.join(' ')} (log: ${log})`);
  const child = startProcess(runDir, 'dev', bin, args, log, { VECTRON__AUTH__ADMIN_PASSWORD: adminPassword });
  let exited: string | null = null;
  child.once('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));

  const url = `http://${at(http)}`;
  try {
    await waitFor(
      'GET /v1/system/health',
      async () => {
        if (exited) throw new Error(`vectron dev ${exited}; see ${log}`);
        const r = await fetch(`${url}/v1/system/health`);
        return r.ok;
      },
      120_000,
    );
    await checkConsoleIsPublic(url);
    const keyFile = path.join(dataDir, 'admin.key');
    await waitFor(keyFile, async () => existsSync(keyFile) && readFileSync(keyFile, 'utf8').trim() !== '', 10_000);
    const state: ServerState = {
      url,
      adminKey: readFileSync(keyFile, 'utf8').trim(),
      adminPassword,
      dataDir,
      runDir,
      placement: at(placement),
      worker: at(worker),
      bin,
      pid: child.pid!,
    };
    writeState(state);
    child.unref();
    console.log(`console tests: vectron dev is up at ${url}/console/ (pid ${child.pid}); artifacts in ${artifacts}`);
  } catch (e) {
    await stopAll(runDir, bin);
    throw e;
  }
}
