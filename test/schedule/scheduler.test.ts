import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import { newRunRequestId, runIdForRequest } from '../../src/schedule/request-id.js';
import { REQUEST_CLAIM_STALE_MS } from '../../src/schedule/run-requests.js';
import type { Scheduler } from '../../src/schedule/scheduler.js';
import { createRun } from '../../src/engine/create-run.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { newRunId } from '../../src/store/ids.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ok, task } from '../support/plan-builder.js';
import { createBlocker, createFixture, HOUR, MINUTE, scheduled, waitUntil } from './harness.js';

const started: Scheduler[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  // IMPORTANT: no scheduler may outlive its test (its poll timer would keep running).
  await Promise.all(started.splice(0).map((s) => s.stop({ graceMs: 0 })));
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function track<T extends { scheduler: Scheduler }>(fixture: T): T {
  started.push(fixture.scheduler);
  return fixture;
}

const at = (iso: string) => Date.parse(iso);

describe('firing on schedule', () => {
  it.each([
    ['spring forward', '2025-03-29T23:00:00.000Z', '2025-03-30T22:00:00.000Z', 276],
    ['fall back', '2025-10-25T22:00:00.000Z', '2025-10-26T23:00:00.000Z', 288],
  ])(
    'runs */5 in Europe/Berlin once per local time over the %s day (%s)',
    async (_name, dayStart, dayEnd, expected) => {
      const f = track(
        createFixture({
          start: at(dayStart) - 1000,
          plans: [
            scheduled(
              {
                name: 'every5',
                tasks: [task('stamp', { handler: 'echo', with: { at: '${{ run.scheduled_for }}' } })],
              },
              { cron: '*/5 * * * *', timezone: 'Europe/Berlin' },
            ),
          ],
        }),
      );
      await f.scheduler.start();
      await f.advance(at(dayEnd) - f.clock.now() - 1, 5 * MINUTE);
      const runs = await f.runs();
      expect(runs).toHaveLength(expected);
      const times = runs.map((r) => r.scheduledFor!).sort();
      expect(new Set(times).size).toBe(expected);
      expect(times[0]).toBe(dayStart);
      expect(runs.every((r) => r.state === 'succeeded' && r.trigger === 'schedule')).toBe(true);
      // ${{ run.scheduled_for }} is the schedule time, not the time it happened to start.
      const one = runs.find((r) => r.scheduledFor === times[10])!;
      const [stamp] = await f.store.getTaskRuns(one.id);
      expect(stamp!.output).toEqual({ at: times[10] });
      expect(await f.store.listFires({ limit: 1000 })).toHaveLength(expected);
    },
  );

  it('runs a pipeline every 6 hours and records each fire with its run', async () => {
    const f = track(
      createFixture({
        start: at('2025-01-01T00:30:00Z'),
        plans: [scheduled({ name: 'six', tasks: [ok('a')] }, { cron: '0 */6 * * *' })],
      }),
    );
    await f.scheduler.start();
    expect(f.scheduler.nextFires()).toEqual([{ pipeline: 'six', at: at('2025-01-01T06:00:00Z') }]);
    await f.advance(24 * HOUR, HOUR);
    const fires = await f.store.listFires({ pipeline: 'six' });
    expect(fires.map((x) => x.scheduledFor)).toEqual([
      '2025-01-02T00:00:00.000Z',
      '2025-01-01T18:00:00.000Z',
      '2025-01-01T12:00:00.000Z',
      '2025-01-01T06:00:00.000Z',
    ]);
    const runs = await f.runs();
    expect(fires.every((x) => x.outcome === 'ran' && runs.some((r) => r.id === x.runId))).toBe(true);
    const startedEvents = f.eventsOf('run:started');
    expect(startedEvents.map((e) => e.lagMs)).toEqual([0, 0, 0, 0]);
  });
});

describe('overlap', () => {
  function slowPlan(overlap: 'skip' | 'queue' | 'allow') {
    return scheduled(
      { name: 'slow', tasks: [task('work', { handler: 'block' })] },
      { cron: '*/5 * * * *', overlap },
    );
  }

  async function setup(overlap: 'skip' | 'queue' | 'allow') {
    const blocker = createBlocker();
    const f = track(
      createFixture({
        start: at('2025-01-01T09:59:00Z'),
        plans: [slowPlan(overlap)],
        handlers: [blocker.handler],
      }),
    );
    await f.scheduler.start();
    const step = async (ms: number) => {
      await f.clock.advance(ms);
      await waitUntil(() => f.scheduler.runningRuns().length > 0 || blocker.waiting === 0);
    };
    return { f, blocker, step };
  }

  it('skip: a fire while the previous run still runs is recorded as skipped, with the reason', async () => {
    const { f, blocker, step } = await setup('skip');
    await step(MINUTE); // 10:00 starts and blocks
    await waitUntil(() => blocker.waiting === 1);
    await step(5 * MINUTE); // 10:05 is skipped
    await waitUntil(async () => (await f.store.listFires()).length === 2);
    const [first] = await f.runs();
    const skipped = (await f.store.listFires()).find((x) => x.scheduledFor === '2025-01-01T10:05:00.000Z')!;
    expect(skipped.outcome).toBe('skipped');
    expect(skipped.reason).toContain(`run ${first!.id}`);
    expect(skipped.reason).toContain('overlap: skip');
    blocker.releaseOne();
    await f.scheduler.whenIdle();
    await step(5 * MINUTE); // 10:10 runs again
    await waitUntil(() => blocker.waiting === 1);
    blocker.releaseOne();
    await f.scheduler.whenIdle();
    expect((await f.runs()).map((r) => r.scheduledFor).sort()).toEqual([
      '2025-01-01T10:00:00.000Z',
      '2025-01-01T10:10:00.000Z',
    ]);
    expect(f.eventsOf('fire:skipped')).toHaveLength(1);
  });

  it('queue: one fire waits for the running one and starts when it ends; a further one is skipped', async () => {
    const { f, blocker, step } = await setup('queue');
    await step(MINUTE);
    await waitUntil(() => blocker.waiting === 1);
    await step(5 * MINUTE); // 10:05 queued
    await step(5 * MINUTE); // 10:10 skipped: one is waiting already
    await waitUntil(async () => (await f.store.listFires()).length === 3);
    const fires = await f.store.listFires();
    expect(fires.map((x) => [x.scheduledFor.slice(11, 16), x.outcome])).toEqual([
      ['10:10', 'skipped'],
      ['10:05', 'queued'],
      ['10:00', 'ran'],
    ]);
    expect(await f.runs()).toHaveLength(1);
    blocker.releaseOne(); // 10:00 ends, 10:05 starts
    await waitUntil(() => blocker.waiting === 1 && blocker.calls === 2);
    const runs = await f.runs();
    expect(runs.map((r) => r.scheduledFor).sort()).toEqual([
      '2025-01-01T10:00:00.000Z',
      '2025-01-01T10:05:00.000Z',
    ]);
    expect(runs.find((r) => r.scheduledFor === '2025-01-01T10:05:00.000Z')!.id).toBe(fires[1]!.runId);
    blocker.releaseOne();
    await f.scheduler.whenIdle();
    expect((await f.runs()).every((r) => r.state === 'succeeded')).toBe(true);
  });

  it('allow: runs side by side', async () => {
    const { f, blocker, step } = await setup('allow');
    await step(MINUTE);
    await step(5 * MINUTE);
    await waitUntil(() => blocker.waiting === 2);
    expect((await f.runs()).map((r) => r.state)).toEqual(['running', 'running']);
    blocker.releaseOne();
    blocker.releaseOne();
    await f.scheduler.whenIdle();
  });
});

describe('catching up after downtime', () => {
  /** A store whose last fire of `every30` was 3h10m before now: fires at 7:30 … 10:00 were missed. */
  async function downtime(catchup: 'none' | 'latest' | 'all', catchupLimit = 100) {
    const store = createMemoryStore();
    await store.recordFire({
      pipeline: 'every30',
      scheduledFor: '2025-01-01T07:00:00.000Z',
      outcome: 'ran',
      reason: null,
      runId: 'r_old',
      recordedAt: '2025-01-01T07:00:00.000Z',
    });
    const f = track(
      createFixture({
        store,
        start: at('2025-01-01T10:10:00Z'),
        plans: [
          scheduled({ name: 'every30', tasks: [ok('a')] }, { cron: '*/30 * * * *', catchup, catchupLimit }),
        ],
      }),
    );
    await f.scheduler.start();
    await f.scheduler.whenIdle();
    const fires = (await store.listFires()).filter((x) => x.runId !== 'r_old').reverse();
    return { f, fires, runs: await f.runs() };
  }

  it('none: every missed fire is recorded missed and nothing runs', async () => {
    const { fires, runs } = await downtime('none');
    expect(fires.map((x) => x.scheduledFor.slice(11, 16))).toEqual([
      '07:30',
      '08:00',
      '08:30',
      '09:00',
      '09:30',
      '10:00',
    ]);
    expect(fires.every((x) => x.outcome === 'missed' && x.reason!.includes('no scheduler was running'))).toBe(
      true,
    );
    expect(runs).toEqual([]);
  });

  it('latest: only the most recent missed fire runs', async () => {
    const { fires, runs } = await downtime('latest');
    expect(fires.map((x) => x.outcome)).toEqual(['missed', 'missed', 'missed', 'missed', 'missed', 'ran']);
    expect(runs.map((r) => r.scheduledFor)).toEqual(['2025-01-01T10:00:00.000Z']);
  });

  it('all: every missed fire runs, oldest first, one after another, capped by catchup_limit', async () => {
    const { f, fires, runs } = await downtime('all', 4);
    expect(fires.map((x) => x.outcome)).toEqual(['missed', 'missed', 'ran', 'queued', 'queued', 'queued']);
    expect(fires[0]!.reason).toContain('catchup_limit (4)');
    const order = [...runs].sort(
      (a, b) => a.startedAt!.localeCompare(b.startedAt!) || a.id.localeCompare(b.id),
    );
    expect(order.map((r) => r.scheduledFor!.slice(11, 16))).toEqual(['08:30', '09:00', '09:30', '10:00']);
    expect(runs.every((r) => r.state === 'succeeded')).toBe(true);
    expect(f.eventsOf('catchup:capped')).toEqual([
      { type: 'catchup:capped', pipeline: 'every30', missed: 2, limit: 4 },
    ]);
  });

  it('all: the rest of a backlog whose scheduler died waits in the store, and another scheduler runs it', async () => {
    const store = createMemoryStore();
    const record = (time: string, outcome: 'ran' | 'queued', runId: string) =>
      store.recordFire({
        pipeline: 'every30',
        scheduledFor: `2025-01-01T${time}:00.000Z`,
        outcome,
        reason: outcome === 'queued' ? 'catch-up; starts when the run before it ends' : null,
        runId,
        recordedAt: '2025-01-01T10:00:05.000Z',
      });
    // The dead scheduler ran 09:00 (its run since gone from this store) and left 09:30 and 10:00 queued.
    await record('09:00', 'ran', 'r_old');
    const waiting = [newRunId(at('2025-01-01T10:00:05Z')), newRunId(at('2025-01-01T10:00:05Z'))];
    await record('09:30', 'queued', waiting[0]!);
    await record('10:00', 'queued', waiting[1]!);
    const f = track(
      createFixture({
        store,
        start: at('2025-01-01T10:10:00Z'),
        plans: [scheduled({ name: 'every30', tasks: [ok('a')] }, { cron: '*/30 * * * *', catchup: 'all' })],
      }),
    );
    await f.scheduler.start();
    await waitUntil(async () => (await f.runs()).filter((r) => r.state === 'succeeded').length === 2);
    await f.scheduler.whenIdle();
    const runs = await f.runs();
    expect(runs.map((r) => [r.id, r.scheduledFor]).sort()).toEqual(
      [
        [waiting[0], '2025-01-01T09:30:00.000Z'],
        [waiting[1], '2025-01-01T10:00:00.000Z'],
      ].sort(),
    );
    // Oldest first, one after the other.
    const [first, second] = [...runs].sort((a, b) => a.scheduledFor!.localeCompare(b.scheduledFor!));
    expect(first!.finishedAt! <= second!.startedAt!).toBe(true);
  });

  it('runs the newest due fire when it is only a little late (a quick restart)', async () => {
    const store = createMemoryStore();
    await store.recordFire({
      pipeline: 'p',
      scheduledFor: '2025-01-01T09:55:00.000Z',
      outcome: 'ran',
      reason: null,
      runId: 'r_old',
      recordedAt: '2025-01-01T09:55:00.000Z',
    });
    const f = track(
      createFixture({
        store,
        start: at('2025-01-01T10:00:20Z'),
        plans: [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *' })],
      }),
    );
    await f.scheduler.start();
    await f.scheduler.whenIdle();
    expect((await f.runs()).map((r) => r.scheduledFor)).toEqual(['2025-01-01T10:00:00.000Z']);
  });

  it('treats a clock jump forward like downtime', async () => {
    const f = track(
      createFixture({
        start: at('2025-01-01T10:01:00Z'),
        plans: [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *', catchup: 'latest' })],
      }),
    );
    await f.scheduler.start();
    f.clock.set(at('2025-01-01T12:03:00Z'));
    await f.clock.advance(0);
    await f.scheduler.whenIdle();
    const fires = await f.store.listFires({ limit: 100 });
    expect(fires).toHaveLength(24); // 10:05 … 12:00
    expect(fires.filter((x) => x.outcome === 'ran').map((x) => x.scheduledFor)).toEqual([
      '2025-01-01T12:00:00.000Z',
    ]);
    expect(fires.filter((x) => x.outcome === 'missed')[0]!.reason).toContain('clock jumped forward');
    // And says so: its timer fired (as the clock saw it) two hours after the fire it slept for.
    expect(f.eventsOf('scheduler:late')).toEqual([
      { type: 'scheduler:late', dueAt: '2025-01-01T10:05:00.000Z', lateMs: 118 * MINUTE, cause: 'overslept' },
    ]);
  });

  it('woken late, starts after the newest fire another scheduler recorded, even if older ones were pruned', async () => {
    const store = createMemoryStore();
    const f = track(
      createFixture({
        store,
        start: at('2025-01-01T10:01:00Z'),
        plans: [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *', catchup: 'all' })],
      }),
    );
    await f.scheduler.start();
    // Paused from 10:01 to 12:03. Meanwhile another scheduler ran every tick up to 12:00, and a
    // prune left only its newest record: nothing in the store says 10:05 … 11:55 were handled.
    await store.recordFire({
      pipeline: 'p',
      scheduledFor: '2025-01-01T12:00:00.000Z',
      outcome: 'ran',
      reason: null,
      runId: 'r_other',
      recordedAt: '2025-01-01T12:00:01.000Z',
    });
    f.clock.set(at('2025-01-01T12:03:00Z'));
    await f.clock.advance(0);
    await f.scheduler.whenIdle();
    expect((await f.store.listFires({ limit: 100 })).map((x) => x.scheduledFor)).toEqual([
      '2025-01-01T12:00:00.000Z',
    ]);
    expect(await f.runs()).toEqual([]);
    // And it goes on with the next tick.
    await f.clock.advance(2 * MINUTE);
    await f.scheduler.whenIdle();
    expect((await f.runs()).map((r) => r.scheduledFor)).toEqual(['2025-01-01T12:05:00.000Z']);
  });

  it('says it is late because of a slow store when handling a fire held the loop past the next one', async () => {
    const store = createMemoryStore();
    let hold: (() => void) | null = null;
    const slowStore: RunStore = Object.create(store) as RunStore;
    // The 10:05 fire's record waits until the test lets it go, after moving the clock past 10:10.
    slowStore.recordFire = async (fire) => {
      if (fire.scheduledFor === '2025-01-01T10:05:00.000Z') await new Promise<void>((r) => (hold = r));
      return store.recordFire(fire);
    };
    const f = track(
      createFixture({
        store: slowStore,
        start: at('2025-01-01T10:04:00Z'),
        plans: [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *', overlap: 'allow' })],
      }),
    );
    await f.scheduler.start();
    await f.clock.advance(MINUTE);
    await waitUntil(() => hold !== null);
    f.clock.set(at('2025-01-01T10:12:00Z'));
    hold!();
    await f.scheduler.whenIdle();
    expect(f.eventsOf('scheduler:late')).toEqual([
      { type: 'scheduler:late', dueAt: '2025-01-01T10:10:00.000Z', lateMs: 2 * MINUTE, cause: 'busy' },
    ]);
    // Late past the grace with only 10:10 due: it is still decided (a single fire has no deadline).
    const fires = await f.store.listFires({ limit: 10 });
    expect(fires.map((x) => [x.scheduledFor, x.outcome])).toEqual([
      ['2025-01-01T10:10:00.000Z', 'ran'],
      ['2025-01-01T10:05:00.000Z', 'ran'],
    ]);
  });
});

describe('start_deadline', () => {
  it('records a fire that could only start past its deadline as missed, and runs the next one', async () => {
    const f = track(
      createFixture({
        start: at('2025-01-01T10:02:00Z'),
        plans: [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *', startDeadlineMs: MINUTE })],
      }),
    );
    await f.scheduler.start();
    // The process was paused (SIGSTOP, a laptop lid) over 10:05 and wakes at 10:08.
    f.clock.set(at('2025-01-01T10:08:00Z'));
    await f.clock.advance(0);
    await f.scheduler.whenIdle();
    const [missed] = await f.store.listFires();
    expect(missed).toMatchObject({
      scheduledFor: '2025-01-01T10:05:00.000Z',
      outcome: 'missed',
      runId: null,
    });
    expect(missed!.reason).toContain('start_deadline of 1m');
    expect(missed!.reason).toContain('3m late');
    expect(await f.runs()).toEqual([]);
    await f.advance(2 * MINUTE);
    expect((await f.runs()).map((r) => r.scheduledFor)).toEqual(['2025-01-01T10:10:00.000Z']);
  });

  it('without a deadline, a late fire still starts', async () => {
    const f = track(
      createFixture({
        start: at('2025-01-01T10:02:00Z'),
        plans: [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *' })],
      }),
    );
    await f.scheduler.start();
    f.clock.set(at('2025-01-01T10:08:00Z'));
    await f.clock.advance(0);
    await f.scheduler.whenIdle();
    expect((await f.runs()).map((r) => r.scheduledFor)).toEqual(['2025-01-01T10:05:00.000Z']);
    expect(f.eventsOf('run:started')[0]!.lagMs).toBe(3 * MINUTE);
  });
});

describe('one run per fire', () => {
  it('two schedulers on one SQLite store produce exactly one run per fire over a day', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-sched-'));
    const stores: RunStore[] = [
      createSqliteStore(join(dir, 'weft.db')),
      createSqliteStore(join(dir, 'weft.db')),
    ];
    cleanups.push(async () => {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const clock = new ManualClock(at('2025-01-01T00:00:30Z'));
    const plans = () => [
      scheduled({ name: 'every5', tasks: [ok('a')] }, { cron: '*/5 * * * *' }),
      scheduled({ name: 'every6h', tasks: [ok('a'), ok('b', ['a'])] }, { cron: '0 */6 * * *' }),
    ];
    const a = track(createFixture({ clock, start: 0, store: stores[0]!, plans: plans(), owner: 'host-a:1' }));
    const b = track(createFixture({ clock, start: 0, store: stores[1]!, plans: plans(), owner: 'host-b:2' }));
    await a.scheduler.start();
    await b.scheduler.start();
    for (let i = 0; i < 288; i++) {
      await clock.advance(5 * MINUTE);
      await Promise.all([a.scheduler.whenIdle(), b.scheduler.whenIdle()]);
    }
    const runs = await stores[0]!.listRuns({ limit: 10_000 });
    const every5 = runs.filter((r) => r.pipeline === 'every5');
    expect(every5).toHaveLength(288);
    expect(new Set(every5.map((r) => r.scheduledFor)).size).toBe(288);
    expect(runs.filter((r) => r.pipeline === 'every6h')).toHaveLength(4);
    expect(runs.every((r) => r.state === 'succeeded')).toBe(true);
    const fires = await stores[1]!.listFires({ limit: 10_000 });
    expect(fires).toHaveLength(292);
    // Both saw every fire; each fire was taken by exactly one of them.
    const taken = a.eventsOf('fire:taken').length + b.eventsOf('fire:taken').length;
    expect(taken).toBe(292);
    const owners = new Set(runs.map((r) => r.owner));
    expect(owners.size).toBeGreaterThanOrEqual(1);
  });

  it('re-fires nothing when the clock is set back, nor after a restart', async () => {
    const store = createMemoryStore();
    const plans = [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *' })];
    const f = track(createFixture({ store, start: at('2025-01-01T10:00:30Z'), plans }));
    await f.scheduler.start();
    await f.advance(HOUR, 5 * MINUTE); // 10:05 … 11:00
    expect(await f.runs()).toHaveLength(12);
    f.clock.set(at('2025-01-01T10:20:00Z'));
    await f.advance(40 * MINUTE, 5 * MINUTE); // back to 11:00: all handled already
    expect(await f.runs()).toHaveLength(12);
    await f.scheduler.stop();
    // A restart with the clock still behind the last fire.
    f.clock.set(at('2025-01-01T10:30:00Z'));
    const g = track(createFixture({ store, clock: f.clock, start: 0, plans }));
    await g.scheduler.start();
    await g.advance(35 * MINUTE, 5 * MINUTE); // to 11:05
    const runs = await g.runs();
    expect(runs).toHaveLength(13);
    expect(new Set(runs.map((r) => r.scheduledFor)).size).toBe(13);
    expect(
      runs
        .map((r) => r.scheduledFor)
        .sort()
        .at(-1),
    ).toBe('2025-01-01T11:05:00.000Z');
  });
});

describe('manual run requests', () => {
  it('runs a request once, with its params, and records the run on the request', async () => {
    const f = track(
      createFixture({
        start: at('2025-01-01T10:00:00Z'),
        plans: [
          scheduled(
            {
              name: 'p',
              params: { region: { type: 'string', default: 'eu' } },
              tasks: [task('e', { handler: 'echo', with: { r: '${{ params.region }}' } })],
            },
            { cron: '0 0 1 1 *' },
          ),
        ],
      }),
    );
    await f.scheduler.start();
    await f.store.requestRun({
      id: 'q_1',
      pipeline: 'p',
      params: { region: 'us' },
      requestedAt: '2025-01-01T10:00:00.000Z',
    });
    await f.store.requestRun({
      id: 'q_2',
      pipeline: 'nope',
      params: {},
      requestedAt: '2025-01-01T10:00:01.000Z',
    });
    await waitUntil(async () => (await f.store.getRunRequest('q_2'))?.state === 'failed');
    await f.scheduler.whenIdle();
    expect(await f.scheduler.pollRequests()).toBe(0);
    const request = (await f.store.getRunRequest('q_1'))!;
    expect(request).toMatchObject({ state: 'done', claimedBy: 'test-host:1' });
    const runs = await f.runs();
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      id: request.runId,
      trigger: 'manual',
      state: 'succeeded',
      scheduledFor: null,
    });
    expect((await f.store.getTaskRuns(runs[0]!.id))[0]!.output).toEqual({ r: 'us' });
    expect((await f.store.getRunRequest('q_2'))!.error?.code).toBe('PIPELINE_NOT_FOUND');
    expect(f.eventsOf('request:failed')).toHaveLength(1);
  });
});

describe('which runs block an overlap: skip fire', () => {
  const plan = scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '*/5 * * * *', overlap: 'skip' });

  /** A run of `p` the store shows running under `owner`, last heard from `beatAgoMs` before 10:00. */
  async function leftRunning(f: ReturnType<typeof createFixture>, owner: string, beatAgoMs: number) {
    const run = await createRun(f.store, { plan, params: {}, trigger: 'manual', now: f.clock.now(), owner });
    const beat = new Date(at('2025-01-01T10:00:00Z') - beatAgoMs).toISOString();
    await f.store.updateRun(run.id, { state: 'running', startedAt: beat, heartbeatAt: beat });
    return run.id;
  }

  async function fireAt1000(owner: string, beatAgoMs: number) {
    // No injected liveness: the scheduler decides as in production.
    const f = track(
      createFixture({ start: at('2025-01-01T09:59:00Z'), plans: [plan], isOwnerAlive: undefined }),
    );
    const blocking = await leftRunning(f, owner, beatAgoMs);
    await f.scheduler.start();
    await f.advance(MINUTE);
    const fire = (await f.store.listFires()).find((x) => x.scheduledFor === '2025-01-01T10:00:00.000Z')!;
    return { fire, blocking };
  }

  it('a run on another host that stopped heartbeating does not make fires skip', async () => {
    const { fire } = await fireAt1000('other-host.example:42', 2 * MINUTE);
    expect(fire.outcome).toBe('ran');
  });

  it('a run on another host that heartbeats does', async () => {
    const { fire, blocking } = await fireAt1000('other-host.example:42', 10_000);
    expect(fire.outcome).toBe('skipped');
    expect(fire.reason).toContain(`run ${blocking}`);
  });

  it("a run in this scheduler's own name that it is not executing (its execution failed) does not", async () => {
    const { fire } = await fireAt1000('test-host:1', 10_000);
    expect(fire.outcome).toBe('ran');
  });
});

describe('run requests whose first take was lost', () => {
  const plans = [scheduled({ name: 'p', tasks: [ok('a')] }, { cron: '0 0 1 1 *' })];

  /** A started scheduler, and a run request that 'dead-host:9' claimed (and then died). */
  async function requestClaimedByDeadScheduler() {
    const f = track(createFixture({ start: at('2025-01-01T10:00:00Z'), plans }));
    await f.scheduler.start();
    const id = newRunRequestId(f.clock.now());
    const now = new Date(f.clock.now()).toISOString();
    await f.store.requestRun({ id, pipeline: 'p', params: {}, requestedAt: now });
    await f.store.claimRunRequests(1, 'dead-host:9', now);
    return { f, id };
  }

  it('a claim left by a dead scheduler is taken again once stale, and becomes one run', async () => {
    // Another scheduler claimed it and died before creating the run.
    const { f, id } = await requestClaimedByDeadScheduler();
    expect(await f.scheduler.pollRequests()).toBe(0);
    await f.clock.advance(REQUEST_CLAIM_STALE_MS - 1);
    expect(await f.scheduler.pollRequests()).toBe(0);
    await f.clock.advance(2);
    expect(await f.scheduler.pollRequests()).toBe(1);
    await f.scheduler.whenIdle();
    const request = (await f.store.getRunRequest(id))!;
    expect(request).toMatchObject({ state: 'done', claimedBy: 'test-host:1', runId: runIdForRequest(id) });
    const runs = await f.runs();
    expect(runs.map((r) => [r.id, r.state])).toEqual([[runIdForRequest(id), 'succeeded']]);
  });

  it('a request whose run was created but whose answer was lost completes with that run, not a second', async () => {
    const { f, id } = await requestClaimedByDeadScheduler();
    // The dead scheduler's createRun committed: the run exists under the request's run id.
    await createRun(f.store, {
      plan: plans[0]!,
      params: {},
      trigger: 'manual',
      id: runIdForRequest(id),
      now: f.clock.now(),
      owner: 'dead-host:9',
    });
    await f.clock.advance(REQUEST_CLAIM_STALE_MS + 1);
    expect(await f.scheduler.pollRequests()).toBe(1);
    await f.scheduler.whenIdle();
    expect(await f.store.getRunRequest(id)).toMatchObject({ state: 'done', runId: runIdForRequest(id) });
    expect((await f.runs()).map((r) => r.id)).toEqual([runIdForRequest(id)]);
    expect(f.eventsOf('request:failed')).toHaveLength(0);
  });
});

describe('hooks, interrupted runs and shutdown', () => {
  it('gives scheduled runs their on_failure (after_consecutive_failures) and on_recovery hooks', async () => {
    let failing = true;
    const alerts: string[] = [];
    const handlers: AnyHandler[] = [
      {
        name: 'maybe',
        run: () => {
          if (failing) throw new Error('down');
          return null;
        },
      },
      {
        name: 'alert',
        run: (_args, ctx) => void alerts.push(`${ctx.hook?.event}:${ctx.hook?.consecutiveFailures}`),
      },
    ];
    const f = track(
      createFixture({
        start: at('2025-01-01T09:59:00Z'),
        handlers,
        plans: [
          scheduled(
            {
              name: 'p',
              tasks: [task('t', { handler: 'maybe' })],
              onFailure: [{ handler: 'alert', afterConsecutiveFailures: 2 }],
              onRecovery: ['alert'],
            },
            { cron: '*/5 * * * *' },
          ),
        ],
      }),
    );
    await f.scheduler.start();
    await f.advance(15 * MINUTE, 5 * MINUTE); // 10:00, 10:05, 10:10 fail
    expect(alerts).toEqual(['run_failure:2']);
    failing = false;
    await f.advance(5 * MINUTE, 5 * MINUTE); // 10:15 succeeds
    expect(alerts).toEqual(['run_failure:2', 'run_recovery:3']);
  });

  it('reports runs interrupted by a dead process, and resumes those whose plan says so', async () => {
    const store = createMemoryStore();
    const resumable = {
      ...scheduled({ name: 'r', tasks: [ok('a')] }, { cron: '0 0 1 1 *' }),
      resumeInterrupted: true,
    };
    const other = scheduled({ name: 'o', tasks: [ok('a')] }, { cron: '0 0 1 1 *' });
    for (const [id, plan] of [
      ['r_dead1', resumable],
      ['r_dead2', other],
    ] as const) {
      await store.createRun({
        id,
        pipeline: plan.name,
        plan,
        params: {},
        trigger: 'schedule',
        scheduledFor: null,
        state: 'running',
        owner: 'gone:1',
        createdAt: '2025-01-01T09:00:00.000Z',
      });
    }
    const f = track(
      createFixture({
        store,
        start: at('2025-01-01T10:00:00Z'),
        plans: [resumable, other],
        isOwnerAlive: (o) => o !== 'gone:1',
      }),
    );
    await f.scheduler.start();
    await f.scheduler.whenIdle();
    expect(
      f
        .eventsOf('run:interrupted')
        .map((e) => [e.runId, e.resuming])
        .sort(),
    ).toEqual([
      ['r_dead1', true],
      ['r_dead2', false],
    ]);
    expect((await store.getRun('r_dead1'))!.state).toBe('succeeded');
    expect((await store.getRun('r_dead2'))!.state).toBe('interrupted');
  });

  it('stop: no new runs; running ones get the grace period, then are cancelled; nothing stays running', async () => {
    const blocker = createBlocker();
    const f = createFixture({
      start: at('2025-01-01T09:59:00Z'),
      handlers: [blocker.handler],
      plans: [
        scheduled(
          { name: 'p', tasks: [task('w', { handler: 'block' })] },
          { cron: '* * * * *', overlap: 'allow' },
        ),
      ],
    });
    await f.scheduler.start();
    await f.clock.advance(MINUTE);
    await waitUntil(() => blocker.waiting === 1);
    await f.scheduler.stop({ graceMs: 30 });
    await f.clock.advance(10 * MINUTE);
    const runs = await f.runs();
    expect(runs).toHaveLength(1);
    expect(runs[0]!.state).toBe('cancelled');
    expect(await f.store.listRuns({ states: ['running', 'retrying', 'queued'] })).toEqual([]);
    expect(f.eventsOf('scheduler:stopped')).toEqual([{ type: 'scheduler:stopped', cancelled: 1 }]);
  });
});
