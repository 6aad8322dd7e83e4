// Stops every process the run started (SIGTERM, then SIGKILL after a grace period) and
// removes the run's data; the server's log stays with the artifacts.

import { existsSync } from 'node:fs';
import { removeDir, server, statePath, stopAll } from './server';

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(statePath())) return;
  const s = server();
  await stopAll(s.runDir, s.bin);
  if (process.env.VECTRON_CONSOLE_KEEP_DATA !== '1') removeDir(s.runDir);
}
