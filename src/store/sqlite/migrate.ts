import type { Database } from 'better-sqlite3';
import { WeftError } from '../../errors.js';
import { MIGRATIONS, type Migration } from './migrations/index.js';

const LATEST = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

function appliedVersion(db: Database): number {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (!table) return 0;
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as {
    version: number | null;
  };
  return row.version ?? 0;
}

function tooNew(location: string, version: number): WeftError {
  return new WeftError(
    'STORE_FAILED',
    `the store ${location} was written by a newer weft (schema version ${version}; this weft knows up to ${LATEST})`,
    { retryable: false, hint: 'upgrade weft, or point --store at another file' },
  );
}

/**
 * Brings the schema up to date, in one IMMEDIATE transaction so that two processes opening the same
 * new file at once cannot both apply a migration (the second waits, then finds nothing to do).
 * Refuses a store from a newer weft rather than writing to a schema it does not know.
 */
export function migrate(db: Database, location: string): number {
  const run = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at TEXT NOT NULL
    ) STRICT`);
    const current = appliedVersion(db);
    if (current > LATEST) throw tooNew(location, current);
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    const pending: Migration[] = MIGRATIONS.filter((m) => m.version > current);
    for (const migration of pending) {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, new Date().toISOString());
    }
    return LATEST;
  });
  return run.immediate();
}

/** For a read-only store: no migrating, so the schema must be exactly the one this weft knows. */
export function checkSchema(db: Database, location: string): number {
  const current = appliedVersion(db);
  if (current > LATEST) throw tooNew(location, current);
  if (current < LATEST) {
    throw new WeftError(
      'STORE_FAILED',
      current === 0
        ? `${location} is not a weft store (no schema)`
        : `the store ${location} has schema version ${current} and needs upgrading to ${LATEST}`,
      { retryable: false, hint: 'run any weft command that writes (e.g. `weft run`) to upgrade it' },
    );
  }
  return current;
}

export const LATEST_SCHEMA_VERSION = LATEST;
