import type pg from 'pg';
import type { Plan } from '../../../compile/plan.js';
import { WeftError } from '../../../errors.js';
import { parsePlan } from '../../json-codec.js';
import { prepared, sqlState } from '../write-batch.js';

export interface PostgresQueueOptions {
  /** The store's schema, when it has one (see PostgresStoreOptions.schema). */
  schema?: string;
  /** Connections at most. Default 4. */
  poolSize?: number;
  /** Lost attempts of one task before it fails with TASK_LOST. Default 3. */
  maxLostAttempts?: number;
  /** For retry jitter. Default Math.random. */
  random?: () => number;
  /** Apply pending migrations when opening (default true). */
  migrate?: boolean;
  /**
   * Wait for the WAL flush on every queue transaction (default false; taking a run is always
   * flushed). See QUEUE DURABILITY in index.ts.
   */
  synchronousCommit?: boolean;
}

export function queueError(location: string, doing: string, cause: unknown): WeftError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new WeftError('STORE_FAILED', `${doing} the PostgreSQL queue ${location}: ${detail}`, { cause });
}

/** Serialization failures and deadlocks are worth one more try; nothing was committed. */
function isTransient(error: unknown): boolean {
  const code = sqlState(error);
  return code === '40001' || code === '40P01';
}

/** The pool of one queue and what every operation shares: queries, transactions, the plan cache. */
export class QueueConnection {
  readonly location: string;
  readonly pool: pg.Pool;
  readonly url: string;
  readonly options: PostgresQueueOptions;
  /** LISTEN connections (notify.ts), ended on close. */
  readonly listeners = new Set<pg.Client>();
  readonly #plans = new Map<string, Plan>();
  #closed = false;

  constructor(pool: pg.Pool, url: string, location: string, options: PostgresQueueOptions) {
    this.pool = pool;
    this.url = url;
    this.location = location;
    this.options = options;
  }

  get closed(): boolean {
    return this.#closed;
  }

  assertOpen(): void {
    if (this.#closed) throw new WeftError('STORE_FAILED', `the queue ${this.location} is closed`);
  }

  async query<R extends pg.QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    this.assertOpen();
    try {
      return (await this.pool.query<R>(prepared(text, values))).rows;
    } catch (error) {
      throw error instanceof WeftError ? error : queueError(this.location, 'cannot use', error);
    }
  }

  /** One transaction; retried (a few times) on a deadlock or serialization failure. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect().catch((error: unknown) => {
        throw queueError(this.location, 'cannot reach', error);
      });
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        if (attempt < 4 && isTransient(error)) continue;
        throw error instanceof WeftError ? error : queueError(this.location, 'cannot commit to', error);
      } finally {
        client.release(broken);
      }
    }
  }

  /** A stored plan by its hash, parsed once (a few dozen kept). */
  async plan(client: pg.PoolClient, hash: string): Promise<Plan> {
    let plan = this.#plans.get(hash);
    if (!plan) {
      const rows = await client.query<{ plan: string }>('SELECT plan FROM plans WHERE hash = $1', [hash]);
      const text = rows.rows[0]?.plan;
      if (text === undefined)
        throw new WeftError('STORE_FAILED', `${this.location}: plan ${hash} is missing`);
      plan = parsePlan(text);
      if (this.#plans.size > 32) this.#plans.delete(this.#plans.keys().next().value!);
      this.#plans.set(hash, plan);
    }
    return plan;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.listeners].map((c) => c.end()));
    this.listeners.clear();
    await this.pool.end();
  }
}
