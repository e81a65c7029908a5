import { stopOrphanGroup } from '../../../engine/interrupted.js';
import { QUEUE_RUN_OWNER, type ReapResult } from '../../../worker/queue-port.js';
import type { QueueConnection } from './connection.js';
import { coordinate } from './coordinate.js';
import type { Report } from './reports.js';
import { startRun } from './start-run.js';
import { reportKey } from './write-set.js';

const REAP_BATCH = 500;
/**
 * A run still `queued` (without an owner) this long after it was created was never handed over
 * (see reap). Its creator hands it over within milliseconds, and taking it here too is harmless
 * (startRun takes a `queued` run once, under its row lock): the wait only leaves the creator the
 * first go, and must not leave a run whose hand-over failed waiting long.
 */
const ORPHAN_AFTER_MS = 5000;
/** Runs coordinated per transaction by the reaper. */
const REAP_RUNS_PER_TX = 50;

/** With the child process group its attempt recorded, and where its worker ran (to stop orphans). */
const EXPIRED_LEASES_SQL = `
SELECT q.run_id, q.task, q.lease_id, q.lease_owner, q.attempt, a.pid, w.host AS worker_host, w.pid AS worker_pid
FROM queue_tasks q
LEFT JOIN attempts a ON a.run_id = q.run_id AND a.task = q.task AND a.attempt = q.attempt AND a.state = 'running'
LEFT JOIN queue_workers w ON w.id = q.lease_owner
WHERE q.state = 'leased' AND q.lease_expires_at < now()
ORDER BY q.lease_expires_at LIMIT $1`;

/** Runs past their timeout whose tasks were not stopped yet. */
const TIMED_OUT_SQL = `
SELECT run_id FROM queue_runs WHERE NOT timed_out AND deadline_at <= now() ORDER BY deadline_at LIMIT $1`;

const CANCEL_PENDING_SQL = `
SELECT qr.run_id FROM queue_runs qr JOIN runs r ON r.id = qr.run_id
WHERE r.cancel_requested AND NOT qr.cancel_seen LIMIT $1`;

/**
 * Runs whose retry delay is over run again; runs marked interrupted while the queue owns them
 * (no heartbeat for a while) are taken back. Locked rows are skipped (next time).
 */
const RESUME_RUNS_SQL = `
UPDATE runs SET state = 'running', next_attempt_at = NULL, error = CASE WHEN state = 'retrying' THEN NULL ELSE error END,
  heartbeat_at = now()
WHERE id IN (
  SELECT r.id FROM runs r JOIN queue_runs qr ON qr.run_id = r.id
  WHERE r.owner = $1 AND ((r.state = 'retrying' AND r.next_attempt_at <= now()) OR r.state = 'interrupted')
  FOR UPDATE OF r SKIP LOCKED
)
RETURNING id`;

/** Queue-owned runs stay visibly alive while a worker or scheduler watches the queue. */
const HEARTBEAT_RUNS_SQL = `
UPDATE runs SET heartbeat_at = now()
WHERE id IN (
  SELECT r.id FROM runs r WHERE r.owner = $1 AND r.state IN ('running', 'retrying')
  FOR UPDATE SKIP LOCKED
)`;

const FORGET_WORKERS_SQL = `DELETE FROM queue_workers WHERE heartbeat_at < now() - interval '1 day'`;

/** Runs created (queued) long ago that nobody took: their creator died before handing them over. */
const ORPHAN_QUEUED_SQL = `
SELECT id FROM runs WHERE state = 'queued' AND owner IS NULL AND created_at < now() - $1 * interval '1 millisecond'
ORDER BY created_at LIMIT $2`;

/** The host and pid of a worker, from its registration or else from an id shaped "host:pid/…". */
function workerProcess(id: string, host: string | null, pid: number | null): string | null {
  if (host !== null && pid !== null) return `${host}:${pid}`;
  const match = /^(.+):(\d+)(?:\/.*)?$/.exec(id);
  return match ? `${match[1]!}:${match[2]!}` : null;
}

/**
 * Housekeeping: expired leases become lost attempts, runs past their timeout or asked to cancel
 * stop their tasks, due retries and interrupted runs resume, runs nobody handed over start.
 */
export async function reap(conn: QueueConnection): Promise<ReapResult> {
  const result: ReapResult = { lost: 0, cancelled: 0, resumed: 0, timedOut: 0 };
  const expired = await conn.query<{
    run_id: string;
    task: string;
    lease_id: number;
    lease_owner: string;
    attempt: number | null;
    pid: number | null;
    worker_host: string | null;
    worker_pid: number | null;
  }>(EXPIRED_LEASES_SQL, [REAP_BATCH]);
  const expiredByKey = new Map(expired.map((e) => [reportKey(e.run_id, e.task), e]));
  const byRun = new Map<string, Report[]>();
  for (const e of expired) {
    const list = byRun.get(e.run_id) ?? [];
    list.push({
      from: 'reaper',
      runId: e.run_id,
      task: e.task,
      lease: e.lease_id,
      owner: e.lease_owner,
      attempt: e.attempt,
    });
    byRun.set(e.run_id, list);
  }
  const runs = [...byRun.keys()];
  for (let i = 0; i < runs.length; i += REAP_RUNS_PER_TX) {
    const reports = runs.slice(i, i + REAP_RUNS_PER_TX).flatMap((id) => byRun.get(id)!);
    const applied = await conn.transaction((client) => coordinate(conn, client, reports, []));
    result.lost += applied.accepted.size;
    // The attempts are lost on record; what they started (a shell command's process group) may
    // still run if their worker's process died on this host: stopped, as local recovery does.
    for (const key of applied.accepted) {
      const e = expiredByKey.get(key);
      if (!e || e.pid === null) continue;
      stopOrphanGroup({ pid: e.pid, worker: workerProcess(e.lease_owner, e.worker_host, e.worker_pid) });
    }
  }
  const timedOut = (await conn.query<{ run_id: string }>(TIMED_OUT_SQL, [REAP_RUNS_PER_TX])).map(
    (r) => r.run_id,
  );
  if (timedOut.length > 0) {
    // Their tasks that do not run are cancelled, and the run ends once those that run stop
    // (their workers see the timeout on their next heartbeat).
    await conn.transaction((client) => coordinate(conn, client, [], timedOut));
    result.timedOut = timedOut.length;
  }
  const cancelling = (await conn.query<{ run_id: string }>(CANCEL_PENDING_SQL, [REAP_RUNS_PER_TX])).map(
    (r) => r.run_id,
  );
  if (cancelling.length > 0) {
    await conn.transaction((client) => coordinate(conn, client, [], cancelling));
    result.cancelled = cancelling.length;
  }
  result.resumed = (await conn.query(RESUME_RUNS_SQL, [QUEUE_RUN_OWNER])).length;
  // A scheduler that died between creating a run and handing it over left it queued for good.
  for (const { id } of await conn.query<{ id: string }>(ORPHAN_QUEUED_SQL, [ORPHAN_AFTER_MS, 20])) {
    if (await startRun(conn, id)) result.resumed += 1;
  }
  await conn.query(HEARTBEAT_RUNS_SQL, [QUEUE_RUN_OWNER]);
  await conn.query(FORGET_WORKERS_SQL);
  return result;
}
