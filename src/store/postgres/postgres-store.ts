import type pg from 'pg';
import type { Plan } from '../../compile/plan.js';
import { WeftError, type ErrorInfo } from '../../errors.js';
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
import { backendError, closedError, missingPlanError } from '../store-errors.js';
import { redactUrl } from './url.js';
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
import { checkPostgresSchema, migratePostgres } from './migrate.js';
import { createStorePool } from './pool.js';
import {
  claimRunRequestsExecutor,
  type Column,
  completeRunRequestExecutor,
  type ConditionKind,
  createRunExecutor,
  type CreateRunPayload,
  encodeValue,
  insertAttemptsPart,
  insertHooksPart,
  insertLogsPart,
  recordFireExecutor,
  requestRunExecutor,
  RUN_REQUEST_FIELDS,
  type SqlValue,
  updatePart,
} from './statements.js';
import { type BatchWrite, type PartBuilder, PgWriteQueue, prepared, sqlState } from './write-batch.js';

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

const PLAN_CACHE_SIZE = 16;
/** Advisory lock class of log appends (the migration lock is 0x77656674). */
const LOG_LOCK = 0x77656675;

type RunRow = RunRowBase & { cancel_requested: boolean };
/** Log messages are bytea: text cannot hold every string a handler may print. */
type LogRow = LogRowBase & { message: Buffer };

/** Fires and run requests are rare: every write of one table waits for the previous (one key). */
const FIRES_KEY = 'fires';
const RUN_REQUESTS_KEY = 'run_requests';

const FIRE_FIELDS = 'pipeline, scheduled_for, outcome, reason, run_id, recorded_at';

const RUN_FIELDS = `id, pipeline, state, params, plan_hash, trigger, scheduled_for, attempt, owner, heartbeat_at,
  created_at, started_at, finished_at, next_attempt_at, error, cancel_requested`;

function storeError(location: string, doing: string, cause: unknown): WeftError {
  const code = sqlState(cause);
  const unreachable = code === undefined || code.startsWith('08') || code === '57P03';
  return backendError(
    'PostgreSQL',
    location,
    doing,
    cause,
    unreachable && !(cause instanceof WeftError)
      ? 'check that PostgreSQL is running and that the URL (host, port, database, user) is right'
      : undefined,
  );
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
  return new PostgresRunStore(pool, location);
}

class PostgresRunStore implements RunStore {
  readonly kind = 'postgres';
  readonly location: string;
  readonly #pool: pg.Pool;
  readonly #queue: PgWriteQueue;
  readonly #plans = new PlanCache(PLAN_CACHE_SIZE);
  /** Hashes of plans known to be committed: creating another run of one does not send it again. */
  readonly #storedPlans = new Set<string>();
  readonly #updates = new Map<string, PartBuilder>();
  #closed = false;

  constructor(pool: pg.Pool, location: string) {
    this.#pool = pool;
    this.location = location;
    this.#queue = new PgWriteQueue(pool, {
      mapBatchError: (error) =>
        error instanceof WeftError ? error : storeError(location, 'cannot commit to', error),
      logLockSql: `SELECT pg_advisory_xact_lock(${LOG_LOCK}, hashtext(current_setting('search_path')))`,
    });
  }

  /** Transactions committed by this store so far (one per batch of writes). */
  get commits(): number {
    return this.#queue.commits;
  }

  // ---- plumbing -------------------------------------------------------------------------------

  #write<T>(write: BatchWrite): Promise<T> {
    if (this.#closed) return Promise.reject(closedError(this.location));
    return this.#queue.enqueue(write) as Promise<T>;
  }

  /** Reads see every write issued before them: they wait for those writes to commit first. */
  async #read<T>(query: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError(this.location);
    // A failed batch has rejected its own writes; the read still answers from what is committed.
    await this.#queue.settled();
    try {
      return await query();
    } catch (error) {
      throw error instanceof WeftError ? error : storeError(this.location, 'cannot read from', error);
    }
  }

  async #rows<R extends pg.QueryResultRow>(text: string, values: readonly unknown[]): Promise<R[]> {
    return (await this.#pool.query<R>(prepared(text, values))).rows;
  }

  /** A fenced update: merged with the other updates of the same shape in its batch. */
  #update(
    table: string,
    keys: readonly [Column, SqlValue][],
    fields: Readonly<Record<string, PatchField>>,
    patch: object,
    conditions: readonly [ConditionKind, SqlValue][],
  ): Promise<boolean> {
    const set: Column[] = [];
    const values: SqlValue[] = keys.map(([, value]) => value);
    // In the fields' order, not the patch's: patches with the same keys share one statement.
    for (const { field, value } of patchEntries(fields, patch)) {
      set.push(field);
      values.push(encodeValue(field.type, value));
    }
    for (const [, value] of conditions) values.push(value);
    const shape = {
      table,
      keys: keys.map(([column]) => column),
      set,
      conditions: conditions.map(([kind]) => kind),
    };
    const group = `update:${table}:${set.map((c) => c.column).join(',')}:${shape.conditions.join(',')}`;
    let part = this.#updates.get(group);
    if (!part) {
      part = updatePart(shape);
      this.#updates.set(group, part);
    }
    const rowKey = [table, ...keys.map(([, value]) => String(value))].join('\u0000');
    return this.#write<boolean>({ group, run: { part }, payload: values, keys: [rowKey] });
  }

  /** The plans of these runs, from the cache or in one query. */
  async #plansFor(hashes: readonly string[]): Promise<Map<string, Plan>> {
    const found = new Map<string, Plan>();
    const missing: string[] = [];
    for (const hash of new Set(hashes)) {
      const plan = this.#plans.get(hash);
      if (plan) found.set(hash, plan);
      else missing.push(hash);
    }
    if (missing.length > 0) {
      const rows = await this.#rows<{ hash: string; plan: string }>(
        'SELECT hash, plan FROM plans WHERE hash = ANY ($1::text[])',
        [missing],
      );
      for (const row of rows) {
        found.set(row.hash, this.#plans.remember(row.hash, row.plan));
        this.#storedPlans.add(row.hash);
      }
    }
    for (const hash of hashes) {
      if (!found.has(hash)) throw missingPlanError(this.location, hash);
    }
    return found;
  }

  async #toRuns(rows: readonly RunRow[]): Promise<RunRecord[]> {
    const plans = await this.#plansFor(rows.map((row) => row.plan_hash));
    return rows.map((row) => toRun(row, plans.get(row.plan_hash)!, row.cancel_requested));
  }

  // ---- runs -------------------------------------------------------------------------------------

  createRun(run: NewRun): Promise<RunRecord> {
    const { text: planText, hash: planHash } = this.#plans.textOf(run.plan);
    // Copied now: the caller may change its objects before the batch runs.
    const paramsText = JSON.stringify(run.params);
    const payload: CreateRunPayload = {
      planHash,
      planText: this.#storedPlans.has(planHash) ? null : planText,
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
    return this.#write({
      group: 'createRun',
      run: { execute: createRunExecutor },
      payload,
      keys: [],
      barrier: true,
    }).then((): RunRecord => {
      this.#storedPlans.add(planHash);
      return newRunRecord(run, parseParams(paramsText), this.#plans.remember(planHash, planText), planHash);
    });
  }

  getRun(id: string): Promise<RunRecord | null> {
    return this.#read(async () => {
      const rows = await this.#rows<RunRow>(`SELECT ${RUN_FIELDS} FROM runs WHERE id = $1`, [id]);
      return rows.length > 0 ? (await this.#toRuns(rows))[0]! : null;
    });
  }

  listRuns(query: RunQuery = {}): Promise<RunRecord[]> {
    return this.#read(async () => {
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
      const rows = await this.#rows<RunRow>(
        `SELECT ${RUN_FIELDS} FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC LIMIT $${values.length - 1} OFFSET $${values.length}`,
        values,
      );
      return this.#toRuns(rows);
    });
  }

  updateRun(id: string, patch: RunPatch, condition: RunCondition = {}): Promise<boolean> {
    const conditions: [ConditionKind, SqlValue][] = [];
    if (condition.states) conditions.push(['states', condition.states.join(',')]);
    if (condition.owner !== undefined) conditions.push(['owner', condition.owner]);
    return this.#update('runs', [[{ column: 'id', type: 'text' }, id]], RUN_PATCH_FIELDS, patch, conditions);
  }

  // ---- task runs --------------------------------------------------------------------------------

  getTaskRuns(runId: string): Promise<TaskRunRecord[]> {
    return this.#read(async () => {
      const rows = await this.#rows<TaskRunRow>(
        `SELECT run_id, task, state, attempts, output, error, reason, started_at, finished_at, next_attempt_at
         FROM task_runs WHERE run_id = $1 ORDER BY ordinal`,
        [runId],
      );
      return rows.map(toTaskRun);
    });
  }

  updateTaskRun(
    runId: string,
    task: string,
    patch: TaskRunPatch,
    condition: TaskRunCondition = {},
  ): Promise<boolean> {
    const conditions: [ConditionKind, SqlValue][] = [];
    if (condition.states) conditions.push(['states', condition.states.join(',')]);
    if (condition.attempts !== undefined) conditions.push(['attempts', condition.attempts]);
    return this.#update(
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

  // ---- attempts ---------------------------------------------------------------------------------

  insertAttempt(attempt: AttemptRecord): Promise<void> {
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
    return this.#write({ group: 'insertAttempt', run: { part: insertAttemptsPart }, payload, keys: [key] });
  }

  updateAttempt(
    runId: string,
    task: string,
    attempt: number,
    patch: AttemptPatch,
    condition: AttemptCondition = {},
  ): Promise<boolean> {
    const conditions: [ConditionKind, SqlValue][] = [];
    if (condition.states) conditions.push(['states', condition.states.join(',')]);
    return this.#update(
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

  getAttempts(runId: string, task?: string): Promise<AttemptRecord[]> {
    return this.#read(async () => {
      // "By task" is plan order (the task run's ordinal): the one order every backend agrees on.
      const rows = await this.#rows<AttemptRow>(
        `SELECT a.run_id, a.task, a.attempt, a.state, a.delay_ms, a.started_at, a.finished_at, a.error, a.worker, a.pid
         FROM attempts a JOIN task_runs t ON t.run_id = a.run_id AND t.task = a.task
         WHERE a.run_id = $1 ${task === undefined ? '' : 'AND a.task = $2'} ORDER BY t.ordinal, a.attempt`,
        task === undefined ? [runId] : [runId, task],
      );
      return rows.map(toAttempt);
    });
  }

  // ---- logs -------------------------------------------------------------------------------------

  appendLogs(lines: readonly Omit<LogRecord, 'seq'>[]): Promise<void> {
    const payload: SqlValue[][] = lines.map((l) => [
      l.runId,
      l.task,
      l.attempt,
      l.ts,
      l.level,
      encodeValue('bytea', l.message),
    ]);
    return this.#write({
      group: 'appendLogs',
      run: { part: insertLogsPart },
      payload,
      keys: [],
      sequenced: true,
    });
  }

  getLogs(runId: string, query: LogQuery = {}): Promise<LogRecord[]> {
    return this.#read(async () => {
      const values: unknown[] = [runId, query.afterSeq ?? 0, query.limit ?? null];
      let taskFilter = '';
      if (query.task !== undefined) {
        values.push(query.task);
        taskFilter = 'AND task = $4';
      }
      const rows = await this.#rows<LogRow>(
        `SELECT seq, run_id, task, attempt, ts, level, message FROM logs
         WHERE run_id = $1 AND seq > $2 ${taskFilter} ORDER BY seq LIMIT $3`,
        values,
      );
      return rows.map((row) => toLog(row, row.message.toString('utf8')));
    });
  }

  // ---- hooks ------------------------------------------------------------------------------------

  addHooks(hooks: readonly HookRecord[]): Promise<void> {
    const payload: SqlValue[][] = hooks.map((h) => [
      h.runId,
      h.key,
      h.event,
      h.task,
      h.handler,
      h.state,
      encodeValue('json', h.error),
      h.createdAt,
      h.finishedAt,
    ]);
    const keys = hooks.map((h) => ['hooks', h.runId, h.key].join('\u0000'));
    return this.#write({ group: 'addHooks', run: { part: insertHooksPart }, payload, keys });
  }

  updateHook(runId: string, key: string, patch: HookPatch): Promise<boolean> {
    return this.#update(
      'hooks',
      [
        [{ column: 'run_id', type: 'text' }, runId],
        [{ column: 'key', type: 'text' }, key],
      ],
      HOOK_PATCH_FIELDS,
      patch,
      [],
    );
  }

  getHooks(runId: string, states?: readonly HookState[]): Promise<HookRecord[]> {
    return this.#read(async () => {
      if (states?.length === 0) return [];
      const rows = await this.#rows<HookRow>(
        `SELECT run_id, key, event, task, handler, state, error, created_at, finished_at FROM hooks
         WHERE run_id = $1 ${states ? 'AND state = ANY ($2::text[])' : ''} ORDER BY created_at, key`,
        states ? [runId, states] : [runId],
      );
      return rows.map(toHook);
    });
  }

  // ---- fires and run requests ------------------------------------------------------------------

  recordFire(fire: FireRecord): Promise<boolean> {
    const payload: SqlValue[] = [
      fire.pipeline,
      fire.scheduledFor,
      fire.outcome,
      encodeValue('text', fire.reason),
      fire.runId,
      fire.recordedAt,
    ];
    return this.#write({
      group: 'recordFire',
      run: { execute: recordFireExecutor },
      payload,
      keys: [FIRES_KEY],
    });
  }

  listFires(query: FireQuery = {}): Promise<FireRecord[]> {
    return this.#read(async () => {
      const limit = query.limit ?? DEFAULT_LIMIT;
      const rows =
        query.pipeline === undefined
          ? await this.#rows<FireRow>(
              `SELECT ${FIRE_FIELDS} FROM fires ORDER BY scheduled_for DESC, pipeline LIMIT $1`,
              [limit],
            )
          : await this.#rows<FireRow>(
              `SELECT ${FIRE_FIELDS} FROM fires WHERE pipeline = $1 ORDER BY scheduled_for DESC LIMIT $2`,
              [query.pipeline, limit],
            );
      return rows.map(toFire);
    });
  }

  lastFire(pipeline: string): Promise<FireRecord | null> {
    return this.#read(async () => {
      const rows = await this.#rows<FireRow>(
        `SELECT ${FIRE_FIELDS} FROM fires WHERE pipeline = $1 ORDER BY scheduled_for DESC LIMIT 1`,
        [pipeline],
      );
      return rows[0] ? toFire(rows[0]) : null;
    });
  }

  requestRun(request: NewRunRequest): Promise<RunRequestRecord> {
    // Copied now: the caller may change its objects before the batch runs.
    const paramsText = JSON.stringify(request.params);
    const payload: SqlValue[] = [request.id, request.pipeline, paramsText, request.requestedAt];
    return this.#write({
      group: 'requestRun',
      run: { execute: requestRunExecutor },
      payload,
      keys: [RUN_REQUESTS_KEY],
    }).then(() => pendingRunRequest(request, parseParams(paramsText)));
  }

  claimRunRequests(limit: number, owner: string, now: string): Promise<RunRequestRecord[]> {
    const payload: SqlValue[] = [encodeValue('text', owner), now, Math.max(0, Math.floor(limit))];
    return this.#write<RunRequestRow[]>({
      group: 'claimRunRequests',
      run: { execute: claimRunRequestsExecutor },
      payload,
      keys: [RUN_REQUESTS_KEY],
    }).then((rows) =>
      // RETURNING has no order of its own: oldest first, as they were chosen.
      rows.map(toRunRequest).sort(compareRunRequests),
    );
  }

  completeRunRequest(
    id: string,
    runId: string | null,
    error: ErrorInfo | null,
    completedAt: string,
  ): Promise<boolean> {
    const payload: SqlValue[] = [
      completedRequestState(runId, error),
      runId,
      encodeValue('json', error),
      completedAt,
      id,
    ];
    return this.#write({
      group: 'completeRunRequest',
      run: { execute: completeRunRequestExecutor },
      payload,
      keys: [RUN_REQUESTS_KEY],
    });
  }

  getRunRequest(id: string): Promise<RunRequestRecord | null> {
    return this.#read(async () => {
      const rows = await this.#rows<RunRequestRow>(
        `SELECT ${RUN_REQUEST_FIELDS} FROM run_requests WHERE id = $1`,
        [id],
      );
      return rows[0] ? toRunRequest(rows[0]) : null;
    });
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async flush(): Promise<void> {
    if (this.#closed) throw closedError(this.location);
    const error = await this.#queue.settled();
    if (error) throw error;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Writes accepted before close are committed, not dropped.
    const error = await this.#queue.settled();
    try {
      await this.#pool.end();
    } catch (endError) {
      throw storeError(this.location, 'cannot close', endError);
    }
    if (error) throw error;
  }
}
