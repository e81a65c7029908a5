import type { RunState } from '../core/states.js';
import type { Diagnostic, ErrorInfo } from '../errors.js';
import type { RunTrigger } from '../store/run-store.js';

/**
 * What `weft serve` reports, one log line each (see log-format.ts). Times are ISO strings;
 * `at` (when it happened, on the scheduler's clock) is given beside the event.
 */
export type SchedulerEvent =
  | { type: 'scheduler:started'; owner: string; pipelines: number; scheduled: number }
  | { type: 'scheduler:stopping'; running: number; graceMs: number }
  | { type: 'scheduler:stopped'; cancelled: number }
  | { type: 'scheduler:error'; message: string; error: ErrorInfo }
  /**
   * The tick loop came to a due fire more than the late grace after its time. `overslept`: its
   * timer fired late (the process was paused or starved of CPU, or the clock jumped forward);
   * `busy`: handling the fires before it took that long (a slow or locked store, a busy CPU).
   */
  | { type: 'scheduler:late'; dueAt: string; lateMs: number; cause: 'overslept' | 'busy' }
  | { type: 'pipeline:scheduled'; pipeline: string; cron: string; timezone: string; nextAt: string | null }
  | { type: 'pipeline:unscheduled'; pipeline: string; reason: string }
  | { type: 'file:loaded'; file: string; pipeline: string }
  | { type: 'file:reloaded'; file: string; pipeline: string }
  | { type: 'file:removed'; file: string; pipeline: string }
  /** An edit that does not validate: the previous version (if any) keeps running. */
  | { type: 'file:invalid'; file: string; message: string; diagnostics: Diagnostic[]; kept: boolean }
  /** Another scheduler on the same store recorded this fire first: this one backs off. */
  | { type: 'fire:taken'; pipeline: string; scheduledFor: string }
  | { type: 'fire:skipped'; pipeline: string; scheduledFor: string; reason: string }
  | { type: 'fire:missed'; pipeline: string; scheduledFor: string; reason: string }
  | { type: 'fire:queued'; pipeline: string; scheduledFor: string; reason: string }
  | { type: 'fire:dropped'; pipeline: string; scheduledFor: string; reason: string }
  | { type: 'catchup:capped'; pipeline: string; missed: number; limit: number }
  | {
      type: 'run:created';
      runId: string;
      pipeline: string;
      trigger: RunTrigger;
      scheduledFor: string | null;
      requestId: string | null;
    }
  /** lagMs: from the schedule time to the start, for scheduled runs. */
  | { type: 'run:started'; runId: string; pipeline: string; attempt: number; lagMs: number | null }
  | {
      type: 'run:retrying';
      runId: string;
      pipeline: string;
      attempt: number;
      delayMs: number;
      error: ErrorInfo | null;
    }
  | {
      type: 'task:retrying';
      runId: string;
      pipeline: string;
      task: string;
      attempt: number;
      delayMs: number;
      error: ErrorInfo;
    }
  | {
      type: 'run:finished';
      runId: string;
      pipeline: string;
      state: RunState;
      durationMs: number;
      error: ErrorInfo | null;
    }
  | { type: 'run:interrupted'; runId: string; pipeline: string; resuming: boolean }
  | { type: 'request:failed'; requestId: string; pipeline: string; error: ErrorInfo };

export type SchedulerEventType = SchedulerEvent['type'];

/** `at` is epoch milliseconds on the reporting side's clock. */
export type SchedulerLogListener = (event: SchedulerEvent, at: number) => void;
