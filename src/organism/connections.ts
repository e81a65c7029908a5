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

/**
 * How long a Redis command may wait for its reply. Without it, a command in flight when the
 * connection drops waits (ioredis keeps it to resend) until the server is reachable again: a task
 * would hang for as long as the outage lasts. Every command the handlers send answers in
 * milliseconds; a blocking read gets its own connection with its block time added (see
 * fetch-interactions.ts).
 */
export const REDIS_COMMAND_TIMEOUT_MS = 5_000;

export function getRedis(url: string): Redis {
  let client = redisClients.get(url);
  // A client that ended (closed by someone, or gave up reconnecting) never reconnects: replace it
  // rather than hand out a client whose every command fails with "Connection is closed".
  if (client && client.status === 'end') {
    redisClients.delete(url);
    client = undefined;
  }
  if (!client) {
    // maxRetriesPerRequest bounds how long a command issued while the server is unreachable waits
    // (it fails after that many reconnect attempts), commandTimeout how long one in flight when the
    // connection dropped waits: either way the task fails, and the engine retries it, instead of
    // hanging until the server returns.
    client = new (loadRedis())(url, {
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
      lazyConnect: false,
      connectTimeout: 5_000,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    });
    // Without a listener ioredis prints every reconnect error; the failing command reports it instead.
    client.on('error', () => undefined);
    redisClients.set(url, client);
  }
  return client;
}

export function getPool(url: string): pg.Pool {
  let pool = pgPools.get(url);
  if (!pool) {
    pool = new (loadPg().Pool)({
      connectionString: url,
      max: 4,
      idleTimeoutMillis: 30_000,
      // A server that accepts TCP but never answers must fail the task, not hang it.
      connectionTimeoutMillis: 10_000,
      // Notices a peer that vanished without a FIN/RST (a NAT entry dropped) on idle connections.
      keepAlive: true,
    });
    // An idle client losing its connection emits on the pool (which then discards it); the next
    // query reports the failure instead.
    pool.on('error', () => undefined);
    // A client checked out with pool.connect() has no 'error' listener of the pool's while it is
    // out, and pg emits 'error' on it when its connection drops, even mid-query: unheard, that
    // crashes the process (an uncaughtException from the socket's event). The query in flight is
    // rejected with the same error, and a client that lost its connection is not queryable, so
    // release() discards it instead of handing it out again: this listener only has to exist.
    pool.on('connect', (client) => client.on('error', () => undefined));
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
