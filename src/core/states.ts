import { WeftError } from '../errors.js';

/**
 * The one state machine of runs, task runs and attempts. Every mode of running (the local
 * interpreter, the distributed workers) moves state only through `assertTaskTransition` and
 * `assertRunTransition`, so a state never changes in a way these tables do not allow.
 */

export const TASK_STATES = [
  'pending',
  'running',
  'retrying',
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const RUN_STATES = [
  'queued',
  'running',
  'retrying',
  'succeeded',
  'failed',
  'cancelled',
  'interrupted',
] as const;
export type RunState = (typeof RUN_STATES)[number];

/** One try of a task. `lost`: its process or worker died and nobody saw it end. */
export const ATTEMPT_STATES = ['running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'lost'] as const;
export type AttemptState = (typeof ATTEMPT_STATES)[number];

const TASK_TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  // pending -> pending never happens; resume and recovery reset finished or running tasks to pending.
  pending: ['running', 'skipped', 'cancelled'],
  running: ['succeeded', 'failed', 'retrying', 'cancelled', 'pending'],
  retrying: ['running', 'cancelled', 'pending'],
  // Resume re-runs a task downstream of one that failed, or one the user names, even if it had succeeded.
  succeeded: ['pending'],
  failed: ['pending'],
  skipped: ['pending'],
  cancelled: ['pending'],
};

const RUN_TRANSITIONS: Record<RunState, readonly RunState[]> = {
  // interrupted: created with an owner that died before it started the run.
  queued: ['running', 'cancelled', 'interrupted'],
  running: ['succeeded', 'failed', 'cancelled', 'interrupted', 'retrying'],
  retrying: ['running', 'cancelled', 'interrupted', 'failed'],
  succeeded: [],
  failed: ['running', 'queued'],
  cancelled: ['running', 'queued'],
  interrupted: ['running', 'queued', 'cancelled', 'failed'],
};

export const FINISHED_TASK_STATES: ReadonlySet<TaskState> = new Set([
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
]);
export const FINISHED_RUN_STATES: ReadonlySet<RunState> = new Set(['succeeded', 'failed', 'cancelled']);

export function isTaskFinished(state: TaskState): boolean {
  return FINISHED_TASK_STATES.has(state);
}

export function isRunFinished(state: RunState): boolean {
  return FINISHED_RUN_STATES.has(state);
}

export function canTransitionTask(from: TaskState, to: TaskState): boolean {
  return TASK_TRANSITIONS[from].includes(to);
}

export function canTransitionRun(from: RunState, to: RunState): boolean {
  return RUN_TRANSITIONS[from].includes(to);
}

export function assertTaskTransition(task: string, from: TaskState, to: TaskState): void {
  if (!canTransitionTask(from, to)) {
    throw new WeftError('STATE_TRANSITION', `task "${task}" cannot go from ${from} to ${to}`, {
      retryable: false,
    });
  }
}

export function assertRunTransition(runId: string, from: RunState, to: RunState): void {
  if (!canTransitionRun(from, to)) {
    throw new WeftError('STATE_TRANSITION', `run ${runId} cannot go from ${from} to ${to}`, {
      retryable: false,
    });
  }
}
