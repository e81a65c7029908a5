import type { Plan } from '../compile/plan.js';
import { assertRunTransition, type RunState, type TaskState } from '../core/states.js';
import { isFailureHookDue, newHookRecord, runHookKey } from '../engine/hooks.js';
import { hasRetryLeft, retryDelayMs } from '../engine/retry-delay.js';
import { WeftError, type ErrorInfo } from '../errors.js';
import type { HookRecord } from '../store/run-store.js';
import { change, type Change, type RunView } from './coord-changes.js';
import { planIndex, type CoordState } from './coord-state.js';
import { startTasks } from './start-tasks.js';

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
