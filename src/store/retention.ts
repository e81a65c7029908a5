import type { PruneReport, RunStore } from './run-store.js';

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
