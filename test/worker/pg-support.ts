import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createPostgresTaskQueue } from '../../src/store/postgres/queue.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';

/**
 * Real PostgreSQL for the worker tests: one database per test file, created from `postgres` and
 * dropped at the end. Outside CI an unreachable server skips the file loudly; in CI it fails.
 */
export const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function postgresUp(): Promise<boolean> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 1500 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function admin<T>(fn: (client: pg.Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  available: boolean;
  /** URL of this file's database (set in beforeAll). */
  url: () => string;
  openStore: () => Promise<RunStore>;
  openQueue: (options?: Parameters<typeof createPostgresTaskQueue>[1]) => Promise<TaskQueue>;
  query: <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>;
}

/** Call at the top of a test file: registers beforeAll/afterAll for its database. */
export async function useTestDatabase(file: string): Promise<TestDatabase> {
  const available = (await postgresUp()) || Boolean(process.env.CI);
  if (!available)
    console.warn(`SKIPPED ${file}: PostgreSQL (${ADMIN_URL}) unreachable (set CI=1 to fail instead)`);
  let name = '';
  let url = '';
  const closers: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    if (!available) return;
    name = `weft_test_worker_${randomBytes(5).toString('hex')}`;
    await admin((c) => c.query(`CREATE DATABASE ${name}`));
    const u = new URL(ADMIN_URL);
    u.pathname = `/${name}`;
    url = u.toString();
  });
  afterAll(async () => {
    if (!available || !name) return;
    await Promise.allSettled(closers.splice(0).map((close) => close()));
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }, 30_000);
  return {
    available,
    url: () => url,
    openStore: async () => {
      const store = await createPostgresStore(url);
      closers.push(() => store.close());
      return store;
    },
    openQueue: async (options) => {
      const queue = await createPostgresTaskQueue(url, options);
      closers.push(() => queue.close());
      return queue;
    },
    query: async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
      admin(async (c) => (await c.query<R>(text, values)).rows, url),
  };
}

/** Waits until `check` returns a value (not undefined/false), polling; fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export { ManualClock };
