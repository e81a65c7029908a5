import type { Plan } from '../compile/plan.js';
import { createDict, type JsonValue } from '../core/json.js';
import { isTaskFinished, type TaskState } from '../core/states.js';
import type { TaskQueue } from './queue-port.js';
import { planIndex } from './advance.js';

interface Entry {
  state: TaskState;
  output: JsonValue;
  /** Every ancestor of this task is cached too: a walk up the graph can stop here. */
  closed: boolean;
}

/**
 * What a worker knows of the finished tasks of the runs it works on: states and outputs, for
 * `ctx.upstream` and expressions. Within one run attempt a finished task never changes (a run
 * retry starts a new attempt, and succeeded tasks keep their outputs for good), so entries are
 * kept per (run, run attempt), and a task's ancestors are fetched once per worker, in one query
 * for the part of the graph not seen yet.
 */
export class UpstreamCache {
  readonly #queue: TaskQueue;
  readonly #runs = new Map<string, Map<string, Entry>>();
  readonly #limit: number;

  constructor(queue: TaskQueue, limit = 64) {
    this.#queue = queue;
    this.#limit = limit;
  }

  #entries(runId: string, runAttempt: number): Map<string, Entry> {
    const key = `${runId}@${runAttempt}`;
    let entries = this.#runs.get(key);
    if (entries) {
      this.#runs.delete(key);
    } else {
      entries = new Map();
      if (this.#runs.size >= this.#limit) this.#runs.delete(this.#runs.keys().next().value!);
    }
    this.#runs.set(key, entries);
    return entries;
  }

  /** Makes sure every finished ancestor of `task` is known; returns the run's entries. */
  async ensure(
    runId: string,
    runAttempt: number,
    plan: Plan,
    task: string,
  ): Promise<ReadonlyMap<string, Entry>> {
    const entries = this.#entries(runId, runAttempt);
    const seen = new Set<string>();
    const missing: string[] = [];
    const stack = [...plan.tasks[task]!.dependsOn];
    while (stack.length > 0) {
      const name = stack.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      const entry = entries.get(name);
      if (entry?.closed) continue;
      if (!entry) missing.push(name);
      for (const dep of plan.tasks[name]!.dependsOn) if (!seen.has(dep)) stack.push(dep);
    }
    if (missing.length > 0) {
      for (const row of await this.#queue.taskOutputs(runId, missing)) {
        if (isTaskFinished(row.state))
          entries.set(row.task, { state: row.state, output: row.output, closed: false });
      }
    }
    if (seen.size > 0) {
      // Upstream first (plan order is topological): a task closes once all its dependencies have.
      const { position } = planIndex(plan);
      for (const name of [...seen].sort((a, b) => position.get(a)! - position.get(b)!)) {
        const entry = entries.get(name);
        if (!entry || entry.closed) continue;
        entry.closed = plan.tasks[name]!.dependsOn.every((dep) => entries.get(dep)?.closed === true);
      }
    }
    return entries;
  }

  /** A task this worker saw succeed (its result recorded): its dependents need not ask for it. */
  remember(runId: string, runAttempt: number, plan: Plan, task: string, output: JsonValue): void {
    const entries = this.#entries(runId, runAttempt);
    const closed = plan.tasks[task]!.dependsOn.every((dep) => entries.get(dep)?.closed === true);
    entries.set(task, { state: 'succeeded', output, closed });
  }

  /** Finished ancestors of `task` (direct and indirect), from what `ensure` loaded. */
  static ancestors(
    plan: Plan,
    entries: ReadonlyMap<string, Entry>,
    task: string,
  ): Record<string, { output: JsonValue; state: string }> {
    const out = createDict<{ output: JsonValue; state: string }>();
    const seen = new Set<string>();
    const stack = [...plan.tasks[task]!.dependsOn];
    while (stack.length > 0) {
      const name = stack.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      const entry = entries.get(name);
      if (entry)
        out[name] = { output: entry.state === 'succeeded' ? entry.output : null, state: entry.state };
      for (const dep of plan.tasks[name]!.dependsOn) if (!seen.has(dep)) stack.push(dep);
    }
    return out;
  }
}
