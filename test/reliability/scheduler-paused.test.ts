// A `weft serve` process frozen (SIGSTOP) for longer than a tick, then thawed (SIGCONT), on a
// simulated clock: it says why it is late (`scheduler:late`, cause `overslept`), records the ticks
// it slept through as missed with the reason (catchup: none), and goes on firing on time.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createScaledClock } from '../../src/core/clock.js';
import { waitFor } from '../worker/pg-support.js';
import { distProblem, spawnServe, testClockValue, type WeftProcess } from './serve-processes.js';

const MINUTE = 60_000;
/** 5 simulated minutes in 833 ms of real time. */
const SPEED = 360;
const START = Date.parse('2025-01-01T04:00:30Z');
const iso = (at: number) => new Date(at).toISOString();

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const problem = distProblem();
if (problem) console.warn(`SKIPPED test/reliability/scheduler-paused.test.ts: ${problem}`);

describe.skipIf(problem !== null)('a weft serve process frozen past its ticks', () => {
  it('logs scheduler:late (overslept), records the ticks it slept through as missed, then fires on time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-paused-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pipelines = join(dir, 'pipelines');
    mkdirSync(pipelines);
    writeFileSync(
      join(pipelines, 'every5.yaml'),
      'name: every5\nschedule:\n  cron: "*/5 * * * *"\n  catchup: none\ntasks:\n  a:\n    handler: noop\n',
    );
    const store = join(dir, 'weft.db');
    // The clock stands at START until the process has surely started (node on a busy machine can
    // take seconds), then runs at SPEED. It must be up before 04:05 (750 ms later) to fire that tick.
    const realAnchor = Date.now() + 10_000;
    const clock = createScaledClock({ simAnchor: START, realAnchor, speed: SPEED });
    const serve: WeftProcess = spawnServe('serve', {
      cwd: dir,
      pipelines,
      store,
      clock: testClockValue(START, realAnchor, SPEED),
    });
    cleanups.push(() => serve.stop('SIGKILL'));
    await serve.started;

    // Frozen from the end of the 04:05 tick's run to 04:23 (about 18 simulated minutes, 3 s): past
    // the 04:10, 04:15, 04:20 ticks. Not from a fixed 04:06, 83 ms of real time after the tick: a
    // starved process frozen before it came to 04:05 would sleep through that one as well.
    await waitFor(() => Promise.resolve(serve.counts.has('run:finished')), 30_000, 'the 04:05 run');
    expect(clock.now(), 'the 04:05 run ended too late').toBeLessThan(START + 9 * MINUTE);
    serve.child.kill('SIGSTOP');
    await clock.sleep(START + 22.5 * MINUTE - clock.now());
    serve.child.kill('SIGCONT');
    const thawedAt = clock.now();
    await clock.sleep(START + 37 * MINUTE - clock.now());
    const db = new Database(store, { readonly: true });
    cleanups.push(() => void db.close());
    // The last tick decided before the stop (a starved process may come to it late).
    const lastFire = db.prepare('SELECT outcome FROM fires WHERE scheduled_for = ?');
    await waitFor(
      () => Promise.resolve(lastFire.get('2025-01-01T04:35:00.000Z') !== undefined),
      30_000,
      'the 04:35 fire',
    );
    expect(await serve.stop('SIGTERM')).toBe(0);

    const late = serve.late.filter((l) => l.cause === 'overslept');
    const thaw = late.find((l) => iso(l.dueAt) === '2025-01-01T04:10:00.000Z');
    expect(thaw, JSON.stringify(late)).toBeDefined();
    expect(thaw!.at).toBeGreaterThanOrEqual(thawedAt - MINUTE);
    // A later stall of a loaded machine, if any, said so too; only such a tick may be missed.
    const stalled = (at: number) => late.some((l) => l !== thaw && l.dueAt <= at && at <= l.at);
    const fires = db
      .prepare('SELECT scheduled_for, outcome, reason FROM fires ORDER BY scheduled_for')
      .all() as { scheduled_for: string; outcome: string; reason: string | null }[];
    const byTime = new Map(fires.map((f) => [f.scheduled_for, f]));
    expect(byTime.get('2025-01-01T04:05:00.000Z')?.outcome).toBe('ran');
    // Thawed 3 minutes after the newest of them, past the 60 s grace: all three missed.
    for (const at of ['04:10', '04:15', '04:20']) {
      const fire = byTime.get(`2025-01-01T${at}:00.000Z`);
      expect(fire?.outcome, at).toBe('missed');
      expect(fire?.reason).toContain('the scheduler was paused or the clock jumped forward');
    }
    for (const at of ['04:25', '04:30', '04:35']) {
      const time = `2025-01-01T${at}:00.000Z`;
      expect(byTime.get(time)?.outcome, at).toBe(stalled(Date.parse(time)) ? 'missed' : 'ran');
    }
    expect(fires).toHaveLength(7);
  }, 60_000);
});
