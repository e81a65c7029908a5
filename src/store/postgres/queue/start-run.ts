import { assertRunTransition, type RunState, type TaskState } from '../../../core/states.js';
import { WeftError } from '../../../errors.js';
import { encodeStates, startTasks } from '../../../worker/advance.js';
import { prepared } from '../write-batch.js';
import { applyWrites } from './apply-writes.js';
import type { QueueConnection } from './connection.js';
import { finishRun } from './finish-run.js';
import { notifyWakes } from './notify.js';
import { deadlineOf, maxRunningOf } from './run-limits.js';
import { WriteSet } from './write-set.js';

const LOCK_RUN_FOR_START_SQL = `
SELECT state, attempt, owner, plan_hash, pipeline, created_at, cancel_requested, now() AS now
FROM runs WHERE id = $1 FOR UPDATE`;

const TASK_STATES_SQL = `SELECT task, state FROM task_runs WHERE run_id = $1`;

const QUEUE_PENDING_HOOKS_SQL = `
INSERT INTO queue_hooks (run_id, key) SELECT run_id, key FROM hooks WHERE run_id = $1 AND state = 'pending'
ON CONFLICT DO NOTHING`;

const DELETE_QUEUE_RUNS_SQL = `DELETE FROM queue_runs WHERE run_id = ANY ($1::text[])`;
const DELETE_RUN_QUEUE_SQL = `DELETE FROM queue_tasks WHERE run_id = ANY ($1::text[])`;

/**
 * Takes a queued run: its first tasks go to the queue, its pending hooks to the hook queue. False
 * when the run is not `queued` (someone took it already). Waits for the WAL flush: nothing else
 * would ever come back for a run left `queued` (QUEUE DURABILITY in index.ts).
 */
export function startRun(conn: QueueConnection, runId: string): Promise<boolean> {
  return conn.transaction(async (client) => {
    await client.query('SET LOCAL synchronous_commit = on');
    const row = (
      await client.query<{
        state: string;
        attempt: number;
        plan_hash: string;
        pipeline: string;
        created_at: string;
        now: string;
      }>(prepared(LOCK_RUN_FOR_START_SQL, [runId]))
    ).rows[0];
    if (!row || row.state !== 'queued') return false;
    assertRunTransition(runId, 'queued', 'running');
    const plan = await conn.plan(client, row.plan_hash);
    const now = Date.parse(row.now);
    const byTask = new Map(
      (await client.query<{ task: string; state: string }>(prepared(TASK_STATES_SQL, [runId]))).rows.map(
        (r) => [r.task, r.state as TaskState],
      ),
    );
    const taskStates = plan.order.map((name) => {
      const state = byTask.get(name);
      if (state === undefined) throw new WeftError('INTERNAL', `run ${runId} has no task run for "${name}"`);
      return state;
    });
    // Whatever an earlier execution of this run left in the queue is void now.
    await client.query(prepared(DELETE_RUN_QUEUE_SQL, [[runId]]));
    await client.query(prepared(DELETE_QUEUE_RUNS_SQL, [[runId]]));
    const started = startTasks({ plan, taskStates, now });
    const writes = new WriteSet();
    writes.runUpdates.push({ runId, from: 'queued', to: 'running', start: true });
    writes.addChanges(runId, plan, started.changes);
    const run = {
      id: runId,
      attempt: row.attempt,
      firstAttempt: row.attempt,
      cancelRequested: false,
      state: 'running' as RunState,
    };
    let states = started.states;
    let closed = false;
    let deadlineAt = deadlineOf(plan, now);
    if (started.complete) {
      const result = await finishRun(
        conn.options,
        client,
        writes,
        plan,
        { ...run, pipeline: row.pipeline, createdAt: row.created_at },
        states,
        now,
        new Map(),
      );
      states = result.states;
      closed = result.closed;
      if (result.retryAt !== null) deadlineAt = deadlineOf(plan, result.retryAt);
    }
    if (!closed) {
      writes.queueRuns.push({
        runId,
        states: encodeStates(states),
        firstAttempt: row.attempt,
        cancelSeen: false,
        running: 0,
        maxRunning: maxRunningOf(plan),
        deadlineAt,
        timedOut: false,
      });
    }
    await client.query(prepared(QUEUE_PENDING_HOOKS_SQL, [runId]));
    writes.wakeHooks = true;
    await applyWrites(client, writes, now);
    await notifyWakes(client, writes);
    return true;
  });
}
