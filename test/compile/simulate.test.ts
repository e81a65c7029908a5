import { describe, expect, it } from 'vitest';
import { compilePipeline } from '../../src/compile/compile.js';
import type { Plan } from '../../src/compile/plan.js';
import { simulateRun } from '../../src/compile/simulate.js';
import { specFromYaml } from '../support/source-from-yaml.js';

function plan(yaml: string): Plan {
  const { source, spec } = specFromYaml(`name: sim\n${yaml}`);
  const result = compilePipeline(source, spec);
  expect(result.diagnostics).toEqual([]);
  return result.plan!;
}

function states(result: ReturnType<typeof simulateRun>): Record<string, string> {
  return Object.fromEntries(Object.entries(result.tasks).map(([name, t]) => [name, t.state]));
}

const fanIn = plan(`tasks:
  a: {}
  b: { on_failure: [notify] }
  c: {}
  join: { depends_on: [a, b, c] }
  publish: { depends_on: [join] }
  cleanup: { depends_on: [a, b, c], trigger_rule: all_done }
  alert: { depends_on: [a, b, c], trigger_rule: one_failed }
  all_bad: { depends_on: [a, b], trigger_rule: all_failed }
on_failure: [page]
on_success: [celebrate]
`);

describe('simulateRun', () => {
  it('runs everything but the failure-only tasks when nothing fails', () => {
    const result = simulateRun(fanIn, { fail: new Set() });
    expect(states(result)).toEqual({
      a: 'succeeded',
      b: 'succeeded',
      c: 'succeeded',
      join: 'succeeded',
      publish: 'succeeded',
      cleanup: 'succeeded',
      alert: 'skipped',
      all_bad: 'skipped',
    });
    expect(result.tasks.alert!.reason).toBe('no upstream task failed (trigger rule one_failed)');
    expect(result.runState).toBe('succeeded');
    expect(result.hooks).toEqual([{ event: 'run_success', task: null, handler: 'celebrate' }]);
  });

  it('fan-in: a failure skips all_success dependents, runs all_done cleanup and the one_failed alert', () => {
    const result = simulateRun(fanIn, { fail: new Set(['b']) });
    expect(states(result)).toEqual({
      a: 'succeeded',
      b: 'failed',
      c: 'succeeded',
      join: 'skipped',
      publish: 'skipped',
      cleanup: 'succeeded',
      alert: 'succeeded',
      all_bad: 'skipped',
    });
    expect(result.tasks.join!.reason).toBe('upstream task "b" failed');
    expect(result.tasks.publish!.reason).toBe('upstream task "join" was skipped');
    expect(result.tasks.all_bad!.reason).toBe('upstream task "a" succeeded (trigger rule all_failed)');
    expect(result.runState).toBe('failed');
    expect(result.hooks).toEqual([
      { event: 'task_failure', task: 'b', handler: 'notify' },
      { event: 'run_failure', task: 'b', handler: 'page' },
    ]);
  });

  it('all_failed runs only when every upstream task failed', () => {
    const result = simulateRun(fanIn, { fail: new Set(['a', 'b']) });
    expect(result.tasks.all_bad).toEqual({ state: 'succeeded', reason: null });
    expect(result.hooks.filter((h) => h.event === 'run_failure')).toEqual([
      { event: 'run_failure', task: 'a', handler: 'page' },
    ]);
  });

  it('a failing cleanup task fails the run too', () => {
    const result = simulateRun(fanIn, { fail: new Set(['cleanup']) });
    expect(result.runState).toBe('failed');
    expect(result.hooks.at(-1)).toEqual({ event: 'run_failure', task: 'cleanup', handler: 'page' });
  });

  it('continue_on_error: dependents run, hooks fire, and the run does not fail', () => {
    const p = plan(`tasks:
  flaky:
    continue_on_error: true
    on_failure: [notify]
  next: { depends_on: [flaky] }
  alert: { depends_on: [flaky], trigger_rule: one_failed }
on_failure: [page]
on_success: [celebrate]
`);
    const result = simulateRun(p, { fail: new Set(['flaky']) });
    expect(states(result)).toEqual({ flaky: 'failed', next: 'succeeded', alert: 'skipped' });
    expect(result.tasks.flaky!.reason).toContain('continue_on_error');
    expect(result.runState).toBe('succeeded');
    expect(result.hooks).toEqual([
      { event: 'task_failure', task: 'flaky', handler: 'notify' },
      { event: 'run_success', task: null, handler: 'celebrate' },
    ]);
  });

  it('skips tasks whose `when` is false (literal by default, or as the caller decides)', () => {
    const p = plan(`tasks:
  a: { when: false }
  b: { depends_on: [a] }
  c: { when: "params.x == 1" }
params:
  x: { type: integer, default: 1 }
`);
    const literal = simulateRun(p, { fail: new Set() });
    expect(states(literal)).toEqual({ a: 'skipped', b: 'skipped', c: 'succeeded' });
    expect(literal.tasks.a!.reason).toBe('its `when` condition is false');
    const custom = simulateRun(p, { fail: new Set(['c']), when: (task) => task.name !== 'c' });
    expect(states(custom)).toEqual({ a: 'succeeded', b: 'succeeded', c: 'skipped' });
    expect(custom.runState).toBe('succeeded');
  });

  it('inherits on_failure hooks from defaults', () => {
    const p = plan(`defaults:
  on_failure: [notify]
tasks:
  a: {}
  b: { on_failure: [special] }
`);
    const result = simulateRun(p, { fail: new Set(['a', 'b']) });
    expect(result.hooks).toEqual([
      { event: 'task_failure', task: 'a', handler: 'notify' },
      { event: 'task_failure', task: 'b', handler: 'special' },
    ]);
  });
});
