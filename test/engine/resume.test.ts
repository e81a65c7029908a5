import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { isLocalOwnerAlive, markInterruptedRuns } from '../../src/engine/interrupted.js';
import { prepareResume } from '../../src/engine/resume.js';
import { EngineHarness } from '../support/engine-harness.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';

async function parked(clock: ManualClock): Promise<void> {
  for (let i = 0; i < 10_000 && clock.pending === 0; i++)
    await new Promise((resolve) => setImmediate(resolve));
  if (clock.pending === 0) throw new Error('nothing is sleeping on the clock');
}

describe('pipeline retries', () => {
  it('retries a failed run as a whole; succeeded tasks keep their outputs and do not run again', async () => {
    const clock = new ManualClock(0);
    const h = new EngineHarness({ clock });
    const notified: string[] = [];
    h.register({ name: 'notify', run: (_a, ctx) => void notified.push(ctx.hook!.event) });
    const p = plan({
      tasks: [ok('a'), task('b', { handler: 'flaky', deps: ['a'] }), ok('c', ['b'])],
      retries: 2,
      retry: { delayMs: 5000 },
      onFailure: ['notify'],
      onSuccess: ['notify'],
    });
    const created = await h.create(p);
    const done = h.execute(created.id);
    await parked(clock);
    const waiting = (await h.store.getRun(created.id))!;
    expect(waiting).toMatchObject({
      state: 'retrying',
      attempt: 2,
      nextAttemptAt: new Date(5000).toISOString(),
    });
    expect(waiting.error?.message).toBe('task "b" failed: flaky attempt 1');
    expect((await h.outcome(created.id)).states).toEqual({ a: 'succeeded', b: 'pending', c: 'pending' });
    expect(h.eventsOf('run:retrying')).toEqual([expect.objectContaining({ attempt: 2, delayMs: 5000 })]);
    await clock.advance(5000);
    const run = await done;
    expect(run).toMatchObject({ state: 'succeeded', attempt: 2, error: null });
    const { tasks } = await h.outcome(created.id);
    expect(h.calls.get('a')).toBe(1);
    expect(tasks.a!.output).toEqual({ task: 'a' });
    expect(tasks.b).toMatchObject({ state: 'succeeded', attempts: 2 });
    // Hooks fire on the final outcome only.
    expect(notified).toEqual(['run_success']);
  });
});

describe('prepareResume', () => {
  it('re-runs the failed, skipped and cancelled tasks of a failed run, keeping succeeded ones', async () => {
    const h = new EngineHarness();
    const first = await h.run(plan({ tasks: [ok('a'), boom('b', ['a']), ok('c', ['b'])] }));
    expect(first.run.state).toBe('failed');
    h.register(h.track('boom', () => ({ fixed: true })));
    const queued = await prepareResume(h.store, first.run.id, { now: 0 });
    expect(queued).toMatchObject({ state: 'queued', attempt: 2, error: null, finishedAt: null });
    expect((await h.outcome(first.run.id)).states).toEqual({ a: 'succeeded', b: 'pending', c: 'pending' });
    const run = await h.execute(first.run.id);
    expect(run.state).toBe('succeeded');
    expect(h.calls.get('a')).toBe(1);
    const { tasks, attempts } = await h.outcome(first.run.id);
    expect(tasks.b).toMatchObject({ state: 'succeeded', attempts: 2, output: { fixed: true } });
    expect(attempts.filter((x) => x.task === 'b').map((x) => [x.attempt, x.state])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
  });

  it('re-runs what is downstream of a failed task even when it succeeded (an all_done cleanup)', async () => {
    const h = new EngineHarness();
    const first = await h.run(
      plan({
        tasks: [
          ok('a'),
          boom('publish', ['a']),
          task('cleanup', { deps: ['publish'], triggerRule: 'all_done' }),
        ],
      }),
    );
    expect(first.states).toEqual({ a: 'succeeded', publish: 'failed', cleanup: 'succeeded' });
    h.register(h.track('boom', () => null));
    await prepareResume(h.store, first.run.id, { now: 0 });
    expect((await h.outcome(first.run.id)).states).toEqual({
      a: 'succeeded',
      publish: 'pending',
      cleanup: 'pending',
    });
    const run = await h.execute(first.run.id);
    expect(run.state).toBe('succeeded');
    expect(h.calls.get('a')).toBe(1);
    expect(h.calls.get('cleanup')).toBe(2);
  });

  it('with a task that succeeded: runs it and everything downstream again, nothing upstream', async () => {
    const h = new EngineHarness();
    const first = await h.run(plan({ tasks: [ok('a'), ok('c', ['a']), ok('d', ['c']), boom('e', ['a'])] }));
    expect(first.run.state).toBe('failed');
    await prepareResume(h.store, first.run.id, { task: 'c', now: 0 });
    expect((await h.outcome(first.run.id)).states).toEqual({
      a: 'succeeded',
      c: 'pending',
      d: 'pending',
      e: 'failed',
    });
    await h.execute(first.run.id);
    expect([h.calls.get('a'), h.calls.get('c'), h.calls.get('d')]).toEqual([1, 2, 2]);
  });

  it('with a task: resets only that task and what is downstream of it', async () => {
    const h = new EngineHarness();
    const first = await h.run(plan({ tasks: [boom('x'), ok('y', ['x']), boom('other')] }));
    expect(first.states).toEqual({ x: 'failed', y: 'skipped', other: 'failed' });
    await prepareResume(h.store, first.run.id, { task: 'x', now: 0 });
    expect((await h.outcome(first.run.id)).states).toEqual({ x: 'pending', y: 'pending', other: 'failed' });
    h.register(h.track('boom', () => null));
    const run = await h.execute(first.run.id);
    // `other` was not re-run, so the run still fails on it.
    expect(run.state).toBe('failed');
    expect(run.error?.message).toMatch(/^task "other" failed/);
    expect((await h.outcome(first.run.id)).states).toEqual({
      x: 'succeeded',
      y: 'succeeded',
      other: 'failed',
    });
  });

  it('refuses runs that cannot be resumed and unknown tasks', async () => {
    const h = new EngineHarness();
    const good = await h.run(plan({ tasks: [ok('a')] }));
    await expect(prepareResume(h.store, good.run.id, { now: 0 })).rejects.toMatchObject({
      code: 'RUN_STATE',
    });
    const bad = await h.run(plan({ tasks: [ok('a'), boom('b')] }));
    await expect(prepareResume(h.store, bad.run.id, { task: 'zzz', now: 0 })).rejects.toMatchObject({
      code: 'USAGE',
    });
    await expect(prepareResume(h.store, 'r_nope', { now: 0 })).rejects.toMatchObject({
      code: 'RUN_NOT_FOUND',
    });
  });
});

describe('interrupted runs', () => {
  /** What a process killed mid-run leaves behind: run running, one task done, one mid-attempt. */
  async function killedRun(h: EngineHarness, owner: string) {
    const created = await h.create(plan({ tasks: [ok('a'), ok('b', ['a']), ok('c', ['b'])] }));
    const t = new Date(0).toISOString();
    await h.store.updateRun(created.id, { state: 'running', owner, startedAt: t, heartbeatAt: t });
    await h.store.updateTaskRun(created.id, 'a', {
      state: 'succeeded',
      attempts: 1,
      output: { from: 'before' },
    });
    await h.store.updateTaskRun(created.id, 'b', { state: 'running', attempts: 1, startedAt: t });
    await h.store.insertAttempt({
      runId: created.id,
      task: 'b',
      attempt: 1,
      state: 'running',
      delayMs: 0,
      startedAt: t,
      finishedAt: null,
      error: null,
      worker: owner,
      pid: null,
    });
    return created.id;
  }

  it('marks runs of dead owners interrupted, then resume continues them without re-running what succeeded', async () => {
    const h = new EngineHarness();
    const dead = await killedRun(h, 'gone:1');
    const alive = await killedRun(h, 'here:2');
    const marked = await markInterruptedRuns(h.store, {
      isOwnerAlive: (owner) => owner === 'here:2',
      now: 1000,
    });
    expect(marked.map((r) => r.id)).toEqual([dead]);
    expect((await h.store.getRun(dead))!.state).toBe('interrupted');
    expect((await h.store.getRun(alive))!.state).toBe('running');

    await prepareResume(h.store, dead, { now: 2000 });
    expect((await h.outcome(dead)).states).toEqual({ a: 'succeeded', b: 'pending', c: 'pending' });
    const run = await h.execute(dead);
    expect(run.state).toBe('succeeded');
    expect(h.calls.get('a')).toBeUndefined();
    const { tasks, attempts } = await h.outcome(dead);
    expect(tasks.a!.output).toEqual({ from: 'before' });
    expect(
      attempts.filter((x) => x.task === 'b').map((x) => [x.attempt, x.state, x.error?.code ?? null]),
    ).toEqual([
      [1, 'lost', 'TASK_LOST'],
      [2, 'succeeded', null],
    ]);
  });

  it('executeRun continues an interrupted run directly, closing its open attempts', async () => {
    const h = new EngineHarness();
    const id = await killedRun(h, 'gone:1');
    await markInterruptedRuns(h.store, { isOwnerAlive: () => false, now: 0 });
    const run = await h.execute(id);
    expect(run.state).toBe('succeeded');
    expect((await h.store.getAttempts(id, 'b')).map((x) => x.state)).toEqual(['lost', 'succeeded']);
  });

  it('an owner on another host counts as dead only when its heartbeat is stale', async () => {
    const h = new EngineHarness();
    const id = await killedRun(h, 'elsewhere:7');
    const alive = () => true;
    expect(await markInterruptedRuns(h.store, { isOwnerAlive: alive, now: 30_000 })).toHaveLength(0);
    expect(
      (await markInterruptedRuns(h.store, { isOwnerAlive: alive, now: 61_000 })).map((r) => r.id),
    ).toEqual([id]);
  });

  it('isLocalOwnerAlive asks this host about its own processes only', () => {
    expect(isLocalOwnerAlive(`${hostname()}:${process.pid}`)).toBe(true);
    expect(isLocalOwnerAlive(`${hostname()}:2147483646`)).toBe(false);
    expect(isLocalOwnerAlive('another-host-entirely:1')).toBe(true);
    expect(isLocalOwnerAlive('garbage')).toBe(false);
  });

  it('refuses to execute a run that another live process owns', async () => {
    const h = new EngineHarness();
    const id = await killedRun(h, 'someone-else:3');
    await expect(h.execute(id)).rejects.toMatchObject({ code: 'RUN_STATE' });
  });
});
