import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database, { type Database as Db } from 'better-sqlite3';
import { WeftError, type ErrorInfo } from '../../errors.js';
import type {
  AttemptCondition,
  AttemptPatch,
  AttemptRecord,
  FireQuery,
  FireRecord,
  HookPatch,
  HookRecord,
  HookState,
  LogQuery,
  LogRecord,
  NewRun,
  NewRunRequest,
  PruneQuery,
  PruneReport,
  RunCondition,
  RunPatch,
  RunQuery,
  RunRecord,
  RunRequestRecord,
  RunStore,
  TaskRunCondition,
  TaskRunPatch,
  TaskRunRecord,
} from '../run-store.js';
import { getAttempts, insertAttempt, updateAttempt } from './attempts.js';
import { SqliteConnection, storeError } from './connection.js';
import { lastFire, listFires, recordFire } from './fires.js';
import { addHooks, getHooks, updateHook } from './hooks.js';
import { appendLogs, getLogs } from './logs.js';
import { checkSchema, migrate } from './migrate.js';
import { claimRunRequests, completeRunRequest, getRunRequest, requestRun } from './run-requests.js';
import { prune } from './prune.js';
import { createRun, getRun, getTaskRuns, listRuns, updateRun, updateTaskRun } from './runs.js';

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
  return new SqliteRunStore(new SqliteConnection(db, path, readonly));
}

/** The port's methods, each handed to the module of its table (connection.ts holds the plumbing). */
class SqliteRunStore implements RunStore {
  readonly kind = 'sqlite';
  readonly location: string;
  readonly #conn: SqliteConnection;

  constructor(conn: SqliteConnection) {
    this.#conn = conn;
    this.location = conn.location;
  }

  createRun(run: NewRun): Promise<RunRecord> {
    return createRun(this.#conn, run);
  }

  getRun(id: string): Promise<RunRecord | null> {
    return getRun(this.#conn, id);
  }

  listRuns(query?: RunQuery): Promise<RunRecord[]> {
    return listRuns(this.#conn, query);
  }

  updateRun(id: string, patch: RunPatch, condition?: RunCondition): Promise<boolean> {
    return updateRun(this.#conn, id, patch, condition);
  }

  getTaskRuns(runId: string): Promise<TaskRunRecord[]> {
    return getTaskRuns(this.#conn, runId);
  }

  updateTaskRun(
    runId: string,
    task: string,
    patch: TaskRunPatch,
    condition?: TaskRunCondition,
  ): Promise<boolean> {
    return updateTaskRun(this.#conn, runId, task, patch, condition);
  }

  insertAttempt(attempt: AttemptRecord): Promise<void> {
    return insertAttempt(this.#conn, attempt);
  }

  updateAttempt(
    runId: string,
    task: string,
    attempt: number,
    patch: AttemptPatch,
    condition?: AttemptCondition,
  ): Promise<boolean> {
    return updateAttempt(this.#conn, runId, task, attempt, patch, condition);
  }

  getAttempts(runId: string, task?: string): Promise<AttemptRecord[]> {
    return getAttempts(this.#conn, runId, task);
  }

  appendLogs(lines: readonly Omit<LogRecord, 'seq'>[]): Promise<void> {
    return appendLogs(this.#conn, lines);
  }

  getLogs(runId: string, query?: LogQuery): Promise<LogRecord[]> {
    return getLogs(this.#conn, runId, query);
  }

  addHooks(hooks: readonly HookRecord[]): Promise<void> {
    return addHooks(this.#conn, hooks);
  }

  updateHook(runId: string, key: string, patch: HookPatch): Promise<boolean> {
    return updateHook(this.#conn, runId, key, patch);
  }

  getHooks(runId: string, states?: readonly HookState[]): Promise<HookRecord[]> {
    return getHooks(this.#conn, runId, states);
  }

  recordFire(fire: FireRecord): Promise<boolean> {
    return recordFire(this.#conn, fire);
  }

  listFires(query?: FireQuery): Promise<FireRecord[]> {
    return listFires(this.#conn, query);
  }

  lastFire(pipeline: string): Promise<FireRecord | null> {
    return lastFire(this.#conn, pipeline);
  }

  requestRun(request: NewRunRequest): Promise<RunRequestRecord> {
    return requestRun(this.#conn, request);
  }

  claimRunRequests(
    limit: number,
    owner: string,
    now: string,
    staleBefore?: string,
  ): Promise<RunRequestRecord[]> {
    return claimRunRequests(this.#conn, limit, owner, now, staleBefore);
  }

  completeRunRequest(
    id: string,
    runId: string | null,
    error: ErrorInfo | null,
    completedAt: string,
  ): Promise<boolean> {
    return completeRunRequest(this.#conn, id, runId, error, completedAt);
  }

  getRunRequest(id: string): Promise<RunRequestRecord | null> {
    return getRunRequest(this.#conn, id);
  }

  prune(query: PruneQuery): Promise<PruneReport> {
    return prune(this.#conn, query);
  }

  flush(): Promise<void> {
    return this.#conn.flush();
  }

  close(): Promise<void> {
    return this.#conn.close();
  }
}
