// Starting and stopping the Vectron processes the tests run against. The global setup
// starts one `vectron dev` on free loopback ports and records it in a state file (path
// in VECTRON_CONSOLE_STATE); tests read it with `server()`. Every process started here
// has its pid in the run directory (`*.pid`), so the teardown — or scripts/console-test.sh,
// if the run was cut short — stops exactly those.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface ServerState {
  /** The gateway's HTTP address, e.g. http://127.0.0.1:41234. */
  url: string;
  adminKey: string;
  adminPassword: string;
  dataDir: string;
  /** Where this run keeps its files (pids, data, the extra worker's data). */
  runDir: string;
  placement: string;
  worker: string;
  bin: string;
  pid: number;
}

export function statePath(): string {
  const p = process.env.VECTRON_CONSOLE_STATE;
  if (!p) throw new Error('VECTRON_CONSOLE_STATE is not set (the global setup sets it)');
  return p;
}

/** The running server, as the global setup recorded it. */
export function server(): ServerState {
  return JSON.parse(readFileSync(statePath(), 'utf8')) as ServerState;
}

export function writeState(s: ServerState): void {
  writeFileSync(statePath(), JSON.stringify(s, null, 2));
}

export function artifactsDir(): string {
  const dir = process.env.VECTRON_CONSOLE_ARTIFACTS;
  if (!dir) throw new Error('VECTRON_CONSOLE_ARTIFACTS is not set (playwright.config.ts sets it)');
  return dir;
}

/** `n` distinct free ports on 127.0.0.1 (held together while chosen, so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** Starts `bin args` with its output in `logFile` and its pid in `<runDir>/<name>.pid`. */
export function startProcess(
  runDir: string,
  name: string,
  bin: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv = {},
): ChildProcess {
  const log = openSync(logFile, 'a');
  try {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
    if (child.pid === undefined) throw new Error(`could not start ${bin}`);
    writeFileSync(path.join(runDir, `${name}.pid`), String(child.pid));
    return child;
  } finally {
    closeSync(log);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` is (still) one of ours: a vectron process (pids get reused). */
function isVectron(pid: number, bin: string): boolean {
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    return argv0 === bin || path.basename(argv0) === path.basename(bin);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM, then SIGKILL if it is still running after `graceMs`. */
export async function stopPid(pid: number, bin: string, graceMs = 10_000): Promise<void> {
  if (!alive(pid) || !isVectron(pid, bin)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!alive(pid) || !isVectron(pid, bin)) return;
    await sleep(100);
  }
  if (alive(pid) && isVectron(pid, bin)) process.kill(pid, 'SIGKILL');
}

/** Stops every process of the run (its `*.pid` files). */
export async function stopAll(runDir: string, bin: string): Promise<void> {
  if (!existsSync(runDir)) return;
  const pids = readdirSync(runDir).filter((f) => f.endsWith('.pid'));
  await Promise.all(
    pids.map(async (f) => {
      const file = path.join(runDir, f);
      const pid = Number(readFileSync(file, 'utf8'));
      if (pid > 0) await stopPid(pid, bin);
      unlinkSync(file);
    }),
  );
}

/** Waits until `check` answers true (polling), or throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
