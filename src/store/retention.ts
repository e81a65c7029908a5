import type { PruneReport, RunStore } from './run-store.js';

/**
 * The shortest history a prune may cut to. Fires are how a scheduler knows a tick was taken: kept
 * for a day, they stop a clock set back (by hand, or by a bad time server) from firing a tick again.
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
 * finds nothing. `stop` waits for a prune in progress, so the store can be closed after it.
 */
export function startRetention(options: RetentionOptions): { stop: () => Promise<void> } {
  let current: Promise<void> = Promise.resolve();
  let busy = false;
  const prune = () => {
    if (busy) return;
    busy = true;
    const before = new Date(options.now() - options.retainMs).toISOString();
    current = options.store
      .prune({ before })
      .then((report) => options.onPruned(report, before), options.onError)
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
      await current;
    },
  };
}
