import { describe, expect, it } from 'vitest';
import { EngineHarness } from '../support/engine-harness.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';

describe('executeRun: trigger rules, skips and continue_on_error', () => {
  it('all_success: a task with a failed upstream task is skipped with the reason', async () => {
    const h = new EngineHarness();
    const { tasks } = await h.run(plan({ tasks: [ok('a'), boom('b'), ok('c', ['a', 'b'])] }));
    expect(tasks.c!.state).toBe('skipped');
    expect(tasks.c!.reason).toBe('upstream task "b" failed');
    expect(h.calls.get('c')).toBeUndefined();
    expect(h.eventsOf('task:skipped')).toEqual([
      expect.objectContaining({ task: 'c', reason: 'upstream task "b" failed' }),
    ]);
  });

  it('all_done: runs once every upstream task finished, whatever the outcome', async () => {
    const h = new EngineHarness();
    const { run, states } = await h.run(
      plan({ tasks: [ok('a'), boom('b'), ok('c', ['a', 'b'], { triggerRule: 'all_done' })] }),
    );
    expect(states.c).toBe('succeeded');
    // b still failed the run.
    expect(run.state).toBe('failed');
  });

  it('one_failed: runs when an upstream task failed, is skipped when none did', async () => {
    const h = new EngineHarness();
    const { states, tasks } = await h.run(
      plan({
        tasks: [
          ok('a'),
          boom('b'),
          ok('alert', ['a', 'b'], { triggerRule: 'one_failed' }),
          ok('quiet', ['a'], { triggerRule: 'one_failed' }),
        ],
      }),
    );
    expect(states.alert).toBe('succeeded');
    expect(states.quiet).toBe('skipped');
    expect(tasks.quiet!.reason).toBe('no upstream task failed (trigger rule one_failed)');
  });

  it('one_failed decides early: it runs as soon as one upstream task failed, before the others end', async () => {
    const h = new EngineHarness();
    const p = plan({
      tasks: [
        boom('b'),
        task('slow', { handler: 'gate', with: { gate: 'slow' } }),
        ok('alert', ['b', 'slow'], { triggerRule: 'one_failed' }),
      ],
    });
    const created = await h.create(p);
    const running = h.execute(created.id);
    await h.waitFor((e) => e.type === 'task:succeeded' && e.task === 'alert');
    expect(h.eventsOf('task:succeeded').map((e) => e.task)).not.toContain('slow');
    h.open('slow');
    expect((await running).state).toBe('failed');
  });

  it('all_failed: runs when every upstream task failed, skipped otherwise', async () => {
    const h = new EngineHarness();
    const { states, tasks } = await h.run(
      plan({
        tasks: [
          ok('a'),
          boom('b1'),
          boom('b2'),
          ok('cleanup', ['b1', 'b2'], { triggerRule: 'all_failed' }),
          ok('not', ['a', 'b1'], { triggerRule: 'all_failed' }),
        ],
      }),
    );
    expect(states.cleanup).toBe('succeeded');
    expect(states.not).toBe('skipped');
    expect(tasks.not!.reason).toBe('upstream task "a" succeeded (trigger rule all_failed)');
  });

  it('skips transitively, each by its own rule (an all_done task still runs after skipped ones)', async () => {
    const h = new EngineHarness();
    const { states, tasks } = await h.run(
      plan({
        tasks: [boom('a'), ok('b', ['a']), ok('c', ['b']), ok('d', ['c'], { triggerRule: 'all_done' })],
      }),
    );
    expect(states).toEqual({ a: 'failed', b: 'skipped', c: 'skipped', d: 'succeeded' });
    expect(tasks.c!.reason).toBe('upstream task "b" was skipped');
  });

  it('skips a 2,000-task chain after a failure without deep recursion', async () => {
    const h = new EngineHarness();
    const tasks = [boom('t0'), ...Array.from({ length: 2000 }, (_, i) => ok(`t${i + 1}`, [`t${i}`]))];
    const { states } = await h.run(plan({ tasks }));
    expect(states.t2000).toBe('skipped');
    expect(Object.values(states).filter((s) => s === 'skipped')).toHaveLength(2000);
  });

  it('when false: the task is skipped without calling its handler; dependents follow their rule; the run succeeds', async () => {
    const h = new EngineHarness();
    const { run, states, tasks } = await h.run(
      plan({
        tasks: [
          ok('a'),
          ok('never', ['a'], { when: false }),
          ok('gated', ['a'], { when: '${{ params.go }}' }),
          ok('after', ['never']),
          ok('join', ['never', 'gated'], { triggerRule: 'all_done' }),
        ],
      }),
      { params: { go: true } },
    );
    expect(states).toEqual({
      a: 'succeeded',
      never: 'skipped',
      gated: 'succeeded',
      after: 'skipped',
      join: 'succeeded',
    });
    expect(tasks.never!.reason).toBe('its when condition is false: false');
    expect(h.calls.get('never')).toBeUndefined();
    expect(run.state).toBe('succeeded');
  });

  it('when may read upstream outputs', async () => {
    const h = new EngineHarness();
    h.register(h.track('count', () => ({ rows: 0 })));
    const { states } = await h.run(
      plan({
        tasks: [
          task('extract', { handler: 'count' }),
          ok('load', ['extract'], { when: '${{ tasks.extract.output.rows > 0 }}' }),
        ],
      }),
    );
    expect(states.load).toBe('skipped');
  });

  it('continue_on_error: the task is recorded failed, dependents run, the run succeeds', async () => {
    const h = new EngineHarness();
    const { run, states } = await h.run(
      plan({ tasks: [boom('a', [], { continueOnError: true }), ok('b', ['a'])] }),
    );
    expect(states).toEqual({ a: 'failed', b: 'succeeded' });
    expect(run.state).toBe('succeeded');
    expect(h.eventsOf('task:failed')).toEqual([
      expect.objectContaining({ task: 'a', continueOnError: true, attempts: 1 }),
    ]);
  });
});
