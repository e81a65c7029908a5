import { DEFAULT_LIMIT, type FireRow, toFire } from '../records.js';
import type { FireQuery, FireRecord } from '../run-store.js';
import type { SqliteConnection } from './connection.js';

export function recordFire(conn: SqliteConnection, fire: FireRecord): Promise<boolean> {
  const values = [fire.pipeline, fire.scheduledFor, fire.outcome, fire.reason, fire.runId, fire.recordedAt];
  return conn.write(
    () =>
      conn
        .statement(
          `INSERT INTO fires (pipeline, scheduled_for, outcome, reason, run_id, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, scheduled_for) DO NOTHING`,
        )
        .run(...values).changes > 0,
  );
}

export function listFires(conn: SqliteConnection, query: FireQuery = {}): Promise<FireRecord[]> {
  return conn.read(() => {
    const limit = query.limit ?? DEFAULT_LIMIT;
    const rows = (
      query.pipeline === undefined
        ? conn.statement('SELECT * FROM fires ORDER BY scheduled_for DESC, pipeline LIMIT ?').all(limit)
        : conn
            .statement('SELECT * FROM fires WHERE pipeline = ? ORDER BY scheduled_for DESC LIMIT ?')
            .all(query.pipeline, limit)
    ) as FireRow[];
    return rows.map(toFire);
  });
}

export function lastFire(conn: SqliteConnection, pipeline: string): Promise<FireRecord | null> {
  return conn.read(() => {
    const row = conn
      .statement('SELECT * FROM fires WHERE pipeline = ? ORDER BY scheduled_for DESC LIMIT 1')
      .get(pipeline) as FireRow | undefined;
    return row ? toFire(row) : null;
  });
}
