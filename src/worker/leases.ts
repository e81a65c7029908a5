import { performance } from 'node:perf_hooks';
import { WeftError } from '../errors.js';
import type { ClaimedTask, TaskQueue } from './queue-port.js';
import type { WorkerEvent } from './worker-events.js';

/** A task this worker claimed and is running, with the lease it holds. */
export interface HeldTask {
  claim: ClaimedTask;
  controller: AbortController;
  /** performance.now() when claimed. */
  since: number;
  /** Its lease is gone (or being given back): whatever it ends with is not reported. */
  discard: boolean;
  /** The pipeline's `timeout`, once its run is known (for the message when it passes). */
  runTimeoutMs: number | null;
}

export function heldKey(runId: string, task: string): string {
  return `${runId}\u0000${task}`;
}

export interface LeaseRenewal {
  queue: TaskQueue;
  workerId: string;
  leaseMs: number;
  /** Keyed by `heldKey`. */
  held: ReadonlyMap<string, HeldTask>;
  emit: (event: WorkerEvent) => void;
}

/**
 * One heartbeat: renews every lease this worker holds, and aborts the tasks whose run was
 * cancelled or timed out, or whose lease it lost. Throws what the queue throws.
 */
export async function renewLeases({
  queue,
  workerId,
  leaseMs,
  held: running,
  emit,
}: LeaseRenewal): Promise<void> {
  const sentAt = performance.now();
  // Only the leases of tasks it is working on: a lease it holds on record but gave up on here
  // (its claim's reply or its result's write was lost with the connection) must expire.
  const renewal = await queue.renewLeases(
    workerId,
    leaseMs,
    [...running.values()].map((h) => h.claim.lease),
  );
  const held = new Set(renewal.held.map((h) => `${heldKey(h.runId, h.task)}#${h.lease}`));
  const cancelled = new Set(renewal.cancelRequested);
  const timedOut = new Set(renewal.timedOut ?? []);
  for (const [key, h] of running) {
    if (h.controller.signal.aborted) continue;
    if (cancelled.has(h.claim.runId)) {
      h.controller.abort(new WeftError('TASK_CANCELLED', 'the run was cancelled', { retryable: false }));
    } else if (timedOut.has(h.claim.runId)) {
      // Worded as the interpreter words it: the attempt and its task end with this reason.
      const after = h.runTimeoutMs === null ? '' : ` after ${h.runTimeoutMs}ms`;
      h.controller.abort(new WeftError('RUN_TIMEOUT', `the run timed out${after}`, { retryable: false }));
    } else if (h.since < sentAt && !held.has(`${key}#${h.claim.lease}`)) {
      // Its lease is gone: reaped and given to someone else, or its result already recorded.
      // Either way nothing it could report would count: stop working on it.
      h.discard = true;
      h.controller.abort(
        new WeftError('TASK_LOST', `worker ${workerId} lost its lease on this task`, {
          retryable: true,
        }),
      );
      emit({
        type: 'lease:lost',
        worker: workerId,
        runId: h.claim.runId,
        task: h.claim.task,
        attempt: h.claim.attempt,
      });
    }
  }
}
