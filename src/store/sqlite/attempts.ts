import { ATTEMPT_PATCH_FIELDS } from '../patches.js';
import { type AttemptRow, toAttempt } from '../records.js';
import type { AttemptCondition, AttemptPatch, AttemptRecord } from '../run-store.js';
import { attemptExistsError } from '../store-errors.js';
import { asJson, placeholders, setClause, type SqliteConnection } from './connection.js';

export function insertAttempt(conn: SqliteConnection, attempt: AttemptRecord): Promise<void> {
  const values = [
    attempt.runId,
    attempt.task,
    attempt.attempt,
    attempt.state,
    attempt.delayMs,
    attempt.startedAt,
    attempt.finishedAt,
    asJson(attempt.error),
    attempt.worker,
    attempt.pid,
  ];
  return conn.write(() => {
    const result = conn
      .statement(
        `INSERT INTO attempts (run_id, task, attempt, state, delay_ms, started_at, finished_at, error, worker, pid)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      )
      .run(...values);
    if (result.changes === 0) throw attemptExistsError(attempt.runId, attempt.task, attempt.attempt);
  });
}

export function updateAttempt(
  conn: SqliteConnection,
  runId: string,
  task: string,
  attempt: number,
  patch: AttemptPatch,
  condition: AttemptCondition = {},
): Promise<boolean> {
  const set = setClause(ATTEMPT_PATCH_FIELDS, patch);
  const where = ['run_id = ?', 'task = ?', 'attempt = ?'];
  const values: (string | number | null)[] = [...set.values, runId, task, attempt];
  if (condition.states) {
    if (condition.states.length === 0) return conn.write(() => false);
    where.push(`state IN (${placeholders(condition.states.length)})`);
    values.push(...condition.states);
  }
  const sql = `UPDATE attempts SET ${set.sql} WHERE ${where.join(' AND ')}`;
  return conn.write(() => conn.statement(sql).run(...values).changes > 0);
}

export function getAttempts(conn: SqliteConnection, runId: string, task?: string): Promise<AttemptRecord[]> {
  return conn.read(() => {
    // "By task" is plan order (the task run's ordinal): the one order every backend agrees on.
    const sql = `SELECT a.* FROM attempts a JOIN task_runs t ON t.run_id = a.run_id AND t.task = a.task
      WHERE a.run_id = ? ${task === undefined ? '' : 'AND a.task = ?'} ORDER BY t.ordinal, a.attempt`;
    const rows = (
      task === undefined ? conn.statement(sql).all(runId) : conn.statement(sql).all(runId, task)
    ) as AttemptRow[];
    return rows.map(toAttempt);
  });
}
