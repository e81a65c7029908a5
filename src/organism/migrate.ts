import type pg from 'pg';
import { ORGANISM_MIGRATIONS } from './migrations/index.js';

export type MetricsStorage = 'hypertable' | 'table';

export interface MigrateResult {
  /** Versions applied by this call (empty when the schema was already current). */
  applied: number[];
  /** How organism_metrics is stored: a TimescaleDB hypertable, or a plain table indexed on time. */
  metricsStorage: MetricsStorage;
}

// Any constant works; it only has to be the same for every weft process migrating this database.
const MIGRATION_LOCK = 724_1530_001;

/**
 * Applies the pending organism migrations, each in its own transaction, under an advisory lock so
 * that two processes starting at once do not both apply the same one.
 */
export async function migrateOrganism(pool: pg.Pool): Promise<MigrateResult> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS organism_schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = await client.query<{ version: number }>('SELECT version FROM organism_schema_migrations');
      const doneVersions = new Set(done.rows.map((row) => row.version));
      const timescale = await client.query(
        `SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'`,
      );
      const hasTimescale = (timescale.rowCount ?? 0) > 0;
      for (const migration of ORGANISM_MIGRATIONS) {
        if (doneVersions.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          if (hasTimescale && migration.timescaleSql) {
            // The extension may be available yet not preloaded: keep the plain table then.
            await client.query('SAVEPOINT timescale');
            try {
              await client.query(migration.timescaleSql);
            } catch {
              await client.query('ROLLBACK TO SAVEPOINT timescale');
            }
          }
          await client.query('INSERT INTO organism_schema_migrations (version, name) VALUES ($1, $2)', [
            migration.version,
            migration.name,
          ]);
          await client.query('COMMIT');
          applied.push(migration.version);
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
      }
      return { applied, metricsStorage: await detectMetricsStorage(client) };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

async function detectMetricsStorage(client: pg.PoolClient): Promise<MetricsStorage> {
  const ext = await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
  if ((ext.rowCount ?? 0) === 0) return 'table';
  const hyper = await client.query(
    `SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'organism_metrics'`,
  );
  return (hyper.rowCount ?? 0) > 0 ? 'hypertable' : 'table';
}

const ensured = new WeakMap<pg.Pool, Promise<MigrateResult>>();

/**
 * Migrates once per pool per process (the handlers call it on every run; only the first pays).
 * `onFirst` is told how organism_metrics is stored, so the first task's log says which.
 */
export function ensureOrganismSchema(
  pool: pg.Pool,
  onFirst?: (result: MigrateResult) => void,
): Promise<MigrateResult> {
  let pending = ensured.get(pool);
  if (!pending) {
    pending = migrateOrganism(pool).then((result) => {
      onFirst?.(result);
      return result;
    });
    // A failed migration must be retried by the next call, not remembered.
    pending.catch(() => ensured.delete(pool));
    ensured.set(pool, pending);
  }
  return pending;
}
