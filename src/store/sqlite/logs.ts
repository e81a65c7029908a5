import { toLog } from '../records.js';
import type { LogQuery, LogRecord } from '../run-store.js';
import type { LogRow, SqliteConnection, SqlValues } from './connection.js';

const INSERT_LOG = 'INSERT INTO logs (run_id, task, attempt, ts, level, message) VALUES (?, ?, ?, ?, ?, ?)';

export function appendLogs(conn: SqliteConnection, lines: readonly Omit<LogRecord, 'seq'>[]): Promise<void> {
  if (lines.length === 0) return conn.write(() => undefined);
  const rows: SqlValues[] = lines.map((l) => [l.runId, l.task, l.attempt, l.ts, l.level, l.message]);
  return conn.write(() => {
    // One line needs no savepoint: a single statement is atomic on its own.
    if (rows.length === 1) conn.statement(INSERT_LOG).run(...rows[0]!);
    else conn.insertMany(INSERT_LOG, rows);
  });
}

export function getLogs(conn: SqliteConnection, runId: string, query: LogQuery = {}): Promise<LogRecord[]> {
  return conn.read(() => {
    const where = ['run_id = ?', 'seq > ?'];
    const values: (string | number)[] = [runId, query.afterSeq ?? 0];
    if (query.task !== undefined) {
      where.push('task = ?');
      values.push(query.task);
    }
    values.push(query.limit ?? -1);
    const rows = conn
      .statement(`SELECT * FROM logs WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
      .all(...values) as LogRow[];
    return rows.map((row) => toLog(row, row.message));
  });
}
