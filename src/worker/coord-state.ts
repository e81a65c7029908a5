import type { Plan, PlanTask } from '../compile/plan.js';
import type { UpstreamOutcome } from '../engine/trigger-rules.js';
import { WeftError } from '../errors.js';

/**
 * A task's coordination state is coarser than its task-run state: the queue only needs to know
 * whether a task still waits for upstream tasks, is in the queue (ready, running or retrying: a
 * worker moves those), or has finished.
 */
export type CoordState = 'waiting' | 'queued' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

/** One character per task in plan order: how the adapter stores a run's coordination states. */
const CODES: Record<CoordState, string> = {
  waiting: 'w',
  queued: 'q',
  succeeded: 's',
  failed: 'f',
  skipped: 'k',
  cancelled: 'c',
};
const BY_CODE: Record<string, CoordState> = Object.fromEntries(
  Object.entries(CODES).map(([state, code]) => [code, state as CoordState]),
);

export function encodeStates(states: readonly CoordState[]): string {
  let out = '';
  for (const state of states) out += CODES[state];
  return out;
}

export function decodeStates(text: string): CoordState[] {
  const out: CoordState[] = new Array<CoordState>(text.length);
  for (let i = 0; i < text.length; i++) {
    const state = BY_CODE[text[i]!];
    if (!state)
      throw new WeftError('INTERNAL', `unknown coordination state "${text[i]!}"`, { retryable: false });
    out[i] = state;
  }
  return out;
}

export interface PlanIndex {
  position: Map<string, number>;
  tasks: PlanTask[];
}

const indexes = new WeakMap<Plan, PlanIndex>();

/** Task name -> position in plan order (cached: plans are immutable). */
export function planIndex(plan: Plan): PlanIndex {
  let index = indexes.get(plan);
  if (!index) {
    const tasks = plan.order.map((name) => plan.tasks[name]!);
    index = { position: new Map(plan.order.map((name, i) => [name, i])), tasks };
    indexes.set(plan, index);
  }
  return index;
}

/** How a finished upstream task counts for `decideTrigger` (continue_on_error counts as success). */
export function outcomeOf(state: CoordState, task: PlanTask): UpstreamOutcome {
  switch (state) {
    case 'succeeded':
      return 'success';
    case 'failed':
      return task.continueOnError ? 'success' : 'failed';
    case 'skipped':
      return 'skipped';
    case 'cancelled':
      return 'cancelled';
    case 'waiting':
    case 'queued':
      return 'unfinished';
  }
}

export function isUnfinished(state: CoordState): boolean {
  return state === 'waiting' || state === 'queued';
}
