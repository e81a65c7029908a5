import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';
import { plan, task } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from '../worker/pg-support.js';
import { count } from './tier.js';
import { sessionsEnded, startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

/**
 * A dead worker under load: a fan-out of 10,000 tasks (2,000 in the default tier) drained by 4
 * `weft worker` PROCESSES, each task a handler of a few ms that appends its name to a file of
 * its process (an execution count kept apart from the queue's own records). At about 30 %
 * progress one worker is killed with SIGKILL. Then:
 *   - every task completes and the run succeeds;
 *   - a task runs twice only if its attempt was in flight on the killed worker (recorded lost,
 *     with that worker's id); no other attempt is lost; nothing runs three times;
 *   - recovery (the dead worker's attempts recorded lost, so others take them) comes within the
 *     lease plus the reaper's interval;
 *   - throughput is printed: overall, before and after the kill.
 */
const db = await useTestDatabase('test/reliability/dead-worker-load.test.ts');
const ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'weft.js');
const built = existsSync(join(ROOT, 'dist', 'cli', 'commands', 'worker.js'));
if (!built)
  console.warn(
    'SKIPPED test/reliability/dead-worker-load.test.ts: run `npm run build` first (dist/ has no weft worker)',
  );

const TASKS = count(2_000, 10_000);
const WORKERS = 4;
const CONCURRENCY = 32;
const LEASE_MS = 2000;
/** The worker's housekeeping interval (DEFAULT_REAP_MS in src/worker/worker.ts). */
const REAP_MS = 1000;
/** Transactions and polling under load on a small machine. */
const SLACK_MS = 1500;
const HANDLER_MS = 5;

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'weft-dead-worker-'));
const counts = join(dir, 'counts');

afterAll(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// The handler: one line per execution, in a file of its own process (O_APPEND: whole lines).
writeFileSync(
  join(dir, 'count-handler.mjs'),
  `import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const dir = ${JSON.stringify(counts)};
mkdirSync(dir, { recursive: true });
const file = join(dir, 'exec-' + process.pid + '.log');
export const handlers = [{
  name: 'count',
  run: async (_args, ctx) => {
    appendFileSync(file, ctx.task + '\\n');
    await new Promise((resolve) => setTimeout(resolve, ${HANDLER_MS}));
    return null;
  },
}];
`,
);

/** Starts `weft worker`; resolves with its worker id once it is registered. */
function startWorker(url: string): Promise<WorkerProcess> {
  const handlers = join(dir, 'count-handler.mjs');
  const args = ['--store', url, '--concurrency', String(CONCURRENCY), '--lease', `${LEASE_MS}ms`];
  return startWorkerProcess({ args: [...args, '--grace', '2s', '--handlers', handlers], cwd: dir, children });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

/** Executions per task, from every process's file. */
function executions(): Map<string, number> {
  const perTask = new Map<string, number>();
  for (const name of readdirSync(counts)) {
    for (const line of readFileSync(join(counts, name), 'utf8').split('\n')) {
      if (line !== '') perTask.set(line, (perTask.get(line) ?? 0) + 1);
    }
  }
  return perTask;
}

describe.skipIf(!db.available || !built)('a worker process killed under load', () => {
  it(
    `${TASKS} tasks on ${WORKERS} worker processes, one killed with SIGKILL at ~30 %: every task completes, only its in-flight ones run twice`,
    async () => {
      const store: RunStore = await db.openStore();
      const queue: TaskQueue = await db.openQueue();
      const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(db.url())));
      const [victim, ...survivors] = workers as [WorkerProcess, ...WorkerProcess[]];
      const names = Array.from({ length: TASKS }, (_, i) => `t${i}`);
      const p = plan({
        name: 'dead-worker-load',
        // The run allows every worker slot at once: the workers, not the run, limit concurrency.
        concurrency: WORKERS * CONCURRENCY,
        tasks: [
          task('root', { handler: 'count' }),
          ...names.map((name) => task(name, { handler: 'count', deps: ['root'], retries: 0 })),
        ],
      });
      const run = await createRun(store, { plan: p, params: {}, trigger: 'manual', now: Date.now() });
      const startedAt = Date.now();
      expect(await queue.startRun(run.id)).toBe(true);
      const total = TASKS + 1;
      const succeeded = async () =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM task_runs WHERE run_id = $1 AND state = 'succeeded'`,
            [run.id],
          )
        )[0]?.n ?? 0;

      // About 30 % through, the victim dies without warning.
      const doneAtKill = await waitFor(
        async () => {
          const n = await succeeded();
          return n >= Math.floor(total * 0.3) ? n : undefined;
        },
        60_000,
        '30 % progress',
      );
      victim.child.kill('SIGKILL');
      const killedAt = Date.now();
      await exited(victim.child);
      // A COMMIT it sent just before dying is applied once its sessions are gone.
      await sessionsEnded(victim, (text, values) => db.query(text, values));
      // Its attempts in flight: still running, or already recorded lost by a reaper (a dead worker's
      // attempts can end no other way; one lost before the kill is not among them).
      const inFlight = await db.query<{ task: string; attempt: number }>(
        `SELECT task, attempt FROM attempts WHERE run_id = $1 AND worker = $2
           AND (state = 'running' OR (state = 'lost' AND finished_at >= to_timestamp($3 / 1000.0)))`,
        [run.id, victim.id, killedAt],
      );
      const byWorker = await db.query<{ worker: string; state: string; n: number }>(
        `SELECT worker, state, count(*)::int AS n FROM attempts WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 1, 2`,
        [run.id],
      );
      expect(
        inFlight.length,
        `the victim ${victim.id} held no attempt when killed: ${JSON.stringify(byWorker)}\n${victim.stderr()}`,
      ).toBeGreaterThan(0);

      // Recovery: the dead worker's attempts are recorded lost, and its tasks ready again.
      await waitFor(
        async () => {
          const rows = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM attempts WHERE run_id = $1 AND worker = $2 AND state = 'running'`,
            [run.id, victim.id],
          );
          return rows[0]?.n === 0;
        },
        LEASE_MS + REAP_MS + 10_000,
        'the lost attempts to be recorded',
      );
      // When the reaper recorded them, on the database's clock (this host's): the polling above,
      // slow on a loaded machine, is no part of the recovery.
      const recorded = await db.query<{ at: number }>(
        `SELECT (EXTRACT(EPOCH FROM max(finished_at)) * 1000)::float8 AS at FROM attempts
         WHERE run_id = $1 AND worker = $2 AND state = 'lost'`,
        [run.id, victim.id],
      );
      const recoveredMs = Math.round(recorded[0]!.at - killedAt);
      const recoveredTasks = new Set(inFlight.map((a) => a.task));
      await waitFor(
        async () => {
          const rows = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM task_runs WHERE run_id = $1 AND task = ANY ($2::text[]) AND state = 'succeeded'`,
            [run.id, [...recoveredTasks]],
          );
          return rows[0]?.n === recoveredTasks.size;
        },
        60_000,
        'the lost tasks to run again',
      );
      const rerunMs = Date.now() - killedAt;

      const final = await waitFor(
        async () => {
          const r = await store.getRun(run.id);
          return r && ['succeeded', 'failed', 'cancelled'].includes(r.state) ? r : undefined;
        },
        120_000,
        'the run to finish',
      );
      const finishedAt = Date.now();
      expect(final.state, survivors.map((s) => s.stderr()).join('\n')).toBe('succeeded');

      // Every task completed, once on record.
      const states = await db.query<{ state: string; n: number }>(
        `SELECT state, count(*)::int AS n FROM task_runs WHERE run_id = $1 GROUP BY state`,
        [run.id],
      );
      expect(states).toEqual([{ state: 'succeeded', n: total }]);
      const attempts = await db.query<{ task: string; attempt: number; state: string; worker: string }>(
        `SELECT task, attempt, state, worker FROM attempts WHERE run_id = $1`,
        [run.id],
      );
      const lost = attempts.filter((a) => a.state === 'lost');
      // Exactly the dead worker's in-flight attempts were lost: no survivor lost a lease under load.
      expect(lost.map((a) => `${a.task}#${a.attempt}`).sort()).toEqual(
        inFlight.map((a) => `${a.task}#${a.attempt}`).sort(),
      );
      expect(new Set(lost.map((a) => a.worker))).toEqual(new Set([victim.id]));
      const lostTasks = new Set(lost.map((a) => a.task));
      const succeededAttempts = attempts.filter((a) => a.state === 'succeeded');
      expect(succeededAttempts.length).toBe(total);
      expect(attempts.length).toBe(total + lost.length);

      // Executions as the handlers counted them: every task at least once, at most twice, and
      // twice only when its attempt was in flight on the dead worker.
      const perTask = executions();
      const missing = ['root', ...names].filter((name) => !perTask.has(name));
      expect(missing).toEqual([]);
      expect(perTask.size).toBe(total);
      const twice = [...perTask].filter(([, n]) => n > 1).map(([name]) => name);
      expect(Math.max(...perTask.values())).toBeLessThanOrEqual(2);
      expect(twice.filter((name) => !lostTasks.has(name))).toEqual([]);

      // Recovery within the lease plus the reaper's interval.
      expect(recoveredMs).toBeLessThan(LEASE_MS + REAP_MS + SLACK_MS);

      const survivorIds = new Set(survivors.map((s) => s.id));
      for (const name of lostTasks) {
        const again = attempts.find((a) => a.task === name && a.state === 'succeeded');
        expect(survivorIds.has(again!.worker)).toBe(true);
      }

      // The survivors' own pace after the kill: up to the last task that was not waiting on a lease.
      const drained = await db.query<{ at: number }>(
        `SELECT (EXTRACT(EPOCH FROM max(finished_at)) * 1000)::float8 AS at FROM task_runs
         WHERE run_id = $1 AND NOT (task = ANY ($2::text[]))`,
        [run.id, [...lostTasks]],
      );
      const drainedAt = Math.max(killedAt + 1, drained[0]!.at);
      const seconds = (ms: number) => ms / 1000;
      const overall = total / seconds(finishedAt - startedAt);
      const before = doneAtKill / seconds(killedAt - startedAt);
      const after = (total - doneAtKill) / seconds(finishedAt - killedAt);
      const survivorsPace = (total - doneAtKill - lostTasks.size) / seconds(drainedAt - killedAt);
      console.log(
        `[reliability] dead worker under load: ${total} tasks, ${WORKERS} workers x ${CONCURRENCY}, lease ${LEASE_MS} ms, ` +
          `handler ${HANDLER_MS} ms; killed ${victim.id} at ${doneAtKill}/${total} (${Math.round((100 * doneAtKill) / total)} %) ` +
          `with ${inFlight.length} attempt(s) in flight; lost recorded after ${recoveredMs} ms, re-run done after ${rerunMs} ms; ` +
          `${twice.length} task(s) executed twice (${lostTasks.size} lost, ${lostTasks.size - twice.length} lost before their handler ran); ` +
          `throughput ${Math.round(overall)} tasks/s overall, ${Math.round(before)} before the kill, ${Math.round(after)} after it ` +
          `(waits included; the 3 survivors alone ${Math.round(survivorsPace)}) ` +
          `(${seconds(finishedAt - startedAt).toFixed(1)} s in all)`,
      );

      for (const s of survivors) s.child.kill('SIGTERM');
      await Promise.all(survivors.map((s) => exited(s.child)));
      expect(survivors.map((s) => s.child.exitCode)).toEqual(survivors.map(() => 0));
    },
    count(60_000, 240_000),
  );

  it('weft check: a queue with tasks waiting and no live worker is a problem until a worker heartbeats', async () => {
    const store: RunStore = await db.openStore();
    const queue: TaskQueue = await db.openQueue();
    // A queue of its own: a worker killed above still counts as alive for a while.
    const p = plan({
      name: 'nobody-home',
      tasks: ['a', 'b', 'c'].map((name) => task(name, { handler: 'count', queue: 'lonely' })),
    });
    const run = await createRun(store, { plan: p, params: {}, trigger: 'manual', now: Date.now() });
    expect(await queue.startRun(run.id)).toBe(true);
    const check = (format: 'json' | 'text', storeSpec = db.url()) =>
      spawnSync(process.execPath, [BIN, 'check', '--store', storeSpec, '--format', format], {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', DATABASE_URL: db.url() },
        encoding: 'utf8',
        timeout: 30_000,
      });
    type CheckJson = {
      ok: boolean;
      queues: { queue: string; ready: number; delayed: number; running: number; workers: number }[] | null;
      queue_problems: { queue: string; ready: number; message: string }[];
    };

    const waiting = check('json');
    expect(waiting.status, waiting.stderr).toBe(1);
    const out = JSON.parse(waiting.stdout) as CheckJson;
    expect(out.ok).toBe(false);
    expect(out.queues?.find((q) => q.queue === 'lonely')).toEqual({
      queue: 'lonely',
      ready: 3,
      delayed: 0,
      running: 0,
      workers: 0,
    });
    expect(out.queue_problems.map((q) => [q.queue, q.ready])).toEqual([['lonely', 3]]);
    const text = check('text');
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/^ {2}lonely +3 +0 +0 +0$/m);
    expect(text.stdout).toContain(
      'queue "lonely" has 3 task(s) waiting and no live worker: start one with `weft worker --queue lonely`',
    );
    expect(text.stdout).toContain('tasks waiting with no live worker in queue(s): lonely');

    // A live worker on the queue: healthy.
    await queue.registerWorker({ id: 'check-worker', queues: ['lonely'], concurrency: 1, host: 'h', pid: 1 });
    const served = check('json');
    expect(served.status, served.stdout).toBe(0);
    const healthy = JSON.parse(served.stdout) as CheckJson;
    expect(healthy.ok).toBe(true);
    expect(healthy.queue_problems).toEqual([]);
    expect(healthy.queues?.find((q) => q.queue === 'lonely')?.workers).toBe(1);

    // Its heartbeat stops: it no longer counts, the problem is back.
    await db.query(
      `UPDATE queue_workers SET heartbeat_at = now() - interval '5 minutes' WHERE id = 'check-worker'`,
    );
    const dead = check('json');
    expect(dead.status).toBe(1);
    expect((JSON.parse(dead.stdout) as CheckJson).queue_problems.map((q) => q.queue)).toEqual(['lonely']);

    // A SQLite store has no task queues.
    const local = check('json', join(dir, 'local.db'));
    expect(local.status).toBe(0);
    expect((JSON.parse(local.stdout) as CheckJson).queues).toBeNull();
    await queue.unregisterWorker('check-worker');
  }, 60_000);
});
