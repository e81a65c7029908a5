import type { PruneQuery, PruneReport } from '../run-store.js';
import { PRUNE_BATCH, pruneCutoff, pruneStatements } from '../prune-sql.js';
import type { SqliteConnection } from './connection.js';

const SQL = pruneStatements({
  before: '@before',
  finishedRuns: 'runs r INDEXED BY runs_finished',
  succeededRuns: 'runs s INDEXED BY runs_pipeline_succeeded',
  openRuns: 'runs u INDEXED BY runs_pipeline_open',
  lock: '',
  after: ['@afterAt', '@afterId'],
  ids: 'SELECT value FROM json_each(@ids)',
});

/**
 * Fires, then runs, then requests, a batch per write, so the scheduler's writes get in between.
 * A dry run only counts.
 */
export async function prune(conn: SqliteConnection, query: PruneQuery): Promise<PruneReport> {
  const before = pruneCutoff(query.before);
  if (query.dryRun) {
    return conn.read(() => {
      const count = (sql: string) => (conn.statement(sql).get({ before }) as { n: number }).n;
      return {
        fires: count(SQL.countFires),
        runs: count(SQL.countRuns),
        runRequests: count(SQL.countRequests),
      };
    });
  }
  const report: PruneReport = { runs: 0, fires: 0, runRequests: 0 };
  let after = { afterAt: '', afterId: '' };
  let deleted = 0;
  /** Looks at a batch of runs and deletes those that go; returns how many it looked at. */
  const deleteRuns = () => {
    const batch = conn.statement(SQL.runsAfter).all({ before, ...after }) as {
      id: string;
      finished_at: string;
    }[];
    if (batch.length === 0) return 0;
    after = { afterAt: batch[batch.length - 1]!.finished_at, afterId: batch[batch.length - 1]!.id };
    const gone = conn
      .statement(SQL.prunableOf)
      .all({ before, ids: JSON.stringify(batch.map((r) => r.id)) }) as {
      id: string;
    }[];
    // Task runs, attempts, logs and hooks go with their run (ON DELETE CASCADE).
    const remove = conn.statement('DELETE FROM runs WHERE id = ?');
    for (const { id } of gone) deleted += remove.run(id).changes;
    return batch.length;
  };
  const steps: [keyof PruneReport, () => number][] = [
    // `changes` counts the rows the statement deleted, not those its cascades did.
    ['fires', () => conn.statement(SQL.deleteFires).run({ before }).changes],
    ['runs', deleteRuns],
    ['runRequests', () => conn.statement(SQL.deleteRequests).run({ before }).changes],
  ];
  for (const [field, step] of steps) {
    for (;;) {
      if (query.signal?.aborted) return { ...report, runs: deleted };
      // Its statements all or none: inside the batch's transaction, a savepoint.
      const n = await conn.write(conn.db.transaction(step));
      if (field !== 'runs') report[field] += n;
      if (n < PRUNE_BATCH) break;
    }
  }
  return { ...report, runs: deleted };
}
