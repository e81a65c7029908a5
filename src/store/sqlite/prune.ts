import type { PruneQuery, PruneReport } from '../run-store.js';
import { PRUNE_BATCH, pruneCutoff, pruneStatements } from '../prune-sql.js';
import type { SqliteConnection } from './connection.js';

const SQL = pruneStatements('@before', `LIMIT ${PRUNE_BATCH}`);
const DELETE_RUNS = `DELETE FROM runs WHERE id IN (${SQL.selectRuns('')})`;

/**
 * Fires, then runs (task runs, attempts, logs and hooks go with them: ON DELETE CASCADE), then
 * requests, a batch per write, so the scheduler's writes get in between. A dry run only counts.
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
  const steps: [keyof PruneReport, string][] = [
    ['fires', SQL.deleteFires],
    ['runs', DELETE_RUNS],
    ['runRequests', SQL.deleteRequests],
  ];
  for (const [field, sql] of steps) {
    for (;;) {
      if (query.signal?.aborted) return report;
      // `changes` counts the rows the statement deleted, not those its cascades did.
      const n = await conn.write(() => conn.statement(sql).run({ before }).changes);
      report[field] += n;
      if (n < PRUNE_BATCH) break;
    }
  }
  return report;
}
