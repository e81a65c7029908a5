import { describe, expect, it } from 'vitest';
import { requestCancel } from '../../src/engine/cancel.js';
import { EngineHarness } from '../support/engine-harness.js';
import { ok, plan, task } from '../support/plan-builder.js';

const long = (name: string, deps: string[] = []) =>
  task(name, { handler: 'sleep', with: { ms: 10_000 }, deps });

describe('executeRun: cancel and run timeout', () => {
  it('cancels on the abort signal: running attempts cancelled, pending tasks cancelled, nothing left running', async () => {
    const h = new EngineHarness();
    const controller = new AbortController();
    const created = await h.create(plan({ tasks: [long('a'), long('c'), ok('b', ['a'])] }));
    const done = h.execute(created.id, { signal: controller.signal });
    await h.waitFor((e) => e.type === 'task:started' && e.task === 'c');
    controller.abort();
    const run = await done;
    expect(run.state).toBe('cancelled');
    expect(run.finishedAt).not.toBeNull();
    const { states, attempts, tasks } = await h.outcome(created.id);
    expect(states).toEqual({ a: 'cancelled', c: 'cancelled', b: 'cancelled' });
    expect(attempts.map((x) => [x.task, x.state])).toEqual([
      ['a', 'cancelled'],
      ['c', 'cancelled'],
    ]);
    expect(tasks.b!.reason).toBe('the run was cancelled');
    expect(h.calls.get('b')).toBeUndefined();
  });

  it('gives a handler that ignores its signal the grace period, then records it cancelled anyway', async () => {
    const h = new EngineHarness();
    const controller = new AbortController();
    const created = await h.create(plan({ tasks: [task('a', { handler: 'hang' })] }));
    const done = h.execute(created.id, { signal: controller.signal, cancelGraceMs: 50 });
    await h.waitFor((e) => e.type === 'task:started');
    const started = Date.now();
    controller.abort();
    const run = await done;
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(run.state).toBe('cancelled');
    expect((await h.store.getAttempts(created.id))[0]!.state).toBe('cancelled');
  });

  it('cancels when another process requests it through the store', async () => {
    const h = new EngineHarness();
    const created = await h.create(plan({ tasks: [long('a'), ok('b', ['a'])] }));
    const done = h.execute(created.id, { cancelPollMs: 10 });
    await h.waitFor((e) => e.type === 'task:started');
    const asked = await requestCancel(h.store, created.id);
    expect(asked.cancelRequested).toBe(true);
    expect(asked.state).toBe('running');
    const run = await done;
    expect(run.state).toBe('cancelled');
    expect((await h.outcome(created.id)).states).toEqual({ a: 'cancelled', b: 'cancelled' });
  });

  it("a cancel request does not reach a task's on_failure hook: the alert still goes out", async () => {
    const h = new EngineHarness();
    let sawAbort: boolean | null = null;
    h.register({
      name: 'alert',
      // The run is cancelled while its task's failure alert is being sent.
      run: async (_args, ctx) => {
        await requestCancel(h.store, ctx.run.id);
        await new Promise((r) => setTimeout(r, 100));
        sawAbort = ctx.signal.aborted;
      },
    });
    const created = await h.create(
      plan({ tasks: [task('a', { handler: 'fatal', onFailure: ['alert'] }), long('b')] }),
    );
    const run = await h.execute(created.id, { cancelPollMs: 10, cancelGraceMs: 50 });
    expect(run.state).toBe('cancelled');
    expect(sawAbort).toBe(false);
    expect((await h.store.getHooks(created.id)).map((x) => [x.key, x.state])).toEqual([
      ['task_failure:a:0@1', 'done'],
    ]);
  });

  it('requestCancel cancels a queued run on the spot', async () => {
    const h = new EngineHarness();
    const created = await h.create(plan({ tasks: [ok('a'), ok('b', ['a'])] }));
    const run = await requestCancel(h.store, created.id, { now: 0 });
    expect(run.state).toBe('cancelled');
    expect((await h.outcome(created.id)).states).toEqual({ a: 'cancelled', b: 'cancelled' });
    // A finished run is left as it is, and executing it runs nothing.
    expect((await requestCancel(h.store, created.id)).state).toBe('cancelled');
    expect((await h.execute(created.id)).state).toBe('cancelled');
    expect(h.calls.size).toBe(0);
  });

  it('a pipeline timeout cancels what runs and fails the run with RUN_TIMEOUT', async () => {
    const h = new EngineHarness();
    const { run, states, tasks } = await h.run(
      plan({ tasks: [ok('a'), long('b', ['a']), ok('c', ['b'])], timeoutMs: 80 }),
    );
    expect(run.state).toBe('failed');
    expect(run.error).toEqual({ code: 'RUN_TIMEOUT', message: 'the run timed out after 80ms' });
    expect(states).toEqual({ a: 'succeeded', b: 'cancelled', c: 'cancelled' });
    expect(tasks.b!.reason).toBe('the run timed out after 80ms');
  });
});

describe('executeRun: heartbeat and store failures', () => {
  it('refreshes the heartbeat while the run executes', async () => {
    const h = new EngineHarness();
    const created = await h.create(plan({ tasks: [task('a', { handler: 'sleep', with: { ms: 120 } })] }));
    const done = h.execute(created.id, { heartbeatMs: 20 });
    await h.waitFor((e) => e.type === 'task:started');
    const first = (await h.store.getRun(created.id))!.heartbeatAt!;
    await new Promise((resolve) => setTimeout(resolve, 80));
    const later = (await h.store.getRun(created.id))!.heartbeatAt!;
    expect(Date.parse(later)).toBeGreaterThan(Date.parse(first));
    expect((await done).state).toBe('succeeded');
  });

  it('stops loudly when the store fails a write, instead of hanging', async () => {
    const h = new EngineHarness();
    const store = h.store;
    const failing = new Proxy(store, {
      get(target, key, receiver) {
        if (key === 'updateTaskRun') {
          return (runId: string, name: string, patch: { state?: string }, condition?: object) =>
            name === 'b' && patch.state === 'succeeded'
              ? Promise.reject(new Error('disk full'))
              : target.updateTaskRun(runId, name, patch as never, condition);
        }
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const created = await h.create(plan({ tasks: [ok('a'), ok('b'), ok('c', ['b'])] }));
    await expect(h.execute(created.id, { store: failing })).rejects.toThrow('disk full');
    expect(h.calls.get('c')).toBeUndefined();
  });
});
