import { DEFAULT_LIMIT, type FireRow, toFire } from '../records.js';
import type { FireQuery, FireRecord } from '../run-store.js';
import { encodeValue, recordFireExecutor, type SqlValue } from './statements.js';
import { FIRES_KEY, type StoreConnection } from './store-connection.js';

const FIRE_FIELDS = 'pipeline, scheduled_for, outcome, reason, run_id, recorded_at';

export function recordFire(conn: StoreConnection, fire: FireRecord): Promise<boolean> {
  const payload: SqlValue[] = [
    fire.pipeline,
    fire.scheduledFor,
    fire.outcome,
    encodeValue('text', fire.reason),
    fire.runId,
    fire.recordedAt,
  ];
  return conn.write({
    group: 'recordFire',
    run: { execute: recordFireExecutor },
    payload,
    // Its row, not the table: the fires due at one tick share one group, which recordFireExecutor
    // inserts in a fixed order (two schedulers' batches would deadlock otherwise).
    keys: [`${FIRES_KEY}\0${fire.pipeline}\0${fire.scheduledFor}`],
  });
}

export function listFires(conn: StoreConnection, query: FireQuery = {}): Promise<FireRecord[]> {
  return conn.read(async () => {
    const limit = query.limit ?? DEFAULT_LIMIT;
    const rows =
      query.pipeline === undefined
        ? await conn.rows<FireRow>(
            `SELECT ${FIRE_FIELDS} FROM fires ORDER BY scheduled_for DESC, pipeline LIMIT $1`,
            [limit],
          )
        : await conn.rows<FireRow>(
            `SELECT ${FIRE_FIELDS} FROM fires WHERE pipeline = $1 ORDER BY scheduled_for DESC LIMIT $2`,
            [query.pipeline, limit],
          );
    return rows.map(toFire);
  });
}

export function lastFire(conn: StoreConnection, pipeline: string): Promise<FireRecord | null> {
  return conn.read(async () => {
    const rows = await conn.rows<FireRow>(
      `SELECT ${FIRE_FIELDS} FROM fires WHERE pipeline = $1 ORDER BY scheduled_for DESC LIMIT 1`,
      [pipeline],
    );
    return rows[0] ? toFire(rows[0]) : null;
  });
}
