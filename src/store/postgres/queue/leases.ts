import type { LeaseRenewal } from '../../../worker/queue-port.js';
import type { QueueConnection } from './connection.js';
import { reap } from './reap.js';

/**
 * Extends a worker's leases (of them, those in $3 when it is not null), refreshes its heartbeat,
 * and says which of its runs were asked to cancel or are past their timeout. $1 worker, $2 lease
 * ms, $3 lease ids or null.
 */
const RENEW_SQL = `
WITH renewed AS (
  UPDATE queue_tasks SET lease_expires_at = now() + $2 * interval '1 millisecond'
  WHERE state = 'leased' AND lease_owner = $1 AND ($3::bigint[] IS NULL OR lease_id = ANY ($3::bigint[]))
  RETURNING run_id, task, lease_id
), beat AS (
  UPDATE queue_workers SET heartbeat_at = now() WHERE id = $1 RETURNING id
)
SELECT n.run_id, n.task, n.lease_id, r.cancel_requested,
       COALESCE(qr.timed_out OR qr.deadline_at <= now(), false) AS timed_out
FROM renewed n JOIN runs r ON r.id = n.run_id LEFT JOIN queue_runs qr ON qr.run_id = n.run_id`;

/** Expires a worker's leases at once (it stops): the reaper hands their tasks back right away. */
const RELEASE_LEASES_SQL = `
UPDATE queue_tasks SET lease_expires_at = now() - interval '1 millisecond' WHERE state = 'leased' AND lease_owner = $1`;

export async function renewLeases(
  conn: QueueConnection,
  workerId: string,
  leaseMs: number,
  leases?: readonly number[],
): Promise<LeaseRenewal> {
  const rows = await conn.query<{
    run_id: string;
    task: string;
    lease_id: number;
    cancel_requested: boolean;
    timed_out: boolean;
  }>(RENEW_SQL, [workerId, Math.max(1, Math.floor(leaseMs)), leases === undefined ? null : [...leases]]);
  return {
    held: rows.map((r) => ({ runId: r.run_id, task: r.task, lease: r.lease_id })),
    cancelRequested: [...new Set(rows.filter((r) => r.cancel_requested).map((r) => r.run_id))],
    timedOut: [...new Set(rows.filter((r) => r.timed_out && !r.cancel_requested).map((r) => r.run_id))],
  };
}

export async function releaseLeases(conn: QueueConnection, workerId: string): Promise<void> {
  await conn.query(RELEASE_LEASES_SQL, [workerId]);
  await reap(conn);
}
