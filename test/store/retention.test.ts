import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { startRetention } from '../../src/store/retention.js';
import type { PruneReport, RunStore } from '../../src/store/run-store.js';
import { finishedRun as storeRun } from './plan-fixture.js';

const finishedRun = (store: RunStore, id: string, at: number) =>
  storeRun(store, id, new Date(at).toISOString());

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

afterEach(() => vi.useRealTimers());

describe('startRetention (weft serve --retain)', () => {
  it('prunes at once, then every interval, on the clock it is given, until stopped', async () => {
    vi.useFakeTimers();
    let now = Date.parse('2026-01-31T00:00:00.000Z');
    const store = createMemoryStore();
    await finishedRun(store, 'r_1', now - 31 * DAY);
    await finishedRun(store, 'r_2', now - 29.75 * DAY);
    // The newest success of p always stays: the older ones may go.
    await finishedRun(store, 'r_3', now - DAY);
    const pruned: [PruneReport, string][] = [];
    const errors: unknown[] = [];
    const retention = startRetention({
      store,
      retainMs: 30 * DAY,
      everyMs: HOUR,
      now: () => now,
      onPruned: (report, before) => pruned.push([report, before]),
      onError: (error) => errors.push(error),
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(pruned).toEqual([[{ runs: 1, fires: 0, runRequests: 0 }, '2026-01-01T00:00:00.000Z']]);
    expect(await store.getRun('r_1')).toBeNull();

    // Half a day on, r_2 is past the cut-off: the next hourly prune takes it, not an earlier one.
    now += 12 * HOUR;
    await vi.advanceTimersByTimeAsync(HOUR - 1);
    expect(await store.getRun('r_2')).not.toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(pruned.at(-1)![0].runs).toBe(1);
    expect(await store.getRun('r_2')).toBeNull();
    await retention.stop();
    await vi.advanceTimersByTimeAsync(10 * HOUR);
    expect(pruned).toHaveLength(2);
    expect(errors).toEqual([]);
  });

  it('stops a prune in progress between batches, and reports an error thrown while reporting', async () => {
    const store = createMemoryStore();
    let signal: AbortSignal | undefined;
    let release: () => void = () => undefined;
    const held: RunStore = Object.assign(Object.create(store) as RunStore, {
      prune: async (query: Parameters<RunStore['prune']>[0]) => {
        signal = query.signal;
        await new Promise<void>((resolve) => (release = resolve));
        return store.prune(query);
      },
    });
    const errors: unknown[] = [];
    const retention = startRetention({
      store: held,
      retainMs: 30 * DAY,
      now: () => Date.now(),
      onPruned: () => {
        throw new Error('cannot log');
      },
      onError: (error) => errors.push(error),
    });
    expect(signal?.aborted).toBe(false);
    const stopped = retention.stop();
    expect(signal?.aborted).toBe(true);
    release();
    await stopped;
    expect(errors.map((e) => (e as Error).message)).toEqual(['cannot log']);
  });

  it('reports a failed prune and tries again at the next interval', async () => {
    vi.useFakeTimers();
    const store = createMemoryStore();
    let failures = 1;
    const flaky: RunStore = Object.assign(Object.create(store) as RunStore, {
      prune: (query: Parameters<RunStore['prune']>[0]) =>
        failures-- > 0 ? Promise.reject(new Error('database is locked')) : store.prune(query),
    });
    const errors: unknown[] = [];
    const reports: PruneReport[] = [];
    const retention = startRetention({
      store: flaky,
      retainMs: 30 * DAY,
      everyMs: HOUR,
      now: () => Date.now(),
      onPruned: (report) => reports.push(report),
      onError: (error) => errors.push(error),
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(errors.map((e) => (e as Error).message)).toEqual(['database is locked']);
    expect(reports).toEqual([]);
    await vi.advanceTimersByTimeAsync(HOUR);
    expect(reports).toEqual([{ runs: 0, fires: 0, runRequests: 0 }]);
    await retention.stop();
  });
});
