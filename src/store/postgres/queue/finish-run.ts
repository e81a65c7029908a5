import type pg from 'pg';
import type { Plan } from '../../../compile/plan.js';
import type { RunState } from '../../../core/states.js';
import type { ErrorInfo } from '../../../errors.js';
import { completeRun, needsPreviousFailures, type CoordState } from '../../../worker/advance.js';
import { parseJsonColumn } from '../../json-codec.js';
import { prepared } from '../write-batch.js';
import type { PostgresQueueOptions } from './connection.js';
import type { WriteSet } from './write-set.js';

const FAILED_ERRORS_SQL = `SELECT task, error FROM task_runs WHERE run_id = $1 AND state = 'failed'`;

/** Finished runs of the pipeline created before this one, newest first (countPreviousFailures' rule). */
const PREVIOUS_RUNS_SQL = `
SELECT state FROM runs
WHERE pipeline = $1 AND (created_at, id) < ($2::timestamptz, $3::text) AND state IN ('failed', 'succeeded')
ORDER BY created_at DESC, id DESC LIMIT 2000`;

/** All tasks finished: the run ends (hooks recorded) or retries (tasks reset, roots delayed). */
export async function finishRun(
  options: PostgresQueueOptions,
  client: pg.PoolClient,
  writes: WriteSet,
  plan: Plan,
  run: {
    id: string;
    attempt: number;
    firstAttempt: number;
    cancelRequested: boolean;
    timeout?: ErrorInfo;
    state: RunState;
    pipeline: string;
    createdAt: string;
  },
  states: CoordState[],
  now: number,
  batchErrors: Map<string, ErrorInfo | null>,
): Promise<{ states: CoordState[]; closed: boolean; retryAt: number | null }> {
  const errors = new Map<string, ErrorInfo | null>();
  if (states.includes('failed')) {
    const rows = (
      await client.query<{ task: string; error: string | null }>(prepared(FAILED_ERRORS_SQL, [run.id]))
    ).rows;
    for (const r of rows) errors.set(r.task, parseJsonColumn<ErrorInfo>(r.error));
    for (const [task, error] of batchErrors) errors.set(task, error);
  }
  let previousFailures = 0;
  if (needsPreviousFailures(plan)) {
    const rows = (
      await client.query<{ state: string }>(
        prepared(PREVIOUS_RUNS_SQL, [run.pipeline, run.createdAt, run.id]),
      )
    ).rows;
    for (const r of rows) {
      if (r.state !== 'failed') break;
      previousFailures += 1;
    }
  }
  const completion = completeRun({
    plan,
    states,
    run,
    errors,
    previousFailures,
    now,
    ...(options.random ? { random: options.random } : {}),
  });
  const change = completion.run;
  writes.runUpdates.push({
    runId: run.id,
    from: change.from,
    to: change.to,
    error: change.error,
    attempt: change.attempt,
    nextAttemptAt: change.nextAttemptAt,
    finished: change.finished,
  });
  if (completion.kind === 'retrying') {
    writes.addChanges(run.id, plan, completion.changes);
    return { states: completion.states, closed: false, retryAt: change.nextAttemptAt ?? now };
  }
  writes.hooks.push(...completion.hooks);
  writes.closedRuns.push(run.id);
  return { states, closed: true, retryAt: null };
}
