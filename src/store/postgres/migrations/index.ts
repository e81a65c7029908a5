import { migration001 } from './001-initial.js';
import { migration002 } from './002-schedule.js';
import { migration003 } from './003-queue.js';
import { migration004 } from './004-queue-limits.js';
import { migration005 } from './005-request-reclaim.js';
import { migration006 } from './006-retention.js';

export interface PostgresMigration {
  /** 1, 2, 3 … with no gaps: a database's schema version is the highest one applied. */
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. Append only. */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  { version: 1, name: 'initial', sql: migration001 },
  { version: 2, name: 'schedule', sql: migration002 },
  { version: 3, name: 'queue', sql: migration003 },
  { version: 4, name: 'queue-limits', sql: migration004 },
  { version: 5, name: 'request-reclaim', sql: migration005 },
  { version: 6, name: 'retention', sql: migration006 },
];
