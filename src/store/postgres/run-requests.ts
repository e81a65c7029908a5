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
import {
  claimRunRequestsExecutor,
  completeRunRequestExecutor,
  encodeValue,
  requestRunExecutor,
  RUN_REQUEST_FIELDS,
  type SqlValue,
} from './statements.js';
import { RUN_REQUESTS_KEY, type StoreConnection } from './store-connection.js';

export function requestRun(conn: StoreConnection, request: NewRunRequest): Promise<RunRequestRecord> {
  // Copied now: the caller may change its objects before the batch runs.
  const paramsText = JSON.stringify(request.params);
  const payload: SqlValue[] = [request.id, request.pipeline, paramsText, request.requestedAt];
  return conn
    .write({
      group: 'requestRun',
      run: { execute: requestRunExecutor },
      payload,
      keys: [RUN_REQUESTS_KEY],
    })
    .then(() => pendingRunRequest(request, parseParams(paramsText)));
}

export function claimRunRequests(
  conn: StoreConnection,
  limit: number,
  owner: string,
  now: string,
  staleBefore?: string,
): Promise<RunRequestRecord[]> {
  const payload: SqlValue[] = [
    encodeValue('text', owner),
    now,
    Math.max(0, Math.floor(limit)),
    staleBefore ?? null,
  ];
  return conn
    .write<RunRequestRow[]>({
      group: 'claimRunRequests',
      run: { execute: claimRunRequestsExecutor },
      payload,
      keys: [RUN_REQUESTS_KEY],
    })
    .then((rows) =>
      // RETURNING has no order of its own: oldest first, as they were chosen.
      rows.map(toRunRequest).sort(compareRunRequests),
    );
}

export function completeRunRequest(
  conn: StoreConnection,
  id: string,
  runId: string | null,
  error: ErrorInfo | null,
  completedAt: string,
): Promise<boolean> {
  const payload: SqlValue[] = [
    completedRequestState(runId, error),
    runId,
    encodeValue('json', error),
    completedAt,
    id,
  ];
  return conn.write({
    group: 'completeRunRequest',
    run: { execute: completeRunRequestExecutor },
    payload,
    keys: [RUN_REQUESTS_KEY],
  });
}

export function getRunRequest(conn: StoreConnection, id: string): Promise<RunRequestRecord | null> {
  return conn.read(async () => {
    const rows = await conn.rows<RunRequestRow>(
      `SELECT ${RUN_REQUEST_FIELDS} FROM run_requests WHERE id = $1`,
      [id],
    );
    return rows[0] ? toRunRequest(rows[0]) : null;
  });
}
