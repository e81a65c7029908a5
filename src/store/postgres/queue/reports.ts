import type { TaskState } from '../../../core/states.js';
import type { ErrorInfo } from '../../../errors.js';
import type { FinishedTask, TaskOutcome } from '../../../worker/advance.js';
import type { TaskCompletion } from '../../../worker/queue-port.js';
import { noNul } from './apply-writes.js';
import type { WriteSet } from './write-set.js';

/** A result to apply: a worker's completion, or a lost lease found by the reaper. */
export type Report =
  | { from: 'worker'; owner: string; completion: TaskCompletion }
  | { from: 'reaper'; runId: string; task: string; lease: number; owner: string; attempt: number | null };

/** A leased queue row named by a report, as the coordination transaction locked it. */
export interface FenceRow {
  run_id: string;
  task: string;
  lease_id: number;
  lease_owner: string;
  expired: boolean;
  attempt: number;
  base: number;
  lost: number;
  task_state: string;
}

/** A fenced report as advance.ts sees it, and the end of its attempt. Null: not applicable. */
export function toFinishedTask(report: Report, fence: FenceRow, writes: WriteSet): FinishedTask | null {
  const from = fence.task_state as TaskState;
  const runId = fence.run_id;
  if (report.from === 'reaper') {
    // Renewed since it was seen expired: its worker is alive after all.
    if (!fence.expired || fence.lease_owner !== report.owner) return null;
    const started = from === 'running' && fence.attempt !== null;
    const error: ErrorInfo = {
      code: 'TASK_LOST',
      message: `worker ${fence.lease_owner} stopped renewing its lease on attempt ${fence.attempt} (it died or hung)`,
    };
    if (started)
      writes.attemptEnds.push({ runId, task: fence.task, attempt: fence.attempt, state: 'lost', error });
    const outcome: TaskOutcome = {
      kind: 'lost',
      error,
      attempt: fence.attempt,
      // An attempt never started (its `when` was being evaluated) does not count as lost.
      lost: fence.lost + (started ? 1 : 0),
    };
    return { task: fence.task, from, outcome };
  }
  const c = report.completion;
  if (fence.lease_owner !== report.owner || fence.attempt !== c.attempt) return null;
  if (c.kind === 'skipped') {
    if (from !== 'pending') return null;
    return { task: c.task, from, outcome: { kind: 'skipped', reason: noNul(c.reason) } };
  }
  if (from !== 'running') return null;
  switch (c.kind) {
    case 'succeeded':
      writes.attemptEnds.push({ runId, task: c.task, attempt: c.attempt, state: 'succeeded', error: null });
      return { task: c.task, from, outcome: { kind: 'succeeded', output: c.output } };
    case 'cancelled':
      writes.attemptEnds.push({
        runId,
        task: c.task,
        attempt: c.attempt,
        state: 'cancelled',
        error: c.error,
      });
      return { task: c.task, from, outcome: { kind: 'cancelled', reason: noNul(c.error.message) } };
    case 'failed':
      writes.attemptEnds.push({ runId, task: c.task, attempt: c.attempt, state: c.state, error: c.error });
      return {
        task: c.task,
        from,
        outcome: {
          kind: 'failed',
          error: c.error,
          retryable: c.retryable,
          attempt: c.attempt,
          nth: c.attempt - fence.base,
        },
      };
  }
}
