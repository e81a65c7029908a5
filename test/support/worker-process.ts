import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';

import { onLines } from './lines.js';

/** The CLI as users run it; tests spawn it with the Node running them. */
export const WEFT_BIN = join(resolve(import.meta.dirname, '..', '..'), 'bin', 'weft.js');

export interface WorkerProcess {
  child: ChildProcess;
  /** The worker id it registered with (as in the store's attempts). */
  id: string;
  /**
   * The application_name of its PostgreSQL sessions (PGAPPNAME). Once it is dead and none is left
   * in pg_stat_activity, PostgreSQL has applied (or rolled back) all it had sent: a COMMIT on its
   * way when it was killed can no longer change what a test reads.
   */
  appName: string;
  /** The last 8,000 characters of its stderr. */
  stderr: () => string;
  /** Resolves with the signal that ended it (null for a plain exit). */
  exited: Promise<NodeJS.Signals | null>;
}

/**
 * Starts `weft worker <args>` and resolves once it says it started (a text or a JSON log line),
 * with its worker id; rejects with its stderr if it exits or stays silent first. The child is
 * pushed on `children` so the caller's afterAll can kill whatever is left.
 */
export async function startWorkerProcess(options: {
  args: string[];
  cwd: string;
  children: ChildProcess[];
  startTimeoutMs?: number;
}): Promise<WorkerProcess> {
  const appName = `weft-test-worker-${randomBytes(4).toString('hex')}`;
  const child = spawn(process.execPath, [WEFT_BIN, 'worker', ...options.args], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: '1', PGAPPNAME: appName },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  options.children.push(child);
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-8000)));
  const id = await new Promise<string>((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`weft worker did not start: ${stderr}`)),
      options.startTimeoutMs ?? 30_000,
    );
    const stop = onLines(child.stdout, (line) => {
      const text = / worker (\S+) started:/.exec(line)?.[1];
      const json = line.includes('"worker:started"')
        ? (JSON.parse(line) as { worker: string }).worker
        : undefined;
      const started = text ?? json;
      if (started !== undefined) {
        clearTimeout(timer);
        stop();
        // Keep draining stdout so a chatty worker never blocks on a full pipe.
        child.stdout.resume();
        resolvePromise(started);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`weft worker exited before it started: ${stderr}`));
    });
  });
  return { child, id, appName, stderr: () => stderr, exited };
}

/**
 * Resolves once a dead worker has no session left in PostgreSQL (see `appName`): whatever it sent
 * before it died has been applied or rolled back, so what a test reads next is final.
 */
export async function sessionsEnded(
  worker: Pick<WorkerProcess, 'appName'>,
  query: (text: string, values: unknown[]) => Promise<unknown[]>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const sql = 'SELECT 1 FROM pg_stat_activity WHERE application_name = $1';
  while ((await query(sql, [worker.appName])).length > 0) {
    if (Date.now() > deadline) throw new Error(`the sessions of ${worker.appName} did not end`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
