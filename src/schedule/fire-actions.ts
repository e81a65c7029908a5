import { toErrorInfo } from '../errors.js';
import type { Plan } from '../compile/plan.js';
import { resolveParams } from '../pipeline/params.js';
import { newRunId } from '../store/ids.js';
import type { FireRecord } from '../store/run-store.js';
import { decideDueFires, scanDueFires, type DueContext, type FireDecision } from './due-fires.js';
import { blockingRun, startRun } from './run-execution.js';
import type { Entry, SchedulerContext } from './scheduler-context.js';
import { DEFAULT_LATE_GRACE_MS } from './scheduler-options.js';

/**
 * What due fires do: decided by due-fires.ts, acted on here: recorded (missed, skipped, queued,
 * ran), held back by overlap or a catch-up backlog, started. The waiting fires of a pipeline
 * start one after another as its runs end.
 */

/** Missed fires recorded one by one after downtime; older ones are only counted in the log. */
const MAX_MISSED_RECORDS = 500;

/** How the reason of a fire queued by overlap: queue begins (a catch-up one begins otherwise). */
const QUEUE_REASON = 'overlap: queue';

/** Recent fires of a pipeline looked through for the one waiting (at most one waits). */
const WAITING_LOOKBACK = 20;

/** Decides every fire of `entry` due by `now`, in time order, and moves its cursor past them. */
export async function handleDueFires(
  ctx: SchedulerContext,
  entry: Entry,
  now: number,
  context: DueContext,
): Promise<void> {
  const schedule = entry.plan.schedule;
  if (!schedule || !entry.times) return;
  const keep = Math.max(schedule.catchupLimit, MAX_MISSED_RECORDS) + 1;
  let scan = scanDueFires(entry.times, entry.cursor, now, keep);
  let afterOthers = false;
  if (context === 'wake' && scan.total > 1) {
    // Woken late (paused, starved, a clock jump): another scheduler on the store may have handled
    // these fires meanwhile, and a prune may since have deleted their records and runs, which
    // would let this one record and run them again. So it starts after the newest fire the store
    // holds. A store that cannot say is no reason to skip fires: each is still recorded once.
    // Only when several are due: a prune never deletes a pipeline's newest fire, so a single due
    // one is past everything another scheduler could have recorded and a prune deleted.
    const last = await ctx.store.lastFire(entry.plan.name).catch((error: unknown) => {
      ctx.log({
        type: 'scheduler:error',
        message: `could not read the newest fire of ${entry.plan.name} after a late wake; deciding from this scheduler's own`,
        error: toErrorInfo(error),
      });
      return null;
    });
    const lastAt = last ? Date.parse(last.scheduledFor) : Number.NaN;
    if (lastAt > entry.cursor) {
      entry.cursor = Math.min(lastAt, now);
      scan = scanDueFires(entry.times, entry.cursor, now, keep);
      afterOthers = true;
    }
  }
  if (scan.total === 0) {
    entry.nextAt = entry.times.next(Math.max(entry.cursor, now));
    return;
  }
  entry.cursor = scan.fires[scan.fires.length - 1]!;
  entry.nextAt = entry.times.next(entry.cursor);
  const { decisions, unrecorded, cutByLimit } = decideDueFires({
    scan,
    now,
    schedule,
    context,
    lateGraceMs: ctx.options.lateGraceMs ?? DEFAULT_LATE_GRACE_MS,
    afterOthers,
  });
  if (cutByLimit > 0) {
    ctx.log({
      type: 'catchup:capped',
      pipeline: entry.plan.name,
      missed: cutByLimit,
      limit: schedule.catchupLimit,
    });
  }
  if (unrecorded > 0 && schedule.catchup !== 'all') {
    ctx.log({
      type: 'fire:missed',
      pipeline: entry.plan.name,
      scheduledFor: new Date(scan.fires[0]!).toISOString(),
      reason: `and ${unrecorded}${scan.truncated ? '+' : ''} earlier fire(s), not recorded one by one`,
    });
  }
  // A catch-up backlog runs one fire after another, the current fire last, whatever `overlap`
  // says: skipping the current fire because the backlog is still running would be absurd.
  const backlog = decisions.some((d) => d.catchup);
  for (const decision of decisions) {
    if (ctx.isStopping()) return;
    await actOn(
      ctx,
      entry.plan,
      backlog && decision.action === 'run' ? { ...decision, catchup: true } : decision,
    );
  }
}

/** Records a fire; false when another scheduler recorded it first (then this one does nothing). */
async function record(ctx: SchedulerContext, fire: Omit<FireRecord, 'recordedAt'>): Promise<boolean> {
  const taken = await ctx.store.recordFire({
    ...fire,
    recordedAt: new Date(ctx.clock.now()).toISOString(),
  });
  if (!taken) ctx.log({ type: 'fire:taken', pipeline: fire.pipeline, scheduledFor: fire.scheduledFor });
  return taken;
}

async function actOn(ctx: SchedulerContext, plan: Plan, decision: FireDecision): Promise<void> {
  const pipeline = plan.name;
  const scheduledFor = new Date(decision.at).toISOString();
  if (decision.action === 'missed') {
    const reason = decision.reason ?? 'missed';
    if (await record(ctx, { pipeline, scheduledFor, outcome: 'missed', reason, runId: null })) {
      ctx.log({ type: 'fire:missed', pipeline, scheduledFor, reason });
    }
    return;
  }
  const params = resolveParams(plan.params, {}, 'json');
  if (params.errors.length > 0) {
    const reason = `its params need values a schedule cannot give: ${params.errors.join('; ')}`;
    if (await record(ctx, { pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
      ctx.log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
    }
    return;
  }
  const overlap = plan.schedule?.overlap ?? 'skip';
  const blocker = await blockingRun(ctx, pipeline);
  const waiting = ctx.waiting.get(pipeline) ?? [];
  // The store, not this process's memory, says whether a fire waits: another scheduler may have
  // recorded it, and "at most one waiting" holds across all of them.
  const pending = overlap === 'queue' ? await waitingQueueFire(ctx, pipeline) : null;
  const busy = blocker !== null || waiting.length > 0 || pending !== null;
  const runId = newRunId(ctx.clock.now());
  if (busy && (decision.catchup || overlap === 'queue')) {
    if (!decision.catchup && pending !== null) {
      const reason = 'one fire is already waiting (overlap: queue)';
      if (await record(ctx, { pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
        ctx.log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
      }
      return;
    }
    const reason = `${decision.catchup ? 'catch-up' : QUEUE_REASON}; starts when ${
      blocker ? `run ${blocker} ends` : 'the fires waiting before it have run'
    }`;
    if (await record(ctx, { pipeline, scheduledFor, outcome: 'queued', reason, runId })) {
      // Only a catch-up backlog is held here (it belongs to this process's start or wake-up); an
      // overlap: queue fire waits in the store, where any scheduler can start it.
      if (decision.catchup) {
        ctx.waiting.set(pipeline, [...waiting, { scheduledFor: decision.at, runId, kind: 'catchup' }]);
      }
      ctx.log({ type: 'fire:queued', pipeline, scheduledFor, reason });
    }
    return;
  }
  if (busy && overlap === 'skip') {
    const reason = `run ${blocker ?? '(queued)'} of this pipeline is still running (overlap: skip)`;
    if (await record(ctx, { pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
      ctx.log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
    }
    return;
  }
  if (await record(ctx, { pipeline, scheduledFor, outcome: 'ran', reason: null, runId })) {
    await startRun(ctx, plan, params.params, 'schedule', runId, decision.at, null);
  }
}

export function dropWaiting(ctx: SchedulerContext, pipeline: string, reason: string): void {
  for (const fire of ctx.waiting.get(pipeline) ?? []) {
    ctx.log({
      type: 'fire:dropped',
      pipeline,
      scheduledFor: new Date(fire.scheduledFor).toISOString(),
      reason,
    });
  }
  ctx.waiting.delete(pipeline);
}

/** Starts the oldest waiting fire of `pipeline` when nothing of it runs any more. */
export async function drainWaiting(ctx: SchedulerContext, pipeline: string): Promise<void> {
  if (ctx.isStopping() || ctx.draining.has(pipeline)) return;
  ctx.draining.add(pipeline);
  try {
    // A fire whose run exists already (another scheduler created it) starts nothing here, and no
    // run's end would drain the next one: move on to it at once, or the list stays stuck and
    // every later fire is skipped as "still running".
    for (;;) {
      const list = ctx.waiting.get(pipeline);
      if (!list || list.length === 0) return;
      if ((await blockingRun(ctx, pipeline)) !== null) return;
      const entry = ctx.entries.get(pipeline);
      const fire = list.shift()!;
      if (list.length === 0) ctx.waiting.delete(pipeline);
      if (!entry) return;
      const params = resolveParams(entry.plan.params, {}, 'json').params;
      const started = await startRun(
        ctx,
        entry.plan,
        params,
        'schedule',
        fire.runId,
        fire.scheduledFor,
        null,
      );
      if (started) return;
    }
  } finally {
    ctx.draining.delete(pipeline);
  }
}

/**
 * The oldest fire of `pipeline` queued by overlap: queue whose run is not created yet, as the
 * store holds it: whichever scheduler recorded it, any scheduler may start it.
 */
export async function waitingQueueFire(ctx: SchedulerContext, pipeline: string): Promise<FireRecord | null> {
  const fires = await ctx.store.listFires({ pipeline, limit: WAITING_LOOKBACK });
  let oldest: FireRecord | null = null;
  for (const fire of fires) {
    if (fire.outcome !== 'queued' || fire.runId === null) continue;
    if (oldest && oldest.scheduledFor < fire.scheduledFor) continue;
    if (await ctx.store.getRun(fire.runId)) continue;
    oldest = fire;
  }
  return oldest;
}

/**
 * Starts a fire that waits in the store — an overlap: queue fire, or the rest of a catch-up
 * backlog whose scheduler stopped or died before starting it — once nothing of the pipeline runs
 * anywhere. Schedulers race for it through its pre-assigned run id: the one whose creation fails
 * as a duplicate lost, and does nothing more.
 */
export async function drainQueuedFire(ctx: SchedulerContext, pipeline: string): Promise<void> {
  const entry = ctx.entries.get(pipeline);
  if (!entry || !mayWaitInStore(entry.plan)) return;
  if (ctx.isStopping() || ctx.draining.has(pipeline)) return;
  // This process's catch-up backlog goes first; its drain comes back here once it is empty.
  if ((ctx.waiting.get(pipeline)?.length ?? 0) > 0) return;
  ctx.draining.add(pipeline);
  try {
    if ((await blockingRun(ctx, pipeline)) !== null) return;
    const fire = await waitingQueueFire(ctx, pipeline);
    if (!fire || ctx.isStopping()) return;
    const params = resolveParams(entry.plan.params, {}, 'json').params;
    await startRun(ctx, entry.plan, params, 'schedule', fire.runId!, Date.parse(fire.scheduledFor), null);
  } finally {
    ctx.draining.delete(pipeline);
  }
}

/** Whether fires of `plan` can wait in the store: overlap: queue, or a catchup: all backlog. */
function mayWaitInStore(plan: Plan): boolean {
  return plan.schedule?.overlap === 'queue' || plan.schedule?.catchup === 'all';
}

/** The pipelines a drain may have something to start for: a local backlog, or fires in the store. */
export function drainablePipelines(ctx: SchedulerContext): string[] {
  const names = new Set(ctx.waiting.keys());
  for (const [name, entry] of ctx.entries) {
    if (mayWaitInStore(entry.plan)) names.add(name);
  }
  return [...names];
}
