import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/compile/plan.js';
import type { JsonValue } from '../../src/core/json.js';
import { createRun } from '../../src/engine/create-run.js';
import { requestCancel } from '../../src/engine/cancel.js';
import { NonRetryableError } from '../../src/errors.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';
import { QUEUE_RUN_OWNER, type TaskQueue } from '../../src/worker/queue-port.js';
import { createWorker, type Worker } from '../../src/worker/worker.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from './pg-support.js';

const db = await useTestDatabase('test/worker/queue.test.ts');

/** Handlers that count their calls per (run, task). */
function countingRegistry(calls: Map<string, number>, extra: AnyHandler[] = []): HandlerRegistry {
  const count = (runId: string, taskName: string) => {
    const key = `${runId}/${taskName}`;
    calls.set(key, (calls.get(key) ?? 0) + 1);
  };
  return new HandlerRegistry([
    {
      name: 'ok',
      run: (args, ctx) => {
        count(ctx.run.id, ctx.task);
        return (args as JsonValue | undefined) ?? { task: ctx.task };
      },
    },
    {
      name: 'boom',
      run: (_args, ctx) => {
        count(ctx.run.id, ctx.task);
        throw new Error(`boom in ${ctx.task}`);
      },
    },
    {
      name: 'fatal',
      run: (_args, ctx) => {
        count(ctx.run.id, ctx.task);
        throw new NonRetryableError('fatal');
      },
    },
    {
      name: 'upstream',
      run: (_args, ctx) => {
        count(ctx.run.id, ctx.task);
        return { seen: Object.keys(ctx.upstream).sort() };
      },
    },
    {
      name: 'hang',
      run: (_args, ctx) =>
        new Promise((_resolve, reject) => {
          count(ctx.run.id, ctx.task);
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
        }),
    },
    { name: 'hook', run: (_args, ctx) => count(ctx.run.id, `hook:${ctx.hook?.event ?? '?'}`) },
    ...extra,
  ]);
}

let store: RunStore;
let queue: TaskQueue;
const workers: Worker[] = [];

async function setup(): Promise<void> {
  store ??= await db.openStore();
  queue ??= await db.openQueue({ random: () => 0.5 });
}

async function startWorkers(
  n: number,
  registry: HandlerRegistry,
  options: { concurrency?: number; leaseMs?: number } = {},
): Promise<Worker[]> {
  const started: Worker[] = [];
  for (let i = 0; i < n; i++) {
    const worker = createWorker({
      store,
      queue,
      registry,
      concurrency: options.concurrency ?? 8,
      leaseMs: options.leaseMs ?? 10_000,
      reapIntervalMs: 200,
      pollMs: 200,
      cancelGraceMs: 200,
    });
    await worker.start();
    workers.push(worker);
    started.push(worker);
  }
  return started;
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 1000 })));
});

async function enqueue(p: Plan): Promise<RunRecord> {
  const run = await createRun(store, { plan: p, params: {}, trigger: 'manual', now: Date.now() });
  expect(await queue.startRun(run.id)).toBe(true);
  return run;
}

async function finished(runId: string, timeoutMs = 15_000): Promise<RunRecord> {
  return waitFor(
    async () => {
      const run = await store.getRun(runId);
      return run && ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined;
    },
    timeoutMs,
    `run ${runId} to finish`,
  );
}

async function taskStates(runId: string): Promise<Record<string, string>> {
  return Object.fromEntries((await store.getTaskRuns(runId)).map((t) => [t.task, t.state]));
}

describe.skipIf(!db.available)('the PostgreSQL task queue with in-process workers', () => {
  it('runs a DAG with trigger rules, retries, when, expressions and hooks like the interpreter', async () => {
    await setup();
    const calls = new Map<string, number>();
    await startWorkers(2, countingRegistry(calls));
    const p = plan({
      name: 'dag',
      tasks: [
        ok('a', [], { with: { n: 1 } }),
        boom('b', ['a'], { retries: 2, retry: { delayMs: 50 }, onFailure: ['hook'] }),
        ok('c', ['a'], { with: { from_a: '${{ tasks.a.output.n }}' } }),
        ok('after_b', ['b']),
        task('cleanup', { handler: 'ok', deps: ['b', 'c'], triggerRule: 'all_done' }),
        task('on_fail', { handler: 'ok', deps: ['b'], triggerRule: 'one_failed' }),
        ok('never', ['c'], { when: '${{ tasks.c.output.from_a == 2 }}' }),
        ok('also', ['c'], { when: '${{ tasks.c.output.from_a == 1 }}' }),
        task('up', { handler: 'upstream', deps: ['also'] }),
      ],
      onFailure: ['hook'],
    });
    const run = await enqueue(p);
    expect((await store.getRun(run.id))?.owner).toBe(QUEUE_RUN_OWNER);
    const done = await finished(run.id);
    expect(done.state).toBe('failed');
    expect(done.error).toEqual({ code: 'HANDLER_FAILED', message: 'task "b" failed: boom in b' });
    expect(await taskStates(run.id)).toEqual({
      a: 'succeeded',
      b: 'failed',
      c: 'succeeded',
      after_b: 'skipped',
      cleanup: 'succeeded',
      on_fail: 'succeeded',
      never: 'skipped',
      also: 'succeeded',
      up: 'succeeded',
    });
    expect(calls.get(`${run.id}/b`)).toBe(3);
    const taskRuns = await store.getTaskRuns(run.id);
    expect(taskRuns.find((t) => t.task === 'c')?.output).toEqual({ from_a: 1 });
    expect(taskRuns.find((t) => t.task === 'up')?.output).toEqual({ seen: ['a', 'also', 'c'] });
    expect(taskRuns.find((t) => t.task === 'after_b')?.reason).toBe('upstream task "b" failed');
    const attempts = await store.getAttempts(run.id, 'b');
    expect(attempts.map((a) => [a.attempt, a.state, a.delayMs])).toEqual([
      [1, 'failed', 0],
      [2, 'failed', 50],
      [3, 'failed', 50],
    ]);
    // Hooks: the task's and the run's, recorded and then run by a worker (at least once).
    await waitFor(async () => {
      const hooks = await store.getHooks(run.id);
      return hooks.length === 2 && hooks.every((h) => h.state === 'done') ? hooks : undefined;
    });
    expect(calls.get(`${run.id}/hook:task_failure`)).toBe(1);
    expect(calls.get(`${run.id}/hook:run_failure`)).toBe(1);
    const left = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM queue_tasks WHERE run_id = $1',
      [run.id],
    );
    expect(left[0]?.n).toBe(0);
  });

  it('keeps the lease of a hook that runs for many leases (run once), and stops one that hangs at its timeout', async () => {
    await setup();
    const calls = new Map<string, number>();
    const slow: AnyHandler = {
      name: 'slow-hook',
      run: async (_args, ctx) => {
        calls.set(`${ctx.run.id}/slow`, (calls.get(`${ctx.run.id}/slow`) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 2_500));
      },
    };
    const stuck: AnyHandler = { name: 'stuck-hook', run: () => new Promise(() => undefined) };
    // A lease of 500 ms: the slow hook runs for 5 of them while a second worker keeps looking. (Not
    // shorter: a pause of this busy process longer than lease minus heartbeat hands the hook over.)
    await startWorkers(2, countingRegistry(calls, [slow, stuck]), { leaseMs: 500 });
    const run = await enqueue(
      plan({
        tasks: [ok('a')],
        onSuccess: [{ handler: 'slow-hook' }, { handler: 'stuck-hook', timeoutMs: 300 }, 'hook'],
      }),
    );
    const hooks = await waitFor(async () => {
      const all = await store.getHooks(run.id);
      return all.length === 3 && all.every((h) => h.state !== 'pending') ? all : undefined;
    });
    expect(hooks.map((h) => [h.key, h.state, h.error?.code ?? null])).toEqual([
      ['run_success:0@1', 'done', null],
      ['run_success:1@1', 'failed', 'HOOK_TIMEOUT'],
      ['run_success:2@1', 'done', null],
    ]);
    expect(calls.get(`${run.id}/slow`)).toBe(1);
    expect(calls.get(`${run.id}/hook:run_success`)).toBe(1);
    const left = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM queue_hooks WHERE run_id = $1',
      [run.id],
    );
    expect(left[0]?.n).toBe(0);
  });

  it('retries a failed run as a whole (pipeline-level retries) and fails a NonRetryableError at once', async () => {
    await setup();
    const calls = new Map<string, number>();
    await startWorkers(1, countingRegistry(calls));
    const run = await enqueue(
      plan({
        name: 'retry-run',
        tasks: [ok('a'), task('f', { handler: 'fatal', deps: ['a'], retries: 3 })],
        retries: 1,
        retry: { delayMs: 50 },
      }),
    );
    const done = await finished(run.id);
    expect(done.state).toBe('failed');
    expect(done.attempt).toBe(2);
    expect(calls.get(`${run.id}/a`)).toBe(1);
    expect(calls.get(`${run.id}/f`)).toBe(2);
    expect((await store.getAttempts(run.id, 'f')).map((a) => a.attempt)).toEqual([1, 2]);
  });

  it('cancels: running tasks are aborted on heartbeat, the rest cancelled, the run ends cancelled', async () => {
    await setup();
    const calls = new Map<string, number>();
    const [worker] = await startWorkers(1, countingRegistry(calls), { leaseMs: 600 });
    const run = await enqueue(
      plan({ name: 'cancel-me', tasks: [task('h', { handler: 'hang' }), ok('next', ['h']), ok('other')] }),
    );
    await waitFor(() => Promise.resolve(calls.get(`${run.id}/h`) ? true : undefined));
    await requestCancel(store, run.id);
    const done = await finished(run.id);
    expect(done.state).toBe('cancelled');
    expect((await taskStates(run.id)).h).toBe('cancelled');
    expect((await taskStates(run.id)).next).toBe('cancelled');
    expect(worker!.running()).toBe(0);
  });

  it('fences: a result from a worker whose lease expired and was reaped changes nothing', async () => {
    await setup();
    const run = await enqueue(plan({ name: 'fence', tasks: [ok('a'), ok('b', ['a'])] }));
    const [first] = await queue.claim('ghost', ['default'], 10, 50);
    expect(first?.task).toBe('a');
    expect(first?.started).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 80));
    const reaped = await queue.reap();
    expect(reaped.lost).toBeGreaterThanOrEqual(1);
    // A second worker takes the task again and finishes it.
    const [second] = await queue.claim('alive', ['default'], 10, 10_000);
    expect(second?.task).toBe('a');
    expect(second?.attempt).toBe(2);
    expect(
      (
        await queue.complete('alive', [
          { runId: run.id, task: 'a', lease: second!.lease, attempt: 2, kind: 'succeeded', output: 'new' },
        ])
      ).recorded,
    ).toEqual([true]);
    // The ghost comes back with a late result: rejected, nothing changes.
    expect(
      (
        await queue.complete('ghost', [
          { runId: run.id, task: 'a', lease: first!.lease, attempt: 1, kind: 'succeeded', output: 'stale' },
        ])
      ).recorded,
    ).toEqual([false]);
    const late = await queue.complete(
      'ghost',
      [
        {
          runId: run.id,
          task: 'a',
          lease: first!.lease,
          attempt: 1,
          kind: 'failed',
          state: 'failed',
          error: { code: 'HANDLER_FAILED', message: 'x' },
          retryable: false,
        },
      ],
      { queues: ['default'], limit: 5, leaseMs: 10_000 },
    );
    expect(late.recorded).toEqual([false]);
    // Its transaction may claim (b is ready), as any other claim would: fenced results never block that.
    const [b] = late.claimed;
    const a = (await store.getTaskRuns(run.id)).find((t) => t.task === 'a');
    expect(a?.state).toBe('succeeded');
    expect(a?.output).toBe('new');
    const attempts = await store.getAttempts(run.id, 'a');
    expect(attempts.map((x) => [x.attempt, x.state, x.worker])).toEqual([
      [1, 'lost', 'ghost'],
      [2, 'succeeded', 'alive'],
    ]);
    expect(attempts[0]?.error?.code).toBe('TASK_LOST');
    // b became ready in the same transaction that recorded a.
    expect(b?.task).toBe('b');
    expect(b?.attempt).toBe(1);
    await queue.complete('ghost', [
      { runId: run.id, task: 'b', lease: b!.lease, attempt: 1, kind: 'succeeded', output: null },
    ]);
    expect((await store.getRun(run.id))?.state).toBe('succeeded');
  });

  it('fails a task with TASK_LOST after too many lost attempts, without using its retries', async () => {
    await setup();
    const lossy = await db.openQueue({ maxLostAttempts: 2 });
    const run = await enqueue(plan({ name: 'killer', tasks: [ok('k', [], { retries: 5 })] }));
    for (let i = 1; i <= 3; i++) {
      const [claim] = await lossy.claim(`victim-${i}`, ['default'], 1, 20);
      expect(claim?.attempt).toBe(i);
      await new Promise((resolve) => setTimeout(resolve, 40));
      await lossy.reap();
    }
    const done = await finished(run.id, 2000);
    expect(done.state).toBe('failed');
    const k = (await store.getTaskRuns(run.id))[0];
    expect(k?.error?.code).toBe('TASK_LOST');
    expect((await store.getAttempts(run.id, 'k')).map((a) => [a.state, a.worker])).toEqual([
      ['lost', 'victim-1'],
      ['lost', 'victim-2'],
      ['lost', 'victim-3'],
    ]);
  });

  it('4 workers drain a 10,000-task fan-out: every task runs exactly once', async () => {
    await setup();
    const calls = new Map<string, number>();
    await startWorkers(4, countingRegistry(calls), { concurrency: 64 });
    const tasks = [
      ok('root'),
      ...Array.from({ length: 10_000 }, (_, i) => ok(`t${i}`, ['root'], { with: null })),
      ok(
        'join',
        Array.from({ length: 10_000 }, (_, i) => `t${i}`),
      ),
    ];
    const started = Date.now();
    const run = await enqueue(plan({ name: 'fanout', tasks }));
    const done = await finished(run.id, 40_000);
    const elapsed = Date.now() - started;
    expect(done.state).toBe('succeeded');
    const mine = [...calls.entries()].filter(([key]) => key.startsWith(`${run.id}/`));
    expect(mine.length).toBe(10_002);
    expect(mine.filter(([, n]) => n !== 1)).toEqual([]);
    console.log(
      `10,002 tasks on 4 workers in ${elapsed} ms (${Math.round(10_002 / (elapsed / 1000))} tasks/s)`,
    );
  }, 60_000);
});
