// Item 14 for the PostgreSQL run store: runs of a small pipeline execute in-process against a
// store reached through a TCP proxy that cuts every connection a few times and refuses new ones
// for a while in the middle (CI 2 s, full tier 30 s: the "cut for 30 s"), then blips. A run either succeeds or fails with STORE_FAILED; after healing,
// markInterruptedRuns + prepareResume + executeRun (or creating it again, when its creation never
// committed) brings every run to `succeeded`. No task succeeds twice, no attempt stays `running`,
// and nothing escapes as an unhandled rejection or uncaught exception.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRun, executeRun, markInterruptedRuns, prepareResume } from '../../src/engine/index.js';
import { WeftError } from '../../src/errors.js';
import { createBuiltinHandlers } from '../../src/handlers/builtins.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import { newRunId } from '../../src/store/ids.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';
import { plan, task } from '../support/plan-builder.js';
import { useTestDatabase } from '../worker/pg-support.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { count } from './tier.js';

const db = await useTestDatabase('test/reliability/proxy-run-store.test.ts');
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const OWNER = 'proxy-test-host:1';

const PIPELINE = plan({
  name: 'proxy_store',
  concurrency: 2,
  tasks: [
    task('a', { handler: 'sleep', with: { duration: '50ms' } }),
    task('b', { handler: 'noop', deps: ['a'] }),
    task('c', { handler: 'sleep', with: { duration: '50ms' }, deps: ['a'] }),
    task('d', { handler: 'noop', deps: ['b', 'c'] }),
  ],
});

/** The built-ins, each wrapped to count the calls that returned, per "<run>/<task>". */
function countingRegistry(calls: Map<string, number>): HandlerRegistry {
  const wrapped = createBuiltinHandlers().map(
    (handler): AnyHandler => ({
      ...handler,
      run: async (args, ctx) => {
        const result = await handler.run(args, ctx);
        const key = `${ctx.run.id}/${ctx.task}`;
        calls.set(key, (calls.get(key) ?? 0) + 1);
        return result;
      },
    }),
  );
  return new HandlerRegistry(wrapped);
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

describe.skipIf(!db.available)('PostgreSQL run store behind a proxy that cuts and refuses', () => {
  let proxy: TcpProxy;
  let store: RunStore;
  const problems: string[] = [];
  const onRejection = (reason: unknown) => void problems.push(`unhandledRejection: ${String(reason)}`);
  const onException = (error: unknown) => void problems.push(`uncaughtException: ${String(error)}`);

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    const target = new URL(db.url());
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    store = await createPostgresStore(proxy.url(db.url()));
  });

  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    await store?.close().catch(() => undefined);
    await proxy?.close();
  });

  it(
    'every run ends succeeded, no task succeeds twice, no attempt stays running',
    async () => {
      const cycles = count(1, 5);
      const lanes = 4;
      const refuseMs = count(2000, 30_000);
      // A lane whose run failed waits before the next: over a 30 s refusal, 1 s keeps the runs to
      // recover afterwards in the hundreds rather than thousands.
      const laneBackoffMs = count(250, 1000);
      const calls = new Map<string, number>();
      const registry = countingRegistry(calls);
      const options = { store, registry, owner: OWNER, heartbeatMs: 200, cancelPollMs: 200 };
      const ids: string[] = [];
      const firstOutcome = new Map<string, string>();
      const errors: unknown[] = [];

      let chaosDone = false;
      // Lanes start runs until the chaos is over, so runs are in flight at every cut and refusal.
      const lane = async () => {
        while (!chaosDone) {
          const id = newRunId(Date.now());
          ids.push(id);
          try {
            await createRun(store, {
              plan: PIPELINE,
              params: {},
              trigger: 'manual',
              id,
              now: Date.now(),
              owner: OWNER,
            });
            const run = await executeRun(id, options);
            firstOutcome.set(id, run.state);
          } catch (error) {
            errors.push(error);
            firstOutcome.set(id, 'threw');
            // A store that cannot be reached is not retried at once: the lane waits a little.
            await pause(laneBackoffMs);
          }
        }
      };

      const chaos = async () => {
        for (let cycle = 0; cycle < cycles; cycle++) await chaosCycle();
        chaosDone = true;
      };
      const chaosCycle = async () => {
        await pause(300);
        proxy.cutAll();
        await pause(300);
        proxy.cutAll();
        await pause(200);
        // Refuse refuseMs (RST on connect), with the open connections cut at its start.
        await proxy.refuse(refuseMs, 'reset');
        proxy.cutAll();
        await pause(refuseMs + 100);
        for (let i = 0; i < 3; i++) {
          await pause(250);
          await proxy.blip();
        }
      };

      await Promise.all([chaos(), ...Array.from({ length: lanes }, lane)]);
      expect(chaosDone).toBe(true);
      await proxy.heal();
      expect(proxy.stats.cuts).toBeGreaterThanOrEqual(6 * cycles);
      expect(proxy.stats.refused).toBeGreaterThan(0);

      // The chaos hit something, and every failure says the store failed.
      expect(errors.length).toBeGreaterThan(0);
      for (const error of errors)
        expect({ code: error instanceof WeftError ? error.code : null, error: String(error) }).toMatchObject({
          code: 'STORE_FAILED',
        });

      // Recovery: nothing executes now, so every unfinished run of our owner is interrupted.
      await markInterruptedRuns(store, { now: Date.now(), isOwnerAlive: () => false });
      const recover = async (id: string) => {
        let run: RunRecord | null = await store.getRun(id);
        if (run === null) {
          await createRun(store, {
            plan: PIPELINE,
            params: {},
            trigger: 'manual',
            id,
            now: Date.now(),
            owner: OWNER,
          });
          run = await executeRun(id, options);
        } else if (run.state !== 'succeeded') {
          expect(['interrupted', 'failed'], `${id} is ${run.state}`).toContain(run.state);
          await prepareResume(store, id, { now: Date.now() });
          run = await executeRun(id, options);
        }
        if (run.state !== 'succeeded') {
          // Say what the run's tasks and attempts ended as: the failure is otherwise unreadable.
          const tasks = (await store.getTaskRuns(id)).map((t) => [t.task, t.state, t.reason ?? null]);
          const attempts = (await store.getAttempts(id)).map((a) => [
            a.task,
            a.attempt,
            a.state,
            a.error?.message,
          ]);
          expect(
            run.state,
            `${id}: tasks ${JSON.stringify(tasks)} attempts ${JSON.stringify(attempts)}`,
          ).toBe('succeeded');
        }
      };
      let nextToRecover = 0;
      const recoveryLane = async () => {
        while (nextToRecover < ids.length) await recover(ids[nextToRecover++]!);
      };
      await Promise.all(Array.from({ length: lanes }, recoveryLane));

      for (const id of ids) {
        const run = (await store.getRun(id))!;
        expect(TERMINAL.has(run.state)).toBe(true);
        expect(run.state).toBe('succeeded');
        const attempts = await store.getAttempts(id);
        expect(attempts.filter((a) => a.state === 'running')).toEqual([]);
        for (const t of await store.getTaskRuns(id)) {
          expect(t.state).toBe('succeeded');
          const mine = attempts.filter((a) => a.task === t.task);
          const succeeded = mine.filter((a) => a.state === 'succeeded').length;
          const handled = calls.get(`${id}/${t.task}`) ?? 0;
          // Exactly one recorded success; the handler ran at least for it and never without an attempt.
          expect({ task: `${id}/${t.task}`, succeeded }).toEqual({ task: `${id}/${t.task}`, succeeded: 1 });
          expect(handled).toBeGreaterThanOrEqual(1);
          expect(handled).toBeLessThanOrEqual(mine.length);
        }
      }
      expect(problems).toEqual([]);
      console.log(
        `[reliability] pg store behind proxy: ${ids.length} runs, ${errors.length} failed with STORE_FAILED first, ` +
          `${[...firstOutcome.values()].filter((s) => s === 'succeeded').length} succeeded first, ` +
          `refused ${refuseMs} ms x ${cycles}, proxy ${JSON.stringify(proxy.stats)}`,
      );
    },
    count(120_000, 600_000),
  );
});
