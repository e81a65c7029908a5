import type { Plan, PlanTask } from '../compile/plan.js';
import { createDict, type JsonValue } from '../core/json.js';
import type { TaskState } from '../core/states.js';
import { WeftError, type ErrorInfo } from '../errors.js';
import type { TaskRunRecord } from '../store/run-store.js';
import { outcomeOf } from './task-outcome.js';
import type { UpstreamOutcome } from './trigger-rules.js';

/** A task as one pass runs it: its place in the DAG and the runtime state the pass keeps for it. */
export interface TaskNode {
  name: string;
  task: PlanTask;
  deps: TaskNode[];
  dependents: TaskNode[];
  state: TaskState;
  /** How this task ended as its dependents see it. */
  outcome: UpstreamOutcome;
  /** Dependencies not finished yet. */
  remaining: number;
  /** Queued to run or skipped: decideTrigger is not asked again. */
  decided: boolean;
  /** Attempts started so far (across passes and resumes: attempt numbers only grow). */
  attempts: number;
  /** `attempts` when this pass began: retries are counted within the pass. */
  base: number;
  /** The delay waited before the next attempt. */
  delayMs: number;
  output: JsonValue;
  error: ErrorInfo | null;
  holdsSlot: boolean;
  waiting: boolean;
  /** Invalidates a retry timer that fires after the task was cancelled. */
  token: number;
}

/**
 * The pass's nodes, in plan order and linked both ways, from the task runs the store holds; and
 * how many of them are finished already. A task run the plan does not know, a task without a
 * task run, or one still running when a pass begins is a bug, reported as INTERNAL.
 */
export function createTaskNodes(
  plan: Plan,
  runId: string,
  taskRuns: readonly TaskRunRecord[],
): { nodes: TaskNode[]; finished: number } {
  const byName = new Map<string, TaskNode>();
  for (const taskRun of taskRuns) {
    const task = plan.tasks[taskRun.task];
    if (!task)
      throw new WeftError('INTERNAL', `run ${runId} has a task run "${taskRun.task}" its plan does not know`);
    if (taskRun.state === 'running' || taskRun.state === 'retrying') {
      throw new WeftError(
        'INTERNAL',
        `task "${taskRun.task}" is still ${taskRun.state} when a pass over run ${runId} begins`,
      );
    }
    byName.set(taskRun.task, {
      name: taskRun.task,
      task,
      deps: [],
      dependents: [],
      state: taskRun.state,
      outcome: outcomeOf(taskRun.state, task),
      remaining: 0,
      decided: taskRun.state !== 'pending',
      attempts: taskRun.attempts,
      base: taskRun.attempts,
      delayMs: 0,
      output: taskRun.output,
      error: taskRun.error,
      holdsSlot: false,
      waiting: false,
      token: 0,
    });
  }
  const nodes: TaskNode[] = [];
  for (const name of plan.order) {
    const node = byName.get(name);
    if (!node) throw new WeftError('INTERNAL', `run ${runId} has no task run for task "${name}"`);
    nodes.push(node);
  }
  let finished = 0;
  for (const node of nodes) {
    for (const dep of node.task.dependsOn) {
      const upstream = byName.get(dep)!;
      node.deps.push(upstream);
      upstream.dependents.push(node);
      if (upstream.outcome === 'unfinished') node.remaining += 1;
    }
    if (node.outcome !== 'unfinished') finished += 1;
  }
  return { nodes, finished };
}

/** Upstream tasks (direct and indirect), visited once each. */
export function ancestorsOf(node: TaskNode): TaskNode[] {
  const seen = new Set<TaskNode>();
  const stack = [...node.deps];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    for (const dep of next.deps) if (!seen.has(dep)) stack.push(dep);
  }
  return [...seen];
}

/** The outputs of a task's succeeded upstream tasks (direct and indirect), by task name. */
export function upstreamOutputsOf(node: TaskNode): Record<string, JsonValue> {
  const out = createDict<JsonValue>();
  for (const upstream of ancestorsOf(node))
    if (upstream.state === 'succeeded') out[upstream.name] = upstream.output;
  return out;
}

/** Finished tasks: output (null unless succeeded) and state. */
export function finishedTasksOf(
  nodes: readonly TaskNode[],
): Record<string, { output: JsonValue; state: string }> {
  const out = createDict<{ output: JsonValue; state: string }>();
  for (const node of nodes) {
    if (node.outcome !== 'unfinished')
      out[node.name] = { output: node.state === 'succeeded' ? node.output : null, state: node.state };
  }
  return out;
}
