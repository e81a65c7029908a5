import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { SchedulerEvent } from '../../src/schedule/events.js';
import { createScheduler, type Scheduler } from '../../src/schedule/scheduler.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';
import { createWorker, type Worker } from '../../src/worker/worker.js';
import { scheduled } from '../schedule/harness.js';
import { ok } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from './pg-support.js';

/**
 * HA scheduling: two schedulers (as two `weft serve` processes would be: a store and a queue
 * each) on one PostgreSQL store, two workers, a simulated day of the reference schedules. Every
 * fire is taken by exactly one scheduler and becomes exactly one run, and every run finishes.
 */
const db = await useTestDatabase('test/worker/ha-schedulers.test.ts');
const DAY = 24 * 60 * 60 * 1000;
const STEP = 5 * 60 * 1000;
const START = Date.parse('2026-03-02T00:00:00.000Z');

const schedulers: Scheduler[] = [];
const workers: Worker[] = [];
afterAll(async () => {
  await Promise.all(schedulers.map((s) => s.stop({ graceMs: 100 })));
  await Promise.all(workers.map((w) => w.stop({ graceMs: 1000 })));
});

describe.skipIf(!db.available)('two schedulers and two workers on one PostgreSQL store', () => {
  it('over a simulated day: exactly one run per fire, every run finished', async () => {
    const registry = new HandlerRegistry([{ name: 'ok', run: () => null }]);
    const plans = [
      scheduled(
        { name: 'every-5m', tasks: [ok('extract'), ok('load', ['extract'])] },
        { cron: '*/5 * * * *', overlap: 'allow' },
      ),
      scheduled(
        { name: 'every-6h', tasks: [ok('a'), ok('b'), ok('c', ['a', 'b'])] },
        { cron: '0 */6 * * *', overlap: 'allow' },
      ),
    ];
    const clock = new ManualClock(START);
    const taken: string[] = [];
    const errors: string[] = [];
    const sides: { store: RunStore; queue: TaskQueue }[] = [];
    for (let i = 0; i < 2; i++) {
      const store = await db.openStore();
      const queue = await db.openQueue();
      sides.push({ store, queue });
      const scheduler = createScheduler({
        store,
        registry,
        clock,
        pipelines: () => plans,
        owner: `scheduler-${i}:${process.pid}`,
        queue,
        pollMs: 60_000,
        onLog: (event: SchedulerEvent) => {
          if (event.type === 'fire:taken') taken.push(`${i}:${event.pipeline}@${event.scheduledFor}`);
          if (event.type === 'scheduler:error') errors.push(event.message);
        },
      });
      schedulers.push(scheduler);
      await scheduler.start();
    }
    for (const side of sides) {
      const worker = createWorker({
        store: side.store,
        queue: side.queue,
        registry,
        concurrency: 8,
        pollMs: 200,
        reapIntervalMs: 500,
      });
      await worker.start();
      workers.push(worker);
    }

    for (let t = 0; t < DAY; t += STEP) {
      await clock.advance(STEP);
      await Promise.all(schedulers.map((s) => s.whenIdle()));
    }
    const { store } = sides[0]!;
    const fires = await store.listFires({ limit: 1000 });
    expect(fires.filter((f) => f.pipeline === 'every-5m')).toHaveLength(288);
    expect(fires.filter((f) => f.pipeline === 'every-6h')).toHaveLength(4);
    expect(fires.every((f) => f.outcome === 'ran' && f.runId !== null)).toBe(true);
    // Both schedulers competed for the fires; each fire still went to one of them.
    expect(taken.length).toBeGreaterThan(0);

    const runs = await waitFor(
      async () => {
        const all = await store.listRuns({ limit: 1000 });
        return all.length === 292 && all.every((r) => r.state === 'succeeded') ? all : undefined;
      },
      30_000,
      'every run to finish',
    );
    const byFire = new Map<string, number>();
    for (const run of runs) {
      const key = `${run.pipeline}@${run.scheduledFor}`;
      byFire.set(key, (byFire.get(key) ?? 0) + 1);
    }
    expect(byFire.size).toBe(292);
    expect([...byFire.values()].every((n) => n === 1)).toBe(true);
    for (const fire of fires) expect(byFire.get(`${fire.pipeline}@${fire.scheduledFor}`)).toBe(1);
    expect(errors).toEqual([]);
    // Every task ran once: one attempt each.
    const attempts = await db.query<{ n: number; runs: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT run_id)::int AS runs FROM attempts`,
    );
    expect(attempts[0]).toEqual({ n: 288 * 2 + 4 * 3, runs: 292 });
  }, 60_000);
});
