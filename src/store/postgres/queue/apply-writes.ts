import type pg from 'pg';
import { WeftError } from '../../../errors.js';
import type { TaskChange } from '../../../worker/advance.js';
import { QUEUE_RUN_OWNER } from '../../../worker/queue-port.js';
import { prepared } from '../write-batch.js';
import type { QueueOp, RunUpdate, WriteSet } from './write-set.js';

/** PostgreSQL text cannot hold NUL. */
export function noNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

function jsonText(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

function conflict(what: string): WeftError {
  return new WeftError('RUN_STATE', `the queue changed under a transaction (${what}); it was rolled back`, {
    retryable: true,
  });
}

/**
 * Everything a coordination transaction writes after its locks and fences, in ONE statement (one
 * round trip): attempt ends, task-run changes (fenced on the state each was seen in; the count
 * updated is returned and checked), queue entries removed, requeued and added, hooks recorded and
 * queued, coordination states stored, and the runs the queue let go of cleared.
 * A task has at most one queue operation per transaction, so no two parts touch one row.
 */
const APPLY_SQL = `
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

/** Writes a transaction's WriteSet: APPLY_SQL, then one UPDATE per run that changed state. */
export async function applyWrites(client: pg.PoolClient, writes: WriteSet, now: number): Promise<void> {
  const nowIso = new Date(now).toISOString();
  const iso = (ms: number | null | undefined) =>
    ms === null || ms === undefined ? null : new Date(ms).toISOString();
  const a = writes.attemptEnds;
  const list = [...writes.taskChanges.values()];
  const c = list.map((x) => x.change);
  const has = (k: keyof TaskChange) => c.map((x) => Object.hasOwn(x, k) && x[k] !== undefined);
  const deletes: { runId: string; task: string }[] = [];
  const requeues: { runId: string; task: string; op: QueueOp }[] = [];
  const inserts: { runId: string; task: string; op: QueueOp }[] = [];
  for (const entry of writes.queueOps.values()) {
    if (entry.op.op === 'delete') deletes.push(entry);
    else if (entry.op.op === 'requeue') requeues.push(entry);
    else inserts.push(entry);
  }
  const h = writes.hooks;
  if (h.length > 0) writes.wakeHooks = true;
  const q = writes.queueRuns;
  const result = await client.query<{ changed: number }>(
    prepared(APPLY_SQL, [
      nowIso,
      a.map((x) => x.runId),
      a.map((x) => x.task),
      a.map((x) => x.attempt),
      a.map((x) => x.state),
      a.map((x) => jsonText(x.error)),
      list.map((x) => x.runId),
      c.map((x) => x.task),
      c.map((x) => x.from),
      c.map((x) => x.to),
      has('output'),
      c.map((x) => (x.output === undefined ? null : jsonText(x.output))),
      has('error'),
      c.map((x) => jsonText(x.error ?? null)),
      has('reason'),
      c.map((x) => (x.reason === undefined || x.reason === null ? null : noNul(x.reason))),
      c.map((x) => x.finished === true),
      has('nextAttemptAt'),
      c.map((x) => iso(x.nextAttemptAt)),
      c.map((x) => x.reset === true),
      deletes.map((d) => d.runId),
      deletes.map((d) => d.task),
      requeues.map((d) => d.runId),
      requeues.map((d) => d.task),
      requeues.map((d) => iso(d.op.availableAt)),
      requeues.map((d) => d.op.delayMs ?? 0),
      requeues.map((d) => d.op.baseInc ?? 0),
      requeues.map((d) => d.op.lostInc ?? 0),
      inserts.map((d) => d.runId),
      inserts.map((d) => d.task),
      inserts.map((d) => d.op.queue),
      inserts.map((d) => iso(d.op.availableAt)),
      inserts.map((d) => d.op.hasWhen === true),
      inserts.map((d) => d.op.delayMs ?? 0),
      h.map((x) => x.runId),
      h.map((x) => x.key),
      h.map((x) => x.event),
      h.map((x) => x.task),
      h.map((x) => x.handler),
      h.map((x) => x.state),
      h.map((x) => jsonText(x.error)),
      h.map((x) => x.createdAt),
      q.map((x) => x.runId),
      q.map((x) => x.states),
      q.map((x) => x.firstAttempt),
      q.map((x) => x.cancelSeen),
      writes.closedRuns,
      q.map((x) => x.running),
      q.map((x) => x.maxRunning),
      q.map((x) => iso(x.deadlineAt)),
      q.map((x) => x.timedOut),
    ]),
  );
  const changed = result.rows[0]?.changed ?? 0;
  if (changed !== list.length)
    throw conflict(`${list.length - changed} task run(s) not in the state expected`);
  // One write per run: its state changes within this transaction are folded into the last one.
  const byRun = new Map<string, RunUpdate>();
  for (const update of writes.runUpdates) {
    const previous = byRun.get(update.runId);
    byRun.set(
      update.runId,
      previous
        ? {
            ...previous,
            ...update,
            from: previous.from,
            start: previous.start === true || update.start === true,
          }
        : update,
    );
  }
  for (const u of byRun.values()) {
    const sets = ['state = $2', 'heartbeat_at = $4::timestamptz'];
    const values: unknown[] = [u.runId, u.to, u.from, nowIso];
    const add = (column: string, value: unknown, cast = '') => {
      values.push(value);
      sets.push(`${column} = $${values.length}${cast}`);
    };
    if (u.start) {
      add('owner', QUEUE_RUN_OWNER);
      sets.push(
        'started_at = COALESCE(started_at, $4::timestamptz)',
        'finished_at = NULL',
        'next_attempt_at = NULL',
        'error = NULL',
      );
    }
    if (u.error !== undefined) add('error', jsonText(u.error), '::json');
    if (u.attempt !== undefined) add('attempt', u.attempt);
    if (u.nextAttemptAt !== undefined) add('next_attempt_at', iso(u.nextAttemptAt), '::timestamptz');
    if (u.finished) sets.push('finished_at = $4::timestamptz');
    const result = await client.query(
      prepared(`UPDATE runs SET ${sets.join(', ')} WHERE id = $1 AND state = $3`, values),
    );
    if (result.rowCount !== 1) throw conflict(`run ${u.runId} is no longer ${u.from}`);
  }
}
