import type { ErrorInfo } from '../../errors.js';
import { parseParams } from '../json-codec.js';
import {
  compareRunRequests,
  completedRequestState,
  pendingRunRequest,
  type RunRequestRow,
  toRunRequest,
} from '../records.js';
import type { NewRunRequest, RunRequestRecord } from '../run-store.js';
import { runRequestExistsError } from '../store-errors.js';
import { asJson, type SqliteConnection } from './connection.js';

export function requestRun(conn: SqliteConnection, request: NewRunRequest): Promise<RunRequestRecord> {
  const paramsText = JSON.stringify(request.params);
  return conn.write(() => {
    const result = conn
      .statement(
        `INSERT INTO run_requests (id, pipeline, params, state, requested_at)
       VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (id) DO NOTHING`,
      )
      .run(request.id, request.pipeline, paramsText, request.requestedAt);
    if (result.changes === 0) throw runRequestExistsError(request.id);
    return pendingRunRequest(request, parseParams(paramsText));
  });
}

export function claimRunRequests(
  conn: SqliteConnection,
  limit: number,
  owner: string,
  now: string,
  staleBefore?: string,
): Promise<RunRequestRecord[]> {
  // One UPDATE inside the batch's BEGIN IMMEDIATE: another process claiming at the same time
  // waits for the lock, then finds these no longer pending.
  return conn.write(() => {
    const rows = conn
      .statement(
        `UPDATE run_requests SET state = 'claimed', claimed_by = ?, claimed_at = ?
       WHERE id IN (
         SELECT id FROM run_requests
         WHERE state = 'pending' OR (state = 'claimed' AND claimed_at < ?)
         ORDER BY requested_at, id LIMIT ?
       )
       RETURNING *`,
      )
      .all(owner, now, staleBefore ?? null, Math.max(0, Math.floor(limit))) as RunRequestRow[];
    // RETURNING has no order of its own.
    return rows.map(toRunRequest).sort(compareRunRequests);
  });
}

export function completeRunRequest(
  conn: SqliteConnection,
  id: string,
  runId: string | null,
  error: ErrorInfo | null,
  completedAt: string,
): Promise<boolean> {
  const values = [completedRequestState(runId, error), runId, asJson(error), completedAt, id];
  return conn.write(
    () =>
      conn
        .statement(
          `UPDATE run_requests SET state = ?, run_id = ?, error = ?, completed_at = ?
         WHERE id = ? AND state = 'claimed'`,
        )
        .run(...values).changes > 0,
  );
}

export function getRunRequest(conn: SqliteConnection, id: string): Promise<RunRequestRecord | null> {
  return conn.read(() => {
    const row = conn.statement('SELECT * FROM run_requests WHERE id = ?').get(id) as
      | RunRequestRow
      | undefined;
    return row ? toRunRequest(row) : null;
  });
}
