import type { Plan } from '../compile/plan.js';
import type { JsonObject, JsonValue } from '../core/json.js';
import type { AttemptState, RunState, TaskState } from '../core/states.js';
import type { ErrorInfo } from '../errors.js';
import { parseJsonColumn, parseParams } from './json-codec.js';
import type {
  AttemptRecord,
  FireOutcome,
  FireRecord,
  HookRecord,
  HookState,
  LogRecord,
  NewRun,
  NewRunRequest,
  RunRecord,
  RunRequestRecord,
  RunRequestState,
  RunTrigger,
  TaskRunRecord,
} from './run-store.js';

/**
 * What every adapter agrees on about records: the rows the SQL adapters read (the same columns in
 * SQLite and PostgreSQL, JSON columns as text), how a row becomes a record, what a new run, task
 * run or run request looks like, and the orders lists come in.
 */

/** How many runs and fires a list returns when the query does not say. */
export const DEFAULT_LIMIT = 50;

/** A run row, but for `cancel_requested`, which each dialect stores its own way. */
export interface RunRowBase {
  id: string;
  pipeline: string;
  state: string;
  params: string;
  plan_hash: string;
  trigger: string;
  scheduled_for: string | null;
  attempt: number;
  owner: string | null;
  heartbeat_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  next_attempt_at: string | null;
  error: string | null;
}

export interface TaskRunRow {
  run_id: string;
  task: string;
  state: string;
  attempts: number;
  output: string | null;
  error: string | null;
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
  next_attempt_at: string | null;
}

export interface AttemptRow {
  run_id: string;
  task: string;
  attempt: number;
  state: string;
  delay_ms: number;
  started_at: string;
  finished_at: string | null;
  error: string | null;
  worker: string | null;
  pid: number | null;
}

/** A log row, but for `message`, which each dialect stores its own way. */
export interface LogRowBase {
  seq: number;
  run_id: string;
  task: string | null;
  attempt: number | null;
  ts: string;
  level: string;
}

export interface HookRow {
  run_id: string;
  key: string;
  event: string;
  task: string | null;
  handler: string;
  state: string;
  error: string | null;
  created_at: string;
  finished_at: string | null;
}

export interface FireRow {
  pipeline: string;
  scheduled_for: string;
  outcome: string;
  reason: string | null;
  run_id: string | null;
  recorded_at: string;
}

export interface RunRequestRow {
  id: string;
  pipeline: string;
  params: string;
  state: string;
  requested_at: string;
  claimed_by: string | null;
  claimed_at: string | null;
  run_id: string | null;
  error: string | null;
  completed_at: string | null;
}

/** The plan comes from the adapter's plan cache, the flag from its dialect's boolean. */
export function toRun(row: RunRowBase, plan: Plan, cancelRequested: boolean): RunRecord {
  return {
    id: row.id,
    pipeline: row.pipeline,
    state: row.state as RunState,
    params: parseParams(row.params),
    plan,
    planHash: row.plan_hash,
    trigger: row.trigger as RunTrigger,
    scheduledFor: row.scheduled_for,
    attempt: row.attempt,
    owner: row.owner,
    heartbeatAt: row.heartbeat_at,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    nextAttemptAt: row.next_attempt_at,
    error: parseJsonColumn<ErrorInfo>(row.error),
    cancelRequested,
  };
}

export function toTaskRun(row: TaskRunRow): TaskRunRecord {
  return {
    runId: row.run_id,
    task: row.task,
    state: row.state as TaskState,
    attempts: row.attempts,
    output: parseJsonColumn<JsonValue>(row.output),
    error: parseJsonColumn<ErrorInfo>(row.error),
    reason: row.reason,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    nextAttemptAt: row.next_attempt_at,
  };
}

export function toAttempt(row: AttemptRow): AttemptRecord {
  return {
    runId: row.run_id,
    task: row.task,
    attempt: row.attempt,
    state: row.state as AttemptState,
    delayMs: row.delay_ms,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: parseJsonColumn<ErrorInfo>(row.error),
    worker: row.worker,
    pid: row.pid,
  };
}

/** The message is decoded by the adapter (PostgreSQL stores it as bytes). */
export function toLog(row: LogRowBase, message: string): LogRecord {
  return {
    seq: row.seq,
    runId: row.run_id,
    task: row.task,
    attempt: row.attempt,
    ts: row.ts,
    level: row.level as LogRecord['level'],
    message,
  };
}

export function toHook(row: HookRow): HookRecord {
  return {
    runId: row.run_id,
    key: row.key,
    event: row.event as HookRecord['event'],
    task: row.task,
    handler: row.handler,
    state: row.state as HookState,
    error: parseJsonColumn<ErrorInfo>(row.error),
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  };
}

export function toFire(row: FireRow): FireRecord {
  return {
    pipeline: row.pipeline,
    scheduledFor: row.scheduled_for,
    outcome: row.outcome as FireOutcome,
    reason: row.reason,
    runId: row.run_id,
    recordedAt: row.recorded_at,
  };
}

export function toRunRequest(row: RunRequestRow): RunRequestRecord {
  return {
    id: row.id,
    pipeline: row.pipeline,
    params: parseParams(row.params),
    state: row.state as RunRequestState,
    requestedAt: row.requested_at,
    claimedBy: row.claimed_by,
    claimedAt: row.claimed_at,
    runId: row.run_id,
    error: parseJsonColumn<ErrorInfo>(row.error),
    completedAt: row.completed_at,
  };
}

/** A run as createRun returns it: params and plan already copied or parsed by the adapter. */
export function newRunRecord(run: NewRun, params: JsonObject, plan: Plan, planHash: string): RunRecord {
  return {
    id: run.id,
    pipeline: run.pipeline,
    state: run.state,
    params,
    plan,
    planHash,
    trigger: run.trigger,
    scheduledFor: run.scheduledFor,
    attempt: 1,
    owner: run.owner,
    heartbeatAt: null,
    createdAt: run.createdAt,
    startedAt: null,
    finishedAt: null,
    nextAttemptAt: null,
    error: null,
    cancelRequested: false,
  };
}

/** The task run createRun makes for each task of the plan. */
export function pendingTaskRun(runId: string, task: string): TaskRunRecord {
  return {
    runId,
    task,
    state: 'pending',
    attempts: 0,
    output: null,
    error: null,
    reason: null,
    startedAt: null,
    finishedAt: null,
    nextAttemptAt: null,
  };
}

/** A run request as requestRun returns it: params already copied or parsed by the adapter. */
export function pendingRunRequest(request: NewRunRequest, params: JsonObject): RunRequestRecord {
  return {
    id: request.id,
    pipeline: request.pipeline,
    params,
    state: 'pending',
    requestedAt: request.requestedAt,
    claimedBy: null,
    claimedAt: null,
    runId: null,
    error: null,
    completedAt: null,
  };
}

/** How completeRunRequest closes a request: done only with a run and no error. */
export function completedRequestState(runId: string | null, error: ErrorInfo | null): RunRequestState {
  return error === null && runId !== null ? 'done' : 'failed';
}

/** Plain code-unit order: ISO times of one form and run ids sort correctly as text. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The order run requests are claimed in: oldest first, then by id. */
export function compareRunRequests(a: RunRequestRecord, b: RunRequestRecord): number {
  return compareText(a.requestedAt, b.requestedAt) || compareText(a.id, b.id);
}
