import { describe, expect, it } from 'vitest';
import type { Plan } from '../../src/compile/plan.js';
import type { TaskState } from '../../src/core/states.js';
import type { TriggerRule } from '../../src/pipeline/spec.js';
import {
  advanceTasks,
  completeRun,
  decodeStates,
  encodeStates,
  startTasks,
  type AdvanceResult,
  type CoordState,
  type FinishedTask,
  type RunView,
  type TaskOutcome,
} from '../../src/worker/advance.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';

const NOW = 1_000_000;
const RUN: RunView = { id: 'r1', attempt: 1, firstAttempt: 1, cancelRequested: false };

/** Coordination states by name, in plan order. */
function states(p: Plan, byName: Record<string, CoordState>): CoordState[] {
  return p.order.map((name) => byName[name] ?? 'waiting');
}

function named(p: Plan, list: readonly CoordState[]): Record<string, CoordState> {
  return Object.fromEntries(p.order.map((name, i) => [name, list[i]!]));
}

const success: TaskOutcome = { kind: 'succeeded', output: null };
const failure = (nth = 1, retryable = true): TaskOutcome => ({
  kind: 'failed',
  error: { code: 'HANDLER_FAILED', message: 'no' },
  retryable,
  attempt: nth,
  nth,
});

function finish(task: string, outcome: TaskOutcome, from: TaskState = 'running'): FinishedTask {
  return { task, from, outcome };
}

function enqueued(result: AdvanceResult): string[] {
  return result.changes.filter((c) => c.type === 'enqueue').map((c) => c.task);
}

function taskChanges(result: { changes: AdvanceResult['changes'] }): Record<string, string> {
  return Object.fromEntries(
    result.changes.flatMap((c) => (c.type === 'task' ? [[c.task, `${c.from}->${c.to}`]] : [])),
  );
}

describe('coordination states', () => {
  it('round-trip as one character per task', () => {
    const list: CoordState[] = ['waiting', 'queued', 'succeeded', 'failed', 'skipped', 'cancelled'];
    expect(encodeStates(list)).toBe('wqsfkc');
    expect(decodeStates('wqsfkc')).toEqual(list);
    expect(() => decodeStates('x')).toThrow(/unknown coordination state/);
  });
});

describe('startTasks', () => {
  it('enqueues the roots, keeps the rest waiting', () => {
    const p = plan({ tasks: [ok('a'), ok('b'), ok('c', ['a', 'b'])] });
    const started = startTasks({ plan: p, taskStates: ['pending', 'pending', 'pending'], now: NOW });
    expect(named(p, started.states)).toEqual({ a: 'queued', b: 'queued', c: 'waiting' });
    expect(started.changes).toEqual([
      { type: 'enqueue', task: 'a', queue: 'default', availableAt: NOW, delayMs: 0, mode: 'new' },
      { type: 'enqueue', task: 'b', queue: 'default', availableAt: NOW, delayMs: 0, mode: 'new' },
    ]);
    expect(started.complete).toBe(false);
  });

  it('continues a resumed run: succeeded tasks stay, what they unblock is enqueued on its own queue', () => {
    const p = plan({ tasks: [ok('a'), ok('b', ['a'], { queue: 'gpu' }), ok('c', ['b'])] });
    const started = startTasks({ plan: p, taskStates: ['succeeded', 'pending', 'pending'], now: NOW });
    expect(named(p, started.states)).toEqual({ a: 'succeeded', b: 'queued', c: 'waiting' });
    expect(started.changes).toEqual([
      { type: 'enqueue', task: 'b', queue: 'gpu', availableAt: NOW, delayMs: 0, mode: 'new' },
    ]);
  });

  it('refuses tasks left running (they must be reset first)', () => {
    const p = plan({ tasks: [ok('a')] });
    expect(() => startTasks({ plan: p, taskStates: ['running'], now: NOW })).toThrow(/still running/);
  });
});

describe('advanceTasks: trigger rules', () => {
  const rules: { rule: TriggerRule; upstream: ('ok' | 'fail')[]; expected: 'run' | 'skip' }[] = [
    { rule: 'all_success', upstream: ['ok', 'ok'], expected: 'run' },
    { rule: 'all_success', upstream: ['ok', 'fail'], expected: 'skip' },
    { rule: 'all_done', upstream: ['ok', 'fail'], expected: 'run' },
    { rule: 'all_done', upstream: ['fail', 'fail'], expected: 'run' },
    { rule: 'one_failed', upstream: ['ok', 'fail'], expected: 'run' },
    { rule: 'one_failed', upstream: ['ok', 'ok'], expected: 'skip' },
    { rule: 'all_failed', upstream: ['fail', 'fail'], expected: 'run' },
    { rule: 'all_failed', upstream: ['ok', 'fail'], expected: 'skip' },
  ];
  for (const { rule, upstream, expected } of rules) {
    it(`${rule} after ${upstream.join(' + ')}: ${expected}`, () => {
      const p = plan({
        tasks: [ok('u1'), ok('u2'), task('d', { handler: 'ok', deps: ['u1', 'u2'], triggerRule: rule })],
      });
      // u1 ended earlier; u2 ends now.
      const before = states(p, { u1: upstream[0] === 'ok' ? 'succeeded' : 'failed', u2: 'queued' });
      const result = advanceTasks({
        plan: p,
        states: before,
        run: RUN,
        finished: [finish('u2', upstream[1] === 'ok' ? success : failure(1, false))],
        now: NOW,
      });
      expect(named(p, result.states).d).toBe(expected === 'run' ? 'queued' : 'skipped');
      expect(enqueued(result)).toEqual(expected === 'run' ? ['d'] : []);
    });
  }

  it('decides early: all_success is skipped as soon as one upstream fails, the other still running', () => {
    const p = plan({ tasks: [ok('u1'), ok('u2'), ok('d', ['u1', 'u2'])] });
    const result = advanceTasks({
      plan: p,
      states: states(p, { u1: 'queued', u2: 'queued' }),
      run: RUN,
      finished: [finish('u1', failure(1, false))],
      now: NOW,
    });
    expect(named(p, result.states)).toEqual({ u1: 'failed', u2: 'queued', d: 'skipped' });
    expect(result.complete).toBe(false);
    const skip = result.changes.find((c) => c.type === 'task' && c.task === 'd');
    expect(skip).toMatchObject({
      from: 'pending',
      to: 'skipped',
      reason: 'upstream task "u1" failed',
      finished: true,
    });
  });

  it('waits while an upstream task is unfinished and nothing decides early', () => {
    const p = plan({ tasks: [ok('u1'), ok('u2'), ok('d', ['u1', 'u2'])] });
    const result = advanceTasks({
      plan: p,
      states: states(p, { u1: 'queued', u2: 'queued' }),
      run: RUN,
      finished: [finish('u1', success)],
      now: NOW,
    });
    expect(named(p, result.states)).toEqual({ u1: 'succeeded', u2: 'queued', d: 'waiting' });
    expect(enqueued(result)).toEqual([]);
  });

  it('skips transitively, and an all_done task after the skipped ones still runs', () => {
    const p = plan({
      tasks: [
        boom('a'),
        ok('b', ['a']),
        ok('c', ['b']),
        ok('d', ['c']),
        task('cleanup', { handler: 'ok', deps: ['d'], triggerRule: 'all_done' }),
      ],
    });
    const result = advanceTasks({
      plan: p,
      states: states(p, { a: 'queued' }),
      run: RUN,
      finished: [finish('a', failure(1, false))],
      now: NOW,
    });
    expect(named(p, result.states)).toEqual({
      a: 'failed',
      b: 'skipped',
      c: 'skipped',
      d: 'skipped',
      cleanup: 'queued',
    });
    expect(taskChanges(result)).toEqual({
      a: 'running->failed',
      b: 'pending->skipped',
      c: 'pending->skipped',
      d: 'pending->skipped',
    });
    expect(enqueued(result)).toEqual(['cleanup']);
  });

  it('continue_on_error: dependents run as after a success, the run still fails', () => {
    const p = plan({ tasks: [boom('a', [], { continueOnError: true }), ok('b', ['a']), boom('c')] });
    const result = advanceTasks({
      plan: p,
      states: states(p, { a: 'queued', c: 'queued' }),
      run: RUN,
      finished: [finish('a', failure(1, false))],
      now: NOW,
    });
    expect(named(p, result.states)).toEqual({ a: 'failed', b: 'queued', c: 'queued' });
    const done = completeRun({
      plan: p,
      states: states(p, { a: 'failed', b: 'succeeded', c: 'succeeded' }),
      run: { ...RUN, state: 'running' },
      errors: new Map([['a', { code: 'HANDLER_FAILED', message: 'no' }]]),
      previousFailures: 0,
      now: NOW,
    });
    expect(done.kind === 'finished' && done.run.to).toBe('succeeded');
  });

  it('evaluates a 1,000-way fan-in once per transaction, not once per finished upstream task', () => {
    const n = 1000;
    const p = plan({
      tasks: [
        ...Array.from({ length: n }, (_, i) => ok(`u${i}`)),
        ok(
          'join',
          Array.from({ length: n }, (_, i) => `u${i}`),
        ),
      ],
    });
    const before = states(
      p,
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`u${i}`, 'queued' as CoordState])),
    );
    const started = Date.now();
    const half = advanceTasks({
      plan: p,
      states: before,
      run: RUN,
      finished: Array.from({ length: n / 2 }, (_, i) => finish(`u${i}`, success)),
      now: NOW,
    });
    expect(named(p, half.states).join).toBe('waiting');
    const rest = advanceTasks({
      plan: p,
      states: half.states,
      run: RUN,
      finished: Array.from({ length: n / 2 }, (_, i) => finish(`u${i + n / 2}`, success)),
      now: NOW,
    });
    expect(named(p, rest.states).join).toBe('queued');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('advanceTasks: retries, lost attempts, cancel', () => {
  it('a failed attempt with retries left goes retrying with the policy delay and back into the queue', () => {
    const p = plan({ tasks: [ok('a', [], { retries: 2, retry: { delayMs: 100, backoff: 'exponential' } })] });
    const first = advanceTasks({
      plan: p,
      states: ['queued'],
      run: RUN,
      finished: [finish('a', failure(1))],
      now: NOW,
    });
    expect(first.states).toEqual(['queued']);
    expect(first.changes).toEqual([
      expect.objectContaining({ type: 'task', from: 'running', to: 'retrying', nextAttemptAt: NOW + 100 }),
      { type: 'enqueue', task: 'a', queue: 'default', availableAt: NOW + 100, delayMs: 100, mode: 'retry' },
    ]);
    const second = advanceTasks({
      plan: p,
      states: ['queued'],
      run: RUN,
      finished: [finish('a', failure(2))],
      now: NOW,
    });
    expect(second.changes[1]).toMatchObject({ availableAt: NOW + 200, delayMs: 200 });
    const last = advanceTasks({
      plan: p,
      states: ['queued'],
      run: RUN,
      finished: [finish('a', failure(3))],
      now: NOW,
    });
    expect(last.states).toEqual(['failed']);
    expect(last.complete).toBe(true);
  });

  it('a non-retryable error fails at once, with the task hooks recorded', () => {
    const p = plan({ tasks: [ok('a', [], { retries: 5, onFailure: ['alert', 'page'] })] });
    const result = advanceTasks({
      plan: p,
      states: ['queued'],
      run: RUN,
      finished: [finish('a', failure(1, false))],
      now: NOW,
    });
    expect(result.states).toEqual(['failed']);
    expect(result.hooks.map((h) => [h.key, h.event, h.task, h.handler, h.state])).toEqual([
      ['task_failure:a:0@1', 'task_failure', 'a', 'alert', 'pending'],
      ['task_failure:a:1@1', 'task_failure', 'a', 'page', 'pending'],
    ]);
  });

  it('a lost attempt goes back to pending and into the queue without using a retry; past the cap it fails TASK_LOST', () => {
    const p = plan({ tasks: [ok('a', [], { retries: 0 })] });
    const lost = (n: number): TaskOutcome => ({
      kind: 'lost',
      error: { code: 'TASK_LOST', message: 'gone' },
      attempt: n,
      lost: n,
    });
    const again = advanceTasks({
      plan: p,
      states: ['queued'],
      run: RUN,
      finished: [finish('a', lost(1))],
      now: NOW,
      maxLostAttempts: 2,
    });
    expect(again.states).toEqual(['queued']);
    expect(again.changes).toEqual([
      expect.objectContaining({ type: 'task', from: 'running', to: 'pending' }),
      { type: 'enqueue', task: 'a', queue: 'default', availableAt: NOW, delayMs: 0, mode: 'lost' },
    ]);
    const capped = advanceTasks({
      plan: p,
      states: ['queued'],
      run: RUN,
      finished: [finish('a', lost(3))],
      now: NOW,
      maxLostAttempts: 2,
    });
    expect(capped.states).toEqual(['failed']);
    expect(capped.changes[0]).toMatchObject({ to: 'failed', error: { code: 'TASK_LOST' } });
  });

  it('cancel: waiting and withdrawn tasks are cancelled, running ones are left to their worker, no retry', () => {
    const p = plan({
      tasks: [ok('running'), ok('ready'), ok('retrying', [], { retries: 3 }), ok('later', ['running'])],
    });
    const run = { ...RUN, cancelRequested: true };
    const result = advanceTasks({
      plan: p,
      states: states(p, { running: 'queued', ready: 'queued', retrying: 'queued' }),
      run,
      finished: [],
      withdrawn: new Map<string, TaskState>([
        ['ready', 'pending'],
        ['retrying', 'retrying'],
      ]),
      now: NOW,
    });
    expect(named(p, result.states)).toEqual({
      running: 'queued',
      ready: 'cancelled',
      retrying: 'cancelled',
      later: 'cancelled',
    });
    expect(result.complete).toBe(false);
    const end = advanceTasks({
      plan: p,
      states: result.states,
      run,
      finished: [finish('running', failure(1))],
      now: NOW,
    });
    expect(end.states[0]).toBe('failed');
    expect(end.complete).toBe(true);
    const done = completeRun({
      plan: p,
      states: end.states,
      run: { ...run, state: 'running' },
      errors: new Map(),
      previousFailures: 0,
      now: NOW,
    });
    expect(done).toMatchObject({ kind: 'finished', run: { from: 'running', to: 'cancelled', error: null } });
  });

  it('a task whose `when` is false is skipped from pending, and its dependents follow', () => {
    const p = plan({ tasks: [ok('a', [], { when: 'false' }), ok('b', ['a'])] });
    const result = advanceTasks({
      plan: p,
      states: ['queued', 'waiting'],
      run: RUN,
      finished: [finish('a', { kind: 'skipped', reason: 'its when condition is false' }, 'pending')],
      now: NOW,
    });
    expect(result.states).toEqual(['skipped', 'skipped']);
    expect(taskChanges(result)).toEqual({ a: 'pending->skipped', b: 'pending->skipped' });
  });

  it('refuses a transition the state machine does not allow', () => {
    const p = plan({ tasks: [ok('a')] });
    expect(() =>
      advanceTasks({
        plan: p,
        states: ['queued'],
        run: RUN,
        finished: [finish('a', success, 'pending')],
        now: NOW,
      }),
    ).toThrow(/cannot go from pending to succeeded/);
  });
});

describe('completeRun', () => {
  const p = plan({
    tasks: [ok('a'), boom('b'), boom('c')],
    onFailure: ['alert', { handler: 'page', afterConsecutiveFailures: 3 }],
    onSuccess: ['yay'],
    onRecovery: ['phew'],
  });
  const errors = new Map([
    ['b', { code: 'HANDLER_FAILED', message: 'b broke' }],
    ['c', { code: 'TASK_TIMEOUT', message: 'c slow' }],
  ]);

  it('fails the run naming the first failed task in plan order, with the due failure hooks', () => {
    const done = completeRun({
      plan: p,
      states: ['succeeded', 'failed', 'failed'],
      run: { ...RUN, state: 'running' },
      errors,
      previousFailures: 2,
      now: NOW,
    });
    expect(done.kind).toBe('finished');
    if (done.kind !== 'finished') return;
    expect(done.run).toMatchObject({
      from: 'running',
      to: 'failed',
      error: { code: 'HANDLER_FAILED', message: 'task "b" failed: b broke (and 1 more failed task(s))' },
      finished: true,
    });
    expect(done.hooks.map((h) => h.key)).toEqual(['run_failure:0@1', 'run_failure:1@1']);
  });

  it('succeeds with success hooks, and recovery hooks after failures', () => {
    const done = completeRun({
      plan: p,
      states: ['succeeded', 'succeeded', 'succeeded'],
      run: { ...RUN, state: 'running' },
      errors: new Map(),
      previousFailures: 1,
      now: NOW,
    });
    expect(done.kind === 'finished' && done.hooks.map((h) => h.key)).toEqual([
      'run_success:0@1',
      'run_recovery:0@1',
    ]);
    expect(done.kind === 'finished' && done.run.to).toBe('succeeded');
  });

  it('retries a failed run with run retries left: failed and skipped tasks back to pending, roots after the delay', () => {
    const q = plan({
      tasks: [ok('a'), boom('b', ['a']), ok('c', ['b']), ok('d')],
      retries: 2,
      retry: { delayMs: 500 },
    });
    const ended = states(q, { a: 'succeeded', b: 'failed', c: 'skipped', d: 'succeeded' });
    const done = completeRun({
      plan: q,
      states: ended,
      run: { ...RUN, state: 'running' },
      errors: new Map([['b', { code: 'HANDLER_FAILED', message: 'no' }]]),
      previousFailures: 0,
      now: NOW,
    });
    expect(done.kind).toBe('retrying');
    if (done.kind !== 'retrying') return;
    expect(done.run).toMatchObject({
      from: 'running',
      to: 'retrying',
      attempt: 2,
      nextAttemptAt: NOW + 500,
      finished: false,
    });
    expect(taskChanges(done)).toEqual({ b: 'failed->pending', c: 'skipped->pending' });
    expect(done.changes.filter((c) => c.type === 'enqueue')).toEqual([
      { type: 'enqueue', task: 'b', queue: 'default', availableAt: NOW + 500, delayMs: 500, mode: 'new' },
    ]);
    expect(named(q, done.states)).toEqual({ a: 'succeeded', b: 'queued', c: 'waiting', d: 'succeeded' });
    // The last run retry used up: the run fails for good.
    const final = completeRun({
      plan: q,
      states: ended,
      run: { ...RUN, attempt: 3, state: 'running' },
      errors: new Map(),
      previousFailures: 0,
      now: NOW,
    });
    expect(final.kind === 'finished' && final.run.to).toBe('failed');
  });

  it('does not retry a cancelled run', () => {
    const q = plan({ tasks: [boom('a')], retries: 3 });
    const done = completeRun({
      plan: q,
      states: ['failed'],
      run: { ...RUN, cancelRequested: true, state: 'running' },
      errors: new Map(),
      previousFailures: 0,
      now: NOW,
    });
    expect(done).toMatchObject({ kind: 'finished', run: { to: 'cancelled' } });
  });
});
