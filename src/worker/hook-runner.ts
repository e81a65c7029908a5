import type { Clock } from '../core/clock.js';
import type { JsonValue } from '../core/json.js';
import { countPreviousFailures, planHookOf, runHook, type HookRunner } from '../engine/hooks.js';
import type { LogWriter } from '../engine/log-writer.js';
import { createSecretMasker } from '../engine/mask.js';
import { WeftError } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { HookInfo } from '../handlers/types.js';
import type { RunStore } from '../store/run-store.js';
import type { HookClaim, TaskQueue } from './queue-port.js';

export interface ClaimedHookContext {
  workerId: string;
  store: RunStore;
  queue: TaskQueue;
  registry: HandlerRegistry;
  env: Readonly<Record<string, string | undefined>>;
  logs: LogWriter;
  clock: Clock;
}

/** One pending hook, at least once: its record says done or failed before its queue entry goes. */
export async function runClaimedHook(context: ClaimedHookContext, claim: HookClaim): Promise<void> {
  const { store } = context;
  const record = (await store.getHooks(claim.runId, ['pending'])).find((h) => h.key === claim.key);
  if (record) {
    const run = await store.getRun(claim.runId);
    if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${claim.runId}`, { retryable: false });
    const taskRuns = await store.getTaskRuns(run.id);
    const tasks = Object.create(null) as Record<string, { output: JsonValue; state: string }>;
    for (const t of taskRuns)
      tasks[t.task] = { output: t.state === 'succeeded' ? t.output : null, state: t.state };
    const masker = createSecretMasker(run.plan.secrets, context.env);
    const runner: HookRunner = {
      store,
      registry: context.registry,
      run,
      env: context.env,
      masker,
      logs: context.logs,
      clock: context.clock,
      signal: new AbortController().signal,
      emit: () => undefined,
      tasks: () => tasks,
    };
    let info: HookInfo;
    if (record.event === 'task_failure') {
      const taskRun = taskRuns.find((t) => t.task === record.task);
      info = {
        event: 'task_failure',
        task: record.task,
        error: record.error ?? taskRun?.error ?? null,
        attempts: taskRun?.attempts ?? 0,
        runState: run.state,
        consecutiveFailures: 0,
      };
    } else {
      const previous = await countPreviousFailures(store, run);
      const failed = record.event === 'run_failure';
      info = {
        event: record.event,
        task: null,
        error: record.error,
        runState: failed ? 'failed' : 'succeeded',
        consecutiveFailures: failed ? previous + 1 : record.event === 'run_recovery' ? previous : 0,
      };
    }
    await runHook(runner, record, planHookOf(run.plan, record), info);
    await context.logs.flush();
  }
  await context.queue.finishHook(context.workerId, claim);
}
