import type { JsonValue } from '../core/json.js';
import type { TaskState } from '../core/states.js';
import type { ErrorInfo } from '../errors.js';

/**
 * The TaskQueue port: how runs are handed to workers when one process is not enough. The
 * PostgreSQL adapter (src/store/postgres/queue.ts) keeps ready tasks in a table that workers claim
 * with `FOR UPDATE SKIP LOCKED`, and wakes them with LISTEN/NOTIFY.
 *
 * IMPORTANT (fencing): a claim is a lease, identified by its `lease` number. Every write after a
 * claim names the lease and its worker, and changes nothing once the lease has expired and was
 * reaped: a worker that comes back after losing its lease cannot overwrite a newer attempt.
 */

/** A task a worker has leased. */
export interface ClaimedTask {
  runId: string;
  task: string;
  queue: string;
  /** The attempt this lease runs (from 1): recorded already when `started`, else on startAttempt. */
  attempt: number;
  /** The fencing token of this lease. */
  lease: number;
  /**
   * False when the task has a `when` condition: the worker evaluates it first, then either
   * starts the attempt (startAttempt) or completes the task as skipped.
   */
  started: boolean;
  /** The delay waited before this attempt (0 for the first). */
  delayMs: number;
  /** The run attempt (pipeline-level retries) it belongs to. */
  runAttempt: number;
}

export type TaskCompletion = Pick<ClaimedTask, 'runId' | 'task' | 'lease' | 'attempt'> &
  (
    | { kind: 'succeeded'; output: JsonValue }
    | { kind: 'failed'; state: 'failed' | 'timed_out'; error: ErrorInfo; retryable: boolean }
    | { kind: 'cancelled'; error: ErrorInfo }
    | { kind: 'skipped'; reason: string }
  );

export interface WorkerInfo {
  id: string;
  queues: readonly string[];
  concurrency: number;
  host: string;
  pid: number;
}

export interface LeaseRenewal {
  /** Leases still held (renewed). A lease asked about but missing here was lost. */
  held: { runId: string; task: string; lease: number }[];
  /** Runs of held tasks with a cancel request. */
  cancelRequested: string[];
  /** Runs of held tasks past their pipeline `timeout` (and not asked to cancel). */
  timedOut?: string[];
}

export interface ReapResult {
  /** Attempts recorded `lost` (their leases expired). */
  lost: number;
  /** Runs whose cancel request was applied to their tasks that were not running. */
  cancelled: number;
  /** Runs whose retry delay ended (retrying -> running). */
  resumed: number;
  /** Runs found past their pipeline `timeout`: their tasks stopped, the run failing with RUN_TIMEOUT. */
  timedOut: number;
}

export interface QueueHealth {
  queue: string;
  /** Tasks ready to run now. */
  ready: number;
  /** Tasks waiting for a retry delay. */
  delayed: number;
  /** Tasks leased by a worker. */
  running: number;
  /** Workers alive (recent heartbeat) that take this queue. */
  workers: number;
}

export interface HookClaim {
  runId: string;
  key: string;
}

export interface UpstreamRow {
  task: string;
  state: TaskState;
  output: JsonValue;
}

export interface TaskQueue {
  /** Where it is, for messages. */
  readonly location: string;

  /**
   * Takes a created (`queued`) run: it becomes `running`, owned by the queue, and its first tasks
   * ready. Returns false when the run is not queued (taken already, finished, unknown).
   */
  startRun(runId: string): Promise<boolean>;

  /** Leases up to `limit` ready tasks of these queues for `leaseMs`, oldest first. */
  claim(workerId: string, queues: readonly string[], limit: number, leaseMs: number): Promise<ClaimedTask[]>;
  /** Starts the attempt of a claim whose `when` said run. False when the lease was lost. */
  startAttempt(workerId: string, claim: ClaimedTask): Promise<boolean>;
  /**
   * Records results, in one transaction: attempts, task runs, dependents made ready or skipped,
   * the run finished with its hooks. `recorded` has one boolean per completion: false when its
   * lease was lost (nothing of it was written). With `next`, the same transaction also claims up
   * to `next.limit` ready tasks (those it just made ready first in line): a worker moving along a
   * chain needs one transaction per task, and wakes nobody else for work it takes itself.
   */
  complete(
    workerId: string,
    completions: readonly TaskCompletion[],
    next?: { queues: readonly string[]; limit: number; leaseMs: number },
  ): Promise<{ recorded: boolean[]; claimed: ClaimedTask[] }>;
  /** Gives back every lease `workerId` holds (it is stopping): the next reap makes them ready again. */
  releaseLeases(workerId: string): Promise<void>;
  /**
   * Extends the leases `workerId` holds — only those numbered in `leases` when given — and its
   * worker heartbeat. A worker names the leases it is working on: one it gave up on (a claim
   * whose reply it never got, a task whose result it could not report) must expire, so that the
   * reaper hands the task to someone, rather than be kept alive by heartbeats forever.
   */
  renewLeases(workerId: string, leaseMs: number, leases?: readonly number[]): Promise<LeaseRenewal>;
  /**
   * Housekeeping any worker or scheduler runs periodically, safe concurrently: expired leases
   * become lost attempts (the task ready again), cancel requests reach tasks nobody runs, runs
   * whose retry delay ended run again, and queue-owned runs keep a fresh heartbeat.
   */
  reap(): Promise<ReapResult>;
  /** In how many ms the next ready task of these queues is due (0: now), or null when none is queued. */
  nextDueIn(queues: readonly string[]): Promise<number | null>;

  /** Leases pending hooks (any queue) for `leaseMs`. */
  claimHooks(workerId: string, limit: number, leaseMs: number): Promise<HookClaim[]>;
  /** Extends the lease on a hook `workerId` is running; false when it is no longer its own. */
  renewHook(workerId: string, claim: HookClaim, leaseMs: number): Promise<boolean>;
  /** Removes a hook's queue entry once it ran (its record says done or failed). */
  finishHook(workerId: string, claim: HookClaim): Promise<void>;

  /** States and outputs of some task runs of a run (upstream values for expressions). */
  taskOutputs(runId: string, tasks: readonly string[]): Promise<UpstreamRow[]>;

  registerWorker(info: WorkerInfo): Promise<void>;
  unregisterWorker(workerId: string): Promise<void>;
  /** Queues with tasks and how many live workers take them. */
  queueHealth(): Promise<QueueHealth[]>;

  /**
   * Calls `onWake(queue)` when tasks of a queue became ready, `onWake(null)` when hooks became
   * pending. Resolves once listening; the returned function stops listening.
   */
  listen(onWake: (queue: string | null) => void): Promise<() => Promise<void>>;

  close(): Promise<void>;
}

/** The owner recorded on runs the queue executes. "host:pid"-shaped, on no real host: see interrupted.ts. */
export const QUEUE_RUN_OWNER = 'weft-queue:1';
