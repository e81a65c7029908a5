import { describe, expect, it } from 'vitest';
import { createMasker } from '../../src/engine/mask.js';
import { EngineHarness } from '../support/engine-harness.js';
import { ok, plan, task } from '../support/plan-builder.js';

describe('createMasker', () => {
  it('replaces every occurrence, longest secret first, and ignores empty or tiny values', () => {
    const mask = createMasker(['abc123', 'abc123-long', '', undefined, 'x']);
    expect(mask('k=abc123-long and abc123 and abc123')).toBe('k=*** and *** and ***');
    expect(mask('x marks the spot')).toBe('x marks the spot');
    expect(createMasker([])('abc123')).toBe('abc123');
  });
});

describe('executeRun: logs and secrets', () => {
  it('stores handler log lines per attempt, batched, before the attempt ends', async () => {
    const h = new EngineHarness();
    h.register(
      h.track('chatty', (_a, ctx) => {
        for (let i = 0; i < 3; i++) ctx.log.info(`line ${i}`);
        ctx.log.stderr('oops');
        return null;
      }),
    );
    const { run } = await h.run(plan({ tasks: [task('a', { handler: 'chatty' })] }));
    const logs = await h.store.getLogs(run.id, { task: 'a' });
    expect(logs.map((l) => [l.attempt, l.level, l.message])).toEqual([
      [1, 'info', 'line 0'],
      [1, 'info', 'line 1'],
      [1, 'info', 'line 2'],
      [1, 'stderr', 'oops'],
    ]);
    expect(h.eventsOf('task:log')).toHaveLength(4);
  });

  it('masks the values of secret env vars in stored log lines, errors and events', async () => {
    const secret = 'tok-5ecr3t-value';
    const h = new EngineHarness({ env: { API_TOKEN: secret, OTHER: 'visible-value' } });
    h.register(
      h.track('leaky', (_a, ctx) => {
        ctx.log.info(`calling with ${ctx.env.API_TOKEN} and ${ctx.env.OTHER}`);
        throw new Error(`401 for token ${secret}`);
      }),
    );
    const { run, tasks, attempts } = await h.run(
      plan({ tasks: [task('a', { handler: 'leaky' })], secrets: ['API_TOKEN'] }),
    );
    const logs = await h.store.getLogs(run.id);
    expect(logs.map((l) => l.message)).toEqual(['calling with *** and visible-value']);
    expect(tasks.a!.error!.message).toBe('401 for token ***');
    expect(attempts[0]!.error!.message).toBe('401 for token ***');
    expect(run.error!.message).toBe('task "a" failed: 401 for token ***');
    expect(JSON.stringify(h.events)).not.toContain(secret);
  });
});

describe('executeRun: liveness', () => {
  it('throws INTERNAL instead of hanging when no event can finish the remaining tasks', async () => {
    const h = new EngineHarness();
    const p = plan({ tasks: [ok('root'), ok('a'), ok('b', ['a'])] });
    // A broken plan (a cycle the compiler should have refused): a and b wait for each other.
    p.tasks.a!.dependsOn = ['b'];
    const created = await h.create(p);
    const error = await h.execute(created.id).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe('INTERNAL');
    expect(error?.message).toContain('2 task(s) are unfinished: "a" (pending), "b" (pending)');
  });
});
