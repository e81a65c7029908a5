import type { PlanTask } from '../compile/plan.js';
import type { TaskState } from '../core/states.js';
import { WeftError, type ErrorInfo } from '../errors.js';
import type { UpstreamOutcome } from './trigger-rules.js';

/** How a pass ended. */
export interface PassResult {
  state: 'succeeded' | 'failed' | 'cancelled';
  error: ErrorInfo | null;
  /** Why the pass stopped early, if it did. */
  stopped: 'cancel' | 'timeout' | null;
}

/** Why a pass stops early: a cancel, the run's timeout, or an error it cannot go on after. */
export type StopKind = 'cancel' | 'timeout' | 'fatal';

/** How a task in this state ended, as its dependents see it. */
export function outcomeOf(state: TaskState, task: PlanTask): UpstreamOutcome {
  switch (state) {
    case 'succeeded':
      return 'success';
    case 'failed':
      return task.continueOnError ? 'success' : 'failed';
    case 'skipped':
      return 'skipped';
    case 'cancelled':
      return 'cancelled';
    case 'pending':
    case 'running':
    case 'retrying':
      return 'unfinished';
  }
}

/** Whether an outcome could decide a dependent with this rule before its last dependency ends. */
export function couldDecideEarly(rule: PlanTask['triggerRule'], outcome: UpstreamOutcome): boolean {
  switch (rule) {
    case 'all_success':
      return outcome !== 'success';
    case 'all_done':
      return false;
    case 'one_failed':
      return outcome === 'failed';
    case 'all_failed':
      return outcome !== 'failed';
  }
}

/**
 * How the run's pass ended, from its tasks once all are finished (or the pass was stopped, with
 * the masked reason it stopped for). Not called after a fatal stop: that one throws instead.
 */
export function passResultOf(
  nodes: readonly { name: string; task: PlanTask; state: TaskState; error: ErrorInfo | null }[],
  stop: StopKind | null,
  stopReason: string,
): PassResult {
  if (stop === 'timeout') {
    return { state: 'failed', error: { code: 'RUN_TIMEOUT', message: stopReason }, stopped: 'timeout' };
  }
  if (stop === 'cancel') return { state: 'cancelled', error: null, stopped: 'cancel' };
  const failed = nodes.filter((n) => n.state === 'failed' && !n.task.continueOnError);
  const first = failed[0];
  if (first) {
    const more = failed.length > 1 ? ` (and ${failed.length - 1} more failed task(s))` : '';
    const error = first.error ?? { code: 'HANDLER_FAILED', message: 'failed' };
    return {
      state: 'failed',
      error: { code: error.code, message: `task "${first.name}" failed: ${error.message}${more}` },
      stopped: null,
    };
  }
  // Tasks left cancelled by an earlier execution (a partial resume) mean the run did not all run.
  if (nodes.some((n) => n.state === 'cancelled')) return { state: 'cancelled', error: null, stopped: null };
  return { state: 'succeeded', error: null, stopped: null };
}

/** The error for a pass that can make no more progress with tasks unfinished: a bug in weft. */
export function stallError(
  runId: string,
  nodes: readonly { name: string; state: TaskState; outcome: UpstreamOutcome }[],
): WeftError {
  const stuck = nodes.filter((n) => n.outcome === 'unfinished');
  const names = stuck.slice(0, 5).map((n) => `"${n.name}" (${n.state})`);
  return new WeftError(
    'INTERNAL',
    `run ${runId} stalled: nothing is running or waiting, yet ${stuck.length} task(s) are unfinished: ` +
      `${names.join(', ')}${stuck.length > 5 ? ', …' : ''}. This is a bug in weft.`,
    { retryable: false },
  );
}
