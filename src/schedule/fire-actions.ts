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
  const scan = scanDueFires(entry.times, entry.cursor, now, keep);
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
  const busy = blocker !== null || waiting.length > 0;
  const runId = newRunId(ctx.clock.now());
  if (busy && (decision.catchup || overlap === 'queue')) {
    if (!decision.catchup && waiting.some((w) => w.kind === 'queue')) {
      const reason = 'a fire is waiting already (overlap: queue keeps at most one)';
      if (await record(ctx, { pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
        ctx.log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
      }
      return;
    }
    const reason = `${decision.catchup ? 'catch-up' : 'overlap: queue'}; starts when ${
      blocker ? `run ${blocker} ends` : 'the fires waiting before it have run'
    }`;
    if (await record(ctx, { pipeline, scheduledFor, outcome: 'queued', reason, runId })) {
      ctx.waiting.set(pipeline, [
        ...waiting,
        { scheduledFor: decision.at, runId, kind: decision.catchup ? 'catchup' : 'queue' },
      ]);
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
