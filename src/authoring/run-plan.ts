import type { Plan } from '../compile/plan.js';
import { createDict, dictFromEntries, type JsonObject, type JsonValue } from '../core/json.js';
import type { TaskState } from '../core/states.js';
import { createRun } from '../engine/create-run.js';
import { executeRun } from '../engine/execute-run.js';
import { NonRetryableError, WeftError, type ErrorInfo } from '../errors.js';
import { HandlerRegistry } from '../handlers/registry.js';
import type { AnyHandler, HandlerContext } from '../handlers/types.js';
import { resolveParams } from '../pipeline/params.js';
import { createMemoryStore } from '../store/memory/memory-store.js';
import type { LogRecord, RunRecord } from '../store/run-store.js';

/**
 * A stand-in for a task (by task name) or for a handler (by handler name, wherever it is used):
 * `{ output }` returns it; `{ fail }` throws that message — every attempt, or only the first
 * `times` attempts, after which `output` (or null) is returned. A function is called in place of
 * the handler's `run`.
 */
export type Mock = MockSpec | ((args: unknown, ctx: HandlerContext) => unknown);

export interface MockSpec {
  output?: JsonValue;
  fail?: string;
  times?: number;
  /** false: the failure is a NonRetryableError (no retries). Default true. */
  retryable?: boolean;
}

export interface TaskResult {
  state: TaskState;
  /** null when none. */
  output: JsonValue;
  error: ErrorInfo | null;
  /** Attempts made. */
  attempts: number;
  /** Why it was skipped or cancelled. */
  reason: string | null;
}

export interface PipelineRunResult {
  run: RunRecord;
  /** Each task's final state and output, by task name. */
  tasks: Record<string, TaskResult>;
  /** The arguments each task's handler (real, mocked or stubbed) was called with, one entry per attempt. */
  calls: Record<string, unknown[]>;
  logs: LogRecord[];
}

export interface RunPlanOptions {
  registry: HandlerRegistry;
  /** Typed values, checked against the pipeline's params; defaults applied. */
  params?: JsonObject;
  mocks?: Record<string, Mock>;
  /** Replace every handler that is not mocked by one returning null (`weft test`). Default false. */
  stubUnmocked?: boolean;
  /** Default: an empty environment, so a test never reads the developer's secrets by accident. */
  env?: Record<string, string | undefined>;
  /** Keep the pipeline's retry delays. Default false: a test should not wait minutes for a retry. */
  realDelays?: boolean;
}

/** The handler names a plan calls: its tasks' and its hooks'. */
export function handlersUsedBy(plan: Plan): Set<string> {
  const names = new Set<string>();
  for (const task of Object.values(plan.tasks)) {
    names.add(task.handler);
    for (const hook of task.onFailure) names.add(hook.handler);
  }
  for (const hook of [...plan.onFailure, ...plan.onSuccess, ...plan.onRecovery]) names.add(hook.handler);
  return names;
}

/** Mock keys that name neither a task nor a handler of the plan: most likely typos. */
export function unknownMockKeys(plan: Plan, mocks: Record<string, Mock>): string[] {
  const handlers = handlersUsedBy(plan);
  return Object.keys(mocks).filter((key) => !Object.hasOwn(plan.tasks, key) && !handlers.has(key));
}

/**
 * Runs a compiled plan once, in memory, with the given mocks, and returns how every task ended.
 * The plan's arguments are still validated against the real handlers' schemas, so a mocked task
 * with wrong `with` fails as it would for real.
 */
export async function runPlanWithMocks(plan: Plan, options: RunPlanOptions): Promise<PipelineRunResult> {
  const mocks = options.mocks ?? {};
  const unknown = unknownMockKeys(plan, mocks);
  if (unknown.length > 0) {
    throw new WeftError(
      'CONFIG_INVALID',
      `mock ${unknown.map((k) => `"${k}"`).join(', ')} matches no task or handler of pipeline ${plan.name}`,
      {
        hint: `tasks: ${Object.keys(plan.tasks).join(', ')}; handlers: ${[...handlersUsedBy(plan)].sort().join(', ')}`,
        retryable: false,
      },
    );
  }
  const { params, errors } = resolveParams(plan.params, options.params ?? {}, 'json');
  if (errors.length > 0) throw new WeftError('PARAM_INVALID', errors.join('\n'), { retryable: false });

  const calls = createDict<unknown[]>();
  const registry = new HandlerRegistry();
  for (const name of handlersUsedBy(plan)) {
    registry.register(
      wrapHandler(name, options.registry.get(name), { mocks, stub: options.stubUnmocked ?? false, calls }),
    );
  }
  const store = createMemoryStore();
  try {
    const runPlan = options.realDelays ? plan : withoutDelays(plan);
    const env = options.env ?? {};
    const created = await createRun(store, {
      plan: runPlan,
      params,
      trigger: 'manual',
      now: Date.now(),
      env,
    });
    const run = await executeRun(created.id, {
      store,
      registry,
      owner: 'weft-test',
      env,
      cancelGraceMs: 1000,
    });
    const tasks = createDict<TaskResult>();
    for (const t of await store.getTaskRuns(run.id)) {
      tasks[t.task] = {
        state: t.state,
        output: t.output,
        error: t.error,
        attempts: t.attempts,
        reason: t.reason,
      };
    }
    return { run, tasks, calls, logs: await store.getLogs(run.id) };
  } finally {
    await store.close();
  }
}

function wrapHandler(
  name: string,
  real: AnyHandler | undefined,
  options: { mocks: Record<string, Mock>; stub: boolean; calls: Record<string, unknown[]> },
): AnyHandler {
  const { mocks, stub, calls } = options;
  return {
    name,
    // The real schema stays: arguments are checked exactly as in a real run.
    ...(real?.args ? { args: real.args } : {}),
    ...(real?.shellQuoted ? { shellQuoted: real.shellQuoted } : {}),
    ...(real?.description ? { description: real.description } : {}),
    // The mock's value is checked like any output (normaliseOutput in the engine).
    run: (args: unknown, ctx: HandlerContext) => runMocked(args, ctx) as JsonValue,
  };
  function runMocked(args: unknown, ctx: HandlerContext): unknown {
    // A hook runs with ctx.task naming the failed task: only a handler mock applies to it.
    const mock =
      (!ctx.hook && Object.hasOwn(mocks, ctx.task) ? mocks[ctx.task] : undefined) ??
      (Object.hasOwn(mocks, name) ? mocks[name] : undefined);
    if (!ctx.hook) (calls[ctx.task] ??= []).push(args);
    if (mock !== undefined) return applyMock(mock, args, ctx);
    if (stub || !real) return null;
    return real.run(args, ctx);
  }
}

function applyMock(mock: Mock, args: unknown, ctx: HandlerContext): unknown {
  if (typeof mock === 'function') return mock(args, ctx);
  if (mock.fail !== undefined && (mock.times === undefined || ctx.attempt <= mock.times)) {
    throw mock.retryable === false ? new NonRetryableError(mock.fail) : new Error(mock.fail);
  }
  return mock.output ?? null;
}

/** The plan with every retry delay at zero: retries still happen, at once. */
function withoutDelays(plan: Plan): Plan {
  const zero = (retry: Plan['retry']) => ({ ...retry, delayMs: 0, maxDelayMs: null, jitter: false });
  // Shallow copies: the tasks map stays a prototype-free dict, as the engine expects.
  const tasks = dictFromEntries(
    Object.entries(plan.tasks).map(([name, task]) => [name, { ...task, retry: zero(task.retry) }] as const),
  );
  return { ...plan, retry: zero(plan.retry), tasks };
}
