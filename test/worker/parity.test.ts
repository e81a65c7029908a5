import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/compile/plan.js';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { createSecretMasker } from '../../src/engine/mask.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';
import type { ClaimedTask, TaskQueue } from '../../src/worker/queue-port.js';
import { createWorker, type Worker } from '../../src/worker/worker.js';
import { ok, plan, task } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from './pg-support.js';

/**
 * Distributed execution honours the pipeline semantics the local interpreter does: the run's
 * timeout, its concurrency, secret masking, and no orphans left by workers that died.
 */

const db = await useTestDatabase('test/worker/parity.test.ts');

const SECRET = 's3cr3t-parity-value-42';

/** Running handlers, across every worker of this process, per run. */
const active = new Map<string, { now: number; max: number }>();

function registry(extra: AnyHandler[] = []): HandlerRegistry {
  return new HandlerRegistry([
    { name: 'ok', run: (_args, ctx) => ({ task: ctx.task }) },
    {
      name: 'hang',
      run: (_args, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
        }),
    },
    { name: 'boom', run: () => Promise.reject(new Error('boom')) },
    {
      name: 'slow',
      run: async (_args, ctx) => {
        const a = active.get(ctx.run.id) ?? { now: 0, max: 0 };
        active.set(ctx.run.id, a);
        a.now += 1;
        a.max = Math.max(a.max, a.now);
        await new Promise((resolve) => setTimeout(resolve, 60));
        a.now -= 1;
        return null;
      },
    },
    { name: 'hook', run: () => undefined },
    ...extra,
  ]);
}

let store: RunStore;
let queue: TaskQueue;
const workers: Worker[] = [];
const children: ChildProcess[] = [];

async function setup(): Promise<void> {
  store ??= await db.openStore();
  queue ??= await db.openQueue({ random: () => 0.5 });
}

async function startWorkers(
  n: number,
  reg: HandlerRegistry,
  options: { env?: Record<string, string>; queues?: string[] } = {},
): Promise<Worker[]> {
  const started: Worker[] = [];
  for (let i = 0; i < n; i++) {
    const worker = createWorker({
      store,
      queue,
      registry: reg,
      concurrency: 8,
      leaseMs: 600,
      reapIntervalMs: 100,
      pollMs: 100,
      cancelGraceMs: 200,
      ...(options.queues ? { queues: options.queues } : {}),
      ...(options.env ? { env: options.env } : {}),
    });
    await worker.start();
    workers.push(worker);
    started.push(worker);
  }
  return started;
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 1000 })));
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

async function enqueue(p: Plan): Promise<RunRecord> {
  const run = await createRun(store, { plan: p, params: {}, trigger: 'manual', now: Date.now() });
  expect(await queue.startRun(run.id)).toBe(true);
  return run;
}

async function finished(s: RunStore, runId: string, timeoutMs = 15_000): Promise<RunRecord> {
  return waitFor(
    async () => {
      const run = await s.getRun(runId);
      return run && ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined;
    },
    timeoutMs,
    `run ${runId} to finish`,
  );
}

interface TaskOutcome {
  state: string;
  reason: string | null;
  /** [state, error code] of each attempt. */
  attempts: [string, string | null][];
}

/** What both modes must agree on: the run's end, and each task's state, reason and attempt ends. */
async function outcome(s: RunStore, runId: string) {
  const run = (await s.getRun(runId))!;
  const tasks: Record<string, TaskOutcome> = {};
  for (const t of await s.getTaskRuns(runId)) {
    tasks[t.task] = {
      state: t.state,
      reason: t.reason,
      attempts: (await s.getAttempts(runId, t.task)).map((a) => [a.state, a.error?.code ?? null]),
    };
  }
  return { state: run.state, error: run.error, tasks };
}

async function hooksOf(s: RunStore, runId: string): Promise<string[]> {
  return (await s.getHooks(runId)).map((h) => `${h.event}:${h.state}`).sort();
}

/** A process group that only a kill ends; resolves with its id once it runs. */
async function orphanGroup(): Promise<ChildProcess> {
  const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  children.push(child);
  await new Promise((resolve) => child.once('spawn', resolve));
  return child;
}

/** A pid no process has (one that just exited). */
async function deadPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<NodeJS.Signals | 'alive'> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? 'alive');
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('alive'), timeoutMs);
    child.once('exit', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? 'alive');
    });
  });
}

describe.skipIf(!db.available)('distributed execution keeps the local engine semantics', () => {
  it('run timeout: running attempts aborted on heartbeat, the rest cancelled, failed with RUN_TIMEOUT as locally', async () => {
    await setup();
    const reg = registry();
    await startWorkers(2, reg);
    const p = plan({
      name: 'timeout-parity',
      // Time for both workers to claim h and b first, also on a busy machine.
      timeoutMs: 1000,
      tasks: [
        task('h', { handler: 'hang' }),
        ok('next', ['h']),
        // Fails once, then waits 30 s for its retry: withdrawn from the queue when time is up.
        task('b', { handler: 'boom', retries: 3, retry: { delayMs: 30_000 } }),
      ],
      onFailure: ['hook'],
    });
    const started = Date.now();
    const run = await enqueue(p);
    const done = await finished(store, run.id);
    // The lease is 600 ms: workers see the timeout within a heartbeat (200 ms) and the grace.
    expect(Date.now() - started).toBeLessThan(3600);
    expect(done.state).toBe('failed');
    expect(done.error).toEqual({ code: 'RUN_TIMEOUT', message: 'the run timed out after 1000ms' });
    const distributed = await outcome(store, run.id);
    expect(distributed.tasks).toEqual({
      h: {
        state: 'cancelled',
        reason: 'the run timed out after 1000ms',
        attempts: [['cancelled', 'RUN_TIMEOUT']],
      },
      next: { state: 'cancelled', reason: 'the run timed out after 1000ms', attempts: [] },
      b: {
        state: 'cancelled',
        reason: 'the run timed out after 1000ms',
        attempts: [['failed', 'HANDLER_FAILED']],
      },
    });
    await waitFor(async () =>
      (await hooksOf(store, run.id)).join() === 'run_failure:done' ? true : undefined,
    );
    expect(
      await db.query(
        'SELECT 1 FROM queue_tasks WHERE run_id = $1 UNION ALL SELECT 1 FROM queue_runs WHERE run_id = $1',
        [run.id],
      ),
    ).toEqual([]);

    // The interpreter, on the same plan, ends the same way.
    const local = createMemoryStore();
    const localRun = await createRun(local, { plan: p, params: {}, trigger: 'manual', now: Date.now() });
    await executeRun(localRun.id, {
      store: local,
      registry: reg,
      owner: `${hostname()}:${process.pid}`,
      cancelGraceMs: 200,
      random: () => 0.5,
    });
    expect(await outcome(local, localRun.id)).toEqual(distributed);
    expect(await hooksOf(local, localRun.id)).toEqual(await hooksOf(store, run.id));
  });

  it('run timeout: a result recorded after the deadline starts nothing more, even before any reaper', async () => {
    await setup();
    const run = await enqueue(
      plan({
        name: 'late-result',
        timeoutMs: 100,
        tasks: [ok('a', [], { queue: 'late' }), ok('b', ['a'], { queue: 'late' })],
      }),
    );
    const [a] = await queue.claim('slowpoke', ['late'], 10, 10_000);
    expect(a?.task).toBe('a');
    await new Promise((resolve) => setTimeout(resolve, 150));
    const { recorded, claimed } = await queue.complete(
      'slowpoke',
      [{ runId: run.id, task: 'a', lease: a!.lease, attempt: 1, kind: 'succeeded', output: 1 }],
      { queues: ['late'], limit: 10, leaseMs: 10_000 },
    );
    expect(recorded).toEqual([true]);
    expect(claimed).toEqual([]);
    const done = (await store.getRun(run.id))!;
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('RUN_TIMEOUT');
    expect((await outcome(store, run.id)).tasks).toEqual({
      a: { state: 'succeeded', reason: null, attempts: [['succeeded', null]] },
      b: { state: 'cancelled', reason: 'the run timed out after 100ms', attempts: [] },
    });
  });

  it('run timeout with run retries: the run attempt that times out is retried, as locally', async () => {
    await setup();
    let calls = 0;
    const reg = registry([
      {
        name: 'first-hangs',
        run: (_args, ctx) => {
          calls += 1;
          if (ctx.run.attempt > 1) return 'second time';
          return new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
          });
        },
      },
    ]);
    await startWorkers(1, reg);
    const run = await enqueue(
      plan({
        name: 'timeout-retry',
        // Time for the second run attempt to be claimed and finish, also on a busy machine.
        timeoutMs: 1000,
        retries: 1,
        retry: { delayMs: 50 },
        tasks: [task('x', { handler: 'first-hangs' })],
      }),
    );
    const done = await finished(store, run.id);
    expect(done.state).toBe('succeeded');
    expect(done.attempt).toBe(2);
    expect(calls).toBe(2);
    expect((await store.getAttempts(run.id, 'x')).map((a) => [a.state, a.error?.code ?? null])).toEqual([
      ['cancelled', 'RUN_TIMEOUT'],
      ['succeeded', null],
    ]);
  });

  it('concurrency: claims skip a run at its limit, across workers, and take other runs meanwhile', async () => {
    await setup();
    const limited = await enqueue(
      plan({
        name: 'limited',
        concurrency: 2,
        tasks: Array.from({ length: 5 }, (_, i) => ok(`t${i}`, [], { queue: 'limits' })),
      }),
    );
    const first = await queue.claim('w1', ['limits'], 10, 10_000);
    expect(first.map((c) => c.task)).toEqual(['t0', 't1']);
    // Another worker finds the run full; a run created later is not held up by it.
    expect(await queue.claim('w2', ['limits'], 10, 10_000)).toEqual([]);
    expect(await queue.nextDueIn(['limits'])).toBeNull();
    const other = await enqueue(
      plan({ name: 'other', concurrency: 4, tasks: [ok('x', [], { queue: 'limits' })] }),
    );
    const [x] = await queue.claim('w2', ['limits'], 10, 10_000);
    expect([x?.runId, x?.task]).toEqual([other.id, 'x']);
    // A finished task frees its slot, taken in the same transaction that records it.
    const done = (c: ClaimedTask) => ({
      runId: c.runId,
      task: c.task,
      lease: c.lease,
      attempt: c.attempt,
      kind: 'succeeded' as const,
      output: null,
    });
    const next = await queue.complete('w1', [done(first[0]!)], {
      queues: ['limits'],
      limit: 10,
      leaseMs: 10_000,
    });
    expect(next.claimed.map((c) => c.task)).toEqual(['t2']);
    expect(await queue.claim('w2', ['limits'], 10, 10_000)).toEqual([]);
    // A lost lease frees its slot too (the reaper ends it).
    expect((await queue.complete('w1', [done(first[1]!), done(next.claimed[0]!)])).recorded).toEqual([
      true,
      true,
    ]);
    expect((await queue.complete('w2', [done(x!)])).recorded).toEqual([true]);
    const rest = await queue.claim('w3', ['limits'], 10, 30);
    expect(rest.map((c) => c.task)).toEqual(['t3', 't4']);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((await queue.reap()).lost).toBeGreaterThanOrEqual(2);
    const again = await queue.claim('w4', ['limits'], 10, 10_000);
    expect(again.map((c) => [c.task, c.attempt])).toEqual([
      ['t3', 2],
      ['t4', 2],
    ]);
    await queue.complete('w4', again.map(done));
    expect((await store.getRun(limited.id))?.state).toBe('succeeded');
    expect((await store.getRun(other.id))?.state).toBe('succeeded');
  });

  it('concurrency: three workers never run more of one run at once than its concurrency', async () => {
    await setup();
    await startWorkers(3, registry());
    const runs = await Promise.all([
      enqueue(
        plan({
          name: 'two',
          concurrency: 2,
          tasks: Array.from({ length: 12 }, (_, i) => task(`s${i}`, { handler: 'slow' })),
        }),
      ),
      enqueue(
        plan({
          name: 'five',
          concurrency: 5,
          tasks: Array.from({ length: 20 }, (_, i) => task(`s${i}`, { handler: 'slow' })),
        }),
      ),
    ]);
    for (const run of runs) expect((await finished(store, run.id)).state).toBe('succeeded');
    expect(active.get(runs[0].id)?.max).toBe(2);
    expect(active.get(runs[1].id)?.max).toBe(5);
    const left = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM queue_runs WHERE run_id = ANY ($1)',
      [runs.map((r) => r.id)],
    );
    expect(left[0]?.n).toBe(0);
  });

  it('secrets: masked in logs, outputs and errors; handlers get mask()', async () => {
    await setup();
    const reg = registry([
      {
        name: 'leaky',
        run: (_args, ctx) => {
          const secret = ctx.env.PARITY_SECRET!;
          ctx.log.info(`the secret is ${secret}`);
          ctx.log.stdout(`export TOKEN=${secret}`);
          ctx.log.stderr(Buffer.from(`user:${secret}`).toString('base64'));
          return { token: secret, masked: ctx.mask?.(`x${secret}x`) ?? 'no mask' };
        },
      },
      {
        name: 'leaky-fail',
        run: (_args, ctx) => {
          throw new Error(`could not log in with ${ctx.env.PARITY_SECRET!}`);
        },
      },
    ]);
    await startWorkers(1, reg, { env: { PARITY_SECRET: SECRET } });
    const run = await enqueue(
      plan({
        name: 'secrets',
        secrets: ['PARITY_SECRET'],
        tasks: [task('leak', { handler: 'leaky' }), task('fail', { handler: 'leaky-fail', deps: ['leak'] })],
      }),
    );
    const done = await finished(store, run.id);
    expect(done.state).toBe('failed');
    expect(done.error?.message).toBe('task "fail" failed: could not log in with ***');
    const leak = (await store.getTaskRuns(run.id)).find((t) => t.task === 'leak');
    expect(leak?.output).toEqual({ token: '***', masked: 'x***x' });
    const logs = (await store.getLogs(run.id)).map((l) => l.message);
    expect(logs).toContain('the secret is ***');
    expect(logs).toContain('export TOKEN=***');
    // Encoded forms too, as the interpreter masks them (here: inside an HTTP basic credential).
    const encoded = Buffer.from(`user:${SECRET}`).toString('base64');
    const masked = createSecretMasker(['PARITY_SECRET'], { PARITY_SECRET: SECRET })(encoded);
    expect(masked).toContain('***');
    expect(logs).toContain(masked);
    for (const table of ['runs', 'task_runs', 'attempts', 'hooks', 'queue_tasks', 'queue_runs']) {
      const rows = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${table} t WHERE t::text LIKE '%' || $1 || '%'`,
        [SECRET],
      );
      expect([table, rows[0]?.n]).toEqual([table, 0]);
    }
    // Log lines are bytes: searched as bytes.
    const inLogs = await db.query<{ n: number; all: number }>(
      `SELECT count(*) FILTER (WHERE position(convert_to($1, 'UTF8') IN message) > 0 OR position(convert_to($2, 'UTF8') IN message) > 0)::int AS n,
              count(*)::int AS all
       FROM logs WHERE run_id = $3`,
      [SECRET, encoded, run.id],
    );
    expect(inLogs[0]).toEqual({ n: 0, all: logs.length });
  });

  it('orphans: the worker context records child process groups on the attempt', async () => {
    await setup();
    const reg = registry([
      {
        name: 'spawner',
        run: (_args, ctx) => {
          void ctx.recordChildProcess?.(424242);
          return new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
          });
        },
      },
    ]);
    await startWorkers(1, reg);
    const run = await enqueue(
      // Time for the worker to claim s first, also on a busy machine.
      plan({ name: 'spawns', timeoutMs: 1000, tasks: [task('s', { handler: 'spawner' })] }),
    );
    const pid = await waitFor(async () => (await store.getAttempts(run.id, 's'))[0]?.pid ?? undefined);
    expect(pid).toBe(424242);
    expect((await finished(store, run.id)).error?.code).toBe('RUN_TIMEOUT');
  });

  it('orphans: the reaper stops the process group of an attempt lost with its dead worker on this host', async () => {
    await setup();
    const p = plan({ name: 'orphan', tasks: [ok('o', [], { queue: 'orphans' })] });
    const dead = await deadPid();
    const alive = process.pid;
    const cases: { worker: string; pid: number; child?: ChildProcess; runId?: string }[] = [
      { worker: `gone-worker-${dead}`, pid: dead },
      { worker: `live-worker-${alive}`, pid: alive },
    ];
    for (const c of cases) {
      await queue.registerWorker({
        id: c.worker,
        queues: ['orphans'],
        concurrency: 1,
        host: hostname(),
        pid: c.pid,
      });
      c.runId = (await enqueue(p)).id;
      const [claim] = await queue.claim(c.worker, ['orphans'], 1, 40);
      expect(claim?.runId).toBe(c.runId);
      c.child = await orphanGroup();
      expect(await store.updateAttempt(c.runId, 'o', 1, { pid: c.child.pid! }, { states: ['running'] })).toBe(
        true,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((await queue.reap()).lost).toBeGreaterThanOrEqual(2);
    // The dead worker's group is stopped; a live worker's children are its own business.
    expect(await exited(cases[0]!.child!, 3000)).toBe('SIGKILL');
    expect(await exited(cases[1]!.child!, 200)).toBe('alive');
    for (const c of cases) {
      const [attempt] = await store.getAttempts(c.runId!, 'o');
      expect([attempt?.state, attempt?.error?.code]).toEqual(['lost', 'TASK_LOST']);
      await queue.unregisterWorker(c.worker);
    }
  });
});
