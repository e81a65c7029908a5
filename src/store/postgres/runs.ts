import { parseParams } from '../json-codec.js';
import { RUN_PATCH_FIELDS, TASK_RUN_PATCH_FIELDS } from '../patches.js';
import { DEFAULT_LIMIT, newRunRecord, type TaskRunRow, toTaskRun } from '../records.js';
import type {
  NewRun,
  RunCondition,
  RunPatch,
  RunQuery,
  RunRecord,
  TaskRunCondition,
  TaskRunPatch,
  TaskRunRecord,
} from '../run-store.js';
import { type ConditionKind, createRunExecutor, type CreateRunPayload, type SqlValue } from './statements.js';
import type { RunRow, StoreConnection } from './store-connection.js';

const RUN_FIELDS = `id, pipeline, state, params, plan_hash, trigger, scheduled_for, attempt, owner, heartbeat_at,
  created_at, started_at, finished_at, next_attempt_at, error, cancel_requested`;

export function createRun(conn: StoreConnection, run: NewRun): Promise<RunRecord> {
  const { text: planText, hash: planHash } = conn.plans.textOf(run.plan);
  // Copied now: the caller may change its objects before the batch runs.
  const paramsText = JSON.stringify(run.params);
  const payload: CreateRunPayload = {
    planHash,
    planText: conn.storedPlans.has(planHash) ? null : planText,
    id: run.id,
    pipeline: run.pipeline,
    state: run.state,
    paramsText,
    trigger: run.trigger,
    scheduledFor: run.scheduledFor,
    owner: run.owner,
    createdAt: run.createdAt,
    order: [...run.plan.order],
  };
  return conn
    .write({
      group: 'createRun',
      run: { execute: createRunExecutor },
      payload,
      keys: [],
      barrier: true,
      // The crash window the reliability suite kills in: the run inserted, its COMMIT not yet sent.
      beforeCommit: 'before-run-insert-commit',
    })
    .then((): RunRecord => {
      conn.storedPlans.add(planHash);
      return newRunRecord(run, parseParams(paramsText), conn.plans.remember(planHash, planText), planHash);
    });
}

export function getRun(conn: StoreConnection, id: string): Promise<RunRecord | null> {
  return conn.read(async () => {
    const rows = await conn.rows<RunRow>(`SELECT ${RUN_FIELDS} FROM runs WHERE id = $1`, [id]);
    return rows.length > 0 ? (await conn.toRuns(rows))[0]! : null;
  });
}

export function listRuns(conn: StoreConnection, query: RunQuery = {}): Promise<RunRecord[]> {
  return conn.read(async () => {
    const where: string[] = [];
    const values: unknown[] = [];
    if (query.pipeline !== undefined) {
      values.push(query.pipeline);
      where.push(`pipeline = $${values.length}`);
    }
    if (query.states) {
      if (query.states.length === 0) return [];
      values.push(query.states);
      where.push(`state = ANY ($${values.length}::text[])`);
    }
    values.push(query.limit ?? DEFAULT_LIMIT, query.offset ?? 0);
    const rows = await conn.rows<RunRow>(
      `SELECT ${RUN_FIELDS} FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${values.length - 1} OFFSET $${values.length}`,
      values,
    );
    return conn.toRuns(rows);
  });
}

export function updateRun(
  conn: StoreConnection,
  id: string,
  patch: RunPatch,
  condition: RunCondition = {},
): Promise<boolean> {
  const conditions: [ConditionKind, SqlValue][] = [];
  if (condition.states) conditions.push(['states', condition.states.join(',')]);
  if (condition.owner !== undefined) conditions.push(['owner', condition.owner]);
  return conn.update('runs', [[{ column: 'id', type: 'text' }, id]], RUN_PATCH_FIELDS, patch, conditions);
}

// Task runs: created with their run (createRun), one per task in plan order.

export function getTaskRuns(conn: StoreConnection, runId: string): Promise<TaskRunRecord[]> {
  return conn.read(async () => {
    const rows = await conn.rows<TaskRunRow>(
      `SELECT run_id, task, state, attempts, output, error, reason, started_at, finished_at, next_attempt_at
       FROM task_runs WHERE run_id = $1 ORDER BY ordinal`,
      [runId],
    );
    return rows.map(toTaskRun);
  });
}

export function updateTaskRun(
  conn: StoreConnection,
  runId: string,
  task: string,
  patch: TaskRunPatch,
  condition: TaskRunCondition = {},
): Promise<boolean> {
  const conditions: [ConditionKind, SqlValue][] = [];
  if (condition.states) conditions.push(['states', condition.states.join(',')]);
  if (condition.attempts !== undefined) conditions.push(['attempts', condition.attempts]);
  return conn.update(
    'task_runs',
    [
      [{ column: 'run_id', type: 'text' }, runId],
      [{ column: 'task', type: 'text' }, task],
    ],
    TASK_RUN_PATCH_FIELDS,
    patch,
    conditions,
  );
}
