import type { Plan } from '../compile/plan.js';
import type { TaskState } from '../core/states.js';
import { WeftError } from '../errors.js';
import type { Change } from './coord-changes.js';
import type { CoordState } from './coord-state.js';
import { Coordinator } from './coordinator.js';

/** First decisions of a run the queue takes: its ready tasks enqueued, the undecidable ones skipped. */
export function startTasks(input: {
  plan: Plan;
  /** The task-run states, by plan order. */
  taskStates: readonly TaskState[];
  now: number;
  /** Delay before the first tasks may start (a run retry's delay). Default 0. */
  delayMs?: number;
}): { states: CoordState[]; changes: Change[]; complete: boolean } {
  const initial = input.taskStates.map((state, i): CoordState => {
    switch (state) {
      case 'pending':
        return 'waiting';
      case 'succeeded':
      case 'failed':
      case 'skipped':
      case 'cancelled':
        return state;
      case 'running':
      case 'retrying':
        throw new WeftError(
          'RUN_STATE',
          `task "${input.plan.order[i]!}" is still ${state}; reset interrupted tasks (weft resume) before queueing the run`,
          { retryable: false },
        );
    }
  });
  const c = new Coordinator(input.plan, initial, input.now);
  const delayMs = input.delayMs ?? 0;
  c.evaluateAll();
  c.decide(input.now + delayMs, delayMs);
  return { states: c.states, changes: c.changes, complete: c.isComplete() };
}
