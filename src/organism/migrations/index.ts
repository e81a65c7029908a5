import * as m001 from './001-organism-schema.js';

export interface OrganismMigration {
  version: number;
  name: string;
  sql: string;
  /** Extra SQL run in the same transaction when the timescaledb extension is available. */
  timescaleSql?: string;
}

/** In order; a new migration is appended, never inserted. */
export const ORGANISM_MIGRATIONS: readonly OrganismMigration[] = [
  { version: 1, name: m001.name, sql: m001.sql, timescaleSql: m001.timescaleSql },
];
