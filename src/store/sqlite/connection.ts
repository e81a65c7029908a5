import type { Database as Db, Statement } from 'better-sqlite3';
import type { Plan } from '../../compile/plan.js';
import { WeftError } from '../../errors.js';
import { type PatchField, patchEntries } from '../patches.js';
import { PlanCache } from '../plan-cache.js';
import { type LogRowBase, type RunRowBase, toRun } from '../records.js';
import type { RunRecord } from '../run-store.js';
import { backendError, closedError, missingPlanError } from '../store-errors.js';
import { WriteQueue } from './write-queue.js';

export type SqlValues = readonly (string | number | null)[];

const PLAN_CACHE_SIZE = 16;

/** SQLite has no boolean: the flag is stored as 0 or 1. */
export type RunRow = RunRowBase & { cancel_requested: number };
export type LogRow = LogRowBase & { message: string };

export function asJson(value: unknown): string | null {
  return value === null ? null : JSON.stringify(value);
}

/** How a patch value is stored: JSON as text, flags as 0/1, the rest as it is. */
function encodeField(field: PatchField, value: unknown): string | number | null {
  if (field.type === 'json') return asJson(value);
  if (field.type === 'boolean') return value ? 1 : 0;
  return value as string | number | null;
}

/** `SET a = ?, b = ?` and its values, from the keys present (and not undefined) in a patch. */
export function setClause(
  fields: Readonly<Record<string, PatchField>>,
  patch: object,
): { sql: string; values: (string | number | null)[] } {
  const entries = patchEntries(fields, patch);
  const parts = entries.map(({ field }) => `${field.column} = ?`);
  const values = entries.map(({ field, value }) => encodeField(field, value));
  // An empty patch still checks the condition: "does it hold?" is a fair question to ask.
  return { sql: parts.length > 0 ? parts.join(', ') : 'rowid = rowid', values };
}

export function placeholders(count: number): string {
  return Array.from({ length: count }, () => '?').join(', ');
}

function isSqliteError(error: unknown): error is Error & { code: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

export function storeError(location: string, doing: string, cause: unknown): WeftError {
  const busy = isSqliteError(cause) && cause.code.startsWith('SQLITE_BUSY');
  return backendError(
    'SQLite',
    location,
    doing,
    cause,
    busy ? 'another process held the store locked for too long; try again' : undefined,
  );
}

/**
 * The database of one SQLite store and what every table module shares: prepared statements, the
 * write queue (group commit), reads that follow the writes issued before them, and the plan cache.
 */
export class SqliteConnection {
  readonly location: string;
  readonly db: Db;
  readonly plans = new PlanCache(PLAN_CACHE_SIZE);
  readonly #readonly: boolean;
  readonly #queue: WriteQueue;
  readonly #statements = new Map<string, Statement>();
  #closed = false;

  constructor(db: Db, location: string, readonly: boolean) {
    this.db = db;
    this.location = location;
    this.#readonly = readonly;
    this.#queue = new WriteQueue(db, {
      mapWriteError: (error) => this.#writeError(error),
      mapBatchError: (error) => storeError(location, 'cannot commit to', error),
    });
  }

  statement(sql: string): Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  write<T>(apply: () => T, beforeCommit?: string): Promise<T> {
    if (this.#closed) return Promise.reject(closedError(this.location));
    if (this.#readonly) {
      return Promise.reject(
        new WeftError('STORE_FAILED', `the store ${this.location} is open read-only`, { retryable: false }),
      );
    }
    return this.#queue.enqueue(apply, beforeCommit);
  }

  /** Reads see every write issued before them: pending writes are committed first. */
  read<T>(query: () => T): Promise<T> {
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
  insertMany(sql: string, rows: readonly SqlValues[]): void {
    this.#insertManyTx ??= this.db.transaction((text: string, list: readonly SqlValues[]) => {
      const statement = this.statement(text);
      for (const row of list) statement.run(...row);
    });
    this.#insertManyTx(sql, rows);
  }

  #plan(hash: string): Plan {
    const cached = this.plans.get(hash);
    if (cached) return cached;
    const row = this.statement('SELECT plan FROM plans WHERE hash = ?').get(hash) as
      | { plan: string }
      | undefined;
    if (!row) throw missingPlanError(this.location, hash);
    return this.plans.remember(hash, row.plan);
  }

  toRun(row: RunRow): RunRecord {
    return toRun(row, this.#plan(row.plan_hash), row.cancel_requested !== 0);
  }

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
      this.db.close();
    } catch (closeError) {
      return Promise.reject(storeError(this.location, 'cannot close', closeError));
    }
    return error ? Promise.reject(error) : Promise.resolve();
  }
}
