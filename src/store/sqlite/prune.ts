import type { PruneQuery, PruneReport } from '../run-store.js';
import { PRUNE_BATCH, prunableFire, prunableRequest, prunableRun } from '../prune-sql.js';
import type { SqliteConnection } from './connection.js';

const DELETE_FIRES = `DELETE FROM fires AS f WHERE ${prunableFire('?')}`;
const DELETE_RUNS = `DELETE FROM runs WHERE id IN (SELECT r.id FROM runs r WHERE ${prunableRun('?')} LIMIT ${PRUNE_BATCH})`;
const DELETE_REQUESTS = `DELETE FROM run_requests AS q WHERE ${prunableRequest('?')}`;

/** Thrown inside a dry run's savepoint to roll it back once everything is counted. */
class DryRun extends Error {
  constructor(readonly report: PruneReport) {
    super('dry run: rolled back');
  }
}

/**
 * Fires and requests in one write, then runs a batch per write (task runs, attempts, logs and
 * hooks go with them: ON DELETE CASCADE), so the scheduler's writes get in between batches. A
 * dry run does it all in one savepoint and rolls it back.
 */
export async function prune(conn: SqliteConnection, query: PruneQuery): Promise<PruneReport> {
  const { before } = query;
  const fires = () => conn.statement(DELETE_FIRES).run(before).changes;
  const requests = () => conn.statement(DELETE_REQUESTS).run(before).changes;
  const runs = () => conn.statement(DELETE_RUNS).run(before).changes;
  if (query.dryRun) {
    const count = conn.db.transaction((): never => {
      const report = { fires: fires(), runRequests: requests(), runs: 0 };
      for (let n = runs(); n > 0; n = runs()) report.runs += n;
      throw new DryRun(report);
    });
    return conn.write(() => {
      try {
        return count();
      } catch (error) {
        if (error instanceof DryRun) return error.report;
        throw error;
      }
    });
  }
  const report = await conn.write(() => ({ fires: fires(), runRequests: requests(), runs: 0 }));
  for (;;) {
    const n = await conn.write(runs);
    report.runs += n;
    if (n < PRUNE_BATCH) return report;
  }
}
