import type pg from 'pg';
import type { PruneQuery, PruneReport } from '../run-store.js';
import { PRUNE_BATCH, pruneCutoff, pruneStatements } from '../prune-sql.js';
import type { StoreConnection } from './store-connection.js';

// SKIP LOCKED: rows another transaction holds (a concurrent prune, a resume) wait for next time.
const SQL = pruneStatements({
  before: '$1::timestamptz',
  finishedRuns: 'runs r',
  succeededRuns: 'runs s',
  openRuns: 'runs u',
  lock: 'FOR UPDATE SKIP LOCKED',
  after: ['$2::timestamptz', '$3::text'],
  ids: 'SELECT unnest($2::text[])',
});
/**
 * What the task queue still holds of runs deleted: its tables have no foreign keys (migration 3).
 * Task runs, attempts, logs and hooks go with their run (ON DELETE CASCADE).
 */
const DELETE_RUNS = `WITH gone AS (DELETE FROM runs WHERE id = ANY ($1::text[]) RETURNING id),
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
  // Locking a run re-checks its state: one that a `weft resume` or a retry moved on meanwhile stays.
  let after: [Date, string] = [new Date(0), ''];
  let deleted = 0;
  /** Looks at a batch of runs and deletes those that go; returns how many it looked at. */
  const deleteRuns = async (client: pg.PoolClient) => {
    const batch = (
      await client.query<{ id: string; finished_at: Date }>(SQL.runsAfter, [...values, ...after])
    ).rows;
    if (batch.length === 0) return 0;
    after = [batch[batch.length - 1]!.finished_at, batch[batch.length - 1]!.id];
    const ids = batch.map((r) => r.id);
    const gone = (await client.query<{ id: string }>(SQL.prunableOf, [...values, ids])).rows.map((r) => r.id);
    if (gone.length > 0) deleted += (await client.query<{ n: number }>(DELETE_RUNS, [gone])).rows[0]!.n;
    return batch.length;
  };
  const steps: [keyof PruneReport, (client: pg.PoolClient) => Promise<number>][] = [
    ['fires', async (client) => (await client.query(SQL.deleteFires, values)).rowCount ?? 0],
    ['runs', deleteRuns],
    ['runRequests', async (client) => (await client.query(SQL.deleteRequests, values)).rowCount ?? 0],
  ];
  for (const [field, step] of steps) {
    for (;;) {
      if (query.signal?.aborted) return { ...report, runs: deleted };
      const n = await conn.transaction(step);
      if (field !== 'runs') report[field] += n;
      if (n < PRUNE_BATCH) break;
    }
  }
  return { ...report, runs: deleted };
}
