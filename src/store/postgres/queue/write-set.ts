import type { Plan } from '../../../compile/plan.js';
import type { AttemptState, RunState } from '../../../core/states.js';
import type { ErrorInfo } from '../../../errors.js';
import type { Change, TaskChange } from '../../../worker/advance.js';
import type { HookRecord } from '../../run-store.js';

/** The key of a task of a run in the maps of one transaction. */
export function reportKey(runId: string, task: string): string {
  return `${runId}\u0000${task}`;
}

export interface QueueOp {
  op: 'delete' | 'new' | 'requeue';
  queue?: string;
  availableAt?: number;
  delayMs?: number;
  hasWhen?: boolean;
  baseInc?: number;
  lostInc?: number;
}

export interface RunUpdate {
  runId: string;
  from: RunState;
  to: RunState;
  error?: ErrorInfo | null;
  attempt?: number;
  nextAttemptAt?: number | null;
  finished?: boolean;
  start?: boolean;
}

/** A run's queue_runs row as a transaction leaves it. */
export interface QueueRunRow {
  runId: string;
  states: string;
  firstAttempt: number;
  cancelSeen: boolean;
  /** Its leased tasks (see migration 004). */
  running: number;
  maxRunning: number | null;
  /** Epoch ms, or null: no timeout. */
  deadlineAt: number | null;
  timedOut: boolean;
}

/** Everything one transaction writes, gathered across runs and written with bulk statements. */
export class WriteSet {
  readonly attemptEnds: {
    runId: string;
    task: string;
    attempt: number;
    state: AttemptState;
    error: ErrorInfo | null;
  }[] = [];
  readonly taskChanges = new Map<string, { runId: string; change: TaskChange }>();
  readonly queueOps = new Map<string, { runId: string; task: string; op: QueueOp }>();
  readonly hooks: HookRecord[] = [];
  readonly queueRuns: QueueRunRow[] = [];
  readonly closedRuns: string[] = [];
  readonly runUpdates: RunUpdate[] = [];
  readonly wake = new Set<string>();
  wakeHooks = false;

  addTaskChange(runId: string, change: TaskChange): void {
    const key = reportKey(runId, change.task);
    const previous = this.taskChanges.get(key);
    if (!previous) {
      this.taskChanges.set(key, { runId, change });
      return;
    }
    // Two changes of one task in one transaction (it failed, then a run retry reset it): one
    // write from the first state to the last, fields of the later change winning.
    const merged: TaskChange = change.reset
      ? { ...change, from: previous.change.from }
      : { ...previous.change, ...change, from: previous.change.from };
    this.taskChanges.set(key, { runId, change: merged });
  }

  addQueueOp(runId: string, task: string, op: QueueOp): void {
    const key = reportKey(runId, task);
    const previous = this.queueOps.get(key)?.op;
    // A task dequeued and enqueued anew in one transaction: the insert replaces the row (upsert).
    if (previous && previous.op === 'requeue' && op.op === 'delete') return;
    this.queueOps.set(key, { runId, task, op });
  }

  /** The changes advance.ts decided for a run, as rows to write and queues to wake. */
  addChanges(runId: string, plan: Plan, changes: readonly Change[]): void {
    for (const change of changes) {
      switch (change.type) {
        case 'task':
          this.addTaskChange(runId, change);
          break;
        case 'dequeue':
          this.addQueueOp(runId, change.task, { op: 'delete' });
          break;
        case 'enqueue': {
          if (change.mode === 'new') {
            const when = plan.tasks[change.task]!.when;
            this.addQueueOp(runId, change.task, {
              op: 'new',
              queue: change.queue,
              availableAt: change.availableAt,
              delayMs: change.delayMs,
              hasWhen: when !== null && when !== true,
            });
          } else {
            const lostOne =
              change.mode === 'lost' &&
              this.attemptEnds.some((a) => a.runId === runId && a.task === change.task && a.state === 'lost');
            this.addQueueOp(runId, change.task, {
              op: 'requeue',
              availableAt: change.availableAt,
              delayMs: change.delayMs,
              baseInc: lostOne ? 1 : 0,
              lostInc: lostOne ? 1 : 0,
            });
          }
          this.wake.add(change.queue);
          break;
        }
      }
    }
  }

  /** Errors of tasks that failed in this transaction (not written yet), by task. */
  batchErrors(runId: string): Map<string, ErrorInfo | null> {
    const out = new Map<string, ErrorInfo | null>();
    for (const { runId: id, change } of this.taskChanges.values()) {
      if (id === runId && change.to === 'failed') out.set(change.task, change.error ?? null);
    }
    return out;
  }
}
