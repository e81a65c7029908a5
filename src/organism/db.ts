import type pg from 'pg';
import type { HandlerContext } from '../handlers/types.js';
import { type ConnectionArgs, getPool, resolveDatabaseUrl } from './connections.js';
import { ensureOrganismSchema } from './migrate.js';

/** The cached pool for this handler call, with the organism schema migrated (first call only). */
export async function organismPool(
  args: ConnectionArgs,
  ctx: Pick<HandlerContext, 'env' | 'log'>,
): Promise<pg.Pool> {
  const pool = getPool(resolveDatabaseUrl(args, ctx));
  await ensureOrganismSchema(pool, (result) =>
    ctx.log.info(
      `organism schema ready (${result.applied.length} migration(s) applied); organism_metrics is ` +
        (result.metricsStorage === 'hypertable'
          ? 'a TimescaleDB hypertable'
          : 'a plain table indexed on time (timescaledb not available)'),
    ),
  );
  return pool;
}

/** Runs `fn` in a transaction on one pooled client: COMMIT on success, ROLLBACK on any throw. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } finally {
    client.release();
  }
}

/** The run's reference time: its scheduled time, or now for a manual run. */
export function referenceTime(ctx: Pick<HandlerContext, 'run'>, asOf?: string): Date {
  const text = asOf ?? ctx.run.scheduledFor;
  const date = text ? new Date(text) : new Date();
  return Number.isNaN(date.getTime()) ? new Date() : date;
}
