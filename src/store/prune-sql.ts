import { PRUNABLE_RUN_STATES } from './run-store.js';

/**
 * The conditions of `RunStore.prune` (see PruneQuery) as SQL both adapters run, and the batched
 * statements built on them. Fires go first, then runs: a run stays while any fire points to it.
 * The indexes they lean on are migration "retention" (runs_finished, runs_pipeline_succeeded,
 * runs_pipeline_open, hooks_pending, fires_run) and the tables' keys.
 */

/** What differs between the dialects. */
export interface PruneDialect {
  /** The cut-off's placeholder. */
  before: string;
  /**
   * The runs a batch picks from (`r`), the successes (`s`) and the unfinished runs (`u`) of a
   * pipeline. SQLite names the partial index to use: without statistics it would pick another.
   */
  finishedRuns: string;
  succeededRuns: string;
  openRuns: string;
  /** How a batch's SELECT locks the rows it will delete ('' where the write lock covers it). */
  lock: string;
  /** Placeholders of the last run the previous batch looked at (finished_at, id). */
  after: readonly [string, string];
  /** A subquery listing the ids of a batch, given as one parameter. */
  ids: string;
}

const FINISHED = PRUNABLE_RUN_STATES.map((s) => `'${s}'`).join(', ');

/** Rows of fires (as `alias`) that go. A fire whose run does not exist yet still waits for it. */
export const prunableFire = (alias: string, before: string): string => `${alias}.scheduled_for < ${before}
  AND ${alias}.scheduled_for < (SELECT max(g.scheduled_for) FROM fires g WHERE g.pipeline = ${alias}.pipeline)
  AND NOT (${alias}.run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs w WHERE w.id = ${alias}.run_id))`;

/**
 * Rows of `runs r` that go. `firesGone`: the fires this prune deletes are gone already, so any
 * fire left keeps its run (a fire that became prunable meanwhile keeps it until the next prune).
 * Counting beforehand, a fire that is about to go does not keep it.
 *
 * `after_consecutive_failures` and `on_recovery` count a pipeline's failed runs back from a run
 * as it ends (and again when its hook runs), up to the success before it. So a failed or
 * succeeded run stays unless a success followed it (s1, the first one after it) with no run in
 * between still unfinished, and none up to s1 with a hook pending (an `on_recovery` of s1 counts
 * back from it): a run ending later, a hook running later, or the next run created, counts back to
 * s1 at most and never reaches it.
 */
export function prunableRun(d: PruneDialect, firesGone: boolean): string {
  const keptFire = firesGone ? '' : ` AND NOT (${prunableFire('k', d.before)})`;
  const after = (alias: string) => `(${alias}.created_at, ${alias}.id) > (r.created_at, r.id)`;
  const firstSuccessAfter = `(SELECT s.created_at, s.id FROM ${d.succeededRuns}
      WHERE s.pipeline = r.pipeline AND s.state = 'succeeded' AND ${after('s')}
      ORDER BY s.created_at, s.id LIMIT 1)`;
  return `r.state IN (${FINISHED})
  AND r.finished_at < ${d.before}
  AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.run_id = r.id AND h.state = 'pending')
  AND NOT EXISTS (SELECT 1 FROM fires k WHERE k.run_id = r.id${keptFire})
  AND (r.state = 'cancelled' OR (
    EXISTS (SELECT 1 FROM ${d.succeededRuns} WHERE s.pipeline = r.pipeline AND s.state = 'succeeded' AND ${after('s')})
    AND NOT EXISTS (SELECT 1 FROM ${d.openRuns} WHERE u.pipeline = r.pipeline
      AND u.state NOT IN (${FINISHED}) AND ${after('u')} AND (u.created_at, u.id) < ${firstSuccessAfter})
    AND NOT EXISTS (SELECT 1 FROM hooks p JOIN runs u ON u.id = p.run_id WHERE p.state = 'pending'
      AND u.pipeline = r.pipeline AND ${after('u')} AND (u.created_at, u.id) <= ${firstSuccessAfter})))`;
}

/** Rows of `run_requests q` that go. */
export const prunableRequest = (before: string): string =>
  `q.state IN ('done', 'failed') AND q.completed_at < ${before}`;

/** Rows deleted per statement: each batch holds other writers up only briefly. */
export const PRUNE_BATCH = 500;

/** One dialect's statements: counts for a dry run, and batched deletes. */
export function pruneStatements(d: PruneDialect) {
  const limit = `LIMIT ${PRUNE_BATCH}`;
  return {
    countFires: `SELECT count(*) AS n FROM fires f WHERE ${prunableFire('f', d.before)}`,
    countRuns: `SELECT count(*) AS n FROM ${d.finishedRuns} WHERE ${prunableRun(d, false)}`,
    countRequests: `SELECT count(*) AS n FROM run_requests q WHERE ${prunableRequest(d.before)}`,
    deleteFires: `DELETE FROM fires WHERE (pipeline, scheduled_for) IN (
      SELECT f.pipeline, f.scheduled_for FROM fires f WHERE ${prunableFire('f', d.before)} ${limit} ${d.lock})`,
    /**
     * The next runs a batch looks at: finished before the cut-off, the longest finished first,
     * after the last one the previous batch looked at. An index walk that stops at the batch
     * size, whatever the rules below keep: each run is looked at once per prune.
     */
    runsAfter: `SELECT r.id, r.finished_at FROM ${d.finishedRuns}
      WHERE r.state IN (${FINISHED}) AND r.finished_at < ${d.before}
      AND (r.finished_at, r.id) > (${d.after[0]}, ${d.after[1]}) ORDER BY r.finished_at, r.id ${limit}`,
    /** Those of them that go. */
    prunableOf: `SELECT r.id FROM runs r WHERE r.id IN (${d.ids}) AND ${prunableRun(d, true)} ${d.lock}`,
    deleteRequests: `DELETE FROM run_requests WHERE id IN (
      SELECT q.id FROM run_requests q WHERE ${prunableRequest(d.before)} ${limit} ${d.lock})`,
  };
}

/** The cut-off as the stores write times (ISO, UTC, milliseconds); a bad one is a caller's bug. */
export function pruneCutoff(before: string): string {
  const ms = Date.parse(before);
  if (Number.isNaN(ms)) throw new TypeError(`prune: "before" is not a time: ${before}`);
  return new Date(ms).toISOString();
}
