import { describe, expect, it } from 'vitest';
import { EngineHarness } from '../support/engine-harness.js';
import { boom, ok, plan, task } from '../support/plan-builder.js';

describe('executeRun: scheduling', () => {
  it('runs every task once, in dependency order, and succeeds', async () => {
    const h = new EngineHarness();
    const order: string[] = [];
    h.register(h.track('rec', (_a, ctx) => void order.push(ctx.task)));
    const p = plan({
      tasks: [
        task('a', { handler: 'rec' }),
        task('b', { handler: 'rec', deps: ['a'] }),
        task('c', { handler: 'rec', deps: ['a'] }),
        task('d', { handler: 'rec', deps: ['b', 'c'] }),
      ],
    });
    const { run, states, tasks, attempts } = await h.run(p);
    expect(run.state).toBe('succeeded');
    expect(run.finishedAt).not.toBeNull();
    expect(run.owner).toBe(h.owner);
    expect(states).toEqual({ a: 'succeeded', b: 'succeeded', c: 'succeeded', d: 'succeeded' });
    expect(order[0]).toBe('a');
    expect(order[3]).toBe('d');
    expect(tasks.a!.attempts).toBe(1);
    expect(attempts.map((a) => [a.task, a.attempt, a.state, a.delayMs])).toEqual([
      ['a', 1, 'succeeded', 0],
      ['b', 1, 'succeeded', 0],
      ['c', 1, 'succeeded', 0],
      ['d', 1, 'succeeded', 0],
    ]);
    expect(h.eventsOf('run:finished')).toEqual([expect.objectContaining({ state: 'succeeded' })]);
  });

  it('writes before it acts: the task is running and its attempt stored when the handler is called', async () => {
    const h = new EngineHarness();
    let seen: unknown;
    h.register(
      h.track('peek', async (_a, ctx) => {
        const taskRun = (await h.store.getTaskRuns(ctx.run.id)).find((t) => t.task === ctx.task);
        const attempts = await h.store.getAttempts(ctx.run.id, ctx.task);
        seen = {
          state: taskRun?.state,
          attempts: taskRun?.attempts,
          open: attempts.map((a) => [a.attempt, a.state, a.worker]),
        };
        return null;
      }),
    );
    await h.run(plan({ tasks: [task('a', { handler: 'peek' })] }));
    expect(seen).toEqual({ state: 'running', attempts: 1, open: [[1, 'running', h.owner]] });
  });

  it('runs independent tasks side by side, never more than the concurrency cap', async () => {
    const h = new EngineHarness();
    const tasks = Array.from({ length: 12 }, (_, i) => task(`t${i}`, { handler: 'sleep', with: { ms: 15 } }));
    const { run } = await h.run(plan({ tasks, concurrency: 3 }));
    expect(run.state).toBe('succeeded');
    expect(h.maxConcurrent).toBe(3);
  });

  it('the engine option overrides the plan concurrency', async () => {
    const h = new EngineHarness();
    const tasks = Array.from({ length: 8 }, (_, i) => task(`t${i}`, { handler: 'sleep', with: { ms: 15 } }));
    await h.run(plan({ tasks, concurrency: 8 }), { concurrency: 2 });
    expect(h.maxConcurrent).toBe(2);
  });

  it('starts a task as soon as its own dependencies finish, not stage by stage', async () => {
    const h = new EngineHarness();
    // a (slow) and b (fast) are roots; c depends only on b, so c must start while a still runs.
    const p = plan({
      tasks: [
        task('a', { handler: 'gate', with: { gate: 'a' } }),
        ok('b'),
        ok('c', ['b']),
        ok('d', ['a', 'c']),
      ],
    });
    const created = await h.create(p);
    const running = h.execute(created.id);
    await h.waitFor((e) => e.type === 'task:succeeded' && e.task === 'c');
    expect(h.calls.get('d')).toBeUndefined();
    h.open('a');
    const run = await running;
    expect(run.state).toBe('succeeded');
    expect(h.calls.get('d')).toBe(1);
  });

  it('passes upstream outputs to downstream `with` through expressions, and ctx.upstream', async () => {
    const h = new EngineHarness({ env: { REGION: 'eu' } });
    h.register(h.track('emit', () => ({ rows: [1, 2, 3], name: 'x' })));
    const p = plan({
      tasks: [
        task('extract', { handler: 'emit' }),
        ok('mid', ['extract']),
        task('load', {
          handler: 'echo',
          deps: ['mid'],
          with: {
            count: '${{ tasks.extract.output.rows[2] }}',
            label: 'n=${{ params.n }} in ${{ env.REGION }}',
            run: '${{ run.attempt }}',
          },
        }),
      ],
    });
    const { run, tasks } = await h.run(p, { params: { n: 7 } });
    expect(run.state).toBe('succeeded');
    expect(tasks.load!.output).toEqual({ count: 3, label: 'n=7 in eu', run: 1 });
    const ctx = h.contexts.get('load')!;
    expect(ctx.upstream).toEqual({ extract: { rows: [1, 2, 3], name: 'x' }, mid: { task: 'mid' } });
    expect(ctx.params).toEqual({ n: 7 });
    expect(ctx.attempt).toBe(1);
    expect(ctx.run).toEqual({ id: run.id, pipeline: 'test', scheduledFor: null, attempt: 1 });
  });

  it('quotes expressions substituted into shellQuoted arguments', async () => {
    const h = new EngineHarness();
    h.register({ ...h.track('sh', (args) => args as never), shellQuoted: ['script'] });
    const p = plan({
      tasks: [
        task('s', { handler: 'sh', with: { script: 'echo ${{ params.x }}', other: '${{ params.x }}' } }),
      ],
    });
    const { tasks } = await h.run(p, { params: { x: "a'; rm -rf /" } });
    expect(tasks.s!.output).toEqual({ script: `echo 'a'\\''; rm -rf /'`, other: "a'; rm -rf /" });
  });

  it('fails a task at once (not retried) when an expression cannot be evaluated', async () => {
    const h = new EngineHarness();
    const p = plan({
      tasks: [
        ok('a'),
        task('b', {
          handler: 'echo',
          deps: ['a'],
          retries: 3,
          with: { x: '${{ tasks.a.output.missing.deep }}' },
        }),
      ],
    });
    const { run, tasks } = await h.run(p);
    expect(run.state).toBe('failed');
    expect(tasks.b!.state).toBe('failed');
    expect(tasks.b!.error?.code).toBe('EXPRESSION_FAILED');
    expect(tasks.b!.attempts).toBe(1);
  });

  it('an unknown handler fails the task without retries', async () => {
    const h = new EngineHarness();
    const { tasks } = await h.run(plan({ tasks: [task('a', { handler: 'nope', retries: 2 })] }));
    expect(tasks.a!.error).toMatchObject({ code: 'HANDLER_UNKNOWN' });
    expect(tasks.a!.attempts).toBe(1);
  });

  it('a failing task fails the run with an error naming it', async () => {
    const h = new EngineHarness();
    const { run, states } = await h.run(plan({ tasks: [ok('a'), boom('b', ['a']), ok('c', ['b'])] }));
    expect(run.state).toBe('failed');
    expect(run.error).toEqual({ code: 'HANDLER_FAILED', message: 'task "b" failed: boom in b' });
    expect(states).toEqual({ a: 'succeeded', b: 'failed', c: 'skipped' });
  });
});
