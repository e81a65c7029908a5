import { HOOK_PATCH_FIELDS } from '../patches.js';
import { type HookRow, toHook } from '../records.js';
import type { HookPatch, HookRecord, HookState } from '../run-store.js';
import { asJson, placeholders, setClause, type SqliteConnection, type SqlValues } from './connection.js';

const INSERT_HOOK = `INSERT INTO hooks (run_id, key, event, task, handler, state, error, created_at, finished_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO NOTHING`;

export function addHooks(conn: SqliteConnection, hooks: readonly HookRecord[]): Promise<void> {
  const rows: SqlValues[] = hooks.map((h) => [
    h.runId,
    h.key,
    h.event,
    h.task,
    h.handler,
    h.state,
    asJson(h.error),
    h.createdAt,
    h.finishedAt,
  ]);
  return conn.write(() => conn.insertMany(INSERT_HOOK, rows));
}

export function updateHook(
  conn: SqliteConnection,
  runId: string,
  key: string,
  patch: HookPatch,
): Promise<boolean> {
  const set = setClause(HOOK_PATCH_FIELDS, patch);
  const sql = `UPDATE hooks SET ${set.sql} WHERE run_id = ? AND key = ?`;
  const values = [...set.values, runId, key];
  return conn.write(() => conn.statement(sql).run(...values).changes > 0);
}

export function getHooks(
  conn: SqliteConnection,
  runId: string,
  states?: readonly HookState[],
): Promise<HookRecord[]> {
  return conn.read(() => {
    if (states?.length === 0) return [];
    const sql = `SELECT * FROM hooks WHERE run_id = ? ${
      states ? `AND state IN (${placeholders(states.length)})` : ''
    } ORDER BY created_at, key`;
    const rows = conn.statement(sql).all(runId, ...(states ?? [])) as HookRow[];
    return rows.map(toHook);
  });
}
