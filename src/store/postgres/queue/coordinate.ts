import type pg from 'pg';
import { assertRunTransition, isRunFinished, type RunState, type TaskState } from '../../../core/states.js';
import {
  advanceTasks,
  decodeStates,
  encodeStates,
  planIndex,
  type FinishedTask,
} from '../../../worker/advance.js';
import { QUEUE_RUN_OWNER, type ClaimedTask } from '../../../worker/queue-port.js';
import { prepared } from '../write-batch.js';
import { applyWrites } from './apply-writes.js';
import { claimTasks, type ClaimRequest } from './claim.js';
import type { QueueConnection } from './connection.js';
import { finishRun } from './finish-run.js';
import { notifyWakes } from './notify.js';
import { toFinishedTask, type FenceRow, type Report } from './reports.js';
import { deadlineOf, queuesOf, runTimeoutError } from './run-limits.js';
import { reportKey, WriteSet } from './write-set.js';

/**
 * The runs' coordination rows locked first (the scalar subqueries run in order), then the leased
 * rows named by (run, task, lease), in one round trip. Both come back as JSON arrays; `expired`
 * says whether a lease ran out.
 */
const LOCK_AND_FENCE_SQL = `
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

/** A cancelled run's queue entries nobody runs: removed, with their task runs' state. */
const WITHDRAW_READY_SQL = `
DELETE FROM queue_tasks q USING task_runs t
WHERE q.run_id = $1 AND q.state = 'ready' AND t.run_id = q.run_id AND t.task = q.task
RETURNING q.task, t.state`;

interface LockedRunRow {
  run_id: string;
  states: string;
  first_attempt: number;
  cancel_seen: boolean;
  running: number;
  max_running: number | null;
  deadline_ms: number | null;
  timed_out: boolean;
  state: string;
  attempt: number;
  cancel_requested: boolean;
  owner: string | null;
  plan_hash: string;
  pipeline: string;
  created_at: string;
}

/**
 * The one transaction shape that moves runs forward: lock the runs' coordination rows, fence
 * the reports on their leases, advance (advance.ts), finish runs that are done, write it all.
 * `sweep`: runs to advance with no report (a cancel request nobody's result carried yet).
 * Returns the keys of the reports it applied.
 */
export async function coordinate(
  conn: QueueConnection,
  client: pg.PoolClient,
  reports: readonly Report[],
  sweep: readonly string[],
  claimFor?: ClaimRequest,
): Promise<{ accepted: Set<string>; claimed: ClaimedTask[] }> {
  const runIds = [
    ...new Set([...reports.map((r) => (r.from === 'worker' ? r.completion.runId : r.runId)), ...sweep]),
  ].sort();
  const row0 = (
    await client.query<{ locked: string; fenced: string; now: string }>(
      prepared(LOCK_AND_FENCE_SQL, [
        runIds,
        reports.map((r) => (r.from === 'worker' ? r.completion.runId : r.runId)),
        reports.map((r) => (r.from === 'worker' ? r.completion.task : r.task)),
        reports.map((r) => (r.from === 'worker' ? r.completion.lease : r.lease)),
      ]),
    )
  ).rows[0]!;
  const locked = JSON.parse(row0.locked) as LockedRunRow[];
  const fenced = JSON.parse(row0.fenced) as FenceRow[];
  const accepted = new Set<string>();
  if (locked.length === 0) return { accepted, claimed: claimFor ? await claimTasks(client, claimFor) : [] };
  const fenceByKey = new Map(fenced.map((f) => [reportKey(f.run_id, f.task), f]));
  const now = Date.parse(row0.now);
  const writes = new WriteSet();

  for (const row of locked) {
    const runId = row.run_id;
    const runState = row.state as RunState;
    if (row.owner !== QUEUE_RUN_OWNER || isRunFinished(runState) || runState === 'queued') {
      // Someone else executes the run now (a local resume), or it ended: the queue lets go of it.
      writes.closedRuns.push(runId);
      continue;
    }
    const plan = await conn.plan(client, row.plan_hash);
    let state = runState;
    if (state === 'retrying' || state === 'interrupted') {
      assertRunTransition(runId, state, 'running');
      writes.runUpdates.push({ runId, from: state, to: 'running', error: null, nextAttemptAt: null });
      state = 'running';
    }
    const finished: FinishedTask[] = [];
    const index = planIndex(plan);
    // The completion transaction respects the timeout too, whether or not the reaper saw it yet.
    const timedOut = row.timed_out || (row.deadline_ms !== null && row.deadline_ms <= now);
    const stopping = row.cancel_requested || timedOut;
    let ended = 0;
    for (const report of reports) {
      const key =
        report.from === 'worker'
          ? reportKey(report.completion.runId, report.completion.task)
          : reportKey(report.runId, report.task);
      if ((report.from === 'worker' ? report.completion.runId : report.runId) !== runId) continue;
      const fence = fenceByKey.get(key);
      if (!fence || !index.position.has(fence.task)) continue;
      const item = toFinishedTask(report, fence, writes);
      if (!item) continue;
      finished.push(item);
      accepted.add(key);
      // Every applied report ends its lease: the task leaves the queue or goes back to ready.
      ended += 1;
    }
    let withdrawn: Map<string, TaskState> | undefined;
    if (stopping) {
      const rows = (
        await client.query<{ task: string; state: string }>(prepared(WITHDRAW_READY_SQL, [runId]))
      ).rows;
      withdrawn = new Map(rows.map((r) => [r.task, r.state as TaskState]));
    }
    const run = {
      id: runId,
      attempt: row.attempt,
      firstAttempt: row.first_attempt,
      cancelRequested: row.cancel_requested,
      ...(timedOut ? { timeout: runTimeoutError(plan) } : {}),
    };
    const running = Math.max(0, row.running - ended);
    if (
      !stopping &&
      row.max_running !== null &&
      row.running >= row.max_running &&
      running < row.max_running
    ) {
      // The run was at its limit and has room again: workers that skipped its tasks may take them.
      for (const name of queuesOf(plan)) writes.wake.add(name);
    }
    const advanced = advanceTasks({
      plan,
      states: decodeStates(row.states),
      run,
      finished,
      ...(withdrawn ? { withdrawn } : {}),
      now,
      ...(conn.options.random ? { random: conn.options.random } : {}),
      ...(conn.options.maxLostAttempts !== undefined
        ? { maxLostAttempts: conn.options.maxLostAttempts }
        : {}),
    });
    writes.addChanges(runId, plan, advanced.changes);
    writes.hooks.push(...advanced.hooks);
    let states = advanced.states;
    let closed = false;
    let deadlineAt = row.deadline_ms;
    let timedOutNow = timedOut;
    if (advanced.complete) {
      const result = await finishRun(
        conn.options,
        client,
        writes,
        plan,
        { ...run, state, pipeline: row.pipeline, createdAt: row.created_at },
        states,
        now,
        writes.batchErrors(runId),
      );
      states = result.states;
      closed = result.closed;
      if (result.retryAt !== null) {
        // A run retry is a new run attempt: its timeout counts from when its tasks may start.
        deadlineAt = deadlineOf(plan, result.retryAt);
        timedOutNow = false;
      }
    }
    if (!closed) {
      writes.queueRuns.push({
        runId,
        states: encodeStates(states),
        firstAttempt: row.first_attempt,
        cancelSeen: row.cancel_seen || row.cancel_requested,
        running,
        maxRunning: row.max_running,
        deadlineAt,
        timedOut: timedOutNow,
      });
    }
  }
  await applyWrites(client, writes, now);
  const claimed = claimFor ? await claimTasks(client, claimFor) : [];
  // Nobody else needs waking for a queue this worker just drained.
  if (claimFor && claimed.length < claimFor.limit) for (const q of claimFor.queues) writes.wake.delete(q);
  await notifyWakes(client, writes);
  return { accepted, claimed };
}
