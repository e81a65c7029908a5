import type { AttemptRecord, LogRecord, RunRecord, TaskRunRecord } from './run-store.js';

/**
 * The public JSON shape of runs, task runs, attempts and logs: the same field names in every
 * `--format json` output and in the HTTP API (snake_case, times as ISO strings).
 */
export function runToJson(run: RunRecord, now = Date.now()) {
  return {
    id: run.id,
    pipeline: run.pipeline,
    state: run.state,
    trigger: run.trigger,
    scheduled_for: run.scheduledFor,
    attempt: run.attempt,
    params: run.params,
    plan_hash: run.planHash,
    created_at: run.createdAt,
    started_at: run.startedAt,
    finished_at: run.finishedAt,
    duration_ms: run.startedAt
      ? (run.finishedAt ? Date.parse(run.finishedAt) : now) - Date.parse(run.startedAt)
      : null,
    error: run.error,
  };
}

export function taskRunToJson(task: TaskRunRecord, attempts: readonly AttemptRecord[] = []) {
  return {
    task: task.task,
    state: task.state,
    attempts: task.attempts,
    started_at: task.startedAt,
    finished_at: task.finishedAt,
    duration_ms:
      task.startedAt && task.finishedAt ? Date.parse(task.finishedAt) - Date.parse(task.startedAt) : null,
    next_attempt_at: task.nextAttemptAt,
    reason: task.reason,
    error: task.error,
    output: task.output,
    attempt_history: attempts.map(attemptToJson),
  };
}

export function attemptToJson(attempt: AttemptRecord) {
  return {
    attempt: attempt.attempt,
    state: attempt.state,
    delay_ms: attempt.delayMs,
    started_at: attempt.startedAt,
    finished_at: attempt.finishedAt,
    error: attempt.error,
    worker: attempt.worker,
  };
}

export function logToJson(line: LogRecord) {
  return {
    seq: line.seq,
    task: line.task,
    attempt: line.attempt,
    ts: line.ts,
    level: line.level,
    message: line.message,
  };
}
