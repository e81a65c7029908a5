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
import { runExistsError, scheduleTakenError } from '../store-errors.js';
import { placeholders, type RunRow, setClause, type SqliteConnection } from './connection.js';

export function createRun(conn: SqliteConnection, run: NewRun): Promise<RunRecord> {
  const { text: planText, hash: planHash } = conn.plans.textOf(run.plan);
  // Copied now: the caller may change its objects before the batch runs.
  const paramsText = JSON.stringify(run.params);
  const order = [...run.plan.order];
  const insert = conn.db.transaction(() => {
    const sameId = conn.statement('SELECT 1 FROM runs WHERE id = ?').get(run.id);
    if (sameId) throw runExistsError(run.id);
    if (run.scheduledFor !== null) {
      const other = conn
        .statement(
          'SELECT id FROM runs WHERE pipeline = ? AND scheduled_for = ? AND scheduled_for IS NOT NULL',
        )
        .get(run.pipeline, run.scheduledFor) as { id: string } | undefined;
      if (other) throw scheduleTakenError(run.pipeline, run.scheduledFor, other.id);
    }
    if (!conn.statement('SELECT 1 FROM plans WHERE hash = ?').get(planHash)) {
      conn.statement('INSERT INTO plans (hash, plan) VALUES (?, ?)').run(planHash, planText);
    }
    conn
      .statement(
        `INSERT INTO runs (id, pipeline, state, params, plan_hash, trigger, scheduled_for, owner, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        run.id,
        run.pipeline,
        run.state,
        paramsText,
        planHash,
        run.trigger,
        run.scheduledFor,
        run.owner,
        run.createdAt,
      );
    const insertTask = conn.statement(
      "INSERT INTO task_runs (run_id, task, ordinal, state) VALUES (?, ?, ?, 'pending')",
    );
    order.forEach((task, ordinal) => insertTask.run(run.id, task, ordinal));
    // Built after the duplicate checks: parsing a large plan is not worth doing for a refused run.
    return newRunRecord(run, parseParams(paramsText), conn.plans.remember(planHash, planText), planHash);
  });
  // The crash window the reliability suite kills in: the run inserted, its COMMIT not yet sent.
  return conn.write(() => insert(), 'before-run-insert-commit');
}

export function getRun(conn: SqliteConnection, id: string): Promise<RunRecord | null> {
  return conn.read(() => {
    const row = conn.statement('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
    return row ? conn.toRun(row) : null;
  });
}

export function listRuns(conn: SqliteConnection, query: RunQuery = {}): Promise<RunRecord[]> {
  return conn.read(() => {
    const where: string[] = [];
    const values: (string | number)[] = [];
    if (query.pipeline !== undefined) {
      where.push('pipeline = ?');
      values.push(query.pipeline);
    }
    if (query.states) {
      if (query.states.length === 0) return [];
      where.push(`state IN (${placeholders(query.states.length)})`);
      values.push(...query.states);
    }
    const sql = `SELECT * FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    values.push(query.limit ?? DEFAULT_LIMIT, query.offset ?? 0);
    const rows = conn.statement(sql).all(...values) as RunRow[];
    return rows.map((row) => conn.toRun(row));
  });
}

export function updateRun(
  conn: SqliteConnection,
  id: string,
  patch: RunPatch,
  condition: RunCondition = {},
): Promise<boolean> {
  const set = setClause(RUN_PATCH_FIELDS, patch);
  const where = ['id = ?'];
  const values: (string | number | null)[] = [...set.values, id];
  if (condition.states) {
    if (condition.states.length === 0) return conn.write(() => false);
    where.push(`state IN (${placeholders(condition.states.length)})`);
    values.push(...condition.states);
  }
  if (condition.owner !== undefined) {
    where.push('owner IS ?');
    values.push(condition.owner);
  }
  const sql = `UPDATE runs SET ${set.sql} WHERE ${where.join(' AND ')}`;
  return conn.write(() => conn.statement(sql).run(...values).changes > 0);
}

// Task runs: created with their run (createRun), one per task in plan order.

export function getTaskRuns(conn: SqliteConnection, runId: string): Promise<TaskRunRecord[]> {
  return conn.read(() => {
    const rows = conn
      .statement(
        `SELECT run_id, task, state, attempts, output, error, reason, started_at, finished_at, next_attempt_at
       FROM task_runs WHERE run_id = ? ORDER BY ordinal`,
      )
      .all(runId) as TaskRunRow[];
    return rows.map(toTaskRun);
  });
}

export function updateTaskRun(
  conn: SqliteConnection,
  runId: string,
  task: string,
  patch: TaskRunPatch,
  condition: TaskRunCondition = {},
): Promise<boolean> {
  const set = setClause(TASK_RUN_PATCH_FIELDS, patch);
  const where = ['run_id = ?', 'task = ?'];
  const values: (string | number | null)[] = [...set.values, runId, task];
  if (condition.states) {
    if (condition.states.length === 0) return conn.write(() => false);
    where.push(`state IN (${placeholders(condition.states.length)})`);
    values.push(...condition.states);
  }
  if (condition.attempts !== undefined) {
    where.push('attempts = ?');
    values.push(condition.attempts);
  }
  const sql = `UPDATE task_runs SET ${set.sql} WHERE ${where.join(' AND ')}`;
  return conn.write(() => conn.statement(sql).run(...values).changes > 0);
}
