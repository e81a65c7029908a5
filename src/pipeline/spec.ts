import type { JsonValue } from '../core/json.js';

/**
 * A pipeline as the user wrote it, after it passed the JSON Schema (schema/pipeline.schema.json).
 * `*Spec` types are input; the compiled form lives in compile/plan.ts. A test checks that these
 * types and the schema name the same keys, so the two cannot drift.
 */

/** "60s", "5m", "1h30m", "250ms", or a number of seconds. */
export type DurationSpec = string | number;

export type OverlapPolicy = 'skip' | 'queue' | 'allow';
export type CatchupPolicy = 'none' | 'latest' | 'all';
export type Backoff = 'fixed' | 'exponential';
export type TriggerRule = 'all_success' | 'all_done' | 'one_failed' | 'all_failed';
export type ParamType = 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array';

export interface ScheduleObjectSpec {
  cron: string;
  timezone?: string;
  overlap?: OverlapPolicy;
  catchup?: CatchupPolicy;
  /** With catchup `all`: the most missed fires run after downtime. */
  catchup_limit?: number;
  start_deadline?: DurationSpec;
}
export type ScheduleSpec = string | ScheduleObjectSpec;

export interface ParamSpec {
  type: ParamType;
  default?: JsonValue;
  description?: string;
  enum?: JsonValue[];
}

export interface HookObjectSpec {
  handler: string;
  with?: JsonValue;
  /** Pipeline on_failure only: fire on the Nth failure in a row. */
  after_consecutive_failures?: number;
  /** How long the hook may run (a duration); default 5m. */
  timeout?: string | number;
}
export type HookSpec = string | HookObjectSpec;

/** Settings shared by `defaults` and each task. */
export interface TaskSettingsSpec {
  retries?: number;
  retry_delay?: DurationSpec;
  backoff?: Backoff;
  max_retry_delay?: DurationSpec;
  jitter?: boolean;
  timeout?: DurationSpec;
  trigger_rule?: TriggerRule;
  continue_on_error?: boolean;
  queue?: string;
  on_failure?: HookSpec[];
}

export interface TaskSpec extends TaskSettingsSpec {
  handler?: string;
  with?: JsonValue;
  depends_on?: string | string[];
  when?: string | boolean;
  description?: string;
}

export interface PipelineSpec {
  name: string;
  description?: string;
  schedule?: ScheduleSpec;
  params?: Record<string, ParamSpec>;
  defaults?: TaskSettingsSpec;
  concurrency?: number;
  retries?: number;
  retry_delay?: DurationSpec;
  timeout?: DurationSpec;
  on_failure?: HookSpec[];
  on_success?: HookSpec[];
  on_recovery?: HookSpec[];
  /** Names of environment variables whose values are masked wherever they would appear. */
  secrets?: string[];
  resume_interrupted?: boolean;
  tasks: Record<string, TaskSpec>;
}
