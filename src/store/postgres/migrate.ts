import type pg from 'pg';
import { WeftError } from '../../errors.js';
import { POSTGRES_MIGRATIONS } from './migrations/index.js';
import { quoteIdent } from './pool.js';

export const LATEST_POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.reduce(
  (max, m) => Math.max(max, m.version),
  0,
);

/** Any constant works, as long as every weft process uses the same one (second key: the schema). */
const MIGRATION_LOCK = 0x77656674; // "weft"

export interface PostgresMigrateOptions {
  /** Created first when missing; the pool's search_path is expected to point at it. */
  schema?: string;
  /** For messages: where the database is (a URL without password). */
  location?: string;
}

export interface PostgresMigrateResult {
  /** The schema version found before migrating (0 for an empty database). */
  from: number;
  /** The schema version now. */
  to: number;
  /** Versions applied by this call, in order (empty when there was nothing to do). */
  applied: number[];
}

function tooNew(location: string, version: number): WeftError {
  return new WeftError(
    'STORE_FAILED',
    `the PostgreSQL store ${location} was written by a newer weft (schema version ${version}; this weft knows up to ${LATEST_POSTGRES_SCHEMA_VERSION})`,
    { retryable: false, hint: 'upgrade weft, or point --store at another database' },
  );
}

async function currentVersion(client: pg.PoolClient): Promise<number> {
  const table = await client.query<{ found: boolean }>(
    "SELECT to_regclass('weft_schema_migrations') IS NOT NULL AS found",
  );
  if (!table.rows[0]?.found) return 0;
  const row = await client.query<{ version: number | null }>(
    'SELECT MAX(version) AS version FROM weft_schema_migrations',
  );
  return row.rows[0]?.version ?? 0;
}

/**
 * Brings the schema up to date in ONE transaction, under a transaction-scoped advisory lock, so that
 * several processes starting at once against a new database do not race: the first applies the
 * migrations, the others wait for its commit and then find nothing to do. Refuses a database from a
 * newer weft rather than writing to a schema it does not know. What `weft db migrate` calls.
 */
export async function migratePostgres(
  pool: pg.Pool,
  options: PostgresMigrateOptions = {},
): Promise<PostgresMigrateResult> {
  const location = options.location ?? 'database';
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    try {
      // Keyed by the search_path as well: stores in different schemas of one database do not wait
      // for each other, two stores on the same schema do.
      await client.query("SELECT pg_advisory_xact_lock($1, hashtext(current_setting('search_path')))", [
        MIGRATION_LOCK,
      ]);
      if (options.schema !== undefined) {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(options.schema)}`);
      }
      await client.query(`CREATE TABLE IF NOT EXISTS weft_schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const from = await currentVersion(client);
      if (from > LATEST_POSTGRES_SCHEMA_VERSION) throw tooNew(location, from);
      const applied: number[] = [];
      for (const migration of POSTGRES_MIGRATIONS) {
        if (migration.version <= from) continue;
        await client.query(migration.sql);
        await client.query('INSERT INTO weft_schema_migrations (version, name) VALUES ($1, $2)', [
          migration.version,
          migration.name,
        ]);
        applied.push(migration.version);
      }
      await client.query('COMMIT');
      return { from, to: Math.max(from, LATEST_POSTGRES_SCHEMA_VERSION), applied };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    }
  } finally {
    client.release(broken);
  }
}

/** For a store opened without migrating: the schema must be exactly the one this weft knows. */
export async function checkPostgresSchema(pool: pg.Pool, location: string): Promise<number> {
  const client = await pool.connect();
  try {
    const current = await currentVersion(client);
    if (current > LATEST_POSTGRES_SCHEMA_VERSION) throw tooNew(location, current);
    if (current < LATEST_POSTGRES_SCHEMA_VERSION) {
      throw new WeftError(
        'STORE_FAILED',
        current === 0
          ? `${location} has no weft schema`
          : `the PostgreSQL store ${location} has schema version ${current} and needs upgrading to ${LATEST_POSTGRES_SCHEMA_VERSION}`,
        {
          retryable: false,
          hint: 'run `weft db migrate --store URL`, or any weft command that writes to it (they migrate on open)',
        },
      );
    }
    return current;
  } finally {
    client.release();
  }
}
