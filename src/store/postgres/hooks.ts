import { HOOK_PATCH_FIELDS } from '../patches.js';
import { type HookRow, toHook } from '../records.js';
import type { HookPatch, HookRecord, HookState } from '../run-store.js';
import { encodeValue, insertHooksPart, type SqlValue } from './statements.js';
import type { StoreConnection } from './store-connection.js';

export function addHooks(conn: StoreConnection, hooks: readonly HookRecord[]): Promise<void> {
  const payload: SqlValue[][] = hooks.map((h) => [
    h.runId,
    h.key,
    h.event,
    h.task,
    h.handler,
    h.state,
    encodeValue('json', h.error),
    h.createdAt,
    h.finishedAt,
  ]);
  const keys = hooks.map((h) => ['hooks', h.runId, h.key].join('\u0000'));
  return conn.write({ group: 'addHooks', run: { part: insertHooksPart }, payload, keys });
}

export function updateHook(
  conn: StoreConnection,
  runId: string,
  key: string,
  patch: HookPatch,
): Promise<boolean> {
  return conn.update(
    'hooks',
    [
      [{ column: 'run_id', type: 'text' }, runId],
      [{ column: 'key', type: 'text' }, key],
    ],
    HOOK_PATCH_FIELDS,
    patch,
    [],
  );
}

export function getHooks(
  conn: StoreConnection,
  runId: string,
  states?: readonly HookState[],
): Promise<HookRecord[]> {
  return conn.read(async () => {
    if (states?.length === 0) return [];
    const rows = await conn.rows<HookRow>(
      `SELECT run_id, key, event, task, handler, state, error, created_at, finished_at FROM hooks
       WHERE run_id = $1 ${states ? 'AND state = ANY ($2::text[])' : ''} ORDER BY created_at, key`,
      states ? [runId, states] : [runId],
    );
    return rows.map(toHook);
  });
}
