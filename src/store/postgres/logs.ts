import { type LogRowBase, toLog } from '../records.js';
import type { LogQuery, LogRecord } from '../run-store.js';
import { encodeValue, insertLogsPart, type SqlValue } from './statements.js';
import type { StoreConnection } from './store-connection.js';

/** Log messages are bytea: text cannot hold every string a handler may print. */
type LogRow = LogRowBase & { message: Buffer };

export function appendLogs(conn: StoreConnection, lines: readonly Omit<LogRecord, 'seq'>[]): Promise<void> {
  const payload: SqlValue[][] = lines.map((l) => [
    l.runId,
    l.task,
    l.attempt,
    l.ts,
    l.level,
    encodeValue('bytea', l.message),
  ]);
  return conn.write({
    group: 'appendLogs',
    run: { part: insertLogsPart },
    payload,
    keys: [],
    sequenced: true,
  });
}

export function getLogs(conn: StoreConnection, runId: string, query: LogQuery = {}): Promise<LogRecord[]> {
  return conn.read(async () => {
    const values: unknown[] = [runId, query.afterSeq ?? 0, query.limit ?? null];
    let taskFilter = '';
    if (query.task !== undefined) {
      values.push(query.task);
      taskFilter = 'AND task = $4';
    }
    const rows = await conn.rows<LogRow>(
      `SELECT seq, run_id, task, attempt, ts, level, message FROM logs
       WHERE run_id = $1 AND seq > $2 ${taskFilter} ORDER BY seq LIMIT $3`,
      values,
    );
    return rows.map((row) => toLog(row, row.message.toString('utf8')));
  });
}
