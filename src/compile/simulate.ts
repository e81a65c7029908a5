import { decideTrigger, type UpstreamOutcome } from '../engine/trigger-rules.js';
import { createDict } from '../core/json.js';
import type { Plan, PlanTask } from './plan.js';

export type SimulatedTaskState = 'succeeded' | 'failed' | 'skipped';

export interface SimulatedHook {
  event: 'task_failure' | 'run_failure' | 'run_success';
  /** The failed task (task hooks, and run failures: the first task that failed the run). */
  task: string | null;
  handler: string;
}

export interface SimulationResult {
  tasks: Record<string, { state: SimulatedTaskState; reason: string | null }>;
  hooks: SimulatedHook[];
  runState: 'succeeded' | 'failed';
}

export interface SimulationOptions {
  /** Tasks that fail (every attempt) when they run. */
  fail: ReadonlySet<string>;
  /** Whether a task's `when` holds; default: only a literal `when: false` skips. */
  when?: (task: PlanTask) => boolean;
}

/**
 * What a run would do if the tasks in `fail` failed: which tasks run, which are skipped and why,
 * and which hooks fire. For `weft plan --fail`. Trigger rules come from the engine's own
 * `decideTrigger`, so the simulation cannot disagree with a real run.
 *
 * The run fails when a task fails without `continue_on_error`. A task with `continue_on_error`
 * that fails still fires its own on_failure hooks and counts as a success for its dependents,
 * but does not fail the run. Retries are not simulated: a failing task fails every attempt.
 * on_recovery hooks depend on earlier runs and are not shown; on_failure hooks with
 * `after_consecutive_failures` are listed as if the threshold were reached.
 */
export function simulateRun(plan: Plan, options: SimulationOptions): SimulationResult {
  const tasks = createDict<{ state: SimulatedTaskState; reason: string | null }>();
  const hooks: SimulatedHook[] = [];
  const when = options.when ?? ((task: PlanTask) => task.when !== false);
  let failedBy: string | null = null;

  for (const name of plan.order) {
    const task = plan.tasks[name]!;
    const upstream = task.dependsOn.map((dep) => ({
      task: dep,
      outcome: outcomeOf(plan.tasks[dep]!, tasks[dep]?.state),
    }));
    const decision = decideTrigger(task.triggerRule, upstream);
    if (decision.kind === 'skip') {
      tasks[name] = { state: 'skipped', reason: decision.reason };
      continue;
    }
    if (decision.kind === 'wait') {
      // Walking in topological order, every upstream task has finished: waiting means a bug.
      throw new Error(`simulateRun: task "${name}" would wait, but all its upstream tasks have finished`);
    }
    if (!when(task)) {
      tasks[name] = { state: 'skipped', reason: 'its `when` condition is false' };
      continue;
    }
    if (!options.fail.has(name)) {
      tasks[name] = { state: 'succeeded', reason: null };
      continue;
    }
    tasks[name] = {
      state: 'failed',
      reason: task.continueOnError
        ? 'simulated failure (continue_on_error: the run does not fail)'
        : 'simulated failure',
    };
    for (const hook of task.onFailure)
      hooks.push({ event: 'task_failure', task: name, handler: hook.handler });
    if (!task.continueOnError) failedBy ??= name;
  }

  const runState = failedBy === null ? 'succeeded' : 'failed';
  const pipelineHooks = runState === 'failed' ? plan.onFailure : plan.onSuccess;
  const event = runState === 'failed' ? 'run_failure' : 'run_success';
  for (const hook of pipelineHooks) hooks.push({ event, task: failedBy, handler: hook.handler });
  return { tasks, hooks, runState };
}

function outcomeOf(task: PlanTask, state: SimulatedTaskState | undefined): UpstreamOutcome {
  switch (state) {
    case undefined:
      return 'unfinished';
    case 'succeeded':
      return 'success';
    case 'failed':
      return task.continueOnError ? 'success' : 'failed';
    case 'skipped':
      return 'skipped';
  }
}
