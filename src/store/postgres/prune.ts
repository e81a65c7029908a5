import type pg from 'pg';
import type { PruneQuery, PruneReport } from '../run-store.js';
import { PRUNE_BATCH, pruneCutoff, pruneStatements } from '../prune-sql.js';
import type { StoreConnection } from './store-connection.js';

const SQL = pruneStatements('$1::timestamptz', `LIMIT ${PRUNE_BATCH}`);
/**
 * A batch of runs (task runs, attempts, logs and hooks go with them: ON DELETE CASCADE) and
 * whatever the task queue still holds of them: its tables have no foreign keys (migration 3).
 * Locking a run re-checks its state, so one a `weft resume` or a retry moved on meanwhile stays;
 * SKIP LOCKED leaves one another transaction holds for the next prune.
 */
const DELETE_RUNS = `WITH gone AS (
    DELETE FROM runs WHERE id IN (${SQL.selectRuns('FOR UPDATE SKIP LOCKED')})
    RETURNING id),
  queued_tasks AS (DELETE FROM queue_tasks WHERE run_id IN (SELECT id FROM gone)),
  queued_hooks AS (DELETE FROM queue_hooks WHERE run_id IN (SELECT id FROM gone)),
  queued_runs AS (DELETE FROM queue_runs WHERE run_id IN (SELECT id FROM gone))
  SELECT count(*)::int AS n FROM gone`;

/**
 * Fires, then runs, then requests, a batch per transaction, so other writers are held up only
 * briefly. A dry run only counts.
 */
export async function prune(conn: StoreConnection, query: PruneQuery): Promise<PruneReport> {
  const values = [pruneCutoff(query.before)];
  if (query.dryRun) {
    return conn.read(async () => {
      const count = async (sql: string) =>
        (await conn.rows<{ n: string }>(sql, values)).map((r) => Number(r.n))[0]!;
      return {
        fires: await count(SQL.countFires),
        runs: await count(SQL.countRuns),
        runRequests: await count(SQL.countRequests),
      };
    });
  }
  const report: PruneReport = { runs: 0, fires: 0, runRequests: 0 };
  const steps: [keyof PruneReport, (client: pg.PoolClient) => Promise<number>][] = [
    ['fires', async (client) => (await client.query(SQL.deleteFires, values)).rowCount ?? 0],
    ['runs', async (client) => (await client.query<{ n: number }>(DELETE_RUNS, values)).rows[0]!.n],
    ['runRequests', async (client) => (await client.query(SQL.deleteRequests, values)).rowCount ?? 0],
  ];
  for (const [field, step] of steps) {
    for (;;) {
      if (query.signal?.aborted) return report;
      const n = await conn.transaction(step);
      report[field] += n;
      if (n < PRUNE_BATCH) break;
    }
  }
  return report;
}
