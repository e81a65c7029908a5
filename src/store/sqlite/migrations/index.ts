import { migration001 } from './001-initial.js';
import { migration002 } from './002-schedule.js';
import { migration003 } from './003-retention.js';

export interface Migration {
  /** 1, 2, 3 … with no gaps: a store's schema version is the highest one applied. */
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. Append only. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial', sql: migration001 },
  { version: 2, name: 'schedule', sql: migration002 },
  { version: 3, name: 'retention', sql: migration003 },
];
