import type { Plan, PlanTask } from '../compile/plan.js';
import type { JsonValue } from '../core/json.js';
import { assertRunTransition, assertTaskTransition, type RunState, type TaskState } from '../core/states.js';
import { WeftError, type ErrorInfo } from '../errors.js';
import { isFailureHookDue, newHookRecord, runHookKey, taskHookKey } from '../engine/hooks.js';
import { hasRetryLeft, retryDelayMs } from '../engine/retry-delay.js';
import { decideTrigger, type UpstreamOutcome } from '../engine/trigger-rules.js';
import type { HookRecord } from '../store/run-store.js';

/**
 * The coordination rules of distributed execution, as pure functions over a run's task states:
 * what becomes ready, skipped, retrying, cancelled or finished after tasks end, and how the run
 * ends. The PostgreSQL queue adapter applies what these return inside the transaction that
 * records the results, so no run is ever left stuck between tasks whichever process dies when.
 *
 * They follow the local interpreter (src/engine/: run-pass.ts with the task and attempt modules it uses, and execute-run.ts) rule for rule:
 * trigger rules through the same `decideTrigger`, retries through the same `hasRetryLeft` and
 * `retryDelayMs` (counted within a run attempt), the same run result and the same hook keys.
 *
 * A task's coordination state is coarser than its task-run state: the queue only needs to know
 * whether a task still waits for upstream tasks, is in the queue (ready, running or retrying: a
 * worker moves those), or has finished.
 */
export type CoordState = 'waiting' | 'queued' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

/** One character per task in plan order: how the adapter stores a run's coordination states. */
const CODES: Record<CoordState, string> = {
  waiting: 'w',
  queued: 'q',
  succeeded: 's',
  failed: 'f',
  skipped: 'k',
  cancelled: 'c',
};
const BY_CODE: Record<string, CoordState> = Object.fromEntries(
  Object.entries(CODES).map(([state, code]) => [code, state as CoordState]),
);

export function encodeStates(states: readonly CoordState[]): string {
  let out = '';
  for (const state of states) out += CODES[state];
  return out;
}

export function decodeStates(text: string): CoordState[] {
  const out: CoordState[] = new Array<CoordState>(text.length);
  for (let i = 0; i < text.length; i++) {
    const state = BY_CODE[text[i]!];
    if (!state)
      throw new WeftError('INTERNAL', `unknown coordination state "${text[i]!}"`, { retryable: false });
    out[i] = state;
  }
  return out;
}

/** The default cap on lost attempts of one task (workers that died holding it). */
export const DEFAULT_MAX_LOST_ATTEMPTS = 3;

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
function stopOf(run: RunView): { stopping: boolean; reason: string } {
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

export interface AdvanceInput {
  plan: Plan;
  /** The run's coordination states, by plan order (not changed: a new array is returned). */
  states: readonly CoordState[];
  run: RunView;
  finished: readonly FinishedTask[];
  /**
   * Only when the run stops (a cancel request, its timeout): queued tasks whose queue entries the adapter removed
   * (they were ready, not running), with their task-run state. Queued tasks not listed are running
   * on a worker, which cancels them.
   */
  withdrawn?: ReadonlyMap<string, TaskState>;
  now: number;
  random?: () => number;
  maxLostAttempts?: number;
}

export interface AdvanceResult {
  states: CoordState[];
  changes: Change[];
  /** Task-failure hooks now due. */
  hooks: HookRecord[];
  /** Every task has finished: the run ends (see completeRun). */
  complete: boolean;
}

interface PlanIndex {
  position: Map<string, number>;
  tasks: PlanTask[];
}

const indexes = new WeakMap<Plan, PlanIndex>();

/** Task name -> position in plan order (cached: plans are immutable). */
export function planIndex(plan: Plan): PlanIndex {
  let index = indexes.get(plan);
  if (!index) {
    const tasks = plan.order.map((name) => plan.tasks[name]!);
    index = { position: new Map(plan.order.map((name, i) => [name, i])), tasks };
    indexes.set(plan, index);
  }
  return index;
}

function outcomeOf(state: CoordState, task: PlanTask): UpstreamOutcome {
  switch (state) {
    case 'succeeded':
      return 'success';
    case 'failed':
      return task.continueOnError ? 'success' : 'failed';
    case 'skipped':
      return 'skipped';
    case 'cancelled':
      return 'cancelled';
    case 'waiting':
    case 'queued':
      return 'unfinished';
  }
}

function isUnfinished(state: CoordState): boolean {
  return state === 'waiting' || state === 'queued';
}

function change(c: Omit<TaskChange, 'type'>): TaskChange {
  assertTaskTransition(c.task, c.from, c.to);
  return { type: 'task', ...c };
}

/** Mutable working set of one advance: the states and what was decided. */
class Coordinator {
  readonly plan: Plan;
  readonly index: PlanIndex;
  readonly states: CoordState[];
  readonly changes: Change[] = [];
  readonly hooks: HookRecord[] = [];
  readonly now: number;
  #evaluate: number[] = [];

  constructor(plan: Plan, states: readonly CoordState[], now: number) {
    if (states.length !== plan.order.length) {
      throw new WeftError(
        'INTERNAL',
        `the coordination states hold ${states.length} task(s), the plan ${plan.order.length}`,
        { retryable: false },
      );
    }
    this.plan = plan;
    this.index = planIndex(plan);
    this.states = [...states];
    this.now = now;
  }

  at(task: string): number {
    const i = this.index.position.get(task);
    if (i === undefined)
      throw new WeftError('INTERNAL', `the plan has no task "${task}"`, { retryable: false });
    return i;
  }

  /** Queues the dependents of a task that just finished for a decision. */
  finishedAt(i: number): void {
    for (const dependent of this.index.tasks[i]!.dependents) this.#evaluate.push(this.at(dependent));
  }

  /**
   * Decides waiting tasks queued for evaluation (transitively: a skip is a finish too). Tasks that
   * can run are enqueued at `availableAt`.
   */
  decide(availableAt: number, delayMs: number): void {
    // Many finished upstream tasks of one dependent (a fan-in) ask for its decision many times:
    // it is taken again only when a state changed since (a skip, which is a finish too).
    const decidedAt = new Map<number, number>();
    let version = 0;
    while (this.#evaluate.length > 0) {
      const i = this.#evaluate.pop()!;
      if (this.states[i] !== 'waiting' || decidedAt.get(i) === version) continue;
      decidedAt.set(i, version);
      const task = this.index.tasks[i]!;
      if (this.#mustWait(task)) continue;
      const upstream = task.dependsOn.map((dep) => {
        const d = this.at(dep);
        return { task: dep, outcome: outcomeOf(this.states[d]!, this.index.tasks[d]!) };
      });
      const decision = decideTrigger(task.triggerRule, upstream);
      if (decision.kind === 'wait') continue;
      if (decision.kind === 'skip') {
        this.states[i] = 'skipped';
        version += 1;
        this.changes.push(
          change({
            task: task.name,
            from: 'pending',
            to: 'skipped',
            reason: decision.reason,
            finished: true,
          }),
        );
        this.finishedAt(i);
        continue;
      }
      this.states[i] = 'queued';
      this.changes.push({
        type: 'enqueue',
        task: task.name,
        queue: task.queue,
        availableAt,
        delayMs,
        mode: 'new',
      });
    }
  }

  /**
   * A cheap pre-check before decideTrigger (which builds the whole upstream list): with an
   * upstream task unfinished and nothing that could decide early, the answer is `wait`.
   */
  #mustWait(task: PlanTask): boolean {
    let unfinished = false;
    for (const dep of task.dependsOn) {
      const d = this.at(dep);
      const outcome = outcomeOf(this.states[d]!, this.index.tasks[d]!);
      if (outcome === 'unfinished') {
        unfinished = true;
        continue;
      }
      switch (task.triggerRule) {
        case 'all_success':
          if (outcome !== 'success') return false;
          break;
        case 'all_done':
          break;
        case 'one_failed':
          if (outcome === 'failed') return false;
          break;
        case 'all_failed':
          if (outcome !== 'failed') return false;
          break;
      }
    }
    return unfinished;
  }

  /** Every waiting task, for a first decision (run start, run retry). */
  evaluateAll(): void {
    for (let i = this.states.length - 1; i >= 0; i--)
      if (this.states[i] === 'waiting') this.#evaluate.push(i);
  }

  isComplete(): boolean {
    return !this.states.some(isUnfinished);
  }
}

/**
 * Applies the ends of `finished` tasks of one run: each task's own change (succeeded, retrying,
 * failed with its hooks, cancelled, skipped, back to pending after a lost attempt), then its
 * dependents' decisions (transitively). With a cancel request, nothing new is enqueued: waiting
 * tasks and the withdrawn queued ones are cancelled, and tasks still running end on their worker.
 */
export function advanceTasks(input: AdvanceInput): AdvanceResult {
  const { plan, run, now } = input;
  const random = input.random ?? Math.random;
  const maxLost = input.maxLostAttempts ?? DEFAULT_MAX_LOST_ATTEMPTS;
  const stop = stopOf(run);
  const c = new Coordinator(plan, input.states, now);

  for (const { task: name, from, outcome } of input.finished) {
    const i = c.at(name);
    if (c.states[i] !== 'queued') {
      throw new WeftError(
        'INTERNAL',
        `task "${name}" of run ${run.id} finished while not queued (${c.states[i]!})`,
        {
          retryable: false,
        },
      );
    }
    const task = c.index.tasks[i]!;
    switch (outcome.kind) {
      case 'succeeded':
        c.states[i] = 'succeeded';
        c.changes.push(
          change({
            task: name,
            from,
            to: 'succeeded',
            output: outcome.output,
            error: null,
            reason: null,
            finished: true,
          }),
          { type: 'dequeue', task: name },
        );
        c.finishedAt(i);
        break;
      case 'skipped':
        c.states[i] = 'skipped';
        c.changes.push(change({ task: name, from, to: 'skipped', reason: outcome.reason, finished: true }), {
          type: 'dequeue',
          task: name,
        });
        c.finishedAt(i);
        break;
      case 'cancelled':
        c.states[i] = 'cancelled';
        c.changes.push(
          change({
            task: name,
            from,
            to: 'cancelled',
            reason: outcome.reason,
            nextAttemptAt: null,
            finished: true,
          }),
          { type: 'dequeue', task: name },
        );
        c.finishedAt(i);
        break;
      case 'failed': {
        if (outcome.retryable && hasRetryLeft(task.retry, outcome.nth) && !stop.stopping) {
          const delayMs = retryDelayMs(task.retry, outcome.nth + 1, random);
          c.changes.push(
            change({ task: name, from, to: 'retrying', error: outcome.error, nextAttemptAt: now + delayMs }),
            {
              type: 'enqueue',
              task: name,
              queue: task.queue,
              availableAt: now + delayMs,
              delayMs,
              mode: 'retry',
            },
          );
          break;
        }
        failForGood(c, run, i, from, outcome.error, outcome.attempt);
        break;
      }
      case 'lost': {
        if (outcome.lost > maxLost) {
          const error: ErrorInfo = {
            code: 'TASK_LOST',
            message: `task "${name}" was lost ${outcome.lost} times (its worker died each time); it is not tried again`,
          };
          failForGood(c, run, i, from, error, outcome.attempt);
          break;
        }
        if (stop.stopping) {
          c.states[i] = 'cancelled';
          c.changes.push(
            change({
              task: name,
              from,
              to: 'cancelled',
              reason: stop.reason,
              nextAttemptAt: null,
              finished: true,
            }),
            { type: 'dequeue', task: name },
          );
          c.finishedAt(i);
          break;
        }
        // A lease lost before its attempt started (a `when` being evaluated) changes no task run.
        if (from !== 'pending')
          c.changes.push(change({ task: name, from, to: 'pending', nextAttemptAt: null }));
        c.changes.push({
          type: 'enqueue',
          task: name,
          queue: task.queue,
          availableAt: now,
          delayMs: 0,
          mode: 'lost',
        });
        break;
      }
    }
  }

  if (stop.stopping) {
    // As the interpreter on cancel (and run timeout): whatever does not run now ends cancelled,
    // nothing new starts.
    for (let i = 0; i < c.states.length; i++) {
      const name = c.index.tasks[i]!.name;
      if (c.states[i] === 'waiting') {
        c.states[i] = 'cancelled';
        c.changes.push(
          change({
            task: name,
            from: 'pending',
            to: 'cancelled',
            reason: stop.reason,
            finished: true,
          }),
        );
        continue;
      }
      const from = c.states[i] === 'queued' ? input.withdrawn?.get(name) : undefined;
      if (from === undefined) continue;
      c.states[i] = 'cancelled';
      c.changes.push(
        change({
          task: name,
          from,
          to: 'cancelled',
          reason: stop.reason,
          nextAttemptAt: null,
          finished: true,
        }),
        { type: 'dequeue', task: name },
      );
    }
  } else {
    c.decide(now, 0);
  }
  return { states: c.states, changes: c.changes, hooks: c.hooks, complete: c.isComplete() };
}

function failForGood(
  c: Coordinator,
  run: RunView,
  i: number,
  from: TaskState,
  error: ErrorInfo,
  attempt: number,
): void {
  const task = c.index.tasks[i]!;
  c.states[i] = 'failed';
  c.changes.push(
    change({ task: task.name, from, to: 'failed', error, nextAttemptAt: null, finished: true }),
    {
      type: 'dequeue',
      task: task.name,
    },
  );
  // Recorded in the same transaction as the failure: a failure on record always has its hooks.
  task.onFailure.forEach((hook, index) =>
    c.hooks.push(
      newHookRecord(
        run.id,
        taskHookKey(task.name, index, attempt),
        'task_failure',
        task.name,
        hook,
        error,
        c.now,
      ),
    ),
  );
  c.finishedAt(i);
}

/** First decisions of a run the queue takes: its ready tasks enqueued, the undecidable ones skipped. */
export function startTasks(input: {
  plan: Plan;
  /** The task-run states, by plan order. */
  taskStates: readonly TaskState[];
  now: number;
  /** Delay before the first tasks may start (a run retry's delay). Default 0. */
  delayMs?: number;
}): { states: CoordState[]; changes: Change[]; complete: boolean } {
  const initial = input.taskStates.map((state, i): CoordState => {
    switch (state) {
      case 'pending':
        return 'waiting';
      case 'succeeded':
      case 'failed':
      case 'skipped':
      case 'cancelled':
        return state;
      case 'running':
      case 'retrying':
        throw new WeftError(
          'RUN_STATE',
          `task "${input.plan.order[i]!}" is still ${state}; reset interrupted tasks (weft resume) before queueing the run`,
          { retryable: false },
        );
    }
  });
  const c = new Coordinator(input.plan, initial, input.now);
  const delayMs = input.delayMs ?? 0;
  c.evaluateAll();
  c.decide(input.now + delayMs, delayMs);
  return { states: c.states, changes: c.changes, complete: c.isComplete() };
}

export interface RunCompletionInput {
  plan: Plan;
  states: readonly CoordState[];
  run: RunView & { state: RunState };
  /** Errors of the failed tasks (the first in plan order names the run's error). */
  errors: ReadonlyMap<string, ErrorInfo | null>;
  /** Failed runs of the pipeline in a row just before this one (see countPreviousFailures). */
  previousFailures: number;
  now: number;
  random?: () => number;
}

export interface RunChange {
  from: RunState;
  to: RunState;
  error: ErrorInfo | null;
  /** Epoch ms for a run retry; null otherwise. */
  nextAttemptAt: number | null;
  /** The run attempt after this change. */
  attempt: number;
  finished: boolean;
}

export type RunCompletion =
  | { kind: 'finished'; run: RunChange; hooks: HookRecord[] }
  | {
      kind: 'retrying';
      run: RunChange;
      /** Failed, skipped and cancelled tasks back to pending, then the first decisions after the delay. */
      changes: Change[];
      states: CoordState[];
    };

/**
 * How a run whose tasks have all finished ends, as the interpreter decides it: cancelled when a
 * cancel was requested (or tasks were left cancelled), failed when a task failed without
 * continue_on_error (naming the first in plan order), else succeeded. A failed run with run
 * retries left goes `retrying` instead; otherwise its due hooks are returned as pending records.
 */
export function completeRun(input: RunCompletionInput): RunCompletion {
  const { plan, run, states, now } = input;
  const random = input.random ?? Math.random;
  const index = planIndex(plan);
  let state: 'succeeded' | 'failed' | 'cancelled' = 'succeeded';
  let error: ErrorInfo | null = null;
  if (run.cancelRequested) {
    state = 'cancelled';
  } else if (run.timeout) {
    // The interpreter's pass ends `failed` with the timeout as its error, and may retry the run.
    state = 'failed';
    error = run.timeout;
  } else {
    const failed = index.tasks.filter((t, i) => states[i] === 'failed' && !t.continueOnError);
    const first = failed[0];
    if (first) {
      const more = failed.length > 1 ? ` (and ${failed.length - 1} more failed task(s))` : '';
      const cause = input.errors.get(first.name) ?? { code: 'HANDLER_FAILED', message: 'failed' };
      state = 'failed';
      error = { code: cause.code, message: `task "${first.name}" failed: ${cause.message}${more}` };
    } else if (states.includes('cancelled')) {
      state = 'cancelled';
    }
  }

  const retryNumber = run.attempt - run.firstAttempt + 1;
  if (state === 'failed' && hasRetryLeft(plan.retry, retryNumber)) {
    const delayMs = retryDelayMs(plan.retry, retryNumber + 1, random);
    assertRunTransition(run.id, run.state, 'retrying');
    const resets: Change[] = [];
    const taskStates = index.tasks.map((t, i): TaskState => {
      const s = states[i]!;
      if (s === 'failed' || s === 'skipped' || s === 'cancelled') {
        resets.push(change({ task: t.name, from: s, to: 'pending', reset: true }));
        return 'pending';
      }
      if (s === 'succeeded') return s;
      throw new WeftError('INTERNAL', `task "${t.name}" is unfinished when run ${run.id} ends`, {
        retryable: false,
      });
    });
    const started = startTasks({ plan, taskStates, now, delayMs });
    return {
      kind: 'retrying',
      run: {
        from: run.state,
        to: 'retrying',
        error,
        nextAttemptAt: now + delayMs,
        attempt: run.attempt + 1,
        finished: false,
      },
      changes: [...resets, ...started.changes],
      states: started.states,
    };
  }

  assertRunTransition(run.id, run.state, state);
  const hooks: HookRecord[] = [];
  const add = (event: 'run_failure' | 'run_success' | 'run_recovery', index: number) => {
    const hook = (
      event === 'run_failure' ? plan.onFailure : event === 'run_success' ? plan.onSuccess : plan.onRecovery
    )[index]!;
    hooks.push(newHookRecord(run.id, runHookKey(event, index, run.attempt), event, null, hook, error, now));
  };
  if (state === 'failed') {
    const consecutive = input.previousFailures + 1;
    plan.onFailure.forEach((hook, i) => {
      if (isFailureHookDue(hook, consecutive)) add('run_failure', i);
    });
  }
  if (state === 'succeeded') {
    plan.onSuccess.forEach((_, i) => add('run_success', i));
    if (input.previousFailures > 0) plan.onRecovery.forEach((_, i) => add('run_recovery', i));
  }
  return {
    kind: 'finished',
    run: { from: run.state, to: state, error, nextAttemptAt: null, attempt: run.attempt, finished: true },
    hooks,
  };
}

/** Whether completing this run needs the count of failures before it (for hooks). */
export function needsPreviousFailures(plan: Plan): boolean {
  return plan.onFailure.length > 0 || plan.onRecovery.length > 0;
}
