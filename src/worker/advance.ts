import type { Plan } from '../compile/plan.js';
import type { TaskState } from '../core/states.js';
import { WeftError, type ErrorInfo } from '../errors.js';
import { newHookRecord, taskHookKey } from '../engine/hooks.js';
import { hasRetryLeft, retryDelayMs } from '../engine/retry-delay.js';
import type { HookRecord } from '../store/run-store.js';
import { change, stopOf, type Change, type FinishedTask, type RunView } from './coord-changes.js';
import type { CoordState } from './coord-state.js';
import { Coordinator } from './coordinator.js';

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
 * This module is the one entry to those rules (the queue adapter imports them all from here);
 * the pieces live beside it: coord-state.ts (the states and their encoding), coord-changes.ts
 * (what a run looks like to them and the writes they decide), coordinator.ts (the working set
 * that decides dependents), start-tasks.ts (a run's first decisions) and complete-run.ts (how a
 * run ends).
 */
export { decodeStates, encodeStates, planIndex, type CoordState } from './coord-state.js';
export type {
  Change,
  DequeueChange,
  FinishedTask,
  QueueChange,
  RunView,
  TaskChange,
  TaskOutcome,
} from './coord-changes.js';
export { startTasks } from './start-tasks.js';
export {
  completeRun,
  needsPreviousFailures,
  type RunChange,
  type RunCompletion,
  type RunCompletionInput,
} from './complete-run.js';

/** The default cap on lost attempts of one task (workers that died holding it). */
export const DEFAULT_MAX_LOST_ATTEMPTS = 3;

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
