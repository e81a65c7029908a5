import type { Plan, PlanHook, PlanTask, RetryPolicy } from '../../src/compile/plan.js';
import { DEFAULT_HOOK_TIMEOUT_MS } from '../../src/engine/hook-defaults.js';
import { createDict, type JsonValue } from '../../src/core/json.js';
import type { ParamSpec, TriggerRule } from '../../src/pipeline/spec.js';

/**
 * A small DSL for engine tests: builds a Plan without the YAML compiler, every PlanTask field
 * defaulted, dependents, order and stages computed.
 *
 *   plan({ tasks: [ok('a'), boom('b', ['a']), task('c', { deps: ['b'], triggerRule: 'all_done' })] })
 */

export type HookDef = string | (Partial<PlanHook> & { handler: string });

export interface TaskDef {
  name: string;
  handler?: string;
  with?: JsonValue;
  deps?: string[];
  retries?: number;
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number | null;
  when?: string | boolean | null;
  triggerRule?: TriggerRule;
  continueOnError?: boolean;
  onFailure?: HookDef[];
  queue?: string;
  description?: string | null;
}

export interface PlanDef {
  name?: string;
  tasks: TaskDef[];
  concurrency?: number;
  /** Whole-run retries. */
  retries?: number;
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number | null;
  onFailure?: HookDef[];
  onSuccess?: HookDef[];
  onRecovery?: HookDef[];
  secrets?: string[];
  params?: Record<string, ParamSpec>;
  resumeInterrupted?: boolean;
}

const POSITION = { file: 'test.yaml', line: 1, column: 1 };

export function retryPolicy(p: Partial<RetryPolicy> = {}): RetryPolicy {
  return { retries: 0, delayMs: 1000, backoff: 'fixed', maxDelayMs: null, jitter: false, ...p };
}

function hook(def: HookDef): PlanHook {
  const base = typeof def === 'string' ? { handler: def } : def;
  return {
    with: null,
    afterConsecutiveFailures: null,
    timeoutMs: DEFAULT_HOOK_TIMEOUT_MS,
    position: POSITION,
    ...base,
  };
}

/** A task with any handler and settings. */
export function task(name: string, options: Omit<TaskDef, 'name'> = {}): TaskDef {
  return { name, ...options };
}

/** A task whose handler `ok` succeeds (the harness registers it). */
export function ok(name: string, deps: string[] = [], options: Omit<TaskDef, 'name' | 'deps'> = {}): TaskDef {
  return { name, handler: 'ok', deps, ...options };
}

/** A task whose handler `boom` always throws a retryable error. */
export function boom(
  name: string,
  deps: string[] = [],
  options: Omit<TaskDef, 'name' | 'deps'> = {},
): TaskDef {
  return { name, handler: 'boom', deps, ...options };
}

export function plan(def: PlanDef): Plan {
  const tasks = createDict<PlanTask>();
  for (const t of def.tasks) {
    if (t.name in tasks) throw new Error(`plan-builder: task "${t.name}" twice`);
    tasks[t.name] = {
      name: t.name,
      handler: t.handler ?? 'ok',
      with: t.with ?? null,
      dependsOn: [...(t.deps ?? [])],
      dependents: [],
      retry: retryPolicy({ retries: t.retries ?? 0, ...t.retry }),
      timeoutMs: t.timeoutMs ?? null,
      when: t.when ?? null,
      triggerRule: t.triggerRule ?? 'all_success',
      continueOnError: t.continueOnError ?? false,
      onFailure: (t.onFailure ?? []).map(hook),
      queue: t.queue ?? 'default',
      description: t.description ?? null,
      stage: 0,
      position: POSITION,
    };
  }
  for (const t of Object.values(tasks)) {
    for (const dep of t.dependsOn) {
      const upstream = tasks[dep];
      if (!upstream) throw new Error(`plan-builder: task "${t.name}" depends on unknown "${dep}"`);
      upstream.dependents.push(t.name);
    }
  }
  // Kahn's algorithm, declaration order among equals; stage = longest path from a root.
  const remaining = new Map(Object.values(tasks).map((t) => [t.name, t.dependsOn.length]));
  const order: string[] = [];
  const declared = new Map(def.tasks.map((t, i) => [t.name, i]));
  let frontier = def.tasks.map((t) => t.name).filter((n) => remaining.get(n) === 0);
  const stages: string[][] = [];
  while (frontier.length > 0) {
    stages.push(frontier);
    const next: string[] = [];
    for (const name of frontier) {
      order.push(name);
      tasks[name]!.stage = stages.length - 1;
      for (const dependent of tasks[name]!.dependents) {
        const left = remaining.get(dependent)! - 1;
        remaining.set(dependent, left);
        if (left === 0) next.push(dependent);
      }
    }
    frontier = next.sort((a, b) => declared.get(a)! - declared.get(b)!);
  }
  if (order.length !== def.tasks.length) throw new Error('plan-builder: the tasks have a cycle');
  return {
    version: 1,
    name: def.name ?? 'test',
    description: null,
    file: 'test.yaml',
    hash: 'test',
    schedule: null,
    params: Object.assign(createDict<ParamSpec>(), def.params ?? {}),
    concurrency: def.concurrency ?? 16,
    retry: retryPolicy({ retries: def.retries ?? 0, ...def.retry }),
    timeoutMs: def.timeoutMs ?? null,
    onFailure: (def.onFailure ?? []).map(hook),
    onSuccess: (def.onSuccess ?? []).map(hook),
    onRecovery: (def.onRecovery ?? []).map(hook),
    secrets: def.secrets ?? [],
    resumeInterrupted: def.resumeInterrupted ?? false,
    tasks,
    order,
    stages,
  };
}
