import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { HandlerContext, TaskLogger } from '../../src/handlers/types.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function redisUp(): Promise<boolean> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 1500,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function postgresUp(): Promise<boolean> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL, connectionTimeoutMillis: 1500 });
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

/**
 * Whether Redis and PostgreSQL answer. Outside CI a missing service skips the suite loudly; in CI
 * it is reported as available so the suite runs and fails — a missing service there is a failure.
 */
export async function servicesAvailable(suite: string): Promise<boolean> {
  const [redis, postgres] = await Promise.all([redisUp(), postgresUp()]);
  if (redis && postgres) return true;
  const missing = [!redis && `Redis (${REDIS_URL})`, !postgres && `PostgreSQL (${ADMIN_DATABASE_URL})`]
    .filter(Boolean)
    .join(' and ');
  if (process.env.CI) return true;
  console.warn(`SKIPPED ${suite}: ${missing} unreachable (set CI=1 to make this a failure)`);
  return false;
}

export const randomSuffix = () => randomBytes(5).toString('hex');

/** Creates a throwaway database; returns its URL and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `weft_test_organism_${randomSuffix()}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export interface TestContext extends HandlerContext {
  lines: string[];
}

export function createContext(
  env: Record<string, string>,
  overrides: Partial<HandlerContext> = {},
): TestContext {
  const lines: string[] = [];
  const push = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  const log: TaskLogger = {
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    stdout: push('stdout'),
    stderr: push('stderr'),
  };
  return {
    pipeline: 'organism-test',
    task: 'task',
    run: { id: `run-${randomSuffix()}`, pipeline: 'organism-test', scheduledFor: null, attempt: 1 },
    attempt: 1,
    params: {},
    upstream: {},
    signal: new AbortController().signal,
    log,
    env,
    lines,
    ...overrides,
  };
}

/** Deletes every key under a prefix (SCAN, never KEYS). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
