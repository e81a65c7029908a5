import type { Plan } from '../compile/plan.js';
import { assertRunTransition, assertTaskTransition, type TaskState } from '../core/states.js';
import { UsageError, WeftError } from '../errors.js';
import type { RunRecord, RunStore, TaskRunRecord } from '../store/run-store.js';
import { isQueueOwner, lostAttemptError, stopOrphanGroup } from './interrupted.js';
import { unsealParams } from './secret-params.js';
import { toIso } from './time.js';

/**
 * Tasks a dead execution left `running` or `retrying` go back to `pending`, and their open
 * attempts become `lost`: every started attempt reaches exactly one terminal state, even when the
 * process that started it did not live to write it. Returns the task runs as they now are.
 */
export async function resetInterruptedTasks(
  store: RunStore,
  runId: string,
  taskRuns: readonly TaskRunRecord[],
  now: number,
): Promise<TaskRunRecord[]> {
  const stale = taskRuns.filter((t) => t.state === 'running' || t.state === 'retrying');
  if (stale.length === 0) return [...taskRuns];
  const finishedAt = toIso(now);
  await Promise.all(
    stale.map(async (taskRun) => {
      assertTaskTransition(taskRun.task, taskRun.state, 'pending');
      const attempts = await store.getAttempts(runId, taskRun.task);
      // The latest attempt may already be `lost` (markInterruptedRuns closes open attempts): its
      // process group may still be running all the same.
      for (const attempt of attempts) {
        const latest = attempt.attempt === taskRun.attempts;
        if (attempt.state === 'running' || (latest && attempt.state === 'lost')) stopOrphanGroup(attempt);
      }
      await Promise.all(
        attempts
          .filter((a) => a.state === 'running')
          .map((a) =>
            store.updateAttempt(
              runId,
              a.task,
              a.attempt,
              { state: 'lost', finishedAt, error: lostAttemptError(a.worker) },
              { states: ['running'] },
            ),
          ),
      );
      const ok = await store.updateTaskRun(
        runId,
        taskRun.task,
        { state: 'pending', nextAttemptAt: null },
        { states: [taskRun.state], attempts: taskRun.attempts },
      );
      if (!ok) throw conflict(runId, taskRun.task);
    }),
  );
  const reset = new Set(stale.map((t) => t.task));
  return taskRuns.map((t) =>
    reset.has(t.task) ? { ...t, state: 'pending' as const, nextAttemptAt: null } : t,
  );
}

function conflict(runId: string, task: string): WeftError {
  return new WeftError(
    'RUN_STATE',
    `task "${task}" of run ${runId} changed while it was being reset; try again`,
    {
      retryable: false,
    },
  );
}

/** The task and every task downstream of it (transitively), by the plan's dependents lists. */
export function downstreamOf(plan: Plan, task: string): Set<string> {
  const out = new Set<string>([task]);
  const stack = [task];
  while (stack.length > 0) {
    for (const next of plan.tasks[stack.pop()!]?.dependents ?? []) {
      if (!out.has(next)) {
        out.add(next);
        stack.push(next);
      }
    }
  }
  return out;
}

const RERUNNABLE: ReadonlySet<TaskState> = new Set(['failed', 'skipped', 'cancelled']);

/** Sends finished-but-not-succeeded task runs back to `pending` (output, error and reason cleared). */
export async function resetTasksToPending(
  store: RunStore,
  runId: string,
  taskRuns: readonly TaskRunRecord[],
  only?: ReadonlySet<string>,
  options: { includeSucceeded?: boolean } = {},
): Promise<void> {
  const rerunnable = (state: TaskState) =>
    RERUNNABLE.has(state) || (options.includeSucceeded === true && state === 'succeeded');
  await Promise.all(
    taskRuns
      .filter((t) => rerunnable(t.state) && (!only || only.has(t.task)))
      .map(async (t) => {
        assertTaskTransition(t.task, t.state, 'pending');
        const ok = await store.updateTaskRun(
          runId,
          t.task,
          {
            state: 'pending',
            output: null,
            error: null,
            reason: null,
            startedAt: null,
            finishedAt: null,
            nextAttemptAt: null,
          },
          { states: [t.state], attempts: t.attempts },
        );
        if (!ok) throw conflict(runId, t.task);
      }),
  );
}

export interface PrepareResumeOptions {
  /** Re-run only this task and everything downstream of it. */
  task?: string;
  now: number;
  /**
   * The environment the resumed run will execute with: a secret its params refer to must be set
   * there (SECRET_MISSING otherwise, before anything changes). Default: this process's.
   */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Makes a run executable again, then `executeRun` continues it:
 *  - an interrupted run: its running/retrying tasks go back to pending (open attempts `lost`);
 *  - a failed or cancelled run: its failed, skipped and cancelled tasks (or, with `task`, those of
 *    that task and everything downstream of it) go back to pending, and the run gets a new run
 *    attempt (so its hooks can fire again).
 * Tasks that succeeded keep their outputs and are not run again. The run ends `queued`. Throws
 * SECRET_MISSING, changing nothing, when a secret its params refer to is not set in `env`.
 */
export async function prepareResume(
  store: RunStore,
  runId: string,
  options: PrepareResumeOptions,
): Promise<RunRecord> {
  const run = await store.getRun(runId);
  if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${runId}`, { retryable: false });
  if (options.task !== undefined && !(options.task in run.plan.tasks)) {
    throw new UsageError(`run ${runId} has no task named "${options.task}"`);
  }
  if (run.state !== 'interrupted' && run.state !== 'failed' && run.state !== 'cancelled') {
    throw new WeftError(
      'RUN_STATE',
      `run ${runId} is ${run.state}; only failed, cancelled or interrupted runs can be resumed`,
      {
        retryable: false,
      },
    );
  }
  if (run.state === 'interrupted' && isQueueOwner(run.owner)) {
    throw new WeftError('RUN_STATE', `run ${runId} is executed by workers; the task queue recovers it`, {
      hint: 'start a `weft worker` on its store: lost tasks run again once their leases expire',
      retryable: false,
    });
  }
  assertRunTransition(runId, run.state, 'queued');
  // Checked before any write: a run put back in `queued` that cannot start would look stuck.
  unsealParams(run.params, run.plan.secrets, options.env ?? process.env);
  let taskRuns = await store.getTaskRuns(runId);
  taskRuns = await resetInterruptedTasks(store, runId, taskRuns, options.now);
  // What runs again: the named task, or every task that did not succeed — and, either way,
  // everything downstream of them, even tasks that succeeded (a cleanup with all_done, an alert
  // with one_failed): their inputs are about to change. Tasks upstream keep their outputs.
  let only: Set<string> | undefined;
  if (options.task !== undefined) only = downstreamOf(run.plan, options.task);
  else if (run.state !== 'interrupted') {
    only = new Set<string>();
    for (const t of taskRuns)
      if (RERUNNABLE.has(t.state)) for (const d of downstreamOf(run.plan, t.task)) only.add(d);
  }
  // An interrupted run continues where it stopped; only an explicit `task` re-runs finished tasks.
  if (only) await resetTasksToPending(store, runId, taskRuns, only, { includeSucceeded: true });
  const fresh = run.state !== 'interrupted';
  const ok = await store.updateRun(
    runId,
    {
      state: 'queued',
      owner: null,
      finishedAt: null,
      nextAttemptAt: null,
      error: null,
      cancelRequested: false,
      ...(fresh ? { attempt: run.attempt + 1 } : {}),
    },
    { states: [run.state] },
  );
  if (!ok)
    throw new WeftError('RUN_STATE', `run ${runId} changed while it was being resumed; try again`, {
      retryable: false,
    });
  return (await store.getRun(runId))!;
}

// Kept importable from here, where recovery first needed it.
export { stopOrphanGroup } from './interrupted.js';
