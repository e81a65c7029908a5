import type { JsonObject, JsonValue } from '../core/json.js';
import type { AttemptState, RunState, TaskState } from '../core/states.js';
import type { Plan } from '../compile/plan.js';
import type { ErrorInfo } from '../errors.js';
import type { LogLevel } from '../handlers/types.js';

/**
 * The RunStore port: everything the engine, scheduler, CLI and server persist goes through it.
 * Adapters: memory/ (tests, benchmarks), sqlite/ (the embedded default), postgres/ (distributed).
 * One conformance suite (test/store/conformance.ts) runs against every adapter.
 *
 * IMPORTANT: a promise returned by a write resolves only once the write is durable. Adapters may
 * group writes that arrive together into one transaction (group commit), but never acknowledge
 * a write before its transaction has committed, and never reorder writes.
 *
 * Times are ISO 8601 strings (UTC, with milliseconds): what is stored and what the JSON API shows.
 */

export type RunTrigger = 'manual' | 'schedule' | 'api' | 'resume';

export interface RunRecord {
  id: string;
  pipeline: string;
  state: RunState;
  params: JsonObject;
  /** The exact compiled pipeline this run runs: editing the file never changes a run. */
  plan: Plan;
  planHash: string;
  trigger: RunTrigger;
  /** The schedule time this run fires for; (pipeline, scheduledFor) is unique when not null. */
  scheduledFor: string | null;
  /** Whole-run attempt (pipeline-level retries), from 1. */
  attempt: number;
  /** "host:pid" of the process executing it, for finding interrupted runs. */
  owner: string | null;
  heartbeatAt: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** When a run in `retrying` is due to run again. */
  nextAttemptAt: string | null;
  error: ErrorInfo | null;
  /** Set by `weft cancel` from another process; the owner sees it and cancels. */
  cancelRequested: boolean;
}

export interface TaskRunRecord {
  runId: string;
  task: string;
  state: TaskState;
  /** Attempts started so far. */
  attempts: number;
  /** The handler's return value; null when none (yet). */
  output: JsonValue; // null when absent
  error: ErrorInfo | null;
  /** Why it was skipped or cancelled, in words. */
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** When a task in `retrying` is due for its next attempt. */
  nextAttemptAt: string | null;
}

export interface AttemptRecord {
  runId: string;
  task: string;
  /** From 1. */
  attempt: number;
  state: AttemptState;
  /** The delay waited before this attempt (0 for the first). */
  delayMs: number;
  startedAt: string;
  finishedAt: string | null;
  error: ErrorInfo | null;
  /** Who ran it: "host:pid" or a worker id. */
  worker: string | null;
  /** Process group of a shell child, so recovery can kill it. */
  pid: number | null;
}

export interface LogRecord {
  /** Increasing per store; lets `weft logs --follow` ask for what came after. */
  seq: number;
  runId: string;
  task: string | null;
  attempt: number | null;
  ts: string;
  level: LogLevel | 'stdout' | 'stderr';
  message: string;
}

export type HookEvent = 'task_failure' | 'run_failure' | 'run_success' | 'run_recovery';
export type HookState = 'pending' | 'done' | 'failed';

/** A hook that became due. Stored before it runs so that a kill cannot lose it (at least once). */
export interface HookRecord {
  runId: string;
  /** Unique within the run, e.g. "task_failure:extract:0". */
  key: string;
  event: HookEvent;
  task: string | null;
  handler: string;
  state: HookState;
  error: ErrorInfo | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface NewRun {
  id: string;
  pipeline: string;
  plan: Plan;
  params: JsonObject;
  trigger: RunTrigger;
  scheduledFor: string | null;
  state: Extract<RunState, 'queued' | 'running'>;
  owner: string | null;
  createdAt: string;
}

export type RunPatch = Partial<
  Pick<
    RunRecord,
    | 'state'
    | 'attempt'
    | 'owner'
    | 'heartbeatAt'
    | 'startedAt'
    | 'finishedAt'
    | 'nextAttemptAt'
    | 'error'
    | 'cancelRequested'
  >
>;
export type TaskRunPatch = Partial<Omit<TaskRunRecord, 'runId' | 'task'>>;
export type AttemptPatch = Partial<Pick<AttemptRecord, 'state' | 'finishedAt' | 'error' | 'pid'>>;
export type HookPatch = Partial<Pick<HookRecord, 'state' | 'error' | 'finishedAt'>>;

/** Conditions for a fenced update: it applies only while they hold. */
export interface RunCondition {
  states?: readonly RunState[];
  owner?: string | null;
}
export interface TaskRunCondition {
  states?: readonly TaskState[];
  attempts?: number;
}
export interface AttemptCondition {
  states?: readonly AttemptState[];
}

export interface RunQuery {
  pipeline?: string;
  states?: readonly RunState[];
  /** Default 50. */
  limit?: number;
  offset?: number;
}

export interface LogQuery {
  task?: string;
  afterSeq?: number;
  limit?: number;
}

/** What the scheduler decided about one schedule time of one pipeline. */
export type FireOutcome = 'ran' | 'skipped' | 'missed' | 'queued';

/**
 * One schedule time of one pipeline, recorded once: (pipeline, scheduledFor) is unique, and
 * recording it is how a scheduler takes a fire, so two schedulers on one store never both act on it.
 */
export interface FireRecord {
  pipeline: string;
  /** The schedule time (ISO, UTC). */
  scheduledFor: string;
  outcome: FireOutcome;
  /** Why it was skipped, missed or queued, in words; null when it ran. */
  reason: string | null;
  /** The run it started (or will start, when queued); null when none. */
  runId: string | null;
  recordedAt: string;
}

export interface FireQuery {
  pipeline?: string;
  /** Default 50. */
  limit?: number;
}

export type RunRequestState = 'pending' | 'claimed' | 'done' | 'failed';

/** A request to run a pipeline now (`weft trigger`), picked up by a scheduler polling the store. */
export interface RunRequestRecord {
  id: string;
  pipeline: string;
  /** Already checked against the pipeline's params by whoever asked. */
  params: JsonObject;
  state: RunRequestState;
  requestedAt: string;
  /** Who took it ("host:pid"). */
  claimedBy: string | null;
  claimedAt: string | null;
  /** The run it became; null until then, or when it failed. */
  runId: string | null;
  error: ErrorInfo | null;
  completedAt: string | null;
}

export interface NewRunRequest {
  id: string;
  pipeline: string;
  params: JsonObject;
  requestedAt: string;
}

/**
 * What `prune` deletes: history that finished before `before` (ISO). Never a run that can still
 * change (queued, running, retrying, interrupted), nor one with a hook still pending, nor one that
 * failure-counting hooks may still count back to (src/store/prune-sql.ts), nor one a fire points to;
 * never the newest fire of a pipeline (catch-up starts from it), nor a fire whose run does not
 * exist yet (it is still to be created); never a request not yet done. Plans are kept: a process
 * that created a run of one may create another without sending it again.
 */
export interface PruneQuery {
  before: string;
  /** Count what would go; delete nothing. */
  dryRun?: boolean;
  /** Stops between batches (what went so far stays gone and is reported). */
  signal?: AbortSignal;
}

export interface PruneReport {
  /** Finished runs, with their task runs, attempts, log lines and hooks. */
  runs: number;
  fires: number;
  runRequests: number;
}

/** The run states `prune` may delete: those nothing moves a run out of by itself. */
export const PRUNABLE_RUN_STATES = ['succeeded', 'failed', 'cancelled'] as const;

export interface RunStore {
  /** "sqlite", "postgres", "memory". */
  readonly kind: string;
  /** Where it is, for messages (a file path, a URL without password). */
  readonly location: string;

  /** Creates the run and a pending task run for each task of its plan, atomically. Throws RUN_DUPLICATE. */
  createRun(run: NewRun): Promise<RunRecord>;
  getRun(id: string): Promise<RunRecord | null>;
  /** Newest first. */
  listRuns(query?: RunQuery): Promise<RunRecord[]>;
  /** Returns false (and changes nothing) when the condition does not hold or the run is unknown. */
  updateRun(id: string, patch: RunPatch, condition?: RunCondition): Promise<boolean>;

  getTaskRuns(runId: string): Promise<TaskRunRecord[]>;
  updateTaskRun(
    runId: string,
    task: string,
    patch: TaskRunPatch,
    condition?: TaskRunCondition,
  ): Promise<boolean>;

  insertAttempt(attempt: AttemptRecord): Promise<void>;
  updateAttempt(
    runId: string,
    task: string,
    attempt: number,
    patch: AttemptPatch,
    condition?: AttemptCondition,
  ): Promise<boolean>;
  /** Ordered by task, then attempt. */
  getAttempts(runId: string, task?: string): Promise<AttemptRecord[]>;

  appendLogs(lines: readonly Omit<LogRecord, 'seq'>[]): Promise<void>;
  /** Ordered by seq. */
  getLogs(runId: string, query?: LogQuery): Promise<LogRecord[]>;

  /** Inserts hooks; a hook whose (runId, key) exists already is left as it is. */
  addHooks(hooks: readonly HookRecord[]): Promise<void>;
  updateHook(runId: string, key: string, patch: HookPatch): Promise<boolean>;
  getHooks(runId: string, states?: readonly HookState[]): Promise<HookRecord[]>;

  /** Records a fire; returns false (and changes nothing) when (pipeline, scheduledFor) is recorded already. */
  recordFire(fire: FireRecord): Promise<boolean>;
  /** Newest schedule time first (then by pipeline). */
  listFires(query?: FireQuery): Promise<FireRecord[]>;
  /** The fire with the latest schedule time of a pipeline, or null. */
  lastFire(pipeline: string): Promise<FireRecord | null>;

  /** Stores a pending run request. Throws RUN_DUPLICATE when its id exists. */
  requestRun(request: NewRunRequest): Promise<RunRequestRecord>;
  /**
   * Takes up to `limit` pending requests, oldest first, atomically marking them claimed by
   * `owner` at `now` (ISO): a request is claimed once, whoever else asks at the same time. With
   * `staleBefore` (ISO), requests still `claimed` from before it are taken again too: their
   * claimer died or lost the store between claiming and completing them (takeRunRequests makes
   * taking one twice harmless: the run id is the request's).
   */
  claimRunRequests(
    limit: number,
    owner: string,
    now: string,
    staleBefore?: string,
  ): Promise<RunRequestRecord[]>;
  /**
   * Closes a claimed request: `done` with the run it became, or `failed` with an error. Returns
   * false when the request is unknown or not claimed.
   */
  completeRunRequest(
    id: string,
    runId: string | null,
    error: ErrorInfo | null,
    completedAt: string,
  ): Promise<boolean>;
  getRunRequest(id: string): Promise<RunRequestRecord | null>;

  /**
   * Deletes old history (see PruneQuery), in batches so that other writers are held up briefly,
   * and says how much went. Safe while schedulers and workers use the store.
   */
  prune(query: PruneQuery): Promise<PruneReport>;

  /** Resolves once every write accepted so far is durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
