import type { PruneQuery, PruneReport } from '../run-store.js';
import { PRUNE_BATCH, prunableFire, prunableRequest, prunableRun } from '../prune-sql.js';
import type { StoreConnection } from './store-connection.js';

const DELETE_FIRES = `DELETE FROM fires f WHERE ${prunableFire('$1::timestamptz')}`;
const DELETE_REQUESTS = `DELETE FROM run_requests q WHERE ${prunableRequest('$1::timestamptz')}`;
/**
 * A batch of runs (task runs, attempts, logs and hooks go with them: ON DELETE CASCADE) and
 * whatever the task queue still holds of them: its tables have no foreign keys (migration 3).
 * The rows are locked SKIP LOCKED: a run a worker or `weft resume` holds is left for next time.
 */
const DELETE_RUNS = `WITH gone AS (
    DELETE FROM runs WHERE id IN (
      SELECT r.id FROM runs r WHERE ${prunableRun('$1::timestamptz')}
      LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED)
    RETURNING id),
  queued_tasks AS (DELETE FROM queue_tasks WHERE run_id IN (SELECT id FROM gone)),
  queued_hooks AS (DELETE FROM queue_hooks WHERE run_id IN (SELECT id FROM gone)),
  queued_runs AS (DELETE FROM queue_runs WHERE run_id IN (SELECT id FROM gone))
  SELECT count(*)::int AS n FROM gone`;

/**
 * Fires and requests in one transaction, then a batch of runs per transaction, so other writers
 * are held up only briefly. A dry run does it all in one transaction and rolls it back.
 */
export async function prune(conn: StoreConnection, query: PruneQuery): Promise<PruneReport> {
  const values = [query.before];
  const report: PruneReport = { runs: 0, fires: 0, runRequests: 0 };
  await conn.transaction(async (client) => {
    report.fires = (await client.query(DELETE_FIRES, values)).rowCount ?? 0;
    report.runRequests = (await client.query(DELETE_REQUESTS, values)).rowCount ?? 0;
    if (!query.dryRun) return;
    for (let n = -1; n !== 0; ) {
      n = (await client.query<{ n: number }>(DELETE_RUNS, values)).rows[0]!.n;
      report.runs += n;
    }
  }, query.dryRun);
  if (query.dryRun) return report;
  for (;;) {
    const n = await conn.transaction(
      async (client) => (await client.query<{ n: number }>(DELETE_RUNS, values)).rows[0]!.n,
    );
    report.runs += n;
    if (n < PRUNE_BATCH) return report;
  }
}
