import pg from 'pg';

/**
 * The connection pool of a PostgreSQL store, with the value parsers the adapter relies on:
 *  - json comes back as its text, so the adapter parses it itself (prototype-free dicts for params
 *    and plans, one frozen plan per hash) exactly as the SQLite adapter does;
 *  - timestamptz comes back as an ISO string in UTC with milliseconds, the port's time format;
 *  - bigint (log seq, delays, ordinality) comes back as a number; all ours stay far below 2^53.
 */

const JSON_OID = 114;
const INT8_OID = 20;
const TIMESTAMPTZ_OID = 1184;

const parseTimestamp = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => unknown;

type TextParser = (text: string) => unknown;
const defaultParser = (oid: number, format: 'text' | 'binary'): TextParser =>
  pg.types.getTypeParser(oid, format) as TextParser;

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): TextParser => {
    if (format === 'binary') return defaultParser(oid, 'binary');
    switch (oid) {
      case JSON_OID:
        return (text: string) => text;
      case INT8_OID:
        return (text: string) => Number(text);
      case TIMESTAMPTZ_OID:
        return (text: string) => {
          const value = parseTimestamp(text);
          // 'infinity' cannot be written through the port; keep whatever came back rather than throw.
          return value instanceof Date && !Number.isNaN(value.getTime()) ? value.toISOString() : text;
        };
      default:
        return defaultParser(oid, 'text');
    }
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export interface StorePoolOptions {
  /** Schema to put first on the search_path of every connection. */
  schema?: string;
  /** Connections at most (default 4): one writes batches, the others serve reads. */
  poolSize?: number;
}

export function createStorePool(url: string, options: StorePoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: Math.max(2, options.poolSize ?? 4),
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    types,
    // The server splits `options` on spaces, so a space in the name is escaped with a backslash.
    ...(options.schema !== undefined
      ? { options: `-c search_path=${quoteIdent(options.schema).replace(/[\\ ]/g, '\\$&')}` }
      : {}),
  });
  // An idle client that loses its connection emits here; the next query reports the problem instead.
  pool.on('error', () => undefined);
  // A checked-out client has no pool listener: a connection dropped between two of its queries (in
  // a batch's transaction, say) would emit 'error' with none and crash the process. The next query
  // on it fails instead ("not queryable"), and the write queue discards it as broken.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** A SQL identifier, quoted. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
