import { failpoint } from '../../../core/failpoint.js';
import type { ClaimedTask, TaskCompletion } from '../../../worker/queue-port.js';
import type { QueueConnection } from './connection.js';
import { coordinate } from './coordinate.js';
import type { Report } from './reports.js';
import { reportKey } from './write-set.js';

/**
 * Records a worker's results, with what they make ready, skipped or finished, in one transaction
 * (coordinate.ts); with `next`, claims the worker's next tasks in the same transaction.
 */
export async function complete(
  conn: QueueConnection,
  workerId: string,
  completions: readonly TaskCompletion[],
  next?: { queues: readonly string[]; limit: number; leaseMs: number },
): Promise<{ recorded: boolean[]; claimed: ClaimedTask[] }> {
  const reports: Report[] = completions.map((completion) => ({
    from: 'worker',
    owner: workerId,
    completion,
  }));
  const { accepted, claimed } = await conn.transaction((client) =>
    coordinate(conn, client, reports, [], next ? { workerId, ...next } : undefined),
  );
  // Committed: results recorded, the next tasks leased and their attempts started, nothing run.
  if (claimed.length > 0) failpoint('after-completion-claim');
  return { recorded: completions.map((c) => accepted.has(reportKey(c.runId, c.task))), claimed };
}
