import type { Plan } from '../compile/plan.js';
import type { JsonObject } from '../core/json.js';
import {
  createRun,
  DEFAULT_STALE_HEARTBEAT_MS,
  executeRun,
  isLocalOwner,
  isLocalOwnerAlive,
} from '../engine/index.js';
import type { EngineEvent } from '../engine/events.js';
import { WeftError } from '../errors.js';
import type { RunRecord, RunTrigger } from '../store/run-store.js';
import type { TaskQueue } from '../worker/queue-port.js';
import type { SchedulerContext } from './scheduler-context.js';

/** Creating the scheduler's runs and executing them in the background (or handing them to a queue). */

/** Creates the run and executes it in the background. Returns once it is created (or refused). */
export async function startRun(
  ctx: SchedulerContext,
  plan: Plan,
  params: JsonObject,
  trigger: RunTrigger,
  runId: string,
  scheduledFor: number | null,
  requestId: string | null,
): Promise<RunRecord | null> {
  const active = activeOf(ctx, plan.name);
  // Counted as active before the first await, so an overlapping fire sees it at once.
  active.add(runId);
  let run: RunRecord;
  try {
    run = await createRun(ctx.store, {
      plan,
      params,
      trigger,
      id: runId,
      now: ctx.clock.now(),
      ...(ctx.options.engine?.env ? { env: ctx.options.engine.env } : {}),
      // A run for the task queue has no owner until the queue takes it: if handing it over fails
      // (the database dropped the connection), the queue's housekeeping takes it (reap.ts).
      owner: ctx.options.queue ? null : ctx.options.owner,
      ...(scheduledFor === null ? {} : { scheduledFor }),
    });
  } catch (error) {
    active.delete(runId);
    if (error instanceof WeftError && error.code === 'RUN_DUPLICATE' && scheduledFor !== null) {
      ctx.log({
        type: 'fire:taken',
        pipeline: plan.name,
        scheduledFor: new Date(scheduledFor).toISOString(),
      });
      return null;
    }
    throw error;
  }
  ctx.log({
    type: 'run:created',
    runId,
    pipeline: plan.name,
    trigger,
    scheduledFor: run.scheduledFor,
    requestId,
  });
  executeInBackground(ctx, run, scheduledFor);
  return run;
}

function activeOf(ctx: SchedulerContext, pipeline: string): Set<string> {
  let set = ctx.active.get(pipeline);
  if (!set) {
    set = new Set();
    ctx.active.set(pipeline, set);
  }
  return set;
}

/** Executes a created (or resumed) run in the background; its end starts the pipeline's next waiting fire. */
export function executeInBackground(
  ctx: SchedulerContext,
  run: RunRecord,
  scheduledFor: number | null,
): void {
  if (ctx.options.queue) {
    enqueue(ctx, ctx.options.queue, run);
    return;
  }
  const controller = new AbortController();
  const pipeline = run.pipeline;
  activeOf(ctx, pipeline).add(run.id);
  const onEvent = (event: EngineEvent) => logEngineEvent(ctx, pipeline, scheduledFor, event);
  const done = executeRun(run.id, {
    store: ctx.store,
    registry: ctx.options.registry,
    clock: ctx.clock,
    owner: ctx.options.owner,
    signal: controller.signal,
    onEvent,
    ...ctx.options.engine,
  })
    .then(
      () => undefined,
      (error: unknown) => {
        ctx.logError(error, `executing run ${run.id} of ${pipeline}`);
        // The engine could not record the run's end (the store failed under it): the run is left
        // `running` in our name while nothing runs it. Mark it interrupted, fenced on our
        // ownership, so `weft resume` (or resume_interrupted at the next start) finishes it; if the
        // store is still failing, blockingRun already ignores it and the next start's recovery
        // marks it.
        return ctx.store
          .updateRun(
            run.id,
            { state: 'interrupted' },
            { states: ['running', 'retrying'], owner: ctx.options.owner },
          )
          .then(
            (marked) => {
              if (marked) ctx.log({ type: 'run:interrupted', runId: run.id, pipeline, resuming: false });
            },
            (markError: unknown) =>
              ctx.logError(markError, `marking run ${run.id} of ${pipeline} interrupted`),
          );
      },
    )
    .finally(() => {
      ctx.executions.delete(run.id);
      ctx.active.get(pipeline)?.delete(run.id);
      void ctx.track(ctx.drain(pipeline), 'starting a queued fire');
    });
  ctx.executions.set(run.id, { runId: run.id, pipeline, controller, done });
}

/**
 * Hands a created run to the queue. It counts as active here until the queue has taken it
 * (then the store shows it running, which is what overlap looks at).
 */
function enqueue(ctx: SchedulerContext, queue: Pick<TaskQueue, 'startRun'>, run: RunRecord): void {
  const pipeline = run.pipeline;
  activeOf(ctx, pipeline).add(run.id);
  const done = queue
    .startRun(run.id)
    .then(
      () => undefined,
      (error: unknown) => ctx.logError(error, `queueing run ${run.id} of ${pipeline}`),
    )
    .finally(() => {
      ctx.executions.delete(run.id);
      ctx.active.get(pipeline)?.delete(run.id);
    });
  ctx.executions.set(run.id, { runId: run.id, pipeline, controller: new AbortController(), done });
}

function logEngineEvent(
  ctx: SchedulerContext,
  pipeline: string,
  scheduledFor: number | null,
  event: EngineEvent,
): void {
  switch (event.type) {
    case 'run:started':
      ctx.log({
        type: 'run:started',
        runId: event.runId,
        pipeline,
        attempt: event.attempt,
        lagMs: scheduledFor === null ? null : ctx.clock.now() - scheduledFor,
      });
      return;
    case 'run:retrying':
      ctx.log({ ...event, pipeline });
      return;
    case 'task:retrying':
      ctx.log({ ...event, pipeline });
      return;
    case 'run:finished':
      ctx.log({ ...event, pipeline });
      return;
    case 'task:started':
    case 'task:succeeded':
    case 'task:failed':
    case 'task:skipped':
    case 'task:cancelled':
    case 'task:log':
    case 'hook:failed':
      // Task-level detail belongs to `weft logs`; the server log keeps one line per run event.
      return;
  }
}

/**
 * A run of `pipeline` in progress here, or else anywhere in the store; null when none. A run the
 * store shows running blocks only if something may still be running it: not one in our own name
 * that we are not executing (its execution failed on a store error), not one whose process on this
 * host is dead, not one whose owner on another host has stopped heartbeating — any of those would
 * make every later fire skip until some scheduler restarts and notices.
 */
export async function blockingRun(ctx: SchedulerContext, pipeline: string): Promise<string | null> {
  const local = ctx.active.get(pipeline);
  if (local && local.size > 0) return local.values().next().value!;
  const running = await ctx.store.listRuns({ pipeline, states: ['running', 'retrying'], limit: 10 });
  const now = ctx.clock.now();
  const mayBeRunning = (run: RunRecord): boolean => {
    if (run.owner === null) return true; // handed to the queue: workers run it
    if (run.owner === ctx.options.owner) return false;
    if (ctx.options.isOwnerAlive) return ctx.options.isOwnerAlive(run.owner);
    if (isLocalOwner(run.owner)) return isLocalOwnerAlive(run.owner);
    const beat = run.heartbeatAt ?? run.startedAt ?? run.createdAt;
    return now - Date.parse(beat) < DEFAULT_STALE_HEARTBEAT_MS;
  };
  return running.find(mayBeRunning)?.id ?? null;
}
