import type { PruneReport, RunStore } from './run-store.js';

/**
 * The shortest history a prune may cut to: a slip of the finger (5m for 5d) must not wipe the
 * runs that just ended, and a scheduler cut off from the store for less than a day still finds
 * every tick the others took recorded when it comes back.
 */
export const MIN_RETENTION_MS = 24 * 3_600_000;

/** How often `weft serve --retain` prunes. */
export const RETENTION_EVERY_MS = 3_600_000;

export interface RetentionOptions {
  store: RunStore;
  /** History younger than this stays. */
  retainMs: number;
  everyMs?: number;
  /** The clock the store's times were written with (the scheduler's). */
  now: () => number;
  onPruned: (report: PruneReport, before: string) => void;
  onError: (error: unknown) => void;
}

/**
 * Prunes the store now and then every `everyMs`, one prune at a time, until stopped. Several
 * schedulers on one store may each do it: a prune deletes only what nobody needs, so the second
 * finds nothing. `stop` ends a prune in progress after its current batch and waits for that, so
 * the store can be closed after it.
 */
export function startRetention(options: RetentionOptions): { stop: () => Promise<void> } {
  const stopping = new AbortController();
  let current: Promise<void> = Promise.resolve();
  let busy = false;
  const prune = () => {
    if (busy || stopping.signal.aborted) return;
    busy = true;
    const before = new Date(Math.max(0, options.now() - options.retainMs)).toISOString();
    current = options.store
      .prune({ before, signal: stopping.signal })
      .then((report) => options.onPruned(report, before))
      .catch(options.onError)
      .finally(() => {
        busy = false;
      });
  };
  prune();
  const timer = setInterval(prune, options.everyMs ?? RETENTION_EVERY_MS);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      // A prune in progress ends after its current batch.
      stopping.abort();
      await current;
    },
  };
}
