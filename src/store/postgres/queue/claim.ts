import type pg from 'pg';
import { failpoint } from '../../../core/failpoint.js';
import { WeftError } from '../../../errors.js';
import { QUEUE_RUN_OWNER, type ClaimedTask } from '../../../worker/queue-port.js';
import { prepared } from '../write-batch.js';
import { queueError, type QueueConnection } from './connection.js';

/**
 * Leases ready tasks and, for those without a `when` condition, starts their attempts (task run
 * `running`, attempt row inserted) in the same statement. Only runs the queue owns are claimed,
 * none past its timeout, and of each run no more than its `concurrency` leaves room for: the
 * queue_runs rows of the runs taken from are locked first (SKIP LOCKED: a claim never waits;
 * the runs with the oldest ready tasks, no more than tasks are wanted), their `running` counts
 * read as the latest commit left them and raised in the same statement, so two claims cannot
 * both fill a run's last slot. Oldest ready tasks first across those runs.
 * $1 queues, $2 limit, $3 worker id, $4 lease ms, $5 the queue's run owner.
 */
const CLAIM_SQL = `
WITH eligible AS (
  SELECT qr.run_id,
         CASE WHEN qr.max_running IS NULL THEN $2::int ELSE LEAST($2::int, qr.max_running - qr.running) END AS room
  FROM queue_runs qr JOIN runs r ON r.id = qr.run_id
  WHERE r.owner = $5 AND r.state IN ('running', 'retrying', 'interrupted')
    AND (qr.max_running IS NULL OR qr.running < qr.max_running)
    AND NOT qr.timed_out AND (qr.deadline_at IS NULL OR qr.deadline_at > now())
    AND (SELECT min(q.available_at) FROM queue_tasks q
         WHERE q.run_id = qr.run_id AND q.state = 'ready' AND q.queue = ANY ($1::text[])) <= now()
  ORDER BY (SELECT min(q.available_at) FROM queue_tasks q
            WHERE q.run_id = qr.run_id AND q.state = 'ready' AND q.queue = ANY ($1::text[])), qr.run_id
  LIMIT $2
  FOR UPDATE OF qr SKIP LOCKED
), picked AS (
  SELECT p.run_id, p.task
  FROM eligible e CROSS JOIN LATERAL (
    SELECT q.run_id, q.task, q.available_at, q.seq
    FROM queue_tasks q
    WHERE q.run_id = e.run_id AND q.state = 'ready' AND q.queue = ANY ($1::text[]) AND q.available_at <= now()
    ORDER BY q.available_at, q.seq
    LIMIT e.room
    FOR UPDATE OF q SKIP LOCKED
  ) p
  ORDER BY p.available_at, p.seq
  LIMIT $2
), leased AS (
  UPDATE queue_tasks q
  SET state = 'leased', lease_owner = $3, lease_id = nextval('queue_lease_seq'),
      lease_expires_at = now() + $4 * interval '1 millisecond', attempt = t.attempts + 1
  FROM picked p, task_runs t
  WHERE q.run_id = p.run_id AND q.task = p.task AND t.run_id = p.run_id AND t.task = p.task
  RETURNING q.run_id, q.task, q.queue, q.attempt, q.lease_id, q.has_when, q.delay_ms
), counted AS (
  UPDATE queue_runs qr SET running = qr.running + c.n
  FROM (SELECT run_id, count(*)::int AS n FROM leased GROUP BY run_id) c
  WHERE qr.run_id = c.run_id
  RETURNING 1
), started AS (
  UPDATE task_runs t
  SET state = 'running', attempts = l.attempt, next_attempt_at = NULL,
      started_at = CASE WHEN t.state = 'pending' THEN now() ELSE t.started_at END,
      finished_at = CASE WHEN t.state = 'pending' THEN NULL ELSE t.finished_at END,
      error = CASE WHEN t.state = 'pending' THEN NULL ELSE t.error END
  FROM leased l
  WHERE t.run_id = l.run_id AND t.task = l.task AND NOT l.has_when
    AND t.state IN ('pending', 'retrying') AND t.attempts = l.attempt - 1
  RETURNING t.run_id, t.task
), inserted AS (
  INSERT INTO attempts (run_id, task, attempt, state, delay_ms, started_at, worker)
  SELECT l.run_id, l.task, l.attempt, 'running', l.delay_ms, now(), $3
  FROM leased l JOIN started s ON s.run_id = l.run_id AND s.task = l.task
  RETURNING run_id
)
SELECT l.run_id, l.task, l.queue, l.attempt, l.lease_id, l.delay_ms, (s.task IS NOT NULL) AS started,
       r.attempt AS run_attempt
FROM leased l LEFT JOIN started s ON s.run_id = l.run_id AND s.task = l.task
JOIN runs r ON r.id = l.run_id
ORDER BY l.lease_id`;

/** Starts the attempt of a leased task whose `when` said run. $1 run, $2 task, $3 lease, $4 worker. */
const START_ATTEMPT_SQL = `
WITH l AS (
  SELECT run_id, task, attempt, delay_ms FROM queue_tasks
  WHERE run_id = $1 AND task = $2 AND state = 'leased' AND lease_id = $3 AND lease_owner = $4
  FOR UPDATE
), started AS (
  UPDATE task_runs t
  SET state = 'running', attempts = l.attempt, next_attempt_at = NULL,
      started_at = CASE WHEN t.state = 'pending' THEN now() ELSE t.started_at END,
      finished_at = CASE WHEN t.state = 'pending' THEN NULL ELSE t.finished_at END,
      error = CASE WHEN t.state = 'pending' THEN NULL ELSE t.error END
  FROM l
  WHERE t.run_id = l.run_id AND t.task = l.task AND t.state IN ('pending', 'retrying') AND t.attempts = l.attempt - 1
  RETURNING t.run_id, t.task
), inserted AS (
  INSERT INTO attempts (run_id, task, attempt, state, delay_ms, started_at, worker)
  SELECT l.run_id, l.task, l.attempt, 'running', l.delay_ms, now(), $4 FROM l JOIN started s USING (run_id, task)
  RETURNING run_id
)
SELECT count(*)::int AS started FROM started`;

const NEXT_DUE_SQL = `
-- GREATEST ignores NULL: no ready row must stay NULL, not become "due now".
-- Tasks of runs at their concurrency limit or past their timeout are not due: a claim would skip them.
SELECT CASE WHEN min(available_at) IS NULL THEN NULL
            ELSE GREATEST(0, EXTRACT(EPOCH FROM (min(available_at) - now())) * 1000)::float8 END AS due_in
FROM queue_tasks q WHERE q.state = 'ready' AND q.queue = ANY ($1::text[])
  AND NOT EXISTS (SELECT 1 FROM queue_runs qr WHERE qr.run_id = q.run_id
                  AND (qr.running >= qr.max_running OR qr.timed_out OR qr.deadline_at <= now()))`;

/** What a worker asks for: up to `limit` tasks of `queues`, leased for `leaseMs`. */
export interface ClaimRequest {
  workerId: string;
  queues: readonly string[];
  limit: number;
  leaseMs: number;
}

interface ClaimRow {
  run_id: string;
  task: string;
  queue: string;
  attempt: number;
  lease_id: number;
  delay_ms: number;
  started: boolean;
  run_attempt: number;
}

export async function claim(
  conn: QueueConnection,
  workerId: string,
  queues: readonly string[],
  limit: number,
  leaseMs: number,
): Promise<ClaimedTask[]> {
  conn.assertOpen();
  let claimed: ClaimedTask[];
  try {
    claimed = await claimTasks(conn.pool, { workerId, queues, limit, leaseMs });
  } catch (error) {
    throw error instanceof WeftError ? error : queueError(conn.location, 'cannot claim from', error);
  }
  // The claim has committed (one statement on the pool): leases taken, attempts started, nothing run.
  if (claimed.length > 0) failpoint('after-claim');
  return claimed;
}

/** A claim on the pool, or inside a transaction (a completion that claims what comes next). */
export async function claimTasks(
  client: pg.PoolClient | pg.Pool,
  request: ClaimRequest,
): Promise<ClaimedTask[]> {
  if (request.limit < 1 || request.queues.length === 0) return [];
  const rows = (
    await client.query<ClaimRow>(
      prepared(CLAIM_SQL, [
        request.queues,
        Math.floor(request.limit),
        request.workerId,
        Math.max(1, Math.floor(request.leaseMs)),
        QUEUE_RUN_OWNER,
      ]),
    )
  ).rows;
  return rows.map((r) => ({
    runId: r.run_id,
    task: r.task,
    queue: r.queue,
    attempt: r.attempt,
    lease: r.lease_id,
    started: r.started,
    delayMs: r.delay_ms,
    runAttempt: r.run_attempt,
  }));
}

export async function startAttempt(
  conn: QueueConnection,
  workerId: string,
  claim: ClaimedTask,
): Promise<boolean> {
  const rows = await conn.query<{ started: number }>(START_ATTEMPT_SQL, [
    claim.runId,
    claim.task,
    claim.lease,
    workerId,
  ]);
  return (rows[0]?.started ?? 0) > 0;
}

export async function nextDueIn(conn: QueueConnection, queues: readonly string[]): Promise<number | null> {
  const rows = await conn.query<{ due_in: number | null }>(NEXT_DUE_SQL, [queues]);
  return rows[0]?.due_in ?? null;
}
