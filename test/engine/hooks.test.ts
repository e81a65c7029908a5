import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { HookInfo } from '../../src/handlers/types.js';
import { EngineHarness } from '../support/engine-harness.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';

interface HookCall {
  args: unknown;
  hook: HookInfo | undefined;
  task: string;
}

function withNotify(h: EngineHarness): HookCall[] {
  const calls: HookCall[] = [];
  h.register({
    name: 'notify',
    run: (args, ctx) => void calls.push({ args, hook: ctx.hook, task: ctx.task }),
  });
  h.register({
    name: 'broken-hook',
    run: () => {
      throw new Error('webhook down');
    },
  });
  return calls;
}

describe('executeRun: hooks', () => {
  it('runs a task on_failure hook once, when the task fails for good (not per attempt)', async () => {
    const h = new EngineHarness({ clock: new ManualClock(0) });
    const calls = withNotify(h);
    const p = plan({
      tasks: [
        task('a', {
          handler: 'fatal',
          retries: 2,
          onFailure: [
            { handler: 'notify', with: { text: 'failed in ${{ params.env }}: ${{ run.attempt }}' } },
          ],
        }),
        ok('b', [], { onFailure: ['notify'] }),
      ],
    });
    const { run } = await h.run(p, { params: { env: 'prod' } });
    expect(run.state).toBe('failed');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      args: { text: 'failed in prod: 1' },
      task: 'a',
      hook: { event: 'task_failure', task: 'a', error: { message: 'fatal: bad input' }, attempts: 1 },
    });
    const hooks = await h.store.getHooks(run.id);
    expect(hooks.map((x) => [x.key, x.event, x.task, x.state])).toEqual([
      ['task_failure:a:0@1', 'task_failure', 'a', 'done'],
    ]);
  });

  it('runs pipeline on_failure when the run fails and on_success when it succeeds', async () => {
    const h = new EngineHarness();
    const calls = withNotify(h);
    const hooks = {
      onFailure: ['notify'],
      onSuccess: [{ handler: 'notify', with: { out: '${{ tasks.a.output.task }}' } }],
    };
    const failed = await h.run(plan({ tasks: [boom('a')], ...hooks }));
    expect(failed.run.state).toBe('failed');
    expect(calls.map((c) => [c.hook?.event, c.hook?.runState, c.hook?.consecutiveFailures])).toEqual([
      ['run_failure', 'failed', 1],
    ]);
    expect(calls[0]!.hook?.error?.message).toBe('task "a" failed: boom in a');
    calls.length = 0;
    const succeeded = await h.run(plan({ name: 'other', tasks: [ok('a')], ...hooks }));
    expect(succeeded.run.state).toBe('succeeded');
    expect(calls.map((c) => [c.hook?.event, c.args])).toEqual([['run_success', { out: 'a' }]]);
  });

  it('runs on_recovery on the first success after failures only', async () => {
    const h = new EngineHarness();
    const calls = withNotify(h);
    const failing = plan({ tasks: [boom('a')], onRecovery: ['notify'] });
    const passing = plan({ tasks: [ok('a')], onRecovery: ['notify'] });
    await h.run(failing);
    await h.run(failing);
    expect(calls).toHaveLength(0);
    await h.run(passing);
    expect(calls.map((c) => [c.hook?.event, c.hook?.consecutiveFailures])).toEqual([['run_recovery', 2]]);
    await h.run(passing);
    expect(calls).toHaveLength(1);
  });

  it('after_consecutive_failures fires exactly on the Nth failure in a row', async () => {
    const h = new EngineHarness();
    const calls = withNotify(h);
    const failing = plan({
      tasks: [boom('a')],
      onFailure: [{ handler: 'notify', afterConsecutiveFailures: 2 }],
    });
    const fired: number[] = [];
    for (let i = 1; i <= 4; i++) {
      const before = calls.length;
      await h.run(failing);
      if (calls.length > before) fired.push(i);
    }
    expect(fired).toEqual([2]);
    expect(calls[0]!.hook?.consecutiveFailures).toBe(2);
    // A success breaks the streak: two more failures fire it again.
    await h.run(plan({ tasks: [ok('a')] }));
    await h.run(failing);
    await h.run(failing);
    expect(calls).toHaveLength(2);
  });

  it('a failing hook is reported and never changes the run result', async () => {
    const h = new EngineHarness();
    withNotify(h);
    const { run } = await h.run(plan({ tasks: [ok('a')], onSuccess: ['broken-hook', 'notify'] }));
    expect(run.state).toBe('succeeded');
    const hooks = await h.store.getHooks(run.id);
    expect(hooks.map((x) => [x.key, x.state, x.error?.message ?? null])).toEqual([
      ['run_success:0@1', 'failed', 'webhook down'],
      ['run_success:1@1', 'done', null],
    ]);
    const failures = h.eventsOf('hook:failed');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      key: 'run_success:0@1',
      handler: 'broken-hook',
      error: { message: 'webhook down' },
    });
    const logs = await h.store.getLogs(run.id);
    expect(logs.map((l) => [l.level, l.message])).toContainEqual([
      'error',
      'hook run_success:0@1 (handler broken-hook) failed: webhook down',
    ]);
  });

  it('a hook that hangs, ignoring its signal, is stopped at its timeout and the hooks after it run', async () => {
    const h = new EngineHarness();
    withNotify(h);
    let aborted = false;
    h.register({
      name: 'hang',
      run: (_args, ctx) => {
        ctx.signal.addEventListener('abort', () => (aborted = true));
        return new Promise(() => undefined);
      },
    });
    const { run } = await h.run(
      plan({ tasks: [ok('a')], onSuccess: [{ handler: 'hang', timeoutMs: 150 }, 'notify'] }),
    );
    expect(run.state).toBe('succeeded');
    expect(aborted).toBe(true);
    const hooks = await h.store.getHooks(run.id);
    expect(hooks.map((x) => [x.key, x.state, x.error?.code ?? null, x.error?.message ?? null])).toEqual([
      [
        'run_success:0@1',
        'failed',
        'HOOK_TIMEOUT',
        'hook run_success:0@1 (handler hang) timed out after 150ms',
      ],
      ['run_success:1@1', 'done', null, null],
    ]);
  });

  it('hooks are durable: a pending hook found in the store runs first on executeRun', async () => {
    const h = new EngineHarness();
    const calls = withNotify(h);
    const order: string[] = [];
    h.register({ name: 'rec', run: (_a, ctx) => void order.push(`task ${ctx.task}`) });
    const p = plan({ tasks: [task('a', { handler: 'rec' })], onFailure: ['notify'] });
    const created = await h.create(p);
    // As a killed process would leave it: the hook recorded, never run.
    await h.store.addHooks([
      {
        runId: created.id,
        key: 'run_failure:0@0',
        event: 'run_failure',
        task: null,
        handler: 'notify',
        state: 'pending',
        error: { code: 'HANDLER_FAILED', message: 'earlier failure' },
        createdAt: new Date(0).toISOString(),
        finishedAt: null,
      },
    ]);
    h.register({ name: 'notify', run: (_a, ctx) => void order.push(`hook ${ctx.hook?.event}`) });
    const run = await h.execute(created.id);
    expect(run.state).toBe('succeeded');
    expect(order).toEqual(['hook run_failure', 'task a']);
    expect((await h.store.getHooks(created.id)).map((x) => x.state)).toEqual(['done']);
    expect(calls).toHaveLength(0);
  });

  it('runs pending hooks of a run that already finished', async () => {
    const h = new EngineHarness();
    const calls = withNotify(h);
    const { run } = await h.run(plan({ tasks: [ok('a')], onSuccess: ['notify'] }));
    await h.store.updateHook(run.id, 'run_success:0@1', { state: 'pending', finishedAt: null });
    const again = await h.execute(run.id);
    expect(again.state).toBe('succeeded');
    expect(calls).toHaveLength(2);
    expect((await h.store.getHooks(run.id)).map((x) => x.state)).toEqual(['done']);
  });
});
