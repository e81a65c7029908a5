import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database, { type Database as Db, type Statement } from 'better-sqlite3';
import type { Plan } from '../../compile/plan.js';
import { WeftError, type ErrorInfo } from '../../errors.js';
import type {
  AttemptCondition,
  FireQuery,
  FireRecord,
  NewRunRequest,
  RunRequestRecord,
  AttemptPatch,
  AttemptRecord,
  HookPatch,
  HookRecord,
  HookState,
  LogQuery,
  LogRecord,
  NewRun,
  RunCondition,
  RunPatch,
  RunQuery,
  RunRecord,
  RunStore,
  TaskRunCondition,
  TaskRunPatch,
  TaskRunRecord,
} from '../run-store.js';
import { parseParams } from '../json-codec.js';
import {
  ATTEMPT_PATCH_FIELDS,
  HOOK_PATCH_FIELDS,
  type PatchField,
  patchEntries,
  RUN_PATCH_FIELDS,
  TASK_RUN_PATCH_FIELDS,
} from '../patches.js';
import { PlanCache } from '../plan-cache.js';
import {
  type AttemptRow,
  compareRunRequests,
  completedRequestState,
  DEFAULT_LIMIT,
  type FireRow,
  type HookRow,
  type LogRowBase,
  newRunRecord,
  pendingRunRequest,
  type RunRequestRow,
  type RunRowBase,
  type TaskRunRow,
  toAttempt,
  toFire,
  toHook,
  toLog,
  toRun,
  toRunRequest,
  toTaskRun,
} from '../records.js';
import {
  attemptExistsError,
  backendError,
  closedError,
  missingPlanError,
  runExistsError,
  runRequestExistsError,
  scheduleTakenError,
} from '../store-errors.js';
import { checkSchema, migrate } from './migrate.js';
import { WriteQueue } from './write-queue.js';

/**
 * The embedded default RunStore: one SQLite file (better-sqlite3, synchronous), with group commit
 * (see write-queue.ts) so that the many small writes of a run cost few transactions.
 *
 * Several weft processes may share one file: WAL lets readers run beside the writer, writes take
 * the lock with BEGIN IMMEDIATE and wait up to `busy_timeout` for it, so they queue rather than fail.
 */

export interface SqliteStoreOptions {
  /** Open an existing store for reading only: no migrations, every write rejects. */
  readonly?: boolean;
  /** How long a write waits for another process's lock before failing. Default 5 s. */
  busyTimeoutMs?: number;
}

type SqlValues = readonly (string | number | null)[];

const INSERT_LOG = 'INSERT INTO logs (run_id, task, attempt, ts, level, message) VALUES (?, ?, ?, ?, ?, ?)';
const INSERT_HOOK = `INSERT INTO hooks (run_id, key, event, task, handler, state, error, created_at, finished_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO NOTHING`;
const PLAN_CACHE_SIZE = 16;

/** SQLite has no boolean: the flag is stored as 0 or 1. */
type RunRow = RunRowBase & { cancel_requested: number };
type LogRow = LogRowBase & { message: string };

function asJson(value: unknown): string | null {
  return value === null ? null : JSON.stringify(value);
}

/** How a patch value is stored: JSON as text, flags as 0/1, the rest as it is. */
function encodeField(field: PatchField, value: unknown): string | number | null {
  if (field.type === 'json') return asJson(value);
  if (field.type === 'boolean') return value ? 1 : 0;
  return value as string | number | null;
}

/** `SET a = ?, b = ?` and its values, from the keys present (and not undefined) in a patch. */
function setClause(
  fields: Readonly<Record<string, PatchField>>,
  patch: object,
): { sql: string; values: (string | number | null)[] } {
  const entries = patchEntries(fields, patch);
  const parts = entries.map(({ field }) => `${field.column} = ?`);
  const values = entries.map(({ field, value }) => encodeField(field, value));
  // An empty patch still checks the condition: "does it hold?" is a fair question to ask.
  return { sql: parts.length > 0 ? parts.join(', ') : 'rowid = rowid', values };
}

function placeholders(count: number): string {
  return Array.from({ length: count }, () => '?').join(', ');
}

function isSqliteError(error: unknown): error is Error & { code: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

export function createSqliteStore(path: string, options: SqliteStoreOptions = {}): RunStore {
  const readonly = options.readonly ?? false;
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  let db: Db;
  try {
    if (!readonly) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: busyTimeoutMs });
  } catch (error) {
    throw storeError(path, 'cannot open', error);
  }
  try {
    if (!readonly) {
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a commit survives the process being killed (what we promise); only a
      // power loss or OS crash may lose the last few commits, never corrupt the file. FULL would
      // fsync on every commit and cost most of our write throughput.
      db.pragma('synchronous = NORMAL');
    }
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.pragma('foreign_keys = ON');
    if (readonly) checkSchema(db, path);
    else migrate(db, path);
  } catch (error) {
    db.close();
    if (error instanceof WeftError) throw error;
    throw storeError(path, 'cannot open', error);
  }
  return new SqliteRunStore(db, path, readonly);
}

function storeError(location: string, doing: string, cause: unknown): WeftError {
  const busy = isSqliteError(cause) && cause.code.startsWith('SQLITE_BUSY');
  return backendError(
    'SQLite',
    location,
    doing,
    cause,
    busy ? 'another process held the store locked for too long; try again' : undefined,
  );
}

class SqliteRunStore implements RunStore {
  readonly kind = 'sqlite';
  readonly location: string;
  readonly #db: Db;
  readonly #readonly: boolean;
  readonly #queue: WriteQueue;
  readonly #statements = new Map<string, Statement>();
  readonly #plans = new PlanCache(PLAN_CACHE_SIZE);
  #closed = false;

  constructor(db: Db, location: string, readonly: boolean) {
    this.#db = db;
    this.location = location;
    this.#readonly = readonly;
    this.#queue = new WriteQueue(db, {
      mapWriteError: (error) => this.#writeError(error),
      mapBatchError: (error) => storeError(location, 'cannot commit to', error),
    });
  }

  // ---- plumbing -------------------------------------------------------------------------------

  #statement(sql: string): Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #write<T>(apply: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError(this.location));
    if (this.#readonly) {
      return Promise.reject(
        new WeftError('STORE_FAILED', `the store ${this.location} is open read-only`, { retryable: false }),
      );
    }
    return this.#queue.enqueue(apply);
  }

  /** Reads see every write issued before them: pending writes are committed first. */
  #read<T>(query: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError(this.location));
    try {
      // A failed batch has rejected its own writes; the read still answers from what is committed.
      this.#queue.drain();
      return Promise.resolve(query());
    } catch (error) {
      return Promise.reject(
        error instanceof WeftError ? error : storeError(this.location, 'cannot read', error),
      );
    }
  }

  #writeError(error: unknown): Error {
    if (error instanceof WeftError) return error;
    if (isSqliteError(error) && error.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
      return new WeftError('STORE_FAILED', `${this.location}: refers to a run or task that does not exist`, {
        cause: error,
        retryable: false,
      });
    }
    return storeError(this.location, 'cannot write to', error);
  }

  #insertManyTx: ((sql: string, rows: readonly SqlValues[]) => void) | undefined;

  /** Inserts rows all or none: inside the batch's transaction, better-sqlite3 makes this a savepoint. */
  #insertMany(sql: string, rows: readonly SqlValues[]): void {
    this.#insertManyTx ??= this.#db.transaction((text: string, list: readonly SqlValues[]) => {
      const statement = this.#statement(text);
      for (const row of list) statement.run(...row);
    });
    this.#insertManyTx(sql, rows);
  }

  #plan(hash: string): Plan {
    const cached = this.#plans.get(hash);
    if (cached) return cached;
    const row = this.#statement('SELECT plan FROM plans WHERE hash = ?').get(hash) as
      | { plan: string }
      | undefined;
    if (!row) throw missingPlanError(this.location, hash);
    return this.#plans.remember(hash, row.plan);
  }

  #toRun(row: RunRow): RunRecord {
    return toRun(row, this.#plan(row.plan_hash), row.cancel_requested !== 0);
  }

  // ---- runs -------------------------------------------------------------------------------------

  createRun(run: NewRun): Promise<RunRecord> {
    const { text: planText, hash: planHash } = this.#plans.textOf(run.plan);
    // Copied now: the caller may change its objects before the batch runs.
    const paramsText = JSON.stringify(run.params);
    const order = [...run.plan.order];
    const insert = this.#db.transaction(() => {
      const sameId = this.#statement('SELECT 1 FROM runs WHERE id = ?').get(run.id);
      if (sameId) throw runExistsError(run.id);
      if (run.scheduledFor !== null) {
        const other = this.#statement(
          'SELECT id FROM runs WHERE pipeline = ? AND scheduled_for = ? AND scheduled_for IS NOT NULL',
        ).get(run.pipeline, run.scheduledFor) as { id: string } | undefined;
        if (other) throw scheduleTakenError(run.pipeline, run.scheduledFor, other.id);
      }
      if (!this.#statement('SELECT 1 FROM plans WHERE hash = ?').get(planHash)) {
        this.#statement('INSERT INTO plans (hash, plan) VALUES (?, ?)').run(planHash, planText);
      }
      this.#statement(
        `INSERT INTO runs (id, pipeline, state, params, plan_hash, trigger, scheduled_for, owner, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
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
      const insertTask = this.#statement(
        "INSERT INTO task_runs (run_id, task, ordinal, state) VALUES (?, ?, ?, 'pending')",
      );
      order.forEach((task, ordinal) => insertTask.run(run.id, task, ordinal));
      // Built after the duplicate checks: parsing a large plan is not worth doing for a refused run.
      return newRunRecord(run, parseParams(paramsText), this.#plans.remember(planHash, planText), planHash);
    });
    return this.#write(() => insert());
  }

  getRun(id: string): Promise<RunRecord | null> {
    return this.#read(() => {
      const row = this.#statement('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
      return row ? this.#toRun(row) : null;
    });
  }

  listRuns(query: RunQuery = {}): Promise<RunRecord[]> {
    return this.#read(() => {
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
      const rows = this.#statement(sql).all(...values) as RunRow[];
      return rows.map((row) => this.#toRun(row));
    });
  }

  updateRun(id: string, patch: RunPatch, condition: RunCondition = {}): Promise<boolean> {
    const set = setClause(RUN_PATCH_FIELDS, patch);
    const where = ['id = ?'];
    const values: (string | number | null)[] = [...set.values, id];
    if (condition.states) {
      if (condition.states.length === 0) return this.#write(() => false);
      where.push(`state IN (${placeholders(condition.states.length)})`);
      values.push(...condition.states);
    }
    if (condition.owner !== undefined) {
      where.push('owner IS ?');
      values.push(condition.owner);
    }
    const sql = `UPDATE runs SET ${set.sql} WHERE ${where.join(' AND ')}`;
    return this.#write(() => this.#statement(sql).run(...values).changes > 0);
  }

  // ---- task runs --------------------------------------------------------------------------------

  getTaskRuns(runId: string): Promise<TaskRunRecord[]> {
    return this.#read(() => {
      const rows = this.#statement(
        `SELECT run_id, task, state, attempts, output, error, reason, started_at, finished_at, next_attempt_at
         FROM task_runs WHERE run_id = ? ORDER BY ordinal`,
      ).all(runId) as TaskRunRow[];
      return rows.map(toTaskRun);
    });
  }

  updateTaskRun(
    runId: string,
    task: string,
    patch: TaskRunPatch,
    condition: TaskRunCondition = {},
  ): Promise<boolean> {
    const set = setClause(TASK_RUN_PATCH_FIELDS, patch);
    const where = ['run_id = ?', 'task = ?'];
    const values: (string | number | null)[] = [...set.values, runId, task];
    if (condition.states) {
      if (condition.states.length === 0) return this.#write(() => false);
      where.push(`state IN (${placeholders(condition.states.length)})`);
      values.push(...condition.states);
    }
    if (condition.attempts !== undefined) {
      where.push('attempts = ?');
      values.push(condition.attempts);
    }
    const sql = `UPDATE task_runs SET ${set.sql} WHERE ${where.join(' AND ')}`;
    return this.#write(() => this.#statement(sql).run(...values).changes > 0);
  }

  // ---- attempts ---------------------------------------------------------------------------------

  insertAttempt(attempt: AttemptRecord): Promise<void> {
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
    return this.#write(() => {
      const result = this.#statement(
        `INSERT INTO attempts (run_id, task, attempt, state, delay_ms, started_at, finished_at, error, worker, pid)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ).run(...values);
      if (result.changes === 0) throw attemptExistsError(attempt.runId, attempt.task, attempt.attempt);
    });
  }

  updateAttempt(
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
      if (condition.states.length === 0) return this.#write(() => false);
      where.push(`state IN (${placeholders(condition.states.length)})`);
      values.push(...condition.states);
    }
    const sql = `UPDATE attempts SET ${set.sql} WHERE ${where.join(' AND ')}`;
    return this.#write(() => this.#statement(sql).run(...values).changes > 0);
  }

  getAttempts(runId: string, task?: string): Promise<AttemptRecord[]> {
    return this.#read(() => {
      // "By task" is plan order (the task run's ordinal): the one order every backend agrees on.
      const sql = `SELECT a.* FROM attempts a JOIN task_runs t ON t.run_id = a.run_id AND t.task = a.task
        WHERE a.run_id = ? ${task === undefined ? '' : 'AND a.task = ?'} ORDER BY t.ordinal, a.attempt`;
      const rows = (
        task === undefined ? this.#statement(sql).all(runId) : this.#statement(sql).all(runId, task)
      ) as AttemptRow[];
      return rows.map(toAttempt);
    });
  }

  // ---- logs -------------------------------------------------------------------------------------

  appendLogs(lines: readonly Omit<LogRecord, 'seq'>[]): Promise<void> {
    if (lines.length === 0) return this.#write(() => undefined);
    const rows: SqlValues[] = lines.map((l) => [l.runId, l.task, l.attempt, l.ts, l.level, l.message]);
    return this.#write(() => {
      // One line needs no savepoint: a single statement is atomic on its own.
      if (rows.length === 1) this.#statement(INSERT_LOG).run(...rows[0]!);
      else this.#insertMany(INSERT_LOG, rows);
    });
  }

  getLogs(runId: string, query: LogQuery = {}): Promise<LogRecord[]> {
    return this.#read(() => {
      const where = ['run_id = ?', 'seq > ?'];
      const values: (string | number)[] = [runId, query.afterSeq ?? 0];
      if (query.task !== undefined) {
        where.push('task = ?');
        values.push(query.task);
      }
      values.push(query.limit ?? -1);
      const rows = this.#statement(
        `SELECT * FROM logs WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`,
      ).all(...values) as LogRow[];
      return rows.map((row) => toLog(row, row.message));
    });
  }

  // ---- hooks ------------------------------------------------------------------------------------

  addHooks(hooks: readonly HookRecord[]): Promise<void> {
    const rows: SqlValues[] = hooks.map((h) => [
      h.runId,
      h.key,
      h.event,
      h.task,
      h.handler,
      h.state,
      asJson(h.error),
      h.createdAt,
      h.finishedAt,
    ]);
    return this.#write(() => this.#insertMany(INSERT_HOOK, rows));
  }

  updateHook(runId: string, key: string, patch: HookPatch): Promise<boolean> {
    const set = setClause(HOOK_PATCH_FIELDS, patch);
    const sql = `UPDATE hooks SET ${set.sql} WHERE run_id = ? AND key = ?`;
    const values = [...set.values, runId, key];
    return this.#write(() => this.#statement(sql).run(...values).changes > 0);
  }

  getHooks(runId: string, states?: readonly HookState[]): Promise<HookRecord[]> {
    return this.#read(() => {
      if (states?.length === 0) return [];
      const sql = `SELECT * FROM hooks WHERE run_id = ? ${
        states ? `AND state IN (${placeholders(states.length)})` : ''
      } ORDER BY created_at, key`;
      const rows = this.#statement(sql).all(runId, ...(states ?? [])) as HookRow[];
      return rows.map(toHook);
    });
  }

  // ---- fires and run requests ------------------------------------------------------------------

  recordFire(fire: FireRecord): Promise<boolean> {
    const values = [fire.pipeline, fire.scheduledFor, fire.outcome, fire.reason, fire.runId, fire.recordedAt];
    return this.#write(
      () =>
        this.#statement(
          `INSERT INTO fires (pipeline, scheduled_for, outcome, reason, run_id, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, scheduled_for) DO NOTHING`,
        ).run(...values).changes > 0,
    );
  }

  listFires(query: FireQuery = {}): Promise<FireRecord[]> {
    return this.#read(() => {
      const limit = query.limit ?? DEFAULT_LIMIT;
      const rows = (
        query.pipeline === undefined
          ? this.#statement('SELECT * FROM fires ORDER BY scheduled_for DESC, pipeline LIMIT ?').all(limit)
          : this.#statement('SELECT * FROM fires WHERE pipeline = ? ORDER BY scheduled_for DESC LIMIT ?').all(
              query.pipeline,
              limit,
            )
      ) as FireRow[];
      return rows.map(toFire);
    });
  }

  lastFire(pipeline: string): Promise<FireRecord | null> {
    return this.#read(() => {
      const row = this.#statement(
        'SELECT * FROM fires WHERE pipeline = ? ORDER BY scheduled_for DESC LIMIT 1',
      ).get(pipeline) as FireRow | undefined;
      return row ? toFire(row) : null;
    });
  }

  requestRun(request: NewRunRequest): Promise<RunRequestRecord> {
    const paramsText = JSON.stringify(request.params);
    return this.#write(() => {
      const result = this.#statement(
        `INSERT INTO run_requests (id, pipeline, params, state, requested_at)
         VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (id) DO NOTHING`,
      ).run(request.id, request.pipeline, paramsText, request.requestedAt);
      if (result.changes === 0) throw runRequestExistsError(request.id);
      return pendingRunRequest(request, parseParams(paramsText));
    });
  }

  claimRunRequests(limit: number, owner: string, now: string): Promise<RunRequestRecord[]> {
    // One UPDATE inside the batch's BEGIN IMMEDIATE: another process claiming at the same time
    // waits for the lock, then finds these no longer pending.
    return this.#write(() => {
      const rows = this.#statement(
        `UPDATE run_requests SET state = 'claimed', claimed_by = ?, claimed_at = ?
         WHERE id IN (SELECT id FROM run_requests WHERE state = 'pending' ORDER BY requested_at, id LIMIT ?)
         RETURNING *`,
      ).all(owner, now, Math.max(0, Math.floor(limit))) as RunRequestRow[];
      // RETURNING has no order of its own.
      return rows.map(toRunRequest).sort(compareRunRequests);
    });
  }

  completeRunRequest(
    id: string,
    runId: string | null,
    error: ErrorInfo | null,
    completedAt: string,
  ): Promise<boolean> {
    const values = [completedRequestState(runId, error), runId, asJson(error), completedAt, id];
    return this.#write(
      () =>
        this.#statement(
          `UPDATE run_requests SET state = ?, run_id = ?, error = ?, completed_at = ?
           WHERE id = ? AND state = 'claimed'`,
        ).run(...values).changes > 0,
    );
  }

  getRunRequest(id: string): Promise<RunRequestRecord | null> {
    return this.#read(() => {
      const row = this.#statement('SELECT * FROM run_requests WHERE id = ?').get(id) as
        | RunRequestRow
        | undefined;
      return row ? toRunRequest(row) : null;
    });
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this.location));
    const error = this.#queue.drain();
    return error ? Promise.reject(error) : Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    // Writes accepted before close are committed, not dropped.
    const error = this.#queue.drain();
    this.#closed = true;
    this.#statements.clear();
    try {
      this.#db.close();
    } catch (closeError) {
      return Promise.reject(storeError(this.location, 'cannot close', closeError));
    }
    return error ? Promise.reject(error) : Promise.resolve();
  }
}
