import { ATTEMPT_PATCH_FIELDS } from '../patches.js';
import { type AttemptRow, toAttempt } from '../records.js';
import type { AttemptCondition, AttemptPatch, AttemptRecord } from '../run-store.js';
import { type ConditionKind, encodeValue, insertAttemptsPart, type SqlValue } from './statements.js';
import type { StoreConnection } from './store-connection.js';

export function insertAttempt(conn: StoreConnection, attempt: AttemptRecord): Promise<void> {
  const payload: SqlValue[] = [
    attempt.runId,
    attempt.task,
    attempt.attempt,
    attempt.state,
    attempt.delayMs,
    attempt.startedAt,
    attempt.finishedAt,
    encodeValue('json', attempt.error),
    encodeValue('text', attempt.worker),
    attempt.pid,
  ];
  const key = ['attempts', attempt.runId, attempt.task, String(attempt.attempt)].join('\u0000');
  return conn.write({ group: 'insertAttempt', run: { part: insertAttemptsPart }, payload, keys: [key] });
}

export function updateAttempt(
  conn: StoreConnection,
  runId: string,
  task: string,
  attempt: number,
  patch: AttemptPatch,
  condition: AttemptCondition = {},
): Promise<boolean> {
  const conditions: [ConditionKind, SqlValue][] = [];
  if (condition.states) conditions.push(['states', condition.states.join(',')]);
  return conn.update(
    'attempts',
    [
      [{ column: 'run_id', type: 'text' }, runId],
      [{ column: 'task', type: 'text' }, task],
      [{ column: 'attempt', type: 'integer' }, attempt],
    ],
    ATTEMPT_PATCH_FIELDS,
    patch,
    conditions,
  );
}

export function getAttempts(conn: StoreConnection, runId: string, task?: string): Promise<AttemptRecord[]> {
  return conn.read(async () => {
    // "By task" is plan order (the task run's ordinal): the one order every backend agrees on.
    const rows = await conn.rows<AttemptRow>(
      `SELECT a.run_id, a.task, a.attempt, a.state, a.delay_ms, a.started_at, a.finished_at, a.error, a.worker, a.pid
       FROM attempts a JOIN task_runs t ON t.run_id = a.run_id AND t.task = a.task
       WHERE a.run_id = $1 ${task === undefined ? '' : 'AND a.task = $2'} ORDER BY t.ordinal, a.attempt`,
      task === undefined ? [runId] : [runId, task],
    );
    return rows.map(toAttempt);
  });
}
