import { describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { RUN_ID_PATTERN } from '../../src/store/ids.js';
import { ok, plan } from '../support/plan-builder.js';

describe('createRun', () => {
  it('records a queued run with a pending task run per task', async () => {
    const store = createMemoryStore();
    const now = Date.parse('2030-05-01T10:00:00.000Z');
    const run = await createRun(store, {
      plan: plan({ name: 'etl', tasks: [ok('a'), ok('b', ['a'])] }),
      params: { n: 1 },
      trigger: 'manual',
      now,
    });
    expect(run).toMatchObject({
      pipeline: 'etl',
      state: 'queued',
      attempt: 1,
      owner: null,
      params: { n: 1 },
      createdAt: '2030-05-01T10:00:00.000Z',
      scheduledFor: null,
    });
    expect(run.id).toMatch(RUN_ID_PATTERN);
    expect((await store.getTaskRuns(run.id)).map((t) => [t.task, t.state])).toEqual([
      ['a', 'pending'],
      ['b', 'pending'],
    ]);
  });

  it('takes an id and a schedule time, and refuses a second run for the same schedule time', async () => {
    const store = createMemoryStore();
    const p = plan({ name: 'nightly', tasks: [ok('a')] });
    const at = Date.parse('2030-05-02T00:00:00.000Z');
    const run = await createRun(store, {
      plan: p,
      params: {},
      trigger: 'schedule',
      scheduledFor: at,
      id: 'r_custom',
      now: at,
    });
    expect(run).toMatchObject({
      id: 'r_custom',
      trigger: 'schedule',
      scheduledFor: '2030-05-02T00:00:00.000Z',
    });
    await expect(
      createRun(store, { plan: p, params: {}, trigger: 'schedule', scheduledFor: at, now: at }),
    ).rejects.toMatchObject({
      code: 'RUN_DUPLICATE',
    });
  });
});
