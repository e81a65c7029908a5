/**
 * The one precedence every setting follows, highest first. Documented in docs/operations.md and
 * printed by `weft config`, so "where did this value come from?" always has one answer.
 */
export const PRECEDENCE = ['flag', 'environment', 'config', 'default'] as const;
export type ValueSource = (typeof PRECEDENCE)[number];

export interface ConfigValue {
  value: string | null;
  source: ValueSource;
  /** Where exactly: `--store`, `WEFT_STORE`, `weft.config.ts (store)`, … */
  from: string;
}

export const PRECEDENCE_TEXT =
  'flags > environment (WEFT_*, DATABASE_URL, REDIS_URL) > weft.config.ts > defaults';
