import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { EngineHarness } from '../support/engine-harness.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');

/** Resolves once the code under test is parked on the manual clock. */
async function parked(clock: ManualClock, sleepers = 1): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (clock.pending >= sleepers) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('nothing is sleeping on the clock');
}

describe('executeRun: task retries', () => {
  it('retries after the policy delays on the injected clock, recording every attempt', async () => {
    const clock = new ManualClock(T0);
    const h = new EngineHarness({ clock });
    const p = plan({
      tasks: [
        task('a', {
          handler: 'flaky',
          with: { times: 2 },
          retries: 3,
          retry: { delayMs: 1000, backoff: 'exponential' },
        }),
        ok('b', ['a']),
      ],
    });
    const created = await h.create(p);
    const done = h.execute(created.id);

    await parked(clock);
    let a = (await h.store.getTaskRuns(created.id)).find((t) => t.task === 'a')!;
    expect(a.state).toBe('retrying');
    expect(a.nextAttemptAt).toBe(new Date(T0 + 1000).toISOString());
    expect(a.error?.message).toBe('flaky attempt 1');
    await clock.advance(999);
    expect(h.calls.get('a')).toBe(1);
    await clock.advance(1);
    await parked(clock);
    a = (await h.store.getTaskRuns(created.id)).find((t) => t.task === 'a')!;
    expect(a.nextAttemptAt).toBe(new Date(T0 + 1000 + 2000).toISOString());
    await clock.advance(2000);

    const run = await done;
    expect(run.state).toBe('succeeded');
    const { tasks, attempts } = await h.outcome(created.id);
    expect(tasks.a).toMatchObject({
      state: 'succeeded',
      attempts: 3,
      output: { attempt: 3 },
      nextAttemptAt: null,
      error: null,
    });
    expect(
      attempts
        .filter((x) => x.task === 'a')
        .map((x) => [x.attempt, x.state, x.delayMs, x.startedAt, x.error?.message ?? null]),
    ).toEqual([
      [1, 'failed', 0, new Date(T0).toISOString(), 'flaky attempt 1'],
      [2, 'failed', 1000, new Date(T0 + 1000).toISOString(), 'flaky attempt 2'],
      [3, 'succeeded', 2000, new Date(T0 + 3000).toISOString(), null],
    ]);
    expect(h.eventsOf('task:retrying').map((e) => [e.task, e.attempt, e.delayMs])).toEqual([
      ['a', 1, 1000],
      ['a', 2, 2000],
    ]);
  });

  it('fails the task after the last retry', async () => {
    const clock = new ManualClock(T0);
    const h = new EngineHarness({ clock });
    const created = await h.create(plan({ tasks: [boom('a', [], { retries: 2, retry: { delayMs: 10 } })] }));
    const done = h.execute(created.id);
    for (let i = 0; i < 2; i++) {
      await parked(clock);
      await clock.advance(10);
    }
    expect((await done).state).toBe('failed');
    const { tasks, attempts } = await h.outcome(created.id);
    expect(tasks.a!.attempts).toBe(3);
    expect(attempts.map((x) => x.state)).toEqual(['failed', 'failed', 'failed']);
    expect(h.eventsOf('task:failed')).toEqual([expect.objectContaining({ task: 'a', attempts: 3 })]);
  });

  it('applies jitter with the injected random source', async () => {
    const clock = new ManualClock(T0);
    const h = new EngineHarness({ clock });
    const created = await h.create(
      plan({ tasks: [task('a', { handler: 'flaky', retries: 1, retry: { delayMs: 1000, jitter: true } })] }),
    );
    const done = h.execute(created.id, { random: () => 0 });
    await parked(clock);
    await clock.advance(800);
    expect((await done).state).toBe('succeeded');
    expect((await h.store.getAttempts(created.id, 'a'))[1]!.delayMs).toBe(800);
  });

  it('does not retry a NonRetryableError', async () => {
    const h = new EngineHarness({ clock: new ManualClock(T0) });
    const { tasks, attempts } = await h.run(plan({ tasks: [task('a', { handler: 'fatal', retries: 5 })] }));
    expect(tasks.a).toMatchObject({
      state: 'failed',
      attempts: 1,
      error: { message: 'fatal: bad input', name: 'NonRetryableError' },
    });
    expect(attempts).toHaveLength(1);
  });

  it('times an attempt out at its deadline even when the handler ignores its signal', async () => {
    const h = new EngineHarness();
    let reason: unknown;
    h.register(
      h.track('stubborn', (_a, ctx) => {
        ctx.signal.addEventListener('abort', () => {
          reason = ctx.signal.reason as unknown;
        });
        return new Promise(() => undefined);
      }),
    );
    const started = Date.now();
    const { run, tasks, attempts } = await h.run(
      plan({
        tasks: [task('a', { handler: 'stubborn', timeoutMs: 100, retries: 1, retry: { delayMs: 0 } })],
      }),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(run.state).toBe('failed');
    expect(attempts.map((x) => x.state)).toEqual(['timed_out', 'timed_out']);
    expect(tasks.a!.error).toMatchObject({ code: 'TASK_TIMEOUT', message: 'task "a" timed out after 100ms' });
    expect(reason).toMatchObject({ code: 'TASK_TIMEOUT' });
  });

  it('refuses an output that is not JSON, naming the task and the path, without retrying', async () => {
    const h = new EngineHarness();
    h.register(h.track('bad', () => ({ ok: 1, nested: { when: new Map([['a', 1]]) } })));
    h.register(h.track('fn', () => ({ list: [1, () => 2] })));
    h.register(h.track('nothing', () => undefined));
    const { tasks } = await h.run(
      plan({
        tasks: [
          task('a', { handler: 'bad', retries: 2 }),
          task('b', { handler: 'fn' }),
          task('c', { handler: 'nothing' }),
        ],
      }),
    );
    expect(tasks.a).toMatchObject({ state: 'failed', attempts: 1 });
    expect(tasks.a!.error).toMatchObject({
      code: 'HANDLER_OUTPUT_INVALID',
      message: 'the output of task "a" is not JSON: $.nested.when is a Map',
    });
    expect(tasks.b!.error?.message).toBe('the output of task "b" is not JSON: $.list[1] is a function');
    expect(tasks.c).toMatchObject({ state: 'succeeded', output: null });
  });

  it('checks the arguments against the handler schema after substitution, failing at once', async () => {
    const h = new EngineHarness();
    h.register({
      ...h.track('typed', (args) => args as never),
      args: {
        type: 'object',
        properties: { n: { type: 'integer' } },
        required: ['n'],
        additionalProperties: false,
      },
    });
    const p = (n: string) => plan({ tasks: [task('load', { handler: 'typed', retries: 3, with: { n } })] });
    const bad = await h.run(p('${{ params.n }}'), { params: { n: 'seven' } });
    expect(bad.tasks.load).toMatchObject({ state: 'failed', attempts: 1 });
    expect(bad.tasks.load!.error).toMatchObject({ code: 'HANDLER_ARGS' });
    expect(bad.tasks.load!.error!.message).toBe(
      'task "load": the arguments for handler "typed" are invalid: with/n must be integer',
    );
    const good = await h.run(p('${{ params.n }}'), { params: { n: 7 } });
    expect(good.tasks.load).toMatchObject({ state: 'succeeded', output: { n: 7 } });
  });
});
