import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import type { RunStore } from '../../src/store/run-store.js';
import { EngineHarness } from '../support/engine-harness.js';
import { ok, plan } from '../support/plan-builder.js';

/**
 * A hook that ran but whose `done` could not be written (the store's connection dropped) did not
 * fail: it stays pending and runs again, rather than being recorded `failed` with the store's
 * error as if the hook had failed (found by test/reliability/proxy-workers.test.ts).
 */
describe('runHook: the store failing to record a hook done', () => {
  it('leaves the hook pending (the store failure escapes), and the next execution runs it again', async () => {
    const h = new EngineHarness();
    let calls = 0;
    h.register({ name: 'notify', run: () => void (calls += 1) });
    let failures = 1;
    const dropping = new Proxy(h.store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        const fn = (value as (...args: unknown[]) => unknown).bind(target);
        if (prop !== 'updateHook') return fn;
        return (...args: Parameters<RunStore['updateHook']>) =>
          args[2].state === 'done' && failures-- > 0
            ? Promise.reject(new WeftError('STORE_FAILED', 'Connection terminated unexpectedly'))
            : fn(...args);
      },
    });
    const created = await h.create(plan({ tasks: [ok('a')], onSuccess: ['notify'] }));
    await expect(h.execute(created.id, { store: dropping })).rejects.toMatchObject({ code: 'STORE_FAILED' });
    expect(calls).toBe(1);
    expect((await h.store.getHooks(created.id)).map((x) => [x.key, x.state, x.error])).toEqual([
      ['run_success:0@1', 'pending', null],
    ]);
    // At least once: the pending hook runs again, and is done.
    expect((await h.execute(created.id)).state).toBe('succeeded');
    expect(calls).toBe(2);
    expect((await h.store.getHooks(created.id)).map((x) => x.state)).toEqual(['done']);
  });
});

/**
 * Once a run has nothing pending a prune may delete it, so a hook's log lines must be stored
 * before the hook is recorded finished, or a line written after would be lost.
 */
describe('runHook: log lines before the hook is recorded finished', () => {
  for (const [outcome, handler] of [
    ['done', () => undefined],
    [
      'failed',
      () => {
        throw new Error('slack is down');
      },
    ],
  ] as const) {
    it(`stores a ${outcome} hook's lines before recording it ${outcome}`, async () => {
      const h = new EngineHarness();
      h.register({
        name: 'notify',
        run: (_args, ctx) => {
          ctx.log.info('sending the alert');
          return handler();
        },
      });
      const calls: string[] = [];
      const recording = new Proxy(h.store, {
        get(target, prop, receiver) {
          const value: unknown = Reflect.get(target, prop, receiver);
          if (typeof value !== 'function') return value;
          const fn = (value as (...args: unknown[]) => Promise<unknown>).bind(target);
          if (prop === 'appendLogs')
            return async (...args: Parameters<RunStore['appendLogs']>) => {
              const done = await fn(...args);
              calls.push(...args[0].filter((l) => l.task === null).map((l) => `log ${l.message}`));
              return done;
            };
          if (prop === 'updateHook')
            return async (...args: Parameters<RunStore['updateHook']>) => {
              calls.push(`hook ${String(args[2].state)}`);
              return fn(...args);
            };
          return fn;
        },
      });
      const created = await h.create(plan({ tasks: [ok('a')], onSuccess: ['notify'] }));
      await h.execute(created.id, { store: recording });
      const alert = calls.indexOf('log sending the alert');
      expect(alert, calls.join('\n')).toBeGreaterThanOrEqual(0);
      expect(calls.indexOf(`hook ${outcome}`)).toBeGreaterThan(alert);
    });
  }
});
