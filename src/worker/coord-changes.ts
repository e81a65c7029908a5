import type { JsonValue } from '../core/json.js';
import { assertTaskTransition, type TaskState } from '../core/states.js';
import type { ErrorInfo } from '../errors.js';

/**
 * What the coordination rules take and decide: the run as they see it, how its tasks ended, and
 * the task-run and queue writes they return for the adapter to apply.
 */
export interface RunView {
  id: string;
  /** The run attempt now running (pipeline-level retries), from 1. */
  attempt: number;
  /** The run attempt when the queue took the run: run retries are counted from it. */
  firstAttempt: number;
  cancelRequested: boolean;
  /**
   * Set once the run attempt is past the pipeline's `timeout`: the run stops as on a cancel
   * (nothing new starts, what does not run is cancelled with this message as the reason), then
   * fails with this error (RUN_TIMEOUT), as the interpreter's pass does.
   */
  timeout?: ErrorInfo;
}

/** Whether the run stops (a cancel request or its timeout), and the reason its tasks get. */
export function stopOf(run: RunView): { stopping: boolean; reason: string } {
  if (run.cancelRequested) return { stopping: true, reason: 'the run was cancelled' };
  if (run.timeout) return { stopping: true, reason: run.timeout.message };
  return { stopping: false, reason: '' };
}

/** How a task ended, as a worker (or the reaper) reports it. */
export type TaskOutcome =
  | { kind: 'succeeded'; output: JsonValue }
  | {
      kind: 'failed';
      error: ErrorInfo;
      /** False for NonRetryableError and other non-retryable errors: no retry. */
      retryable: boolean;
      /** The attempt number that failed. */
      attempt: number;
      /** Which try this was within the run attempt, lost attempts not counted (from 1). */
      nth: number;
    }
  | { kind: 'cancelled'; reason: string }
  /** Its `when` condition was false: it never started. */
  | { kind: 'skipped'; reason: string }
  /** Its worker lost the lease (died); `lost` counts this one. */
  | { kind: 'lost'; error: ErrorInfo; attempt: number; lost: number };

export interface FinishedTask {
  task: string;
  /** The task-run state it ends from: `running`, or `pending` for a skipped `when`. */
  from: TaskState;
  outcome: TaskOutcome;
}

/** A task-run write: `to` reached from `from` (checked with assertTaskTransition). */
export interface TaskChange {
  type: 'task';
  task: string;
  from: TaskState;
  to: TaskState;
  output?: JsonValue;
  error?: ErrorInfo | null;
  reason?: string | null;
  /** Epoch ms; null clears it. */
  nextAttemptAt?: number | null;
  /** Sets finishedAt to now. */
  finished?: boolean;
  /** Clears output, error, reason and times (a task run sent back to pending for a run retry). */
  reset?: boolean;
}

/** The task goes (back) into its queue, available at `availableAt`. */
export interface QueueChange {
  type: 'enqueue';
  task: string;
  queue: string;
  availableAt: number;
  /** The delay waited before the attempt it will start. */
  delayMs: number;
  /**
   * `new`: a fresh queue entry (its retries counted from the attempts so far);
   * `retry`: the same entry again after a failed attempt;
   * `lost`: the same entry again after a lost attempt (which then counts as neither a retry nor
   * a new start).
   */
  mode: 'new' | 'retry' | 'lost';
}

/** The task leaves the queue (it finished). */
export interface DequeueChange {
  type: 'dequeue';
  task: string;
}

export type Change = TaskChange | QueueChange | DequeueChange;

export function change(c: Omit<TaskChange, 'type'>): TaskChange {
  assertTaskTransition(c.task, c.from, c.to);
  return { type: 'task', ...c };
}
