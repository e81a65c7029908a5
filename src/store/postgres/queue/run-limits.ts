import type { Plan } from '../../../compile/plan.js';
import type { ErrorInfo } from '../../../errors.js';

/** The run's `concurrency` as a limit on its leased tasks (null: none). */
export function maxRunningOf(plan: Plan): number | null {
  const n = plan.concurrency;
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : null;
}

const planQueues = new WeakMap<Plan, string[]>();

/** The queues a plan's tasks go to (cached: plans are immutable). */
export function queuesOf(plan: Plan): string[] {
  let names = planQueues.get(plan);
  if (!names) {
    names = [...new Set(Object.values(plan.tasks).map((t) => t.queue))];
    planQueues.set(plan, names);
  }
  return names;
}

/** When a run attempt that starts (its first tasks available) at `startsAt` times out. */
export function deadlineOf(plan: Plan, startsAt: number): number | null {
  return plan.timeoutMs === null ? null : startsAt + plan.timeoutMs;
}

/** The run's error once past its timeout, worded as the interpreter words it (run-pass.ts). */
export function runTimeoutError(plan: Plan): ErrorInfo {
  return { code: 'RUN_TIMEOUT', message: `the run timed out after ${plan.timeoutMs ?? 0}ms` };
}
