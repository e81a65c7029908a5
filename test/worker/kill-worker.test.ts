import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';
import { ok, plan, task } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from './pg-support.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

/**
 * kill -9 of a real `weft worker` process holding leases: its attempts are recorded lost (with
 * its id) once the leases expire and a surviving worker reaps them, the tasks run again elsewhere
 * without using their retries, and the run finishes with every task succeeded.
 */
const db = await useTestDatabase('test/worker/kill-worker.test.ts');
const ROOT = resolve(import.meta.dirname, '..', '..');
const built = existsSync(join(ROOT, 'dist', 'cli', 'commands', 'worker.js'));
if (!built)
  console.warn(
    'SKIPPED test/worker/kill-worker.test.ts: run `npm run build` first (dist/ has no weft worker)',
  );

// Long enough that a worker starved for a moment on a busy machine keeps its leases: only the
// kill may lose attempts.
const LEASE_MS = 2000;
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'weft-kill-worker-'));

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `weft worker`; resolves with its worker id once it is registered. */
function startWorker(url: string): Promise<WorkerProcess> {
  const args = ['--store', url, '--concurrency', '20', '--lease', `${LEASE_MS}ms`, '--log-format', 'json'];
  return startWorkerProcess({ args, cwd: dir, children });
}

describe.skipIf(!db.available || !built)('kill -9 of a worker process holding leases', () => {
  it('loses only its in-flight attempts, recorded lost with its id, and the run still completes', async () => {
    const store: RunStore = await db.openStore();
    const queue: TaskQueue = await db.openQueue();
    const victim = await startWorker(db.url());
    const survivor = await startWorker(db.url());
    const n = 200;
    const p = plan({
      name: 'fan-of-sleeps',
      // Room for both workers' slots: the run's concurrency caps its running tasks across workers.
      concurrency: 40,
      tasks: [
        ok('root', [], { handler: 'noop' }),
        ...Array.from({ length: n }, (_, i) =>
          task(`s${i}`, { handler: 'sleep', with: { duration: '200ms' }, deps: ['root'], retries: 0 }),
        ),
      ],
    });
    const run = await createRun(store, { plan: p, params: {}, trigger: 'manual', now: Date.now() });
    expect(await queue.startRun(run.id)).toBe(true);

    // Wait until the victim is in the middle of several tasks, then kill it without warning.
    await waitFor(
      async () => {
        const rows = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM attempts WHERE run_id = $1 AND worker = $2 AND state = 'running'`,
          [run.id, victim.id],
        );
        return (rows[0]?.n ?? 0) >= 5;
      },
      15_000,
      'the victim to hold leases',
    );
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    await new Promise((r) => victim.child.once('exit', r));
    // 'lost' too: if this test is slow to ask, the survivor may already have reaped some of them.
    const inFlight = await db.query<{ task: string; attempt: number }>(
      `SELECT task, attempt FROM attempts WHERE run_id = $1 AND worker = $2 AND state IN ('running', 'lost') ORDER BY task`,
      [run.id, victim.id],
    );
    expect(inFlight.length).toBeGreaterThan(0);

    // Recovery: within the lease plus the reaper's interval (1 s) and some slack, the lost
    // attempts are on record.
    await waitFor(
      async () => {
        const rows = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM attempts WHERE run_id = $1 AND worker = $2 AND state = 'running'`,
          [run.id, victim.id],
        );
        return rows[0]?.n === 0;
      },
      LEASE_MS + 1000 + 4000,
      'the lost attempts to be recorded',
    );
    const recoveredMs = Date.now() - killedAt;
    expect(recoveredMs).toBeLessThan(LEASE_MS + 1000 + 4000);

    const final = await waitFor(
      async () => {
        const r = await store.getRun(run.id);
        return r && ['succeeded', 'failed', 'cancelled'].includes(r.state) ? r : undefined;
      },
      30_000,
      'the run to finish',
    );
    expect(final.state).toBe('succeeded');
    const taskRuns = await store.getTaskRuns(run.id);
    expect(taskRuns.filter((t) => t.state !== 'succeeded')).toEqual([]);

    const attempts = await store.getAttempts(run.id);
    const lost = attempts.filter((a) => a.state === 'lost');
    // Exactly the attempts in flight on the dead worker were lost, each recorded with its id.
    expect(lost.map((a) => `${a.task}#${a.attempt}`).sort()).toEqual(
      inFlight.map((a) => `${a.task}#${a.attempt}`).sort(),
    );
    expect(new Set(lost.map((a) => a.worker))).toEqual(new Set([victim.id]));
    expect(lost.every((a) => a.error?.code === 'TASK_LOST')).toBe(true);
    // The only duplicate executions are those: every other task ran once.
    const perTask = new Map<string, number>();
    for (const a of attempts) perTask.set(a.task, (perTask.get(a.task) ?? 0) + 1);
    const twice = [...perTask.entries()]
      .filter(([, count]) => count > 1)
      .map(([name]) => name)
      .sort();
    expect(twice).toEqual([...new Set(lost.map((a) => a.task))].sort());
    expect(Math.max(...perTask.values())).toBe(2);
    // Each lost task then succeeded on the survivor, though it had no retries to spend.
    for (const name of twice) {
      const mine = attempts.filter((a) => a.task === name);
      expect(mine.map((a) => a.state)).toEqual(['lost', 'succeeded']);
      expect(mine[1]?.worker).toBe(survivor.id);
    }
    survivor.child.kill('SIGTERM');
    await new Promise((r) => survivor.child.once('exit', r));
  }, 60_000);
});
