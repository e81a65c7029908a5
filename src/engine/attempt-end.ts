import type { JsonValue } from '../core/json.js';
import { isNonRetryable, toErrorInfo, toWeftError, type ErrorInfo } from '../errors.js';
import type { HookRecord } from '../store/run-store.js';
import type { AttemptResult } from './attempt.js';
import type { ExecutionContext } from './execution-context.js';
import { newHookRecord, runHook, taskHookKey, type HookRunner } from './hooks.js';
import { maskValue } from './mask.js';
import { normaliseOutput } from './output.js';
import { hasRetryLeft, retryDelayMs } from './retry-delay.js';
import type { TaskNode } from './task-node.js';
import { writeAttemptEnd } from './task-writes.js';
import { toIso } from './time.js';

/** How an attempt ended, as recorded: what the pass applies to the task and reports. */
export type AttemptEnd =
  | { state: 'succeeded'; output: JsonValue; finishedMs: number }
  | { state: 'cancelled'; reason: string }
  | { state: 'retrying'; error: ErrorInfo; delayMs: number }
  | { state: 'failed'; error: ErrorInfo; hooks: HookRecord[] };

/**
 * Decides how an attempt ended and records it: the attempt's end and the task run's next state,
 * fenced on the attempt. A succeeded handler whose output is not valid JSON fails; a failure is
 * retried while the task's retry policy allows, the error is retryable and `mayRetry` (the pass
 * is not stopping). Error messages, reasons and outputs are masked before anything is stored.
 */
export async function recordAttemptEnd(
  ctx: ExecutionContext,
  node: TaskNode,
  attempt: number,
  nth: number,
  raw: AttemptResult,
  mayRetry: boolean,
): Promise<AttemptEnd> {
  const { store, masker } = ctx;
  let result = raw;
  let output: JsonValue = null;
  if (result.state === 'succeeded') {
    try {
      // Outputs are stored, shown and passed on: a secret a command echoed must not be.
      output = maskValue(normaliseOutput(result.value, node.name), masker);
    } catch (error) {
      result = { state: 'failed', error: toWeftError(error, 'HANDLER_OUTPUT_INVALID') };
    }
  }
  const now = ctx.clock.now();
  const finishedAt = toIso(now);
  // Sent before the terminal writes, which the store keeps in order: an attempt's lines are
  // stored before it is seen to end.
  const logsWritten = ctx.logs.flush();

  if (result.state === 'succeeded') {
    await writeAttemptEnd(
      ctx,
      node.name,
      attempt,
      { state: 'succeeded', finishedAt },
      { state: 'succeeded', output, finishedAt, error: null, reason: null },
      logsWritten,
      'recording its success',
    );
    return { state: 'succeeded', output, finishedMs: now };
  }

  const info = toErrorInfo(result.error);
  const error: ErrorInfo = { ...info, message: masker(info.message) };
  const attemptEnd = { state: result.state, finishedAt, error };

  if (result.state === 'cancelled') {
    const reason = masker(result.error.message);
    await writeAttemptEnd(
      ctx,
      node.name,
      attempt,
      attemptEnd,
      { state: 'cancelled', reason, finishedAt, nextAttemptAt: null },
      logsWritten,
      'recording its cancellation',
    );
    return { state: 'cancelled', reason };
  }

  if (!isNonRetryable(result.error) && hasRetryLeft(node.task.retry, nth) && mayRetry) {
    const delayMs = retryDelayMs(node.task.retry, nth + 1, ctx.random);
    await writeAttemptEnd(
      ctx,
      node.name,
      attempt,
      attemptEnd,
      { state: 'retrying', error, nextAttemptAt: toIso(now + delayMs) },
      logsWritten,
      'recording a retry',
    );
    return { state: 'retrying', error, delayMs };
  }

  // Failed for good. Its hooks are recorded before the failure, so a failure on record always
  // has its hooks on record too.
  const hooks = node.task.onFailure.map((hook, index) =>
    newHookRecord(
      ctx.run.id,
      taskHookKey(node.name, index, attempt),
      'task_failure',
      node.name,
      hook,
      error,
      now,
    ),
  );
  await writeAttemptEnd(
    ctx,
    node.name,
    attempt,
    attemptEnd,
    { state: 'failed', error, finishedAt, nextAttemptAt: null },
    hooks.length > 0 ? Promise.all([logsWritten, store.addHooks(hooks)]) : logsWritten,
    'recording its failure',
  );
  return { state: 'failed', error, hooks };
}

/** Runs the failure hooks recorded with a task's failure, in order. */
export async function runTaskFailureHooks(
  runner: HookRunner,
  node: TaskNode,
  records: readonly HookRecord[],
  error: ErrorInfo,
  attempts: number,
): Promise<void> {
  for (const [index, record] of records.entries()) {
    await runHook(runner, record, node.task.onFailure[index], {
      event: 'task_failure',
      task: node.name,
      error,
      attempts,
      runState: 'running',
      consecutiveFailures: 0,
    });
  }
}
