import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import { WeftError } from '../../src/errors.js';
import type {
  AttemptRecord,
  FireRecord,
  HookRecord,
  NewRunRequest,
  LogRecord,
  NewRun,
  RunRecord,
  RunStore,
  TaskRunPatch,
} from '../../src/store/run-store.js';
import { makePlan } from './plan-fixture.js';

export type StoreFactory = () => Promise<{ store: RunStore; cleanup: () => Promise<void> }>;

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
const iso = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();

let counter = 0;
function newRun(overrides: Partial<NewRun> = {}): NewRun {
  counter += 1;
  return {
    id: `r_test_${String(counter).padStart(6, '0')}`,
    pipeline: 'demo',
    plan: makePlan('demo', [
      ['extract', []],
      ['transform', ['extract']],
      ['load', ['transform']],
    ]),
    params: { region: 'eu', limit: 10 },
    trigger: 'manual',
    scheduledFor: null,
    state: 'queued',
    owner: null,
    createdAt: iso(counter),
    ...overrides,
  };
}

function attempt(
  runId: string,
  task: string,
  n: number,
  overrides: Partial<AttemptRecord> = {},
): AttemptRecord {
  return {
    runId,
    task,
    attempt: n,
    state: 'running',
    delayMs: n === 1 ? 0 : 1000,
    startedAt: iso(1000 * n),
    finishedAt: null,
    error: null,
    worker: 'host:1',
    pid: null,
    ...overrides,
  };
}

function log(runId: string, task: string | null, message: string): Omit<LogRecord, 'seq'> {
  return { runId, task, attempt: task === null ? null : 1, ts: iso(5), level: 'info', message };
}

function hook(runId: string, key: string, overrides: Partial<HookRecord> = {}): HookRecord {
  return {
    runId,
    key,
    event: 'task_failure',
    task: 'extract',
    handler: 'notify',
    state: 'pending',
    error: null,
    createdAt: iso(10),
    finishedAt: null,
    ...overrides,
  };
}

async function expectWeftError(promise: Promise<unknown>, code: string): Promise<WeftError> {
  const error: unknown = await promise.then(
    () => {
      throw new Error(`expected a ${code} rejection, but it resolved`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WeftError);
  expect((error as WeftError).code).toBe(code);
  return error as WeftError;
}

/**
 * The behaviours every RunStore adapter shares. Each adapter's test file calls this with a factory
 * that opens a fresh, empty store; the suite closes it through `cleanup`.
 */
export function describeRunStoreConformance(name: string, factory: StoreFactory): void {
  describe(`RunStore conformance: ${name}`, () => {
    let store: RunStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('runs', () => {
      it('creates a run with its defaults and reads it back', async () => {
        const input = newRun({ owner: 'host:42', state: 'running', trigger: 'api' });
        const created = await store.createRun(input);
        expect(created).toMatchObject({
          id: input.id,
          pipeline: 'demo',
          state: 'running',
          trigger: 'api',
          scheduledFor: null,
          attempt: 1,
          owner: 'host:42',
          heartbeatAt: null,
          createdAt: input.createdAt,
          startedAt: null,
          finishedAt: null,
          nextAttemptAt: null,
          error: null,
          cancelRequested: false,
        });
        expect(created.planHash).toMatch(/^\S+$/);
        expect(created.params).toEqual({ region: 'eu', limit: 10 });
        expect(created.plan).toEqual(input.plan);
        const read = await store.getRun(input.id);
        expect(read).toEqual(created);
      });

      it('returns null for an unknown run and empty lists for its children', async () => {
        expect(await store.getRun('r_nope')).toBeNull();
        expect(await store.getTaskRuns('r_nope')).toEqual([]);
        expect(await store.getAttempts('r_nope')).toEqual([]);
        expect(await store.getLogs('r_nope')).toEqual([]);
        expect(await store.getHooks('r_nope')).toEqual([]);
      });

      it('gives the same plan hash to the same plan and another to a different one', async () => {
        const a = await store.createRun(newRun());
        const b = await store.createRun(newRun());
        const c = await store.createRun(newRun({ plan: makePlan('demo', [['only', []]]) }));
        expect(b.planHash).toBe(a.planHash);
        expect(c.planHash).not.toBe(a.planHash);
        expect((await store.getRun(c.id))!.plan.order).toEqual(['only']);
      });

      it('creates one pending task run per task, in plan order', async () => {
        const plan = makePlan(
          'demo',
          [
            ['zeta', []],
            ['alpha', ['zeta']],
            ['mid', []],
          ],
          ['mid', 'zeta', 'alpha'],
        );
        const run = await store.createRun(newRun({ plan }));
        const tasks = await store.getTaskRuns(run.id);
        expect(tasks.map((t) => t.task)).toEqual(['mid', 'zeta', 'alpha']);
        expect(tasks[0]).toEqual({
          runId: run.id,
          task: 'mid',
          state: 'pending',
          attempts: 0,
          output: null,
          error: null,
          reason: null,
          startedAt: null,
          finishedAt: null,
          nextAttemptAt: null,
        });
        expect(tasks.every((t) => t.state === 'pending' && t.runId === run.id)).toBe(true);
      });

      it('lists runs newest first, filtered by pipeline and states, with limit and offset', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) {
          const run = await store.createRun(
            newRun({
              pipeline: i % 2 === 0 ? 'even' : 'odd',
              state: i < 3 ? 'queued' : 'running',
              createdAt: iso(60_000 + i * 1000),
            }),
          );
          ids.push(run.id);
        }
        const all = await store.listRuns();
        expect(all.map((r) => r.id)).toEqual([...ids].reverse());
        expect((await store.listRuns({ pipeline: 'even' })).map((r) => r.id)).toEqual([
          ids[4],
          ids[2],
          ids[0],
        ]);
        expect((await store.listRuns({ states: ['running'] })).map((r) => r.id)).toEqual([
          ids[5],
          ids[4],
          ids[3],
        ]);
        expect(
          (await store.listRuns({ states: ['queued', 'running'], pipeline: 'odd' })).map((r) => r.id),
        ).toEqual([ids[5], ids[3], ids[1]]);
        expect(await store.listRuns({ states: ['failed'] })).toEqual([]);
        expect(await store.listRuns({ pipeline: 'none' })).toEqual([]);
        expect((await store.listRuns({ limit: 2 })).map((r) => r.id)).toEqual([ids[5], ids[4]]);
        expect((await store.listRuns({ limit: 2, offset: 3 })).map((r) => r.id)).toEqual([ids[2], ids[1]]);
        expect(await store.listRuns({ offset: 10 })).toEqual([]);
      });

      it('lists at most 50 runs by default', async () => {
        await Promise.all(
          Array.from({ length: 55 }, (_, i) => store.createRun(newRun({ createdAt: iso(i) }))),
        );
        expect(await store.listRuns()).toHaveLength(50);
        expect(await store.listRuns({ limit: 100 })).toHaveLength(55);
      });

      it('refuses a second run of a pipeline for the same schedule time, and leaves nothing of it', async () => {
        const at = iso(3_600_000);
        await store.createRun(newRun({ trigger: 'schedule', scheduledFor: at }));
        const dup = newRun({ trigger: 'schedule', scheduledFor: at });
        await expectWeftError(store.createRun(dup), 'RUN_DUPLICATE');
        expect(await store.getRun(dup.id)).toBeNull();
        expect(await store.getTaskRuns(dup.id)).toEqual([]);
        // Another pipeline, or another time, is not a duplicate.
        await store.createRun(newRun({ pipeline: 'other', trigger: 'schedule', scheduledFor: at }));
        await store.createRun(newRun({ trigger: 'schedule', scheduledFor: iso(7_200_000) }));
        expect(await store.listRuns()).toHaveLength(3);
      });

      it('allows any number of runs without a schedule time', async () => {
        await store.createRun(newRun());
        await store.createRun(newRun());
        expect(await store.listRuns({ pipeline: 'demo' })).toHaveLength(2);
      });

      it('refuses a run id that exists already', async () => {
        const run = newRun();
        await store.createRun(run);
        await expectWeftError(store.createRun({ ...run, createdAt: iso(99) }), 'RUN_DUPLICATE');
        expect((await store.getRun(run.id))!.createdAt).toBe(run.createdAt);
      });

      it('updates a run and reads the patch back', async () => {
        const run = await store.createRun(newRun({ owner: 'host:1' }));
        const ok = await store.updateRun(run.id, {
          state: 'running',
          startedAt: iso(100),
          heartbeatAt: iso(101),
          attempt: 2,
          cancelRequested: true,
          error: { code: 'HANDLER_FAILED', message: 'boom', name: 'TypeError' },
        });
        expect(ok).toBe(true);
        expect(await store.getRun(run.id)).toEqual({
          ...run,
          state: 'running',
          startedAt: iso(100),
          heartbeatAt: iso(101),
          attempt: 2,
          cancelRequested: true,
          error: { code: 'HANDLER_FAILED', message: 'boom', name: 'TypeError' },
        });
        // null clears a field; a missing key leaves it alone.
        expect(await store.updateRun(run.id, { error: null, owner: null })).toBe(true);
        const after = await store.getRun(run.id);
        expect(after).toMatchObject({ error: null, owner: null, state: 'running', attempt: 2 });
      });

      it('fences run updates on state and owner, changing nothing when they fail', async () => {
        const run = await store.createRun(newRun({ owner: 'host:1', state: 'running' }));
        expect(await store.updateRun(run.id, { state: 'succeeded' }, { states: ['queued'] })).toBe(false);
        expect(await store.updateRun(run.id, { state: 'succeeded' }, { owner: 'host:2' })).toBe(false);
        expect(await store.updateRun(run.id, { state: 'succeeded' }, { owner: null })).toBe(false);
        expect(
          await store.updateRun(run.id, { state: 'succeeded' }, { states: ['running'], owner: 'host:2' }),
        ).toBe(false);
        expect(await store.getRun(run.id)).toEqual(run);
        expect(await store.updateRun('r_unknown', { state: 'failed' })).toBe(false);
        expect(
          await store.updateRun(run.id, { owner: null }, { states: ['queued', 'running'], owner: 'host:1' }),
        ).toBe(true);
        // An owner condition of null matches an unowned run only.
        expect(await store.updateRun(run.id, { owner: 'host:3' }, { owner: null })).toBe(true);
        expect(await store.updateRun(run.id, { owner: 'host:4' }, { owner: null })).toBe(false);
        expect((await store.getRun(run.id))!.owner).toBe('host:3');
      });

      it('returns copies: changing a returned record or an input changes nothing stored', async () => {
        const input = newRun();
        const created = await store.createRun(input);
        input.params['region'] = 'us';
        created.state = 'failed';
        created.params['limit'] = 0;
        const read = await store.getRun(input.id);
        expect(read!.state).toBe('queued');
        expect(read!.params).toEqual({ region: 'eu', limit: 10 });
        read!.params['limit'] = 1;
        expect((await store.getRun(input.id))!.params['limit']).toBe(10);

        const [task] = await store.getTaskRuns(input.id);
        task!.state = 'failed';
        expect((await store.getTaskRuns(input.id))[0]!.state).toBe('pending');

        const output = { rows: [1, 2] };
        await store.updateTaskRun(input.id, 'extract', { output });
        output.rows.push(3);
        const [stored] = await store.getTaskRuns(input.id);
        expect(stored!.output).toEqual({ rows: [1, 2] });
        (stored!.output as { rows: number[] }).rows.push(4);
        expect((await store.getTaskRuns(input.id))[0]!.output).toEqual({ rows: [1, 2] });
      });

      it('returns a plan that cannot be changed through the record', async () => {
        const run = await store.createRun(newRun());
        const plan = (await store.getRun(run.id))!.plan;
        try {
          plan.order.push('intruder');
        } catch {
          // Adapters may share one frozen plan between records (ESM is strict: writes throw).
        }
        expect((await store.getRun(run.id))!.plan.order).toEqual(['extract', 'transform', 'load']);
      });
    });

    describe('task runs', () => {
      it('updates a task run and fences on state and attempts', async () => {
        const run = await store.createRun(newRun());
        expect(
          await store.updateTaskRun(
            run.id,
            'extract',
            { state: 'running', attempts: 1, startedAt: iso(1) },
            {
              states: ['pending'],
            },
          ),
        ).toBe(true);
        // Fails: no longer pending.
        expect(
          await store.updateTaskRun(run.id, 'extract', { state: 'running' }, { states: ['pending'] }),
        ).toBe(false);
        // Fails: a stale attempt number.
        expect(
          await store.updateTaskRun(
            run.id,
            'extract',
            { state: 'failed' },
            { states: ['running'], attempts: 2 },
          ),
        ).toBe(false);
        expect(await store.updateTaskRun(run.id, 'nope', { state: 'running' })).toBe(false);
        expect(await store.updateTaskRun('r_unknown', 'extract', { state: 'running' })).toBe(false);
        expect((await store.getTaskRuns(run.id))[0]).toMatchObject({
          task: 'extract',
          state: 'running',
          attempts: 1,
          startedAt: iso(1),
          finishedAt: null,
        });

        expect(
          await store.updateTaskRun(
            run.id,
            'extract',
            {
              state: 'succeeded',
              finishedAt: iso(2),
              output: { count: 3 },
              reason: null,
              nextAttemptAt: null,
            },
            { states: ['running'], attempts: 1 },
          ),
        ).toBe(true);
        expect(
          await store.updateTaskRun(run.id, 'load', {
            state: 'skipped',
            reason: 'upstream "transform" failed',
          }),
        ).toBe(true);
        const tasks = await store.getTaskRuns(run.id);
        expect(tasks.map((t) => [t.task, t.state])).toEqual([
          ['extract', 'succeeded'],
          ['transform', 'pending'],
          ['load', 'skipped'],
        ]);
        expect(tasks[0]).toMatchObject({ output: { count: 3 }, finishedAt: iso(2) });
        expect(tasks[2]!.reason).toBe('upstream "transform" failed');
      });

      it('ignores keys a patch may not change (a task run keeps its run and name)', async () => {
        const run = await store.createRun(newRun());
        const patch = { runId: 'r_other', task: 'renamed', state: 'running' } as TaskRunPatch;
        expect(await store.updateTaskRun(run.id, 'extract', patch)).toBe(true);
        expect((await store.getTaskRuns(run.id)).map((t) => [t.runId, t.task, t.state])).toEqual([
          [run.id, 'extract', 'running'],
          [run.id, 'transform', 'pending'],
          [run.id, 'load', 'pending'],
        ]);
      });

      it('applies writes in the order they were issued, even when not awaited one by one', async () => {
        const run = await store.createRun(newRun());
        const results = await Promise.all([
          store.updateTaskRun(run.id, 'extract', { state: 'running', attempts: 1 }, { states: ['pending'] }),
          store.updateTaskRun(run.id, 'extract', { state: 'running', attempts: 9 }, { states: ['pending'] }),
          store.updateTaskRun(
            run.id,
            'extract',
            { state: 'succeeded' },
            { states: ['running'], attempts: 1 },
          ),
          store.updateTaskRun(run.id, 'extract', { output: 'last' }),
        ]);
        expect(results).toEqual([true, false, true, true]);
        expect((await store.getTaskRuns(run.id))[0]).toMatchObject({
          state: 'succeeded',
          attempts: 1,
          output: 'last',
        });
      });
    });

    describe('attempts', () => {
      it('inserts, updates with a state fence, and lists by plan order then attempt', async () => {
        const run = await store.createRun(newRun());
        await store.insertAttempt(attempt(run.id, 'transform', 1));
        await store.insertAttempt(attempt(run.id, 'extract', 2));
        await store.insertAttempt(attempt(run.id, 'extract', 1));
        await store.insertAttempt(attempt(run.id, 'load', 1, { pid: 1234 }));

        const all = await store.getAttempts(run.id);
        expect(all.map((a) => [a.task, a.attempt])).toEqual([
          ['extract', 1],
          ['extract', 2],
          ['transform', 1],
          ['load', 1],
        ]);
        expect(all[3]).toEqual(attempt(run.id, 'load', 1, { pid: 1234 }));
        expect((await store.getAttempts(run.id, 'extract')).map((a) => a.attempt)).toEqual([1, 2]);
        expect(await store.getAttempts(run.id, 'nope')).toEqual([]);

        const error = { code: 'TASK_TIMEOUT', message: 'timed out after 1s' };
        expect(
          await store.updateAttempt(
            run.id,
            'extract',
            1,
            { state: 'timed_out', finishedAt: iso(3), error, pid: null },
            { states: ['running'] },
          ),
        ).toBe(true);
        expect(
          await store.updateAttempt(run.id, 'extract', 1, { state: 'succeeded' }, { states: ['running'] }),
        ).toBe(false);
        expect(await store.updateAttempt(run.id, 'extract', 7, { state: 'succeeded' })).toBe(false);
        expect(await store.updateAttempt(run.id, 'nope', 1, { state: 'succeeded' })).toBe(false);
        expect((await store.getAttempts(run.id, 'extract'))[0]).toEqual(
          attempt(run.id, 'extract', 1, { state: 'timed_out', finishedAt: iso(3), error }),
        );
      });

      it('refuses a second insert of the same attempt and leaves the first as it was', async () => {
        const run = await store.createRun(newRun());
        await store.insertAttempt(attempt(run.id, 'extract', 1));
        await expectWeftError(
          store.insertAttempt(attempt(run.id, 'extract', 1, { worker: 'other' })),
          'STORE_FAILED',
        );
        const attempts = await store.getAttempts(run.id);
        expect(attempts).toHaveLength(1);
        expect(attempts[0]!.worker).toBe('host:1');
      });

      it('refuses an attempt of a task the run does not have', async () => {
        const run = await store.createRun(newRun());
        await expectWeftError(store.insertAttempt(attempt(run.id, 'ghost', 1)), 'STORE_FAILED');
        await expectWeftError(store.insertAttempt(attempt('r_unknown', 'extract', 1)), 'STORE_FAILED');
      });
    });

    describe('logs', () => {
      it('numbers lines with an increasing seq and filters by afterSeq, task and limit', async () => {
        const run = await store.createRun(newRun());
        const other = await store.createRun(newRun());
        await store.appendLogs([log(run.id, null, 'run started'), log(run.id, 'extract', 'e1')]);
        await store.appendLogs([log(other.id, 'extract', 'elsewhere')]);
        await store.appendLogs([
          log(run.id, 'transform', 't1'),
          { ...log(run.id, 'extract', 'e2'), level: 'stderr', attempt: 2 },
        ]);
        await store.appendLogs([]);

        const logs = await store.getLogs(run.id);
        expect(logs.map((l) => l.message)).toEqual(['run started', 'e1', 't1', 'e2']);
        for (let i = 1; i < logs.length; i++) expect(logs[i]!.seq).toBeGreaterThan(logs[i - 1]!.seq);
        expect(logs[3]).toEqual({
          seq: logs[3]!.seq,
          runId: run.id,
          task: 'extract',
          attempt: 2,
          ts: iso(5),
          level: 'stderr',
          message: 'e2',
        });
        expect(logs[0]).toMatchObject({ task: null, attempt: null });

        expect((await store.getLogs(run.id, { afterSeq: logs[1]!.seq })).map((l) => l.message)).toEqual([
          't1',
          'e2',
        ]);
        expect((await store.getLogs(run.id, { task: 'extract' })).map((l) => l.message)).toEqual([
          'e1',
          'e2',
        ]);
        expect(
          (await store.getLogs(run.id, { task: 'extract', afterSeq: logs[1]!.seq })).map((l) => l.message),
        ).toEqual(['e2']);
        expect((await store.getLogs(run.id, { limit: 2 })).map((l) => l.message)).toEqual([
          'run started',
          'e1',
        ]);
        expect(await store.getLogs(run.id, { afterSeq: logs[3]!.seq })).toEqual([]);
        expect((await store.getLogs(other.id)).map((l) => l.message)).toEqual(['elsewhere']);
      });

      it('keeps a seq increasing across runs, so a follower never misses a line', async () => {
        const a = await store.createRun(newRun());
        const b = await store.createRun(newRun());
        await store.appendLogs([log(a.id, null, 'a1')]);
        await store.appendLogs([log(b.id, null, 'b1')]);
        await store.appendLogs([log(a.id, null, 'a2')]);
        const [a1, a2] = await store.getLogs(a.id);
        const [b1] = await store.getLogs(b.id);
        expect(a1!.seq).toBeLessThan(b1!.seq);
        expect(b1!.seq).toBeLessThan(a2!.seq);
      });

      it('keeps messages exactly, including empty, multi-line and non-ASCII ones', async () => {
        const run = await store.createRun(newRun());
        const messages = ['', 'two\nlines', 'tab\tand \u0000 nul', 'ünïcödé ✓ 🚀', 'x'.repeat(10_000)];
        await store.appendLogs(messages.map((m) => log(run.id, 'extract', m)));
        expect((await store.getLogs(run.id)).map((l) => l.message)).toEqual(messages);
      });
    });

    describe('hooks', () => {
      it('inserts hooks once per key and updates their state', async () => {
        const run = await store.createRun(newRun());
        await store.addHooks([
          hook(run.id, 'task_failure:extract:0'),
          hook(run.id, 'run_failure:0', { event: 'run_failure', task: null, createdAt: iso(11) }),
        ]);
        // Adding again (a resumed or recovered run) leaves the existing hooks as they are.
        await store.addHooks([
          hook(run.id, 'task_failure:extract:0', { handler: 'other', state: 'done' }),
          hook(run.id, 'run_success:0', { event: 'run_success', task: null, createdAt: iso(12) }),
        ]);
        let hooks = await store.getHooks(run.id);
        expect(hooks.map((h) => h.key)).toEqual(['task_failure:extract:0', 'run_failure:0', 'run_success:0']);
        expect(hooks[0]).toEqual(hook(run.id, 'task_failure:extract:0'));

        const error = { code: 'HANDLER_FAILED', message: 'webhook 500' };
        expect(
          await store.updateHook(run.id, 'run_failure:0', { state: 'failed', error, finishedAt: iso(20) }),
        ).toBe(true);
        expect(
          await store.updateHook(run.id, 'task_failure:extract:0', { state: 'done', finishedAt: iso(21) }),
        ).toBe(true);
        expect(await store.updateHook(run.id, 'missing', { state: 'done' })).toBe(false);
        expect(await store.updateHook('r_unknown', 'run_failure:0', { state: 'done' })).toBe(false);

        expect((await store.getHooks(run.id, ['pending'])).map((h) => h.key)).toEqual(['run_success:0']);
        expect((await store.getHooks(run.id, ['failed', 'done'])).map((h) => h.key)).toEqual([
          'task_failure:extract:0',
          'run_failure:0',
        ]);
        hooks = await store.getHooks(run.id, ['failed']);
        expect(hooks[0]).toMatchObject({ state: 'failed', error, finishedAt: iso(20), event: 'run_failure' });
      });
    });

    describe('JSON values', () => {
      it('round-trips params, outputs and errors of every JSON shape', async () => {
        const params: JsonObject = {
          text: 'ünï "quoted" \\ back',
          int: 42,
          float: -1.5e-7,
          yes: true,
          no: false,
          nothing: null,
          list: [1, 'two', [3], { four: 4 }],
          nested: { a: { b: { c: [] } }, empty: {} },
        };
        const run = await store.createRun(newRun({ params }));
        expect((await store.getRun(run.id))!.params).toEqual(params);

        const outputs: JsonValue[] = ['plain', 0, false, [], [null, 'x'], { deep: { list: [{ k: 'v' }] } }];
        const tasks = ['extract', 'transform', 'load'];
        for (let i = 0; i < tasks.length; i++) {
          await store.updateTaskRun(run.id, tasks[i]!, { output: outputs[i]! });
        }
        expect((await store.getTaskRuns(run.id)).map((t) => t.output)).toEqual(outputs.slice(0, 3));
        for (let i = 3; i < outputs.length; i++) {
          await store.updateTaskRun(run.id, 'extract', { output: outputs[i]! });
          expect((await store.getTaskRuns(run.id))[0]!.output).toEqual(outputs[i]);
        }
        await store.updateTaskRun(run.id, 'extract', { output: null });
        expect((await store.getTaskRuns(run.id))[0]!.output).toBeNull();

        const error = {
          code: 'HANDLER_FAILED',
          message: 'line 1\nline 2 "quoted"',
          name: 'NonRetryableError',
        };
        await store.updateTaskRun(run.id, 'load', { state: 'failed', error });
        expect((await store.getTaskRuns(run.id))[2]!.error).toEqual(error);
      });

      it('stores a task named __proto__ and outputs keyed by it without polluting any prototype', async () => {
        const plan = makePlan('demo', [
          ['__proto__', []],
          ['constructor', ['__proto__']],
          ['toString', []],
        ]);
        const params = JSON.parse('{"__proto__": {"polluted": "params"}, "region": "eu"}') as JsonObject;
        const run = await store.createRun(newRun({ plan, params }));
        const output = JSON.parse(
          '{"__proto__": {"polluted": "output"}, "constructor": {"prototype": 1}}',
        ) as JsonValue;
        expect(await store.updateTaskRun(run.id, '__proto__', { state: 'succeeded', output })).toBe(true);
        await store.insertAttempt(attempt(run.id, '__proto__', 1));
        await store.appendLogs([log(run.id, '__proto__', 'hi')]);

        const read = (await store.getRun(run.id))!;
        expect(Object.keys(read.plan.tasks)).toEqual(['__proto__', 'constructor', 'toString']);
        expect(Object.getPrototypeOf(read.plan.tasks)).toBeNull();
        expect(read.plan.tasks['__proto__']!.name).toBe('__proto__');
        expect(read.plan.tasks['constructor']!.dependsOn).toEqual(['__proto__']);
        expect(Object.keys(read.params)).toEqual(['__proto__', 'region']);
        expect(Object.getOwnPropertyDescriptor(read.params, '__proto__')?.value).toEqual({
          polluted: 'params',
        });

        const tasks = await store.getTaskRuns(run.id);
        expect(tasks.map((t) => t.task)).toEqual(['__proto__', 'constructor', 'toString']);
        const stored = tasks[0]!.output as Record<string, unknown>;
        expect(Object.keys(stored)).toEqual(['__proto__', 'constructor']);
        expect(Object.getOwnPropertyDescriptor(stored, '__proto__')?.value).toEqual({ polluted: 'output' });
        expect(stored['polluted']).toBeUndefined();
        expect((await store.getAttempts(run.id, '__proto__')).map((a) => a.task)).toEqual(['__proto__']);
        expect((await store.getLogs(run.id, { task: '__proto__' })).map((l) => l.message)).toEqual(['hi']);
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
        expect(Object.prototype).not.toHaveProperty('polluted');
      });
    });

    describe('durability', () => {
      it('makes every write accepted before flush() visible after it', async () => {
        const run = await store.createRun(newRun({ plan: makePlan('demo', wideTasks(200)) }));
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < 200; i++) {
          const task = `t${i}`;
          writes.push(
            store.updateTaskRun(run.id, task, { state: 'running', attempts: 1 }, { states: ['pending'] }),
          );
          writes.push(store.insertAttempt(attempt(run.id, task, 1)));
          writes.push(store.appendLogs([log(run.id, task, `line ${i}`)]));
          writes.push(store.updateAttempt(run.id, task, 1, { state: 'succeeded', finishedAt: iso(2) }));
          writes.push(
            store.updateTaskRun(run.id, task, { state: 'succeeded', output: i }, { states: ['running'] }),
          );
        }
        writes.push(store.updateRun(run.id, { state: 'succeeded' }));
        await store.flush();

        const tasks = await store.getTaskRuns(run.id);
        expect(tasks.filter((t) => t.state === 'succeeded')).toHaveLength(200);
        expect(tasks.map((t) => t.output)).toEqual(Array.from({ length: 200 }, (_, i) => i));
        const attempts = await store.getAttempts(run.id);
        expect(attempts.filter((a) => a.state === 'succeeded')).toHaveLength(200);
        expect((await store.getLogs(run.id)).map((l) => l.message)).toEqual(
          Array.from({ length: 200 }, (_, i) => `line ${i}`),
        );
        expect((await store.getRun(run.id))!.state).toBe('succeeded');
        const results = await Promise.all(writes);
        expect(results.every((r) => r === true || r === undefined)).toBe(true);
      });

      it('fails every operation after close', async () => {
        const run = await store.createRun(newRun());
        await store.close();
        await expectWeftError(store.getRun(run.id), 'STORE_FAILED');
        await expectWeftError(store.updateRun(run.id, { state: 'running' }), 'STORE_FAILED');
        await store.close();
      });
    });

    describeFiresAndRequests(() => store);
  });
}

function wideTasks(width: number): [string, string[]][] {
  return Array.from({ length: width }, (_, i): [string, string[]] => [`t${i}`, []]);
}

// ---- fires and run requests (the scheduler's records) ------------------------------------------

function fire(overrides: Partial<FireRecord> = {}): FireRecord {
  return {
    pipeline: 'demo',
    scheduledFor: iso(60_000),
    outcome: 'ran',
    reason: null,
    runId: 'r_fire',
    recordedAt: iso(60_001),
    ...overrides,
  };
}

function describeFiresAndRequests(current: () => RunStore): void {
  describe('fires', () => {
    it('records a fire once per (pipeline, scheduledFor) and reads it back', async () => {
      const store = current();
      expect(await store.recordFire(fire())).toBe(true);
      expect(await store.recordFire(fire({ outcome: 'skipped', reason: 'again', runId: null }))).toBe(false);
      expect(await store.recordFire(fire({ pipeline: 'other' }))).toBe(true);
      expect(await store.listFires({ pipeline: 'demo' })).toEqual([fire()]);
    });

    it('lets exactly one of two concurrent recordFire calls for one fire win', async () => {
      const store = current();
      const results = await Promise.all([
        store.recordFire(fire({ runId: 'r_a' })),
        store.recordFire(fire({ runId: 'r_b' })),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      const stored = await store.listFires();
      expect(stored).toHaveLength(1);
      expect(stored[0]!.runId).toBe(results[0] ? 'r_a' : 'r_b');
    });

    it('lists newest schedule time first, filtered and limited, and finds the last fire', async () => {
      const store = current();
      await store.recordFire(
        fire({ scheduledFor: iso(2 * 60_000), outcome: 'missed', reason: 'down', runId: null }),
      );
      await store.recordFire(fire({ scheduledFor: iso(60_000) }));
      await store.recordFire(fire({ scheduledFor: iso(3 * 60_000), outcome: 'queued', reason: 'busy' }));
      await store.recordFire(fire({ pipeline: 'b', scheduledFor: iso(9 * 60_000) }));
      const demo = await store.listFires({ pipeline: 'demo' });
      expect(demo.map((f) => f.scheduledFor)).toEqual([iso(180_000), iso(120_000), iso(60_000)]);
      expect(demo[1]).toMatchObject({ outcome: 'missed', reason: 'down', runId: null });
      expect((await store.listFires({ limit: 2 })).map((f) => f.pipeline)).toEqual(['b', 'demo']);
      expect((await store.lastFire('demo'))?.scheduledFor).toBe(iso(180_000));
      expect((await store.lastFire('b'))?.outcome).toBe('ran');
      expect(await store.lastFire('none')).toBeNull();
    });
  });

  describe('prune', () => {
    const HOUR = 3_600_000;
    const cutoff = iso(100 * HOUR);
    const old = iso(10 * HOUR);
    const recent = iso(200 * HOUR);

    /** A run created and moved to `state` (finished at `finishedAt`), with a log line, an attempt and hooks. */
    async function runIn(
      store: RunStore,
      state: RunRecord['state'],
      finishedAt: string | null,
      options: { hook?: HookRecord['state']; scheduledFor?: string; pipeline?: string } = {},
    ): Promise<string> {
      const run = await store.createRun(
        newRun({ scheduledFor: options.scheduledFor ?? null, pipeline: options.pipeline ?? 'demo' }),
      );
      await store.insertAttempt(attempt(run.id, 'extract', 1, { state: 'succeeded', finishedAt }));
      await store.appendLogs([log(run.id, 'extract', 'a line')]);
      if (options.hook) await store.addHooks([hook(run.id, 'on_failure', { state: options.hook })]);
      await store.updateRun(run.id, { state, finishedAt });
      return run.id;
    }

    it('deletes finished history before the cut-off and keeps what may still be needed', async () => {
      const store = current();
      // Hooks count a pipeline's failures back to its last success: the failure streak of
      // `streaky` stays with the success it started after.
      const streakStart = await runIn(store, 'succeeded', old, { pipeline: 'streaky' });
      const streak = [
        await runIn(store, 'failed', old, { pipeline: 'streaky' }),
        await runIn(store, 'failed', old, { pipeline: 'streaky' }),
      ];
      // A failure before a run still unfinished stays too (that run counts back over it when it
      // ends), though a success followed both; an older success with one after it goes.
      const waits = {
        failed: await runIn(store, 'failed', old, { pipeline: 'waits' }),
        open: await runIn(store, 'interrupted', null, { pipeline: 'waits' }),
      };
      const waitsSuccess = await runIn(store, 'succeeded', old, { pipeline: 'waits' });
      await runIn(store, 'succeeded', recent, { pipeline: 'waits' });
      // So does a failure before a success whose hook (on_recovery, say) has not run yet, and
      // before a failure with a hook pending.
      const hooked = {
        beforeRecovery: await runIn(store, 'failed', old, { pipeline: 'hooked' }),
        recovery: await runIn(store, 'succeeded', old, { pipeline: 'hooked', hook: 'pending' }),
        beforeAlert: await runIn(store, 'failed', old, { pipeline: 'hooked' }),
        alert: await runIn(store, 'failed', old, { pipeline: 'hooked', hook: 'pending' }),
        last: await runIn(store, 'succeeded', recent, { pipeline: 'hooked' }),
      };
      const gone = await runIn(store, 'succeeded', old, { hook: 'done' });
      const goneFailed = await runIn(store, 'failed', old);
      const goneCancelled = await runIn(store, 'cancelled', old);
      const kept = {
        recent: await runIn(store, 'succeeded', recent),
        atCutoff: await runIn(store, 'succeeded', cutoff),
        pendingHook: await runIn(store, 'failed', old, { hook: 'pending' }),
        interrupted: await runIn(store, 'interrupted', old),
        running: await runIn(store, 'running', null),
        retrying: await runIn(store, 'retrying', old),
        newestFire: await runIn(store, 'succeeded', old, { scheduledFor: iso(40 * HOUR) }),
      };
      const firedGone = await runIn(store, 'succeeded', old, { scheduledFor: iso(5 * HOUR) });
      const queuedGone = await runIn(store, 'succeeded', old, { scheduledFor: iso(8 * HOUR) });
      // The newest success of demo, which stays: the ones before it may go.
      const lastSuccess = await runIn(store, 'succeeded', recent);
      // demo: old fires go, but not one whose run is still to be created, nor the newest. b: its
      // only fire stays.
      await store.recordFire(fire({ scheduledFor: iso(5 * HOUR), runId: firedGone }));
      await store.recordFire(fire({ scheduledFor: iso(6 * HOUR), outcome: 'missed', runId: null }));
      await store.recordFire(fire({ scheduledFor: iso(7 * HOUR), outcome: 'queued', runId: 'r_waiting' }));
      await store.recordFire(fire({ scheduledFor: iso(8 * HOUR), outcome: 'queued', runId: queuedGone }));
      await store.recordFire(fire({ scheduledFor: iso(9 * HOUR), runId: 'r_not_created' }));
      await store.recordFire(fire({ scheduledFor: iso(40 * HOUR), runId: kept.newestFire }));
      await store.recordFire(
        fire({ pipeline: 'b', scheduledFor: iso(HOUR), runId: null, outcome: 'missed' }),
      );
      for (const [id, at] of [
        ['q_old', old],
        ['q_recent', recent],
        ['q_pending', null],
      ] as const) {
        await store.requestRun({ id, pipeline: 'demo', params: {}, requestedAt: iso(HOUR) });
        if (at === null) continue;
        await store.claimRunRequests(1, 'host:1', iso(HOUR));
        await store.completeRunRequest(id, null, { code: 'X', message: 'x' }, at);
      }

      const expected = { runs: 6, fires: 3, runRequests: 1 };
      expect(await store.prune({ before: cutoff, dryRun: true })).toEqual(expected);
      expect(await store.getRun(gone)).not.toBeNull();
      expect(await store.listFires({ limit: 10 })).toHaveLength(7);
      expect(await store.prune({ before: cutoff })).toEqual(expected);

      for (const id of [gone, goneFailed, goneCancelled, firedGone, queuedGone, waitsSuccess]) {
        expect(await store.getRun(id)).toBeNull();
        expect(await store.getTaskRuns(id)).toEqual([]);
        expect(await store.getAttempts(id)).toEqual([]);
        expect(await store.getLogs(id)).toEqual([]);
        expect(await store.getHooks(id)).toEqual([]);
      }
      for (const id of [
        ...Object.values(kept),
        ...Object.values(waits),
        ...Object.values(hooked),
        streakStart,
        ...streak,
        lastSuccess,
      ]) {
        expect(await store.getRun(id)).not.toBeNull();
        expect(await store.getTaskRuns(id)).toHaveLength(3);
        expect(await store.getLogs(id)).toHaveLength(1);
      }
      const fires = await store.listFires({ limit: 10 });
      expect(fires.map((f) => [f.pipeline, f.scheduledFor])).toEqual([
        ['demo', iso(40 * HOUR)],
        ['demo', iso(9 * HOUR)],
        ['demo', iso(7 * HOUR)],
        ['b', iso(HOUR)],
      ]);
      expect(await store.getRunRequest('q_old')).toBeNull();
      expect(await store.getRunRequest('q_recent')).not.toBeNull();
      expect(await store.getRunRequest('q_pending')).not.toBeNull();
      // Nothing more goes a second time, and what stays still works.
      expect(await store.prune({ before: cutoff })).toEqual({ runs: 0, fires: 0, runRequests: 0 });
      expect(await store.updateRun(kept.interrupted, { state: 'running' })).toBe(true);
      // Once the streak ends with a success, its failed runs may go too.
      await runIn(store, 'succeeded', recent, { pipeline: 'streaky' });
      expect(await store.prune({ before: cutoff })).toEqual({ runs: 3, fires: 0, runRequests: 0 });
    });

    it('deletes more runs than one batch holds, and looks past the ones it keeps', async () => {
      const store = current();
      const total = 1_100;
      const ids: string[] = [];
      for (let i = 0; i < total; i += 100) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(100, total - i) }, () => store.createRun(newRun())),
        );
        await Promise.all(batch.map((r) => store.updateRun(r.id, { state: 'succeeded', finishedAt: old })));
        ids.push(...batch.map((r) => r.id));
      }
      // Every 50th is pointed to by a fire that stays (the newest of its pipeline), so every batch
      // holds runs that stay.
      const held = ids.filter((_, i) => i % 50 === 0);
      for (const [i, runId] of held.entries())
        await store.recordFire(fire({ pipeline: `held${i}`, scheduledFor: old, runId }));
      const keep = await runIn(store, 'succeeded', recent);
      const gone = { runs: total - held.length, fires: 0, runRequests: 0 };
      expect(held).toHaveLength(22);
      // Stopped before its first batch, it deletes nothing.
      expect(await store.prune({ before: cutoff, signal: AbortSignal.abort() })).toEqual({
        runs: 0,
        fires: 0,
        runRequests: 0,
      });
      expect(await store.prune({ before: cutoff, dryRun: true })).toEqual(gone);
      expect(await store.prune({ before: cutoff })).toEqual(gone);
      expect((await store.listRuns({ limit: 2_000 })).map((r) => r.id).sort()).toEqual(
        [...held, keep].sort(),
      );
      expect(await store.getTaskRuns(ids[ids.length - 1]!)).toEqual([]);
    });
  });

  describe('run requests', () => {
    const request = (id: string, at: number): NewRunRequest => ({
      id,
      pipeline: 'demo',
      params: { region: 'eu', n: 3 },
      requestedAt: iso(at),
    });

    it('stores a pending request and refuses a second one with the same id', async () => {
      const store = current();
      const created = await store.requestRun(request('q_1', 1));
      expect(created).toEqual({
        id: 'q_1',
        pipeline: 'demo',
        params: { region: 'eu', n: 3 },
        state: 'pending',
        requestedAt: iso(1),
        claimedBy: null,
        claimedAt: null,
        runId: null,
        error: null,
        completedAt: null,
      });
      expect(await store.getRunRequest('q_1')).toEqual(created);
      await expectWeftError(store.requestRun(request('q_1', 2)), 'RUN_DUPLICATE');
      expect(await store.getRunRequest('q_none')).toBeNull();
    });

    it('claims pending requests oldest first, each once, up to the limit', async () => {
      const store = current();
      await store.requestRun(request('q_b', 2));
      await store.requestRun(request('q_a', 1));
      await store.requestRun(request('q_c', 3));
      const [first, second] = await Promise.all([
        store.claimRunRequests(2, 'host:1', iso(10)),
        store.claimRunRequests(2, 'host:2', iso(10)),
      ]);
      const ids = [...first, ...second].map((r) => r.id);
      expect(ids.sort()).toEqual(['q_a', 'q_b', 'q_c']);
      expect(first.map((r) => r.id)).toEqual(['q_a', 'q_b']);
      expect(first[0]).toMatchObject({ state: 'claimed', claimedBy: 'host:1', claimedAt: iso(10) });
      expect(await store.claimRunRequests(10, 'host:3', iso(11))).toEqual([]);
      expect((await store.getRunRequest('q_c'))?.claimedBy).toBe('host:2');
    });

    it('takes a stale claim again (its claimer died), never a fresh one or a completed one', async () => {
      const store = current();
      await store.requestRun(request('q_a', 1));
      await store.requestRun(request('q_b', 2));
      await store.requestRun(request('q_c', 3));
      expect((await store.claimRunRequests(2, 'dead:1', iso(10))).map((r) => r.id)).toEqual(['q_a', 'q_b']);
      expect(await store.completeRunRequest('q_b', 'r_b', null, iso(11))).toBe(true);
      // Not stale yet: only the pending one.
      expect((await store.claimRunRequests(5, 'host:2', iso(20), iso(10))).map((r) => r.id)).toEqual(['q_c']);
      // Stale: q_a (claimed at 10) again, now host:3's; q_b is done and q_c's claim (20) is fresh.
      const retaken = await store.claimRunRequests(5, 'host:3', iso(40), iso(15));
      expect(retaken.map((r) => [r.id, r.claimedBy, r.claimedAt])).toEqual([['q_a', 'host:3', iso(40)]]);
      expect(await store.claimRunRequests(5, 'host:4', iso(41), iso(15))).toEqual([]);
      expect((await store.getRunRequest('q_b'))?.state).toBe('done');
    });

    it('completes a claimed request as done or failed, once', async () => {
      const store = current();
      await store.requestRun(request('q_1', 1));
      await store.requestRun(request('q_2', 2));
      expect(await store.completeRunRequest('q_1', 'r_x', null, iso(5))).toBe(false);
      await store.claimRunRequests(5, 'host:1', iso(3));
      expect(await store.completeRunRequest('q_1', 'r_x', null, iso(5))).toBe(true);
      expect(await store.completeRunRequest('q_1', 'r_y', null, iso(6))).toBe(false);
      const error = { code: 'PIPELINE_NOT_FOUND', message: 'no pipeline "demo"' };
      expect(await store.completeRunRequest('q_2', null, error, iso(7))).toBe(true);
      expect(await store.getRunRequest('q_1')).toMatchObject({
        state: 'done',
        runId: 'r_x',
        completedAt: iso(5),
      });
      expect(await store.getRunRequest('q_2')).toMatchObject({ state: 'failed', runId: null, error });
      expect(await store.completeRunRequest('q_none', 'r_z', null, iso(8))).toBe(false);
    });
  });
}
