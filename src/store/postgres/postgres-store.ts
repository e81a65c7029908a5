import type pg from 'pg';
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
import { lastFire, listFires, recordFire } from './fires.js';
import { addHooks, getHooks, updateHook } from './hooks.js';
import { appendLogs, getLogs } from './logs.js';
import { checkPostgresSchema, migratePostgres } from './migrate.js';
import { createStorePool } from './pool.js';
import { claimRunRequests, completeRunRequest, getRunRequest, requestRun } from './run-requests.js';
import { prune } from './prune.js';
import { createRun, getRun, getTaskRuns, listRuns, updateRun, updateTaskRun } from './runs.js';
import { StoreConnection, storeError } from './store-connection.js';
import { redactUrl } from './url.js';

/**
 * The distributed RunStore: PostgreSQL through a `pg` pool, with group commit (write-batch.ts) so
 * that the many small writes of a run cost few transactions, and fenced updates that are single
 * statements with their condition in the WHERE, so they hold across processes.
 */

export interface PostgresStoreOptions {
  /** Keep weft's tables in this schema (created when missing) instead of the search_path's first. */
  schema?: string;
  /** Connections at most. Default 4. */
  poolSize?: number;
  /** Apply pending migrations when opening (default true); when false, the schema must be current. */
  migrate?: boolean;
}

/**
 * Opens (and by default migrates) a PostgreSQL store. Rejects with STORE_FAILED when the database
 * cannot be reached or was written by a newer weft.
 */
export async function createPostgresStore(
  url: string,
  options: PostgresStoreOptions = {},
): Promise<RunStore> {
  const location = redactUrl(url);
  let pool: pg.Pool;
  try {
    pool = createStorePool(url, {
      ...(options.schema !== undefined ? { schema: options.schema } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
  } catch (error) {
    throw storeError(location, 'cannot open', error);
  }
  try {
    if (options.migrate ?? true) {
      await migratePostgres(pool, {
        location,
        ...(options.schema !== undefined ? { schema: options.schema } : {}),
      });
    } else {
      await checkPostgresSchema(pool, location);
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    if (error instanceof WeftError) throw error;
    throw storeError(location, 'cannot open', error);
  }
  return new PostgresRunStore(new StoreConnection(pool, location));
}

/** The port's methods, each handed to the module of its table (store-connection.ts holds the plumbing). */
class PostgresRunStore implements RunStore {
  readonly kind = 'postgres';
  readonly location: string;
  readonly #conn: StoreConnection;

  constructor(conn: StoreConnection) {
    this.#conn = conn;
    this.location = conn.location;
  }

  /** Transactions committed by this store so far (one per batch of writes). */
  get commits(): number {
    return this.#conn.commits;
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
