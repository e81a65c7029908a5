// Item 2: several schedulers on one SQLite store over simulated days of the reference schedules,
// their ManualClocks driven in lock-step; one of them is killed (its store calls stop landing at a
// random point: the process died) and restarted every few simulated hours. Runs = ticks exactly,
// no duplicate (pipeline, scheduled_for), every tick recorded, every run terminal. Then a 3-hour
// outage under each catchup policy, and a 1-hour clock rewind. Default tier 6 simulated hours,
// WEFT_CHAOS=full 48.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan, PlanSchedule } from '../../src/compile/plan.js';
import { ManualClock } from '../../src/core/clock.js';
import { createScheduler, type Scheduler } from '../../src/schedule/scheduler.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { RunStore } from '../../src/store/run-store.js';
import { EngineHarness } from '../support/engine-harness.js';
import { ok, plan } from '../support/plan-builder.js';
import { sqliteIntegrity } from './invariants.js';
import { count, seededRng, type Rng } from './tier.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const START = Date.parse('2025-01-01T00:00:30Z');

function scheduled(name: string, cron: string, extra: Partial<PlanSchedule> = {}): Plan {
  const base = plan({ name, tasks: [ok('a'), ok('b', ['a'])], resumeInterrupted: true });
  return {
    ...base,
    schedule: {
      cron,
      timezone: 'UTC',
      overlap: 'skip',
      catchup: 'none',
      catchupLimit: 100,
      startDeadlineMs: null,
      position: { file: 'test.yaml', line: 1, column: 1 },
      ...extra,
    },
  };
}

/**
 * A store as a process sees it: after `kill()`, no call lands and no answer arrives (the promise
 * never settles), as when the process is gone. `killAtCall(n)` kills it on its n-th call from now.
 */
function killable(real: RunStore) {
  let dead = false;
  let countdown = Infinity;
  let fatal: string | null = null;
  const never = new Promise<never>(() => undefined);
  const store = new Proxy(real, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        countdown -= 1;
        if (countdown <= 0 || key === fatal) dead = true;
        if (dead) return never;
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result instanceof Promise ? result.then((v: unknown) => (dead ? never : v)) : result;
      };
    },
  });
  return {
    store,
    real,
    kill: () => void (dead = true),
    killAtCall: (n: number) => void (countdown = n),
    /** Dies on the first call of this store method (the call does not land). */
    killAtMethod: (name: keyof RunStore) => void (fatal = name),
    get dead() {
      return dead;
    },
  };
}

interface Instance {
  name: string;
  owner: string;
  clock: ManualClock;
  handle: ReturnType<typeof killable>;
  scheduler: Scheduler;
}

function createCluster(path: string, plans: () => Plan[], rng: Rng) {
  const live = new Set<string>();
  const all: Instance[] = [];
  let generation = 0;
  const startInstance = async (name: string, now: number): Promise<Instance> => {
    generation += 1;
    const owner = `${name}:${generation}`;
    const clock = new ManualClock(now);
    const harness = new EngineHarness({ clock });
    const handle = killable(createSqliteStore(path));
    live.add(owner);
    const scheduler = createScheduler({
      store: handle.store,
      registry: harness.registry,
      clock,
      pipelines: plans,
      owner,
      pollMs: 60_000,
      isOwnerAlive: (o) => live.has(o),
      recoverUncreatedRuns: true,
      engine: { cancelGraceMs: 50, heartbeatMs: 3_600_000, cancelPollMs: 60_000 },
    });
    const instance = { name, owner, clock, handle, scheduler };
    all.push(instance);
    await scheduler.start();
    return instance;
  };
  return {
    all,
    startInstance,
    /** The process dies: no more store calls land; a restart's recovery will see its owner dead. */
    kill(instance: Instance) {
      instance.handle.kill();
      live.delete(instance.owner);
    },
    live: () => all.filter((i) => !i.handle.dead),
    rng,
    async closeAll() {
      for (const i of all) if (!i.handle.dead) await i.scheduler.stop({ graceMs: 100 });
      for (const i of all) await i.handle.real.close();
    },
  };
}

/** Every instance's clock to `to`, in steps, all of them settled after each step. */
async function lockstep(instances: () => Instance[], to: number, stepMs = 5 * MINUTE): Promise<void> {
  for (;;) {
    const first = instances()[0];
    if (!first) return; // every instance died mid-step
    const now = first.clock.now();
    if (now >= to) return;
    const next = Math.min(to, now + stepMs);
    await Promise.all(instances().map((i) => i.clock.advance(next - i.clock.now())));
    await Promise.all(instances().map((i) => i.scheduler.whenIdle()));
  }
}

function ticks(cronMinutes: number, from: number, to: number): number {
  const step = cronMinutes * MINUTE;
  return Math.floor(to / step) - Math.floor(from / step);
}

function storeFacts(path: string) {
  const db = new Database(path, { readonly: true });
  try {
    return {
      duplicates: db
        .prepare(
          `SELECT pipeline, scheduled_for, count(*) AS n FROM runs WHERE scheduled_for IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1`,
        )
        .all(),
      runs: db.prepare(`SELECT pipeline, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1`).all() as {
        pipeline: string;
        n: number;
      }[],
      notTerminal: db
        .prepare(`SELECT id, state FROM runs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')`)
        .all(),
      fires: db
        .prepare(`SELECT pipeline, outcome, count(*) AS n FROM fires GROUP BY 1, 2 ORDER BY 1, 2`)
        .all() as {
        pipeline: string;
        outcome: string;
        n: number;
      }[],
      ranWithoutRun: db
        .prepare(
          `SELECT f.pipeline, f.scheduled_for FROM fires f LEFT JOIN runs r ON r.id = f.run_id WHERE f.outcome = 'ran' AND r.id IS NULL`,
        )
        .all(),
    };
  } finally {
    db.close();
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempStore(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-chaos-sched-'));
  cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  return join(dir, 'weft.db');
}

describe('schedulers killed and restarted on one SQLite store', () => {
  const hours = count(6, 48);

  for (const instances of [2, 3]) {
    it(`${instances} schedulers over ${hours} simulated hours: runs = ticks, no duplicates`, async () => {
      const rng = seededRng(`scheduler-lockstep x${instances}`);
      const path = tempStore();
      const plans = () => [scheduled('every5', '*/5 * * * *'), scheduled('every6h', '0 */6 * * *')];
      const cluster = createCluster(path, plans, rng);
      cleanups.push(() => cluster.closeAll());
      const names = ['a', 'b', 'c'].slice(0, instances);
      for (const name of names) await cluster.startInstance(name, START);
      const end = START + hours * HOUR;
      let kills = 0;
      let now = START;
      while (now < end) {
        // Every 1–3 simulated hours one instance dies at a random store call of the next step.
        const until = Math.min(end, now + (1 + rng.int(3)) * HOUR);
        await lockstep(cluster.live, until);
        now = until;
        if (now >= end) break;
        const victim = rng.pick(cluster.live());
        victim.handle.killAtCall(1 + rng.int(40));
        await lockstep(cluster.live, now + 5 * MINUTE);
        now += 5 * MINUTE;
        cluster.kill(victim);
        kills += 1;
        expect(sqliteIntegrity(path)).toBe('ok');
        // Down for 0–15 minutes, then back with a new pid.
        const down = 5 * MINUTE * rng.int(4);
        await lockstep(cluster.live, now + down);
        now += down;
        await cluster.startInstance(victim.name, now);
        await Promise.all(cluster.live().map((i) => i.scheduler.whenIdle()));
      }
      await Promise.all(cluster.live().map((i) => i.scheduler.whenIdle()));
      await cluster.closeAll();
      cleanups.pop();

      const facts = storeFacts(path);
      const expected5 = ticks(5, START, end);
      const expected6h = ticks(360, START, end);
      console.log(
        `[reliability] scheduler-lockstep x${instances}: ${hours} h, ${kills} kill(s), ` +
          `${expected5} + ${expected6h} ticks, fires ${JSON.stringify(facts.fires)}`,
      );
      expect(facts.duplicates).toEqual([]);
      expect(facts.ranWithoutRun).toEqual([]);
      expect(facts.notTerminal).toEqual([]);
      expect(facts.runs).toEqual([
        { pipeline: 'every5', n: expected5 },
        { pipeline: 'every6h', n: expected6h },
      ]);
      // Every tick recorded once; with schedulers always alive and instant runs, every one ran.
      expect(facts.fires).toEqual([
        { pipeline: 'every5', outcome: 'ran', n: expected5 },
        { pipeline: 'every6h', outcome: 'ran', n: expected6h },
      ]);
      expect(sqliteIntegrity(path)).toBe('ok');
    }, 120_000);
  }

  for (const catchup of ['none', 'latest', 'all'] as const) {
    it(`obeys catchup: ${catchup} exactly after a 3-hour outage of every scheduler`, async () => {
      const rng = seededRng(`scheduler-outage ${catchup}`);
      const path = tempStore();
      const plans = () => [scheduled('every5', '*/5 * * * *', { catchup })];
      const cluster = createCluster(path, plans, rng);
      cleanups.push(() => cluster.closeAll());
      const a = await cluster.startInstance('a', START);
      const b = await cluster.startInstance('b', START);
      await lockstep(cluster.live, START + HOUR); // 00:05 … 01:00: 12 runs
      cluster.kill(a);
      cluster.kill(b);
      // 3 hours later, 2.5 minutes past a slot: the newest missed fire (04:00) is past the late grace.
      const back = START + 4 * HOUR + 2 * MINUTE;
      await cluster.startInstance('a', back);
      await cluster.startInstance('b', back);
      await Promise.all(cluster.live().map((i) => i.scheduler.whenIdle()));
      await lockstep(cluster.live, START + 5 * HOUR); // 04:05 … 05:00: 12 more
      await cluster.closeAll();
      cleanups.pop();
      const facts = storeFacts(path);
      const missedFires = 36; // 01:05 … 04:00
      const caughtUp = { none: 0, latest: 1, all: missedFires }[catchup];
      expect(facts.duplicates).toEqual([]);
      expect(facts.notTerminal).toEqual([]);
      expect(facts.runs).toEqual([{ pipeline: 'every5', n: 24 + caughtUp }]);
      const byOutcome = Object.fromEntries(facts.fires.map((f) => [f.outcome, f.n]));
      console.log(`[reliability] scheduler-outage ${catchup}: fires ${JSON.stringify(byOutcome)}`);
      // `all` records the backlog as queued (each fire's run starts when the one before it ends).
      const queued = catchup === 'all' ? missedFires - 1 : 0;
      expect(byOutcome).toEqual({
        ran: 24 + caughtUp - queued,
        ...(queued > 0 ? { queued } : {}),
        ...(missedFires - caughtUp > 0 ? { missed: missedFires - caughtUp } : {}),
      });
    }, 60_000);
  }

  it('creates the run of a fire recorded just before the scheduler died (between recordFire and createRun)', async () => {
    const path = tempStore();
    const plans = () => [scheduled('every5', '*/5 * * * *')];
    const cluster = createCluster(path, plans, seededRng('scheduler-uncreated'));
    cleanups.push(() => cluster.closeAll());
    const a = await cluster.startInstance('a', START);
    await lockstep(cluster.live, START + 30 * MINUTE); // 6 runs
    a.handle.killAtMethod('createRun');
    await lockstep(cluster.live, START + 35 * MINUTE); // the 00:35 fire: recorded, run never created
    cluster.kill(a);
    expect(storeFacts(path).ranWithoutRun).toHaveLength(1);
    await cluster.startInstance('a', START + 36 * MINUTE);
    await lockstep(cluster.live, START + HOUR);
    await cluster.closeAll();
    cleanups.pop();
    const facts = storeFacts(path);
    expect(facts.ranWithoutRun).toEqual([]);
    expect(facts.runs).toEqual([{ pipeline: 'every5', n: 12 }]);
    expect(facts.notTerminal).toEqual([]);
  }, 60_000);

  it('re-fires nothing after a 1-hour clock rewind (two schedulers)', async () => {
    const rng = seededRng('scheduler-rewind');
    const path = tempStore();
    const plans = () => [scheduled('every5', '*/5 * * * *'), scheduled('every6h', '0 */6 * * *')];
    const cluster = createCluster(path, plans, rng);
    cleanups.push(() => cluster.closeAll());
    await cluster.startInstance('a', START);
    await cluster.startInstance('b', START);
    await lockstep(cluster.live, START + 2 * HOUR);
    for (const i of cluster.live()) i.clock.set(START + HOUR);
    await lockstep(cluster.live, START + 2 * HOUR); // the rewound hour again: nothing new
    expect(storeFacts(path).runs).toEqual([{ pipeline: 'every5', n: 24 }]);
    await lockstep(cluster.live, START + 2 * HOUR + 10 * MINUTE);
    await cluster.closeAll();
    cleanups.pop();
    const facts = storeFacts(path);
    expect(facts.duplicates).toEqual([]);
    expect(facts.runs).toEqual([{ pipeline: 'every5', n: 26 }]);
    expect(facts.fires).toEqual([{ pipeline: 'every5', outcome: 'ran', n: 26 }]);
  }, 60_000);
});
