import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { HandlerContext } from '../handlers/types.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/*
 * WHY a module-level cache: the incremental pipeline fires every 5 minutes and each of its tasks is a
 * separate handler call. Opening a Redis connection and a PostgreSQL pool per task would pay the TCP
 * + auth + (for pg) backend start-up cost on every call, and leave the server with churn of
 * short-lived backends. One client per URL, kept for the life of the process, is what a long-running
 * scheduler wants. The cost is that someone must close them: the CLI calls closeOrganismConnections()
 * at exit and tests call it in afterAll, otherwise the open sockets keep Node alive.
 */
const redisClients = new Map<string, Redis>();

// The clients are loaded on first use, not at import: every `weft` command registers these
// handlers, and `weft validate` must not pay ~100 ms to load client libraries it never calls.
const require = createRequire(import.meta.url);
const loadRedis = () => (require('ioredis') as typeof import('ioredis')).Redis;
const loadPg = () => require('pg') as typeof import('pg');
const pgPools = new Map<string, pg.Pool>();

export function getRedis(url: string): Redis {
  let client = redisClients.get(url);
  if (!client) {
    // maxRetriesPerRequest bounds how long a command waits on a dead server, so a task fails (and
    // is retried by the engine) instead of hanging until its timeout.
    client = new (loadRedis())(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
    // Without a listener ioredis prints every reconnect error; the failing command reports it instead.
    client.on('error', () => undefined);
    redisClients.set(url, client);
  }
  return client;
}

export function getPool(url: string): pg.Pool {
  let pool = pgPools.get(url);
  if (!pool) {
    pool = new (loadPg().Pool)({ connectionString: url, max: 4, idleTimeoutMillis: 30_000 });
    // An idle client losing its connection emits on the pool; the next query reports it instead.
    pool.on('error', () => undefined);
    pgPools.set(url, pool);
  }
  return pool;
}

/** Closes every cached Redis client and PostgreSQL pool (CLI exit, test teardown). */
export async function closeOrganismConnections(): Promise<void> {
  const redis = [...redisClients.values()];
  const pools = [...pgPools.values()];
  redisClients.clear();
  pgPools.clear();
  await Promise.allSettled([
    ...redis.map(async (client) => {
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    }),
    ...pools.map((pool) => pool.end()),
  ]);
}

export interface ConnectionArgs {
  redis_url?: string;
  database_url?: string;
}

/** The URLs a handler uses: an explicit argument wins over the environment, then the defaults. */
export function resolveRedisUrl(args: ConnectionArgs, ctx: Pick<HandlerContext, 'env'>): string {
  return args.redis_url ?? ctx.env.REDIS_URL ?? DEFAULT_REDIS_URL;
}

export function resolveDatabaseUrl(args: ConnectionArgs, ctx: Pick<HandlerContext, 'env'>): string {
  return args.database_url ?? ctx.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

/** JSON Schema properties shared by every organism handler. */
export const CONNECTION_ARG_SCHEMA = {
  redis_url: {
    type: 'string',
    description: 'Redis URL; defaults to $REDIS_URL, then redis://127.0.0.1:6379.',
  },
  database_url: {
    type: 'string',
    description:
      'PostgreSQL URL; defaults to $DATABASE_URL, then postgres://postgres@127.0.0.1:5432/postgres.',
  },
} as const;
