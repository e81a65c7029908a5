// overlap: queue across two schedulers on one SQLite store: the waiting fire lives in the store, so
// "at most one waiting" holds across both, and the fire one scheduler recorded is started once the
// run the other one executes ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { SchedulerEvent } from '../../src/schedule/events.js';
import { createScheduler } from '../../src/schedule/scheduler.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { EngineHarness } from '../support/engine-harness.js';
import { task } from '../support/plan-builder.js';
import { createBlocker, MINUTE, scheduled, waitUntil } from './harness.js';

const START = Date.parse('2025-01-01T09:59:00Z');
const WAITING_REASON = 'one fire is already waiting (overlap: queue)';

const plans = () => [
  scheduled(
    { name: 'slow', tasks: [task('work', { handler: 'block' })] },
    { cron: '*/5 * * * *', overlap: 'queue' },
  ),
];

function startInstance(name: string, path: string) {
  const clock = new ManualClock(START);
  const blocker = createBlocker();
  const harness = new EngineHarness({ clock, handlers: [blocker.handler] });
  const store = createSqliteStore(path);
  const events: SchedulerEvent[] = [];
  const scheduler = createScheduler({
    store,
    registry: harness.registry,
    clock,
    pipelines: plans,
    owner: `${name}:1`,
    isOwnerAlive: () => true,
    pollMs: 20,
    engine: { cancelGraceMs: 50, heartbeatMs: 3_600_000, cancelPollMs: 20 },
    onLog: (event) => events.push(event),
  });
  return { name, clock, blocker, store, scheduler, events };
}
type Instance = ReturnType<typeof startInstance>;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const iso = (hhmm: string) => `2025-01-01T${hhmm}:00.000Z`;

async function fireOf(store: RunStore, hhmm: string) {
  return (await store.listFires({ pipeline: 'slow' })).find((f) => f.scheduledFor === iso(hhmm)) ?? null;
}

/** Both clocks to the next tick, `first` ahead: it records the fire, `second` finds it taken. */
async function tick(first: Instance, second: Instance, hhmm: string, minutes = 5): Promise<void> {
  await first.clock.advance(minutes * MINUTE);
  await waitUntil(async () => (await fireOf(first.store, hhmm)) !== null);
  await second.clock.advance(minutes * MINUTE);
  await waitUntil(() => second.events.some((e) => e.type === 'fire:taken' && e.scheduledFor === iso(hhmm)));
}

describe('overlap: queue with two schedulers on one store', () => {
  it('keeps one fire waiting across both, and starts the one B recorded exactly once after A’s run ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-overlap-ha-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'weft.db');
    const a = startInstance('a', path);
    const b = startInstance('b', path);
    cleanups.push(async () => {
      for (const i of [a, b]) while (i.blocker.waiting > 0) i.blocker.releaseOne();
      await Promise.all([a, b].map((i) => i.scheduler.stop({ graceMs: 100 })));
      await Promise.all([a, b].map((i) => i.store.close()));
    });
    await a.scheduler.start();
    await b.scheduler.start();

    await tick(a, b, '10:00', 1); // A runs 10:00, which blocks
    await waitUntil(() => a.blocker.waiting === 1);
    await tick(b, a, '10:05'); // B records 10:05 queued
    await tick(a, b, '10:10'); // A sees B's waiting fire: skipped
    await tick(b, a, '10:15');
    await tick(a, b, '10:20');

    const fires = await a.store.listFires({ pipeline: 'slow' });
    expect(fires.map((f) => [f.scheduledFor.slice(11, 16), f.outcome])).toEqual([
      ['10:20', 'skipped'],
      ['10:15', 'skipped'],
      ['10:10', 'skipped'],
      ['10:05', 'queued'],
      ['10:00', 'ran'],
    ]);
    expect(fires.filter((f) => f.outcome === 'skipped').map((f) => f.reason)).toEqual([
      WAITING_REASON,
      WAITING_REASON,
      WAITING_REASON,
    ]);
    expect(b.events.filter((e) => e.type === 'fire:queued').map((e) => e.scheduledFor)).toEqual([
      iso('10:05'),
    ]);
    expect(a.events.some((e) => e.type === 'fire:queued')).toBe(false);
    const queuedRunId = fires[3]!.runId!;
    expect(await a.store.getRun(queuedRunId)).toBeNull();
    expect((await a.store.listRuns({ pipeline: 'slow' })).map((r) => r.owner)).toEqual(['a:1']);

    a.blocker.releaseOne(); // A's 10:00 run ends: the fire B recorded starts
    await waitUntil(() => a.blocker.waiting + b.blocker.waiting === 1);
    // Both schedulers keep polling: give them time to (wrongly) start it a second time.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const runs = await a.store.listRuns({ pipeline: 'slow' });
    expect(runs.map((r) => r.scheduledFor).sort()).toEqual([iso('10:00'), iso('10:05')]);
    expect(runs.find((r) => r.scheduledFor === iso('10:05'))!.id).toBe(queuedRunId);
    const created = [...a.events, ...b.events].filter(
      (e) => e.type === 'run:created' && e.runId === queuedRunId,
    );
    expect(created).toHaveLength(1);
    expect(a.blocker.calls + b.blocker.calls).toBe(2);

    // The waiting slot is free again: the next tick queues, the one after is skipped.
    const [first, second] = a.blocker.waiting === 1 ? [b, a] : [a, b];
    await tick(first, second, '10:25');
    await tick(second, first, '10:30');
    const later = await a.store.listFires({ pipeline: 'slow', limit: 2 });
    expect(later.map((f) => [f.scheduledFor.slice(11, 16), f.outcome, f.reason])).toEqual([
      ['10:30', 'skipped', WAITING_REASON],
      ['10:25', 'queued', expect.stringContaining('overlap: queue')],
    ]);
    const running = a.blocker.waiting === 1 ? a : b;
    running.blocker.releaseOne();
    await waitUntil(async () => (await a.store.getRun(later[1]!.runId!)) !== null);
    await waitUntil(() => a.blocker.waiting + b.blocker.waiting === 1);
    expect((await a.store.listRuns({ pipeline: 'slow' })).length).toBe(3);
  }, 20_000);
});
