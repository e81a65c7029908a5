import type { Plan, PlanHook } from '../compile/plan.js';
import type { Clock } from '../core/clock.js';
import type { JsonValue } from '../core/json.js';
import { toErrorInfo, WeftError, type ErrorInfo } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { quoteShellSubstitution } from '../handlers/shell-quote.js';
import type { HandlerContext, HookInfo } from '../handlers/types.js';
import { containsExpression, resolveTemplate, type ExpressionScope } from '../pipeline/expressions.js';
import type { HookEvent, HookRecord, RunRecord, RunStore } from '../store/run-store.js';
import { invokeHandler } from './attempt.js';
import { DEFAULT_HOOK_TIMEOUT_MS } from './hook-defaults.js';
import type { EngineEvent } from './events.js';
import { checkHandlerArgs } from './handler-args.js';
import type { LogWriter } from './log-writer.js';
import type { Masker } from './mask.js';
import { unsealParams } from './secret-params.js';
import { createTaskLogger } from './task-logger.js';
import { toIso } from './time.js';

/**
 * Hooks are durable: a due hook is stored (`pending`) before it runs, so that a kill cannot lose
 * it, and whoever executes the run next runs the pending ones first (at least once). Keys are
 * deterministic, so recording the same due hook twice (after a crash between recording and
 * finishing) stores it once:
 *   task hooks  `task_failure:<task>:<index>@<attempt that failed>`
 *   run hooks   `<event>:<index>@<run attempt>` (a resumed run gets a new run attempt)
 */

export function taskHookKey(task: string, index: number, attempt: number): string {
  return `task_failure:${task}:${index}@${attempt}`;
}

export function runHookKey(
  event: Exclude<HookEvent, 'task_failure'>,
  index: number,
  runAttempt: number,
): string {
  return `${event}:${index}@${runAttempt}`;
}

const TASK_KEY = /^task_failure:(.*):(\d+)@(\d+)$/;
const RUN_KEY = /^(run_failure|run_success|run_recovery):(\d+)@(\d+)$/;

/** The plan hook a stored hook record stands for, or undefined when the plan has no such hook. */
export function planHookOf(plan: Plan, record: Pick<HookRecord, 'key'>): PlanHook | undefined {
  const task = TASK_KEY.exec(record.key);
  if (task) return plan.tasks[task[1]!]?.onFailure[Number(task[2])];
  const run = RUN_KEY.exec(record.key);
  if (!run) return undefined;
  return runHooksOf(plan, run[1] as Exclude<HookEvent, 'task_failure'>)[Number(run[2])];
}

export function runHooksOf(plan: Plan, event: Exclude<HookEvent, 'task_failure'>): PlanHook[] {
  switch (event) {
    case 'run_failure':
      return plan.onFailure;
    case 'run_success':
      return plan.onSuccess;
    case 'run_recovery':
      return plan.onRecovery;
  }
}

export function newHookRecord(
  runId: string,
  key: string,
  event: HookEvent,
  task: string | null,
  hook: PlanHook,
  error: ErrorInfo | null,
  now: number,
): HookRecord {
  return {
    runId,
    key,
    event,
    task,
    handler: hook.handler,
    state: 'pending',
    error,
    createdAt: toIso(now),
    finishedAt: null,
  };
}

const PAGE = 100;
const MAX_PAGES = 20;

/**
 * Failed runs of the run's pipeline in a row just before it (newest first, stopping at the
 * first success). Cancelled, interrupted and unfinished runs neither count nor break the streak.
 */
export async function countPreviousFailures(
  store: RunStore,
  run: Pick<RunRecord, 'id' | 'pipeline'>,
): Promise<number> {
  let count = 0;
  let seen = false;
  for (let page = 0; page < MAX_PAGES; page++) {
    const runs = await store.listRuns({ pipeline: run.pipeline, limit: PAGE, offset: page * PAGE });
    for (const other of runs) {
      if (!seen) {
        seen = other.id === run.id;
        continue;
      }
      if (other.state === 'failed') count += 1;
      else if (other.state === 'succeeded') return count;
    }
    if (runs.length < PAGE) break;
  }
  return count;
}

/** Whether an `on_failure` hook fires on this many consecutive failures: every time, or exactly on the Nth. */
export function isFailureHookDue(hook: PlanHook, consecutiveFailures: number): boolean {
  return hook.afterConsecutiveFailures === null || consecutiveFailures === hook.afterConsecutiveFailures;
}

/** How long a hook may take to return once it is told to stop (Ctrl-C, a stopping worker). */
const HOOK_CANCEL_GRACE_MS = 5_000;

export interface HookRunner {
  store: RunStore;
  registry: HandlerRegistry;
  run: RunRecord;
  env: Readonly<Record<string, string | undefined>>;
  masker: Masker;
  logs: LogWriter;
  clock: Clock;
  /** Stops the hook (with its grace): Ctrl-C, a stopping worker. */
  signal: AbortSignal;
  emit: (event: EngineEvent) => void;
  /** Finished tasks of the run, for expressions and `ctx.upstream`. */
  tasks: () => Record<string, { output: JsonValue; state: string }>;
}

/**
 * Runs one recorded hook and marks it done or failed. A failing hook is reported (event
 * `hook:failed` and a log line) and never changes the run's result, so this never throws for a
 * hook's own failure; only a store failure escapes.
 */
export async function runHook(
  runner: HookRunner,
  record: HookRecord,
  hook: PlanHook | undefined,
  info: HookInfo,
): Promise<void> {
  const { store, run } = runner;
  try {
    if (!hook)
      throw new WeftError('INTERNAL', `hook "${record.key}" is not in the run's plan`, { retryable: false });
    const handler = runner.registry.get(hook.handler);
    if (!handler) {
      throw new WeftError('HANDLER_UNKNOWN', `hook "${record.key}": no handler named "${hook.handler}"`, {
        retryable: false,
      });
    }
    const tasks = runner.tasks();
    // Sealed in the store (secret-params.ts); a hook sees the values, as the tasks did.
    const params = unsealParams(run.params, run.plan.secrets, runner.env);
    let args: JsonValue = hook.with;
    if (args !== null && containsExpression(args)) {
      const scope: ExpressionScope = {
        params,
        env: runner.env,
        tasks,
        run: { id: run.id, scheduled_for: run.scheduledFor, attempt: run.attempt },
      };
      args = resolveTemplate(
        args,
        scope,
        handler.shellQuoted ? { quoteKeys: handler.shellQuoted, quote: quoteShellSubstitution } : {},
      );
    } else if (args !== null && typeof args === 'object') {
      args = structuredClone(args);
    }
    checkHandlerArgs(handler, args, `hook ${record.key}`);
    const upstream: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
    for (const [name, task] of Object.entries(tasks))
      if (task.state === 'succeeded') upstream[name] = task.output;
    const ctx: Omit<HandlerContext, 'signal'> = {
      pipeline: run.pipeline,
      task: record.task ?? record.event,
      run: { id: run.id, pipeline: run.pipeline, scheduledFor: run.scheduledFor, attempt: run.attempt },
      attempt: 1,
      params,
      upstream,
      log: createTaskLogger({
        logs: runner.logs,
        masker: runner.masker,
        now: () => runner.clock.now(),
        runId: runner.run.id,
        task: record.task,
        attempt: null,
      }),
      env: runner.env,
      hook: info,
      mask: runner.masker,
    };
    // Bounded like a task: a hook that hangs (a webhook that never answers) must not hold up the
    // run's end, nor the hooks queued behind it on a worker.
    const result = await invokeHandler((signal) => handler.run(args ?? undefined, { ...ctx, signal }), {
      task: record.task ?? record.event,
      label: `hook ${record.key} (handler ${record.handler})`,
      timeoutCode: 'HOOK_TIMEOUT',
      clock: runner.clock,
      timeoutMs: hook.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS,
      cancelSignal: runner.signal,
      graceMs: HOOK_CANCEL_GRACE_MS,
    });
    if (result.state !== 'succeeded') throw result.error;
  } catch (caught) {
    const info = toErrorInfo(caught);
    const error: ErrorInfo = { ...info, message: runner.masker(info.message) };
    runner.emit({
      type: 'hook:failed',
      runId: run.id,
      key: record.key,
      event: record.event,
      handler: record.handler,
      task: record.task,
      error,
    });
    runner.logs.write({
      runId: run.id,
      task: record.task,
      attempt: null,
      ts: toIso(runner.clock.now()),
      level: 'error',
      message: `hook ${record.key} (handler ${record.handler}) failed: ${error.message}`,
    });
    // Its lines are stored before it is recorded finished, as an attempt's are: once the run has
    // nothing pending, a prune may delete it, and a line written after that would be lost.
    await runner.logs.flush();
    await store.updateHook(run.id, record.key, {
      state: 'failed',
      error,
      finishedAt: toIso(runner.clock.now()),
    });
    return;
  }
  // Outside the catch: the store failing to record it done is not the hook failing. It escapes,
  // and the hook, still pending, runs again (at least once).
  await runner.logs.flush();
  await store.updateHook(run.id, record.key, { state: 'done', finishedAt: toIso(runner.clock.now()) });
}
