import type { Database } from 'better-sqlite3';
import { failpoint } from '../../core/failpoint.js';

/**
 * Group commit for a synchronous SQLite connection.
 *
 * Every write is queued as a function that runs its statements and returns its result. All writes
 * queued before the next turn of the event loop (or before a read, or flush) run in order inside
 * ONE `BEGIN IMMEDIATE … COMMIT`, and only then are their promises settled. A hundred small writes
 * from tasks finishing side by side thus cost one fsync-free WAL commit instead of a hundred.
 *
 * IMPORTANT: a promise resolves only after the transaction holding its write has committed. If the
 * transaction fails (cannot lock, disk full, I/O error), every write of the batch is rejected and
 * none is acknowledged. A write that fails on its own (a constraint) is rejected alone and leaves
 * nothing behind (a single statement is atomic; a multi-statement write runs in a savepoint), and
 * the rest of the batch commits.
 */

interface QueuedWrite {
  apply: () => unknown;
  /** A failpoint hit once this write has run and before its batch's COMMIT (failpoint.ts). */
  beforeCommit?: string;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** Set when the write failed on its own; its promise is rejected after the batch commits. */
  failure?: unknown;
  result?: unknown;
}

export interface WriteQueueOptions {
  /** Turns what a single write threw into the error its caller sees. */
  mapWriteError: (error: unknown) => Error;
  /** Turns what made a whole batch fail into the error each of its writes sees. */
  mapBatchError: (error: unknown) => Error;
}

export class WriteQueue {
  readonly #db: Database;
  readonly #options: WriteQueueOptions;
  #queue: QueuedWrite[] = [];
  #scheduled = false;

  constructor(db: Database, options: WriteQueueOptions) {
    this.#db = db;
    this.#options = options;
  }

  get size(): number {
    return this.#queue.length;
  }

  /** `beforeCommit` names a failpoint for the window between this write and its COMMIT. */
  enqueue<T>(apply: () => T, beforeCommit?: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ apply, beforeCommit, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // setImmediate rather than a microtask: writes issued by many promise chains resolving in
        // the same turn (tasks finishing side by side) all make it into one batch.
        setImmediate(() => {
          this.#scheduled = false;
          this.drain();
        });
      }
    });
  }

  /**
   * Runs every queued write now, in one transaction, and settles their promises. Returns the batch
   * error when the transaction failed (its writes are rejected with it), else null.
   */
  drain(): Error | null {
    let batchError: Error | null = null;
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      const error = this.#commit(batch);
      if (error) batchError = error;
    }
    return batchError;
  }

  #commit(batch: QueuedWrite[]): Error | null {
    const db = this.#db;
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      return this.#failBatch(batch, error);
    }
    try {
      for (const write of batch) {
        try {
          write.result = write.apply();
        } catch (error) {
          // Some errors (SQLITE_FULL, IOERR, NOMEM) roll the whole transaction back: then nothing of
          // the batch, before or after this write, may be acknowledged.
          if (!db.inTransaction) throw error;
          write.failure = error;
        }
      }
      for (const write of batch)
        if (write.beforeCommit !== undefined && write.failure === undefined) failpoint(write.beforeCommit);
      db.exec('COMMIT');
    } catch (error) {
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // The connection is unusable; the batch error below says why.
        }
      }
      return this.#failBatch(batch, error);
    }
    for (const write of batch) {
      if (write.failure !== undefined) write.reject(this.#options.mapWriteError(write.failure));
      else write.resolve(write.result);
    }
    return null;
  }

  #failBatch(batch: QueuedWrite[], cause: unknown): Error {
    const error = this.#options.mapBatchError(cause);
    for (const write of batch) write.reject(error);
    return error;
  }
}
