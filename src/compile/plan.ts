import type { JsonValue } from '../core/json.js';
import type { Backoff, CatchupPolicy, OverlapPolicy, ParamSpec, TriggerRule } from '../pipeline/spec.js';

/**
 * The compiled pipeline: defaults applied, durations in milliseconds, dependencies resolved and
 * ordered. Plain JSON (no class instances, no Maps) because every run stores the exact Plan it ran,
 * and workers load it back. Maps keyed by task name are prototype-free dicts.
 */

export interface SourcePosition {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
}

export interface RetryPolicy {
  /** Retries after the first attempt: `retries: 3` is at most 4 attempts. */
  retries: number;
  delayMs: number;
  backoff: Backoff;
  /** Cap on the delay after backoff; null for none. */
  maxDelayMs: number | null;
  /** Spread each delay randomly by up to ±20 %. */
  jitter: boolean;
}

export interface PlanHook {
  handler: string;
  /** Unresolved: may hold expressions. */
  with: JsonValue; // null when absent
  afterConsecutiveFailures: number | null;
  /**
   * The hook's `timeout`, or DEFAULT_HOOK_TIMEOUT_MS (engine/hook-defaults.ts). Always set by the
   * compiler; absent in plans stored before hooks had timeouts, which get the default.
   */
  timeoutMs?: number;
  position: SourcePosition;
}

export interface PlanTask {
  name: string;
  handler: string;
  /** Unresolved: may hold `${{ … }}` expressions, resolved just before each attempt. */
  with: JsonValue; // null when absent
  dependsOn: string[];
  /** Tasks that depend on this one directly. */
  dependents: string[];
  retry: RetryPolicy;
  timeoutMs: number | null;
  /** An expression, a literal boolean, or null for "always". */
  when: string | boolean | null;
  triggerRule: TriggerRule;
  continueOnError: boolean;
  onFailure: PlanHook[];
  queue: string;
  description: string | null;
  /** Index of the topological stage (tasks of one stage can run side by side). */
  stage: number;
  position: SourcePosition;
}

export interface PlanSchedule {
  cron: string;
  timezone: string;
  overlap: OverlapPolicy;
  catchup: CatchupPolicy;
  catchupLimit: number;
  startDeadlineMs: number | null;
  position: SourcePosition;
}

export interface Plan {
  /** Version of this shape, so stored plans can be read by later weft versions. */
  version: 1;
  name: string;
  description: string | null;
  /** The file it was compiled from, as given. */
  file: string;
  /** sha256 of the source text. */
  hash: string;
  schedule: PlanSchedule | null;
  params: Record<string, ParamSpec>;
  concurrency: number;
  /** Whole-run retry policy. */
  retry: RetryPolicy;
  timeoutMs: number | null;
  onFailure: PlanHook[];
  onSuccess: PlanHook[];
  onRecovery: PlanHook[];
  secrets: string[];
  resumeInterrupted: boolean;
  /** Prototype-free dict: task name -> task. */
  tasks: Record<string, PlanTask>;
  /** Every task name in a topological order (stable: declaration order among equals). */
  order: string[];
  /** Topological stages: tasks whose dependencies are all in earlier stages. */
  stages: string[][];
}
