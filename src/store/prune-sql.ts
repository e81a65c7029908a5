import { PRUNABLE_RUN_STATES } from './run-store.js';

/**
 * The conditions of `RunStore.prune` (see PruneQuery), as SQL both adapters run: `before` is the
 * dialect's placeholder for the cut-off time. Fires go first, so that a run is kept exactly when a
 * fire that stays points to it; a queued fire whose run does not exist yet is still waiting for it.
 */

/** Rows of `fires f` that go. */
export const prunableFire = (before: string): string => `f.scheduled_for < ${before}
  AND f.scheduled_for < (SELECT max(g.scheduled_for) FROM fires g WHERE g.pipeline = f.pipeline)
  AND NOT (f.outcome = 'queued' AND f.run_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM runs w WHERE w.id = f.run_id))`;

/** Rows of `runs r` that go (once the fires have). */
export const prunableRun = (
  before: string,
): string => `r.state IN (${PRUNABLE_RUN_STATES.map((s) => `'${s}'`).join(', ')})
  AND r.finished_at < ${before}
  AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.run_id = r.id AND h.state = 'pending')
  AND r.id NOT IN (SELECT k.run_id FROM fires k WHERE k.run_id IS NOT NULL)`;

/** Rows of `run_requests q` that go. */
export const prunableRequest = (before: string): string =>
  `q.state IN ('done', 'failed') AND q.completed_at < ${before}`;

/** Runs deleted per statement: each batch holds other writers up only briefly. */
export const PRUNE_BATCH = 500;
