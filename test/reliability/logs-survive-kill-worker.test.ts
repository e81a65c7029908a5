import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';
import { plan, task } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from '../worker/pg-support.js';
import { chattyHandlerSource, compareLogs, describeSurvival, readLogged } from './log-lines.js';
import { count, isFullTier, seededRng } from './tier.js';
import { sessionsEnded, startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

/**
 * Item 10 on the distributed path: a run executed by a `weft worker` PROCESS on the PostgreSQL
 * store, its one task a JavaScript handler logging `line <n>` through ctx.log every ~50 ms. The
 * worker is killed with SIGKILL mid-task. Every line logged over a second before the kill must be
 * in PostgreSQL, in order with no gaps; once the short lease is reaped the attempt is `lost` with
 * a reason naming the dead worker, and the task runs again on another worker.
 */
const db = await useTestDatabase('test/reliability/logs-survive-kill-worker.test.ts');
const ROOT = resolve(import.meta.dirname, '..', '..');
const built = existsSync(join(ROOT, 'dist', 'cli', 'commands', 'worker.js'));
if (!built)
  console.warn(
    'SKIPPED test/reliability/logs-survive-kill-worker.test.ts: run `npm run build` first (dist/ has no weft worker)',
  );

const LEASE_MS = 1000;
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'weft-logs-worker-'));

afterAll(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `weft worker` with the handler module; resolves with its id once it is registered. */
function startWorker(url: string, handlers: string): Promise<WorkerProcess> {
  const args = ['--store', url, '--lease', `${LEASE_MS}ms`, '--grace', '1s', '--handlers', handlers];
  return startWorkerProcess({ args, cwd: dir, children });
}

describe.skipIf(!db.available || !built)('log lines survive kill -9 of a weft worker (PostgreSQL)', () => {
  const kills = count(1, 5);
  it(
    `${kills} kill(s): lines over a second old are in PostgreSQL, in order; the reaped attempt is lost with its worker; the task runs again elsewhere`,
    async () => {
      const rng = seededRng('logs-survive-kill (worker)');
      const store: RunStore = await db.openStore();
      const queue: TaskQueue = await db.openQueue();
      for (let round = 0; round < kills; round++) {
        const side = join(dir, `side-${round}`);
        const handlers = join(dir, `chatty-${round}.mjs`);
        writeFileSync(handlers, chattyHandlerSource({ name: 'chatty', side, lines: 400 }));
        // One worker only: it is the one that claims the task.
        const victim = await startWorker(db.url(), handlers);
        const run = await createRun(store, {
          plan: plan({ name: 'chatty', tasks: [task('talk', { handler: 'chatty', retries: 0 })] }),
          params: {},
          trigger: 'manual',
          now: Date.now(),
        });
        expect(await queue.startRun(run.id)).toBe(true);
        // Ten lines first, then 1–2 s: however slowly a loaded machine runs the handler, a good
        // number of lines were logged over a second before the kill.
        await waitFor(() => Promise.resolve(readLogged(side).length >= 10), 30_000, 'ten lines');
        await new Promise((r) => setTimeout(r, 1000 + rng.int(1000)));
        const killedAt = Date.now();
        victim.child.kill('SIGKILL');
        expect(await victim.exited).toBe('SIGKILL');
        const logged = readLogged(side);
        // A write it sent just before it died is applied (or rolled back) once its sessions are gone.
        await sessionsEnded(victim, (text, values) => db.query(text, values));

        // What is durable is what PostgreSQL holds now; nothing can add to the dead worker's lines.
        const stored = await store.getLogs(run.id, { task: 'talk' });
        const survival = compareLogs(
          logged,
          stored.filter((l) => l.attempt === 1).map((l) => l.message),
          killedAt,
        );
        console.log(describeSurvival(`logs-survive-kill (worker) kill ${round + 1}/${kills}`, survival));
        expect(survival.due).toBeGreaterThan(5);
        expect(survival.missing).toEqual([]);
        expect(survival.disorder).toEqual([]);
        expect(survival.lastDurableMs).toBeLessThan(1000);

        // Another worker reaps the dead one's lease, records the attempt lost and runs the task.
        const rescuer = await startWorker(db.url(), handlers);
        const final = await waitFor(
          async () => {
            const r = await store.getRun(run.id);
            return r && ['succeeded', 'failed', 'cancelled'].includes(r.state) ? r : undefined;
          },
          LEASE_MS + 30_000,
          'the run to finish on the second worker',
        );
        expect(final.state).toBe('succeeded');
        const attempts = await store.getAttempts(run.id, 'talk');
        expect(attempts.map((a) => [a.attempt, a.state, a.worker, a.error])).toEqual([
          [
            1,
            'lost',
            victim.id,
            {
              code: 'TASK_LOST',
              // The reaper's words (src/store/postgres/queue/reports.ts), naming the dead worker.
              message: `worker ${victim.id} stopped renewing its lease on attempt 1 (it died or hung)`,
            },
          ],
          [2, 'succeeded', rescuer.id, null],
        ]);
        // The lines the dead worker stored are still there, ahead of the second attempt's.
        const after = await store.getLogs(run.id, { task: 'talk' });
        expect(after.slice(0, stored.length)).toEqual(stored);
        expect(after.slice(stored.length).map((l) => [l.attempt, l.message])).toEqual([[2, 'again']]);
        rescuer.child.kill('SIGTERM');
        await rescuer.exited;
      }
    },
    isFullTier ? 300_000 : 90_000,
  );
});
