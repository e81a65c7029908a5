import type { TriggerRule } from '../pipeline/spec.js';

/**
 * How an upstream task ended, as its dependents see it. A failed task with `continue_on_error`
 * counts as `success` for them, while the run still records the failure.
 */
export type UpstreamOutcome = 'success' | 'failed' | 'skipped' | 'cancelled' | 'unfinished';

export type TriggerDecision = { kind: 'wait' } | { kind: 'run' } | { kind: 'skip'; reason: string };

const WAIT: TriggerDecision = { kind: 'wait' };
const RUN: TriggerDecision = { kind: 'run' };

/**
 * Decides whether a task whose upstream tasks ended as `upstream` should run, be skipped, or wait.
 * Pure, and shared by the interpreter, the workers and `weft plan --fail`, so all three agree.
 * A task decides as early as its rule allows (an all_success task is skipped as soon as one
 * upstream task fails, without waiting for the others).
 */
export function decideTrigger(
  rule: TriggerRule,
  upstream: ReadonlyArray<{ task: string; outcome: UpstreamOutcome }>,
): TriggerDecision {
  if (upstream.length === 0) return RUN;
  const unfinished = upstream.some((u) => u.outcome === 'unfinished');
  const first = (outcome: UpstreamOutcome) => upstream.find((u) => u.outcome === outcome)?.task;
  switch (rule) {
    case 'all_success': {
      const bad = upstream.find((u) => u.outcome !== 'success' && u.outcome !== 'unfinished');
      if (bad) return { kind: 'skip', reason: `upstream task "${bad.task}" ${describe(bad.outcome)}` };
      return unfinished ? WAIT : RUN;
    }
    case 'all_done':
      return unfinished ? WAIT : RUN;
    case 'one_failed': {
      if (first('failed') !== undefined) return RUN;
      return unfinished
        ? WAIT
        : { kind: 'skip', reason: 'no upstream task failed (trigger rule one_failed)' };
    }
    case 'all_failed': {
      const notFailed = upstream.find((u) => u.outcome !== 'failed' && u.outcome !== 'unfinished');
      if (notFailed) {
        return {
          kind: 'skip',
          reason: `upstream task "${notFailed.task}" ${describe(notFailed.outcome)} (trigger rule all_failed)`,
        };
      }
      return unfinished ? WAIT : RUN;
    }
  }
}

function describe(outcome: UpstreamOutcome): string {
  switch (outcome) {
    case 'success':
      return 'succeeded';
    case 'failed':
      return 'failed';
    case 'skipped':
      return 'was skipped';
    case 'cancelled':
      return 'was cancelled';
    case 'unfinished':
      return 'has not finished';
  }
}
