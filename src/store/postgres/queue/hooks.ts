import type { HookClaim } from '../../../worker/queue-port.js';
import type { QueueConnection } from './connection.js';

/** Leases pending hooks (SKIP LOCKED), oldest first; an expired lease may be taken again. */
const CLAIM_HOOKS_SQL = `
UPDATE queue_hooks h SET lease_owner = $1, lease_expires_at = now() + $3 * interval '1 millisecond'
FROM (
  SELECT run_id, key FROM queue_hooks
  WHERE lease_expires_at IS NULL OR lease_expires_at < now()
  ORDER BY created_at LIMIT $2
  FOR UPDATE SKIP LOCKED
) p
WHERE h.run_id = p.run_id AND h.key = p.key
RETURNING h.run_id, h.key`;

const RENEW_HOOK_SQL = `
UPDATE queue_hooks SET lease_expires_at = now() + $4 * interval '1 millisecond'
WHERE run_id = $1 AND key = $2 AND lease_owner = $3
RETURNING 1`;

const FINISH_HOOK_SQL = `DELETE FROM queue_hooks WHERE run_id = $1 AND key = $2 AND lease_owner = $3`;

export async function claimHooks(
  conn: QueueConnection,
  workerId: string,
  limit: number,
  leaseMs: number,
): Promise<HookClaim[]> {
  const rows = await conn.query<{ run_id: string; key: string }>(CLAIM_HOOKS_SQL, [
    workerId,
    Math.max(1, Math.floor(limit)),
    Math.max(1, Math.floor(leaseMs)),
  ]);
  return rows.map((r) => ({ runId: r.run_id, key: r.key }));
}

export async function finishHook(conn: QueueConnection, workerId: string, claim: HookClaim): Promise<void> {
  await conn.query(FINISH_HOOK_SQL, [claim.runId, claim.key, workerId]);
}

/** Extends the lease on a hook `workerId` is running; false when it is no longer its own. */
export async function renewHook(
  conn: QueueConnection,
  workerId: string,
  claim: HookClaim,
  leaseMs: number,
): Promise<boolean> {
  const rows = await conn.query(RENEW_HOOK_SQL, [
    claim.runId,
    claim.key,
    workerId,
    Math.max(1, Math.floor(leaseMs)),
  ]);
  return rows.length === 1;
}
