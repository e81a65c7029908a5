/**
 * The SQL of the task queue (queue.ts), one statement per database operation. Bulk writes take
 * parallel arrays through unnest(), so a batch of any size is one statement.
 *
 * Lock order, the same everywhere so that no two transactions wait on each other in a cycle:
 * queue_runs (one row per run, taken first by every transaction that coordinates a run) →
 * queue_tasks → task_runs → attempts → runs. A claim takes queue_tasks rows with SKIP LOCKED and
 * never waits for queue_runs; housekeeping that touches many runs rows skips locked ones.
 */

/** NOTIFY channel: payload `q:<queue>` (tasks ready) or `h` (hooks pending). */
export const QUEUE_CHANNEL = 'weft_queue';

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
export const CLAIM_SQL = `
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
export const START_ATTEMPT_SQL = `
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

/** Locks the coordination rows of runs (sorted: a fixed lock order) and reads what advancing needs. */
export const LOCK_RUNS_SQL = `
SELECT qr.run_id, qr.states, qr.first_attempt, qr.cancel_seen, r.state, r.attempt, r.cancel_requested,
       r.owner, r.plan_hash, r.pipeline, r.created_at, now() AS now
FROM queue_runs qr JOIN runs r ON r.id = qr.run_id
WHERE qr.run_id = ANY ($1::text[])
ORDER BY qr.run_id
FOR UPDATE OF qr`;

/** The leased rows named by (run, task, lease), locked, with their task runs' state. */
export const FENCE_SQL = `
SELECT q.run_id, q.task, q.lease_id, q.lease_owner, q.lease_expires_at, q.attempt, q.base, q.lost,
       t.state AS task_state, now() AS now
FROM queue_tasks q
JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS v (run_id, task, lease_id)
  ON q.run_id = v.run_id AND q.task = v.task AND q.lease_id = v.lease_id
JOIN task_runs t ON t.run_id = q.run_id AND t.task = q.task
WHERE q.state = 'leased'
FOR UPDATE OF q`;

/** A cancelled run's queue entries nobody runs: removed, with their task runs' state. */
export const WITHDRAW_READY_SQL = `
DELETE FROM queue_tasks q USING task_runs t
WHERE q.run_id = $1 AND q.state = 'ready' AND t.run_id = q.run_id AND t.task = q.task
RETURNING q.task, t.state`;

export const FAILED_ERRORS_SQL = `SELECT task, error FROM task_runs WHERE run_id = $1 AND state = 'failed'`;

/** Finished runs of the pipeline created before this one, newest first (countPreviousFailures' rule). */
export const PREVIOUS_RUNS_SQL = `
SELECT state FROM runs
WHERE pipeline = $1 AND (created_at, id) < ($2::timestamptz, $3::text) AND state IN ('failed', 'succeeded')
ORDER BY created_at DESC, id DESC LIMIT 2000`;

export const END_ATTEMPTS_SQL = `
UPDATE attempts a SET state = v.state, finished_at = $6::timestamptz, error = v.error::json
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[]) AS v (run_id, task, attempt, state, error)
WHERE a.run_id = v.run_id AND a.task = v.task AND a.attempt = v.attempt AND a.state = 'running'`;

/** Every task-run change of a batch, fenced on the state each was seen in. $15: now. */
export const UPDATE_TASK_RUNS_SQL = `
UPDATE task_runs t SET
  state = v.to_state,
  output = CASE WHEN v.reset THEN NULL WHEN v.set_output THEN v.output::json ELSE t.output END,
  error = CASE WHEN v.reset THEN NULL WHEN v.set_error THEN v.error::json ELSE t.error END,
  reason = CASE WHEN v.reset THEN NULL WHEN v.set_reason THEN v.reason ELSE t.reason END,
  started_at = CASE WHEN v.reset THEN NULL ELSE t.started_at END,
  finished_at = CASE WHEN v.reset THEN NULL WHEN v.finished THEN $15::timestamptz ELSE t.finished_at END,
  next_attempt_at = CASE WHEN v.reset THEN NULL WHEN v.set_next THEN v.next_at ELSE t.next_attempt_at END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::bool[], $8::text[],
            $9::bool[], $10::text[], $11::bool[], $12::bool[], $13::timestamptz[], $14::bool[])
  AS v (run_id, task, from_state, to_state, set_output, output, set_error, error, set_reason, reason,
        finished, set_next, next_at, reset)
WHERE t.run_id = v.run_id AND t.task = v.task AND t.state = v.from_state`;

export const DEQUEUE_SQL = `
DELETE FROM queue_tasks q USING unnest($1::text[], $2::text[]) AS v (run_id, task)
WHERE q.run_id = v.run_id AND q.task = v.task`;

/** Back to ready after a failed or lost attempt: the lease is dropped. */
export const REQUEUE_SQL = `
UPDATE queue_tasks q SET state = 'ready', available_at = v.available_at, delay_ms = v.delay_ms,
  base = q.base + v.base_inc, lost = q.lost + v.lost_inc,
  lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL, attempt = NULL
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::int[], $6::int[])
  AS v (run_id, task, available_at, delay_ms, base_inc, lost_inc)
WHERE q.run_id = v.run_id AND q.task = v.task`;

/** New queue entries; their retries count from the attempts their task run has so far. */
export const ENQUEUE_SQL = `
INSERT INTO queue_tasks (run_id, task, queue, state, available_at, has_when, delay_ms, base)
SELECT v.run_id, v.task, v.queue, 'ready', v.available_at, v.has_when, v.delay_ms, t.attempts
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[], $6::bigint[])
  AS v (run_id, task, queue, available_at, has_when, delay_ms)
JOIN task_runs t ON t.run_id = v.run_id AND t.task = v.task
ON CONFLICT (run_id, task) DO UPDATE SET state = 'ready', queue = EXCLUDED.queue,
  available_at = EXCLUDED.available_at, has_when = EXCLUDED.has_when, delay_ms = EXCLUDED.delay_ms,
  base = EXCLUDED.base, lost = 0, lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL, attempt = NULL`;

export const INSERT_HOOKS_SQL = `
WITH h AS (
  INSERT INTO hooks (run_id, key, event, task, handler, state, error, created_at)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]::json[],
                       $8::timestamptz[])
  ON CONFLICT (run_id, key) DO NOTHING
  RETURNING run_id, key
)
INSERT INTO queue_hooks (run_id, key) SELECT run_id, key FROM h ON CONFLICT DO NOTHING`;

export const UPSERT_QUEUE_RUNS_SQL = `
INSERT INTO queue_runs (run_id, states, first_attempt, cancel_seen)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bool[])
ON CONFLICT (run_id) DO UPDATE SET states = EXCLUDED.states, first_attempt = EXCLUDED.first_attempt,
  cancel_seen = EXCLUDED.cancel_seen`;

export const DELETE_QUEUE_RUNS_SQL = `DELETE FROM queue_runs WHERE run_id = ANY ($1::text[])`;
export const DELETE_RUN_QUEUE_SQL = `DELETE FROM queue_tasks WHERE run_id = ANY ($1::text[])`;

export const NOTIFY_SQL = `SELECT pg_notify('${QUEUE_CHANNEL}', p) FROM unnest($1::text[]) AS p`;

/**
 * Extends a worker's leases, refreshes its heartbeat, and says which of its runs were asked to
 * cancel or are past their timeout. $1 worker, $2 lease ms.
 */
export const RENEW_SQL = `
WITH renewed AS (
  UPDATE queue_tasks SET lease_expires_at = now() + $2 * interval '1 millisecond'
  WHERE state = 'leased' AND lease_owner = $1
  RETURNING run_id, task, lease_id
), beat AS (
  UPDATE queue_workers SET heartbeat_at = now() WHERE id = $1 RETURNING id
)
SELECT n.run_id, n.task, n.lease_id, r.cancel_requested,
       COALESCE(qr.timed_out OR qr.deadline_at <= now(), false) AS timed_out
FROM renewed n JOIN runs r ON r.id = n.run_id LEFT JOIN queue_runs qr ON qr.run_id = n.run_id`;

/** With the child process group its attempt recorded, and where its worker ran (to stop orphans). */
export const EXPIRED_LEASES_SQL = `
SELECT q.run_id, q.task, q.lease_id, q.lease_owner, q.attempt, a.pid, w.host AS worker_host, w.pid AS worker_pid
FROM queue_tasks q
LEFT JOIN attempts a ON a.run_id = q.run_id AND a.task = q.task AND a.attempt = q.attempt AND a.state = 'running'
LEFT JOIN queue_workers w ON w.id = q.lease_owner
WHERE q.state = 'leased' AND q.lease_expires_at < now()
ORDER BY q.lease_expires_at LIMIT $1`;

/** Runs past their timeout whose tasks were not stopped yet. */
export const TIMED_OUT_SQL = `
SELECT run_id FROM queue_runs WHERE NOT timed_out AND deadline_at <= now() ORDER BY deadline_at LIMIT $1`;

export const CANCEL_PENDING_SQL = `
SELECT qr.run_id FROM queue_runs qr JOIN runs r ON r.id = qr.run_id
WHERE r.cancel_requested AND NOT qr.cancel_seen LIMIT $1`;

/**
 * Runs whose retry delay is over run again; runs marked interrupted while the queue owns them
 * (no heartbeat for a while) are taken back. Locked rows are skipped (next time).
 */
export const RESUME_RUNS_SQL = `
UPDATE runs SET state = 'running', next_attempt_at = NULL, error = CASE WHEN state = 'retrying' THEN NULL ELSE error END,
  heartbeat_at = now()
WHERE id IN (
  SELECT r.id FROM runs r JOIN queue_runs qr ON qr.run_id = r.id
  WHERE r.owner = $1 AND ((r.state = 'retrying' AND r.next_attempt_at <= now()) OR r.state = 'interrupted')
  FOR UPDATE OF r SKIP LOCKED
)
RETURNING id`;

/** Queue-owned runs stay visibly alive while a worker or scheduler watches the queue. */
export const HEARTBEAT_RUNS_SQL = `
UPDATE runs SET heartbeat_at = now()
WHERE id IN (
  SELECT r.id FROM runs r WHERE r.owner = $1 AND r.state IN ('running', 'retrying')
  FOR UPDATE SKIP LOCKED
)`;

export const FORGET_WORKERS_SQL = `DELETE FROM queue_workers WHERE heartbeat_at < now() - interval '1 day'`;

export const NEXT_DUE_SQL = `
-- GREATEST ignores NULL: no ready row must stay NULL, not become "due now".
-- Tasks of runs at their concurrency limit or past their timeout are not due: a claim would skip them.
SELECT CASE WHEN min(available_at) IS NULL THEN NULL
            ELSE GREATEST(0, EXTRACT(EPOCH FROM (min(available_at) - now())) * 1000)::float8 END AS due_in
FROM queue_tasks q WHERE q.state = 'ready' AND q.queue = ANY ($1::text[])
  AND NOT EXISTS (SELECT 1 FROM queue_runs qr WHERE qr.run_id = q.run_id
                  AND (qr.running >= qr.max_running OR qr.timed_out OR qr.deadline_at <= now()))`;

export const CLAIM_HOOKS_SQL = `
UPDATE queue_hooks h SET lease_owner = $1, lease_expires_at = now() + $3 * interval '1 millisecond'
FROM (
  SELECT run_id, key FROM queue_hooks
  WHERE lease_expires_at IS NULL OR lease_expires_at < now()
  ORDER BY created_at LIMIT $2
  FOR UPDATE SKIP LOCKED
) p
WHERE h.run_id = p.run_id AND h.key = p.key
RETURNING h.run_id, h.key`;

export const FINISH_HOOK_SQL = `DELETE FROM queue_hooks WHERE run_id = $1 AND key = $2 AND lease_owner = $3`;

export const TASK_OUTPUTS_SQL = `SELECT task, state, output FROM task_runs WHERE run_id = $1 AND task = ANY ($2::text[])`;

export const REGISTER_WORKER_SQL = `
INSERT INTO queue_workers (id, queues, concurrency, host, pid) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency, heartbeat_at = now()`;

export const UNREGISTER_WORKER_SQL = `DELETE FROM queue_workers WHERE id = $1`;

/** $1: how recent a worker's heartbeat must be to count as alive (ms). */
export const QUEUE_HEALTH_SQL = `
WITH q AS (
  SELECT queue,
         count(*) FILTER (WHERE state = 'ready' AND available_at <= now()) AS ready,
         count(*) FILTER (WHERE state = 'ready' AND available_at > now()) AS delayed,
         count(*) FILTER (WHERE state = 'leased') AS running
  FROM queue_tasks GROUP BY queue
), w AS (
  SELECT unnest(queues) AS queue, count(*) AS workers FROM queue_workers
  WHERE heartbeat_at > now() - $1 * interval '1 millisecond' GROUP BY 1
)
SELECT COALESCE(q.queue, w.queue) AS queue, COALESCE(q.ready, 0) AS ready, COALESCE(q.delayed, 0) AS delayed,
       COALESCE(q.running, 0) AS running, COALESCE(w.workers, 0) AS workers
FROM q FULL JOIN w ON w.queue = q.queue
ORDER BY 1`;

export const LOCK_RUN_FOR_START_SQL = `
SELECT state, attempt, owner, plan_hash, pipeline, created_at, cancel_requested, now() AS now
FROM runs WHERE id = $1 FOR UPDATE`;

export const TASK_STATES_SQL = `SELECT task, state FROM task_runs WHERE run_id = $1`;

export const QUEUE_PENDING_HOOKS_SQL = `
INSERT INTO queue_hooks (run_id, key) SELECT run_id, key FROM hooks WHERE run_id = $1 AND state = 'pending'
ON CONFLICT DO NOTHING`;

export const RELEASE_LEASES_SQL = `
UPDATE queue_tasks SET lease_expires_at = now() - interval '1 millisecond' WHERE state = 'leased' AND lease_owner = $1`;

/**
 * Everything a coordination transaction writes after its locks and fences, in ONE statement (one
 * round trip): attempt ends, task-run changes (fenced on the state each was seen in; the count
 * updated is returned and checked), queue entries removed, requeued and added, hooks recorded and
 * queued, coordination states stored, and the runs the queue let go of cleared.
 * A task has at most one queue operation per transaction, so no two parts touch one row.
 */
export const APPLY_SQL = `
WITH ended AS (
  UPDATE attempts a SET state = v.state, finished_at = $1::timestamptz, error = v.error::json
  FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[]) AS v (run_id, task, attempt, state, error)
  WHERE a.run_id = v.run_id AND a.task = v.task AND a.attempt = v.attempt AND a.state = 'running'
  RETURNING 1
), changed AS (
  UPDATE task_runs t SET
    state = v.to_state,
    output = CASE WHEN v.reset THEN NULL WHEN v.set_output THEN v.output::json ELSE t.output END,
    error = CASE WHEN v.reset THEN NULL WHEN v.set_error THEN v.error::json ELSE t.error END,
    reason = CASE WHEN v.reset THEN NULL WHEN v.set_reason THEN v.reason ELSE t.reason END,
    started_at = CASE WHEN v.reset THEN NULL ELSE t.started_at END,
    finished_at = CASE WHEN v.reset THEN NULL WHEN v.finished THEN $1::timestamptz ELSE t.finished_at END,
    next_attempt_at = CASE WHEN v.reset THEN NULL WHEN v.set_next THEN v.next_at ELSE t.next_attempt_at END
  FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::text[], $13::bool[], $14::text[],
              $15::bool[], $16::text[], $17::bool[], $18::bool[], $19::timestamptz[], $20::bool[])
    AS v (run_id, task, from_state, to_state, set_output, output, set_error, error, set_reason, reason,
          finished, set_next, next_at, reset)
  WHERE t.run_id = v.run_id AND t.task = v.task AND t.state = v.from_state
  RETURNING 1
), dequeued AS (
  DELETE FROM queue_tasks q USING unnest($21::text[], $22::text[]) AS v (run_id, task)
  WHERE q.run_id = v.run_id AND q.task = v.task
  RETURNING 1
), requeued AS (
  UPDATE queue_tasks q SET state = 'ready', available_at = v.available_at, delay_ms = v.delay_ms,
    base = q.base + v.base_inc, lost = q.lost + v.lost_inc,
    lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL, attempt = NULL
  FROM unnest($23::text[], $24::text[], $25::timestamptz[], $26::bigint[], $27::int[], $28::int[])
    AS v (run_id, task, available_at, delay_ms, base_inc, lost_inc)
  WHERE q.run_id = v.run_id AND q.task = v.task
  RETURNING 1
), enqueued AS (
  INSERT INTO queue_tasks (run_id, task, queue, state, available_at, has_when, delay_ms, base)
  SELECT v.run_id, v.task, v.queue, 'ready', v.available_at, v.has_when, v.delay_ms, t.attempts
  FROM unnest($29::text[], $30::text[], $31::text[], $32::timestamptz[], $33::bool[], $34::bigint[])
    AS v (run_id, task, queue, available_at, has_when, delay_ms)
  JOIN task_runs t ON t.run_id = v.run_id AND t.task = v.task
  ON CONFLICT (run_id, task) DO UPDATE SET state = 'ready', queue = EXCLUDED.queue,
    available_at = EXCLUDED.available_at, has_when = EXCLUDED.has_when, delay_ms = EXCLUDED.delay_ms,
    base = EXCLUDED.base, lost = 0, lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL, attempt = NULL
  RETURNING 1
), hooked AS (
  INSERT INTO hooks (run_id, key, event, task, handler, state, error, created_at)
  SELECT * FROM unnest($35::text[], $36::text[], $37::text[], $38::text[], $39::text[], $40::text[],
                       $41::text[]::json[], $42::timestamptz[])
  ON CONFLICT (run_id, key) DO NOTHING
  RETURNING run_id, key
), hook_queued AS (
  INSERT INTO queue_hooks (run_id, key) SELECT run_id, key FROM hooked ON CONFLICT DO NOTHING
  RETURNING 1
), coordinated AS (
  INSERT INTO queue_runs (run_id, states, first_attempt, cancel_seen, running, max_running, deadline_at, timed_out)
  SELECT * FROM unnest($43::text[], $44::text[], $45::int[], $46::bool[], $48::int[], $49::int[],
                       $50::timestamptz[], $51::bool[])
  ON CONFLICT (run_id) DO UPDATE SET states = EXCLUDED.states, first_attempt = EXCLUDED.first_attempt,
    cancel_seen = EXCLUDED.cancel_seen, running = EXCLUDED.running, max_running = EXCLUDED.max_running,
    deadline_at = EXCLUDED.deadline_at, timed_out = EXCLUDED.timed_out
  RETURNING 1
), released AS (
  DELETE FROM queue_tasks WHERE run_id = ANY ($47::text[]) RETURNING 1
), forgotten AS (
  DELETE FROM queue_runs WHERE run_id = ANY ($47::text[]) RETURNING 1
)
SELECT (SELECT count(*) FROM changed)::int AS changed,
       (SELECT count(*) FROM ended)::int + (SELECT count(*) FROM dequeued)::int + (SELECT count(*) FROM requeued)::int
         + (SELECT count(*) FROM enqueued)::int + (SELECT count(*) FROM hook_queued)::int
         + (SELECT count(*) FROM coordinated)::int + (SELECT count(*) FROM released)::int
         + (SELECT count(*) FROM forgotten)::int AS other`;

/**
 * LOCK_RUNS_SQL then FENCE_SQL in one round trip: the runs' rows are locked first (the scalar
 * subqueries run in order), then the leased rows named by (run, task, lease). Both come back as
 * JSON arrays; `expired` says whether a lease ran out.
 */
export const LOCK_AND_FENCE_SQL = `
WITH locked AS (
  SELECT qr.run_id, qr.states, qr.first_attempt, qr.cancel_seen, qr.running, qr.max_running,
         (EXTRACT(EPOCH FROM qr.deadline_at) * 1000)::float8 AS deadline_ms, qr.timed_out,
         r.state, r.attempt, r.cancel_requested, r.owner, r.plan_hash, r.pipeline, r.created_at
  FROM queue_runs qr JOIN runs r ON r.id = qr.run_id
  WHERE qr.run_id = ANY ($1::text[])
  ORDER BY qr.run_id
  FOR UPDATE OF qr
), fenced AS (
  SELECT q.run_id, q.task, q.lease_id, q.lease_owner, (q.lease_expires_at < now()) AS expired, q.attempt, q.base,
         q.lost, t.state AS task_state
  FROM queue_tasks q
  JOIN unnest($2::text[], $3::text[], $4::bigint[]) AS v (run_id, task, lease_id)
    ON q.run_id = v.run_id AND q.task = v.task AND q.lease_id = v.lease_id
  JOIN task_runs t ON t.run_id = q.run_id AND t.task = q.task
  WHERE q.state = 'leased'
  FOR UPDATE OF q
)
SELECT (SELECT COALESCE(json_agg(l), '[]'::json) FROM locked l)::text AS locked,
       (SELECT COALESCE(json_agg(f), '[]'::json) FROM fenced f)::text AS fenced,
       now() AS now`;

/** Runs created (queued) long ago that nobody took: their creator died before handing them over. */
export const ORPHAN_QUEUED_SQL = `
SELECT id FROM runs WHERE state = 'queued' AND owner IS NULL AND created_at < now() - $1 * interval '1 millisecond'
ORDER BY created_at LIMIT $2`;
