import { afterEach, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { WeftError } from '../../src/errors.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { createScheduler } from '../../src/schedule/scheduler.js';
import type { RunStore } from '../../src/store/run-store.js';
import { QUEUE_RUN_OWNER, type TaskQueue } from '../../src/worker/queue-port.js';
import { createWorker, type Worker } from '../../src/worker/worker.js';
import { ok, plan } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from './pg-support.js';

/**
 * A worker's heartbeat renews only the leases of tasks it is working on. A lease it holds on
 * record but gave up on — its task could not start or its result could not be written because
 * the database connection dropped — must expire and be reaped, or the task is never run again
 * and its run never ends (found by test/reliability/proxy-workers.test.ts).
 */
const db = await useTestDatabase('test/worker/worker-outage.test.ts');

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 500 })));
});

const stateOf = async (runId: string) =>
  (await db.query<{ state: string }>('SELECT state FROM runs WHERE id = $1', [runId]))[0]?.state;

describe.skipIf(!db.available)('lease renewal', () => {
  let store: RunStore;
  let queue: TaskQueue;
  const setup = async () => {
    store ??= await db.openStore();
    queue ??= await db.openQueue();
  };
  const enqueue = async (tasks: ReturnType<typeof ok>[]) => {
    const run = await createRun(store, {
      plan: plan({ name: 'renewal', tasks }),
      params: {},
      trigger: 'manual',
      now: Date.now(),
    });
    expect(await queue.startRun(run.id)).toBe(true);
    return run.id;
  };

  it('renews only the leases named; the others expire and are reaped as lost', async () => {
    await setup();
    const runId = await enqueue([ok('a'), ok('b')]);
    const claims = await queue.claim('w-named', ['default'], 2, 200);
    expect(claims.map((c) => c.task).sort()).toEqual(['a', 'b']);
    const [kept, dropped] = claims as [(typeof claims)[0], (typeof claims)[0]];
    const renewal = await queue.renewLeases('w-named', 60_000, [kept.lease]);
    expect(renewal.held).toEqual([{ runId, task: kept.task, lease: kept.lease }]);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect((await queue.reap()).lost).toBe(1);
    const attempts = await store.getAttempts(runId);
    expect(attempts.map((a) => [a.task, a.attempt, a.state]).sort()).toEqual(
      [
        [kept.task, 1, 'running'],
        [dropped.task, 1, 'lost'],
      ].sort(),
    );
    // Without a list, every lease of the worker is renewed (housekeeping tools, older callers).
    expect((await queue.renewLeases('w-named', 60_000)).held).toEqual([
      { runId, task: kept.task, lease: kept.lease },
    ]);
  });

  it('a worker that could not read its task’s run lets the lease go: the task runs again', async () => {
    await setup();
    // The first read of a run fails as a dropped connection makes it fail.
    let failures = 1;
    const flaky = new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (prop === 'getRun' && typeof value === 'function')
          return (id: string) => {
            if (failures-- > 0)
              return Promise.reject(new WeftError('STORE_FAILED', 'Connection terminated unexpectedly'));
            return (value as RunStore['getRun']).call(target, id);
          };
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const errors: string[] = [];
    const worker = createWorker({
      store: flaky,
      queue,
      registry: new HandlerRegistry([{ name: 'ok', run: () => 'done' }]),
      // A queue of its own: the task the first test left ready is not this worker's.
      queues: ['flaky'],
      concurrency: 2,
      leaseMs: 400,
      reapIntervalMs: 100,
      pollMs: 100,
      onEvent: (event) => {
        if (event.type === 'worker:error') errors.push(event.message);
      },
    });
    await worker.start();
    workers.push(worker);
    const runId = await enqueue([ok('only', [], { queue: 'flaky' })]);
    // Before the fix the heartbeat kept the abandoned lease alive and the run never ended.
    await waitFor(async () => (await stateOf(runId)) === 'succeeded', 5000, 'the run to succeed');
    expect(errors).toEqual([expect.stringContaining('Connection terminated unexpectedly')]);
    expect((await store.getAttempts(runId)).map((a) => [a.attempt, a.state, a.worker])).toEqual([
      [1, 'lost', worker.id],
      [2, 'succeeded', worker.id],
    ]);
  });

  it('a worker claims again as soon as the database is back, not after its claim back-off', async () => {
    await setup();
    // Every operation fails while `down`, as with the database out of reach (LISTEN stays up).
    let down = false;
    let failedClaims = 0;
    let healedAt = 0;
    const outage = new Proxy(queue, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        const fn = (value as (...args: unknown[]) => unknown).bind(target);
        if (prop === 'listen' || prop === 'close') return fn;
        return (...args: unknown[]) => {
          if (!down) return fn(...args);
          if (prop === 'claim' && ++failedClaims === 4) {
            // Back right after the 4th failed claim: the loop now backs off for 4 x pollMs.
            down = false;
            healedAt = Date.now();
          }
          return Promise.reject(new WeftError('STORE_FAILED', 'connect ECONNREFUSED'));
        };
      },
    });
    // The back-off after the 4th failure (4 x pollMs) must stand well clear of the time it takes
    // a busy machine to claim and run the task once healed.
    const pollMs = 1000;
    const worker = createWorker({
      store,
      queue: outage,
      registry: new HandlerRegistry([{ name: 'ok', run: () => 'done' }]),
      queues: ['outage'],
      concurrency: 2,
      leaseMs: 2000,
      reapIntervalMs: 100,
      pollMs,
    });
    await worker.start();
    workers.push(worker);
    down = true;
    // Its notification wakes the worker, whose claims fail until the 4th.
    const runId = await enqueue([ok('only', [], { queue: 'outage' })]);
    await waitFor(async () => (await stateOf(runId)) === 'succeeded', 15_000, 'the run to succeed');
    const afterHealMs = Date.now() - healedAt;
    // The housekeeping's first success wakes the claim loop (reapIntervalMs); before, it slept
    // out its back-off (4 x pollMs here, up to 10 s after a long outage).
    expect(afterHealMs).toBeLessThan(4 * pollMs - 500);
  });

  it('a run its scheduler could not hand over to the queue is taken by the queue’s housekeeping', async () => {
    await setup();
    // The hand-over fails once, as when the connection drops under it.
    let failures = 1;
    const dropping = new Proxy(queue, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        const fn = (value as (...args: unknown[]) => unknown).bind(target);
        if (prop !== 'startRun') return fn;
        return (...args: unknown[]) =>
          failures-- > 0
            ? Promise.reject(new WeftError('STORE_FAILED', 'Connection terminated unexpectedly'))
            : fn(...args);
      },
    });
    const errors: string[] = [];
    const scheduler = createScheduler({
      store,
      registry: new HandlerRegistry([{ name: 'ok', run: () => null }]),
      pipelines: () => [plan({ name: 'handed-over', tasks: [ok('a', [], { queue: 'handover' })] })],
      owner: 'scheduler-handover:1',
      queue: dropping,
      pollMs: 50,
      onLog: (event) => {
        if (event.type === 'scheduler:error') errors.push(event.message);
      },
    });
    await scheduler.start();
    try {
      const id = 'q_handover_1';
      await store.requestRun({
        id,
        pipeline: 'handed-over',
        params: {},
        requestedAt: new Date().toISOString(),
      });
      const runId = await waitFor(
        async () => (await store.getRunRequest(id))?.runId ?? undefined,
        5000,
        'the run to be created',
      );
      await waitFor(() => Promise.resolve(errors.length > 0), 5000, 'the failed hand-over');
      expect(errors[0]).toContain(`queueing run ${runId}`);
      // Created for the queue, so owned by nobody yet: not "interrupted" by the next scheduler,
      // and the housekeeping's to take once it has waited a few seconds.
      const run = await store.getRun(runId);
      expect([run?.state, run?.owner]).toEqual(['queued', null]);
      await db.query(`UPDATE runs SET created_at = created_at - interval '10 seconds' WHERE id = $1`, [
        runId,
      ]);
      expect((await queue.reap()).resumed).toBeGreaterThanOrEqual(1);
      const taken = await store.getRun(runId);
      expect([taken?.state, taken?.owner]).toEqual(['running', QUEUE_RUN_OWNER]);
    } finally {
      await scheduler.stop({ graceMs: 100 });
    }
  });
});
