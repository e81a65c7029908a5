import { createDict } from '../../src/core/json.js';
import type { Plan, PlanTask, RetryPolicy } from '../../src/compile/plan.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';

const retry: RetryPolicy = { retries: 0, delayMs: 0, backoff: 'fixed', maxDelayMs: null, jitter: false };
const position = { file: 'pipelines/demo.yaml', line: 1, column: 1 };

/**
 * A small Plan for store tests: `tasks` lists [name, dependsOn] in declaration order; `order`
 * (default: the declaration order) is the topological order the store must keep.
 */
export function makePlan(name: string, tasks: [string, string[]][], order?: string[]): Plan {
  const dict = createDict<PlanTask>();
  for (const [task, dependsOn] of tasks) {
    dict[task] = {
      name: task,
      handler: 'noop',
      with: { message: `hello from ${task}`, nested: [1, { deep: true }] },
      dependsOn,
      dependents: tasks.filter(([, deps]) => deps.includes(task)).map(([t]) => t),
      retry,
      timeoutMs: null,
      when: null,
      triggerRule: 'all_success',
      continueOnError: false,
      onFailure: [],
      queue: 'default',
      description: null,
      stage: 0,
      position,
    };
  }
  const params = createDict<Plan['params'][string]>();
  params['region'] = { type: 'string', default: 'eu' };
  return {
    version: 1,
    name,
    description: 'a plan for store tests',
    file: position.file,
    hash: 'a'.repeat(64),
    schedule: null,
    params,
    concurrency: 4,
    retry,
    timeoutMs: null,
    onFailure: [],
    onSuccess: [],
    onRecovery: [],
    secrets: [],
    resumeInterrupted: false,
    tasks: dict,
    order: order ?? tasks.map(([t]) => t),
    stages: [order ?? tasks.map(([t]) => t)],
  };
}

/** A fan-out plan of `width` independent tasks t00000 … — for bulk-write tests. */
export function makeWidePlan(name: string, width: number): Plan {
  const tasks: [string, string[]][] = [];
  for (let i = 0; i < width; i++) tasks.push([`t${String(i).padStart(5, '0')}`, []]);
  return makePlan(name, tasks);
}

/** A one-task run of pipeline `p` created and finished (succeeded) at `finishedAt` (ISO). */
export async function finishedRun(store: RunStore, id: string, finishedAt: string): Promise<RunRecord> {
  const run = await store.createRun({
    id,
    pipeline: 'p',
    plan: makePlan('p', [['a', []]]),
    params: {},
    trigger: 'manual',
    scheduledFor: null,
    state: 'queued',
    owner: null,
    createdAt: finishedAt,
  });
  await store.updateRun(id, { state: 'succeeded', finishedAt });
  return run;
}
