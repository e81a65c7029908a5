import type { TaskState } from '../core/states.js';
import { toErrorInfo, WeftError } from '../errors.js';
import type { AttemptPatch, TaskRunPatch } from '../store/run-store.js';
import type { ExecutionContext } from './execution-context.js';
import { toIso } from './time.js';

/**
 * The store writes for a task's transitions during a pass. Every one is fenced on the state (and
 * attempt count) the pass last wrote: a task run changed behind the pass's back is a loud conflict
 * (RUN_STATE), never a silent overwrite.
 */

export function conflict(runId: string, task: string, what: string): WeftError {
  return new WeftError(
    'RUN_STATE',
    `task "${task}" of run ${runId} changed in the store while this process ran it (${what}); is another process executing the run?`,
    { retryable: false },
  );
}

/** `pending` → `skipped`. */
export function writeSkipped(ctx: ExecutionContext, task: string, reason: string): Promise<void> {
  return ctx.store
    .updateTaskRun(
      ctx.run.id,
      task,
      { state: 'skipped', reason, finishedAt: toIso(ctx.clock.now()) },
      { states: ['pending'] },
    )
    .then((ok) => {
      if (!ok) throw conflict(ctx.run.id, task, 'marking it skipped');
    });
}

/** A task not running (`pending`, or `retrying` between attempts) → `cancelled`. */
export function writeCancelled(
  ctx: ExecutionContext,
  task: string,
  from: TaskState,
  reason: string,
): Promise<void> {
  return ctx.store
    .updateTaskRun(
      ctx.run.id,
      task,
      { state: 'cancelled', reason, finishedAt: toIso(ctx.clock.now()), nextAttemptAt: null },
      { states: [from] },
    )
    .then((ok) => {
      if (!ok) throw conflict(ctx.run.id, task, 'marking it cancelled');
    });
}

/**
 * The task run → `running` and its attempt inserted (`running`), before the handler is called.
 * On a conflict the attempt just inserted is closed (`cancelled`) before the conflict is thrown,
 * so no attempt is left open.
 */
export async function writeAttemptStart(
  ctx: ExecutionContext,
  task: string,
  from: TaskState,
  attempt: { number: number; isFirstOfPass: boolean; delayMs: number; startedAt: string },
): Promise<void> {
  const { store } = ctx;
  const runId = ctx.run.id;
  const { startedAt } = attempt;
  const patch: TaskRunPatch = attempt.isFirstOfPass
    ? {
        state: 'running',
        attempts: attempt.number,
        startedAt,
        finishedAt: null,
        nextAttemptAt: null,
        error: null,
      }
    : { state: 'running', attempts: attempt.number, nextAttemptAt: null };
  // Both sent at once: the store neither reorders nor acknowledges before commit, so the two
  // may share one commit with other tasks' writes.
  const [fenced] = await Promise.all([
    store.updateTaskRun(runId, task, patch, { states: [from], attempts: attempt.number - 1 }),
    store.insertAttempt({
      runId,
      task,
      attempt: attempt.number,
      state: 'running',
      delayMs: attempt.delayMs,
      startedAt,
      finishedAt: null,
      error: null,
      worker: ctx.owner,
      pid: null,
    }),
  ]);
  if (!fenced) {
    const error = conflict(runId, task, 'starting an attempt');
    await store.updateAttempt(
      runId,
      task,
      attempt.number,
      { state: 'cancelled', finishedAt: toIso(ctx.clock.now()), error: toErrorInfo(error) },
      { states: ['running'] },
    );
    throw error;
  }
}

/**
 * An attempt's end and the task run's next state (`succeeded`, `cancelled`, `retrying` or
 * `failed`), the attempt's written first. `before` holds writes already sent that must land with
 * them (the attempt's log lines, a failure's hooks); `what` names the transition in a conflict.
 */
export async function writeAttemptEnd(
  ctx: ExecutionContext,
  task: string,
  attempt: number,
  attemptEnd: AttemptPatch,
  taskEnd: TaskRunPatch,
  before: Promise<unknown>,
  what: string,
): Promise<void> {
  const { store } = ctx;
  const runId = ctx.run.id;
  const [, attemptOk, taskOk] = await Promise.all([
    before,
    store.updateAttempt(runId, task, attempt, attemptEnd, { states: ['running'] }),
    store.updateTaskRun(runId, task, taskEnd, { states: ['running'], attempts: attempt }),
  ]);
  if (!attemptOk || !taskOk) throw conflict(runId, task, what);
}
