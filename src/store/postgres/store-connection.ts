import type pg from 'pg';
import type { Plan } from '../../compile/plan.js';
import { WeftError } from '../../errors.js';
import { type PatchField, patchEntries } from '../patches.js';
import { PlanCache } from '../plan-cache.js';
import { type RunRowBase, toRun } from '../records.js';
import type { RunRecord } from '../run-store.js';
import { backendError, closedError, missingPlanError } from '../store-errors.js';
import { type Column, type ConditionKind, encodeValue, type SqlValue, updatePart } from './statements.js';
import { type BatchWrite, type PartBuilder, PgWriteQueue, prepared, sqlState } from './write-batch.js';

const PLAN_CACHE_SIZE = 16;
/** Advisory lock class of log appends (the migration lock is 0x77656674). */
const LOG_LOCK = 0x77656675;

export type RunRow = RunRowBase & { cancel_requested: boolean };

/** Fires and run requests are rare: every write of one table waits for the previous (one key). */
export const FIRES_KEY = 'fires';
export const RUN_REQUESTS_KEY = 'run_requests';

export function storeError(location: string, doing: string, cause: unknown): WeftError {
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
 * The pool of one PostgreSQL store and what every table module shares: the write queue (group
 * commit), reads that follow the writes issued before them, fenced updates, and the plan cache.
 */
export class StoreConnection {
  readonly location: string;
  readonly #pool: pg.Pool;
  readonly #queue: PgWriteQueue;
  readonly plans = new PlanCache(PLAN_CACHE_SIZE);
  /** Hashes of plans known to be committed: creating another run of one does not send it again. */
  readonly storedPlans = new Set<string>();
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

  write<T>(write: BatchWrite): Promise<T> {
    if (this.#closed) return Promise.reject(closedError(this.location));
    return this.#queue.enqueue(write) as Promise<T>;
  }

  /** Reads see every write issued before them: they wait for those writes to commit first. */
  async read<T>(query: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError(this.location);
    // A failed batch has rejected its own writes; the read still answers from what is committed.
    await this.#queue.settled();
    try {
      return await query();
    } catch (error) {
      throw error instanceof WeftError ? error : storeError(this.location, 'cannot read from', error);
    }
  }

  /**
   * Runs `fn` on one client inside its own transaction, after the writes issued before it, and
   * commits (or rolls back when `fn` throws). For work that is neither a batched write nor a
   * read: pruning.
   */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError(this.location);
    await this.#queue.settled();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw storeError(this.location, 'cannot connect to', error);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (error) {
      // A client whose transaction is in doubt is not handed out again.
      client.release(true);
      throw error instanceof WeftError ? error : storeError(this.location, 'cannot write to', error);
    }
  }

  async rows<R extends pg.QueryResultRow>(text: string, values: readonly unknown[]): Promise<R[]> {
    return (await this.#pool.query<R>(prepared(text, values))).rows;
  }

  /** A fenced update: merged with the other updates of the same shape in its batch. */
  update(
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
    return this.write<boolean>({ group, run: { part }, payload: values, keys: [rowKey] });
  }

  /** The plans of these runs, from the cache or in one query. */
  async #plansFor(hashes: readonly string[]): Promise<Map<string, Plan>> {
    const found = new Map<string, Plan>();
    const missing: string[] = [];
    for (const hash of new Set(hashes)) {
      const plan = this.plans.get(hash);
      if (plan) found.set(hash, plan);
      else missing.push(hash);
    }
    if (missing.length > 0) {
      const rows = await this.rows<{ hash: string; plan: string }>(
        'SELECT hash, plan FROM plans WHERE hash = ANY ($1::text[])',
        [missing],
      );
      for (const row of rows) {
        found.set(row.hash, this.plans.remember(row.hash, row.plan));
        this.storedPlans.add(row.hash);
      }
    }
    for (const hash of hashes) {
      if (!found.has(hash)) throw missingPlanError(this.location, hash);
    }
    return found;
  }

  async toRuns(rows: readonly RunRow[]): Promise<RunRecord[]> {
    const plans = await this.#plansFor(rows.map((row) => row.plan_hash));
    return rows.map((row) => toRun(row, plans.get(row.plan_hash)!, row.cancel_requested));
  }

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
