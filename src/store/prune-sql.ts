import { PRUNABLE_RUN_STATES } from './run-store.js';

/**
 * The conditions of `RunStore.prune` (see PruneQuery), as SQL both adapters run: `before` is the
 * dialect's placeholder for the cut-off time. Fires go first, then runs: a run stays while a fire
 * that stays points to it. The indexes these lean on are migration "retention" (runs_finished,
 * fires_run) and the tables' keys.
 */

/** Rows of fires (as `alias`) that go. A fire whose run does not exist yet still waits for it. */
export const prunableFire = (alias: string, before: string): string => `${alias}.scheduled_for < ${before}
  AND ${alias}.scheduled_for < (SELECT max(g.scheduled_for) FROM fires g WHERE g.pipeline = ${alias}.pipeline)
  AND NOT (${alias}.run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs w WHERE w.id = ${alias}.run_id))`;

const FINISHED = PRUNABLE_RUN_STATES.map((s) => `'${s}'`).join(', ');

/**
 * Rows of `runs r` that go. A failed run with no later success of its pipeline is part of the
 * failure streak that `after_consecutive_failures` and `on_recovery` count, so it stays.
 */
export const prunableRun = (before: string): string => `r.state IN (${FINISHED})
  AND r.finished_at < ${before}
  AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.run_id = r.id AND h.state = 'pending')
  AND NOT EXISTS (SELECT 1 FROM fires k WHERE k.run_id = r.id AND NOT (${prunableFire('k', before)}))
  AND NOT (r.state = 'failed' AND NOT EXISTS (
    SELECT 1 FROM runs s WHERE s.pipeline = r.pipeline AND s.state = 'succeeded'
      AND (s.created_at, s.id) > (r.created_at, r.id)))`;

/** Rows of `run_requests q` that go. */
export const prunableRequest = (before: string): string =>
  `q.state IN ('done', 'failed') AND q.completed_at < ${before}`;

/** Rows deleted per statement: each batch holds other writers up only briefly. */
export const PRUNE_BATCH = 500;

/** The statements of one dialect: counts for a dry run, and batched deletes (each returns rows deleted). */
export function pruneStatements(before: string, limit: string) {
  return {
    countFires: `SELECT count(*) AS n FROM fires f WHERE ${prunableFire('f', before)}`,
    countRuns: `SELECT count(*) AS n FROM runs r WHERE ${prunableRun(before)}`,
    countRequests: `SELECT count(*) AS n FROM run_requests q WHERE ${prunableRequest(before)}`,
    deleteFires: `DELETE FROM fires WHERE (pipeline, scheduled_for) IN (
      SELECT f.pipeline, f.scheduled_for FROM fires f WHERE ${prunableFire('f', before)} ${limit})`,
    /** The ids of a batch of runs, oldest end first; `lock` is the dialect's row-locking clause. */
    selectRuns: (lock: string) =>
      `SELECT r.id FROM runs r WHERE ${prunableRun(before)} ORDER BY r.finished_at ${limit} ${lock}`,
    deleteRequests: `DELETE FROM run_requests WHERE id IN (
      SELECT q.id FROM run_requests q WHERE ${prunableRequest(before)} ${limit})`,
  };
}

/** The cut-off as the stores write times (ISO, UTC, milliseconds); a bad one is a caller's bug. */
export function pruneCutoff(before: string): string {
  const ms = Date.parse(before);
  if (Number.isNaN(ms)) throw new TypeError(`prune: "before" is not a time: ${before}`);
  return new Date(ms).toISOString();
}
