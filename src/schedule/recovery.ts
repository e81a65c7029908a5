import { markInterruptedRuns, prepareResume } from '../engine/index.js';
import { executeInBackground } from './run-execution.js';
import type { SchedulerContext, WaitingFire } from './scheduler-context.js';

/**
 * What a scheduler puts right that a process before it (or itself, when stopping) left behind:
 * runs left running, fires recorded whose run was never created.
 */

/** Recent fires per pipeline checked at start for a run that was never created. */
const RECOVER_FIRES = 50;

/** Runs left running by a process that died: reported, and resumed when their plan says so. */
export async function recoverInterrupted(ctx: SchedulerContext): Promise<void> {
  const marked = await markInterruptedRuns(ctx.store, {
    now: ctx.clock.now(),
    ...(ctx.options.isOwnerAlive ? { isOwnerAlive: ctx.options.isOwnerAlive } : {}),
  });
  for (const run of marked) {
    const resuming = run.plan.resumeInterrupted;
    ctx.log({ type: 'run:interrupted', runId: run.id, pipeline: run.pipeline, resuming });
    if (!resuming) continue;
    try {
      const ready = await prepareResume(ctx.store, run.id, {
        now: ctx.clock.now(),
        ...(ctx.options.engine?.env ? { env: ctx.options.engine.env } : {}),
      });
      executeInBackground(ctx, ready, ready.scheduledFor === null ? null : Date.parse(ready.scheduledFor));
    } catch (error) {
      ctx.logError(error, `resuming run ${run.id}`);
    }
  }
}

/**
 * A fire is recorded (taken) before its run is created, so a scheduler that died in between
 * leaves a fire whose run does not exist; the cursor is already
 * past them, so nothing else would ever create it. Each such run is created now (its id was
 * recorded with the fire, so if another scheduler gets there too, one of the two creations fails
 * as a duplicate), one after another like a catch-up backlog.
 */
export async function recoverUncreatedRuns(ctx: SchedulerContext): Promise<void> {
  for (const entry of ctx.entries.values()) {
    if (!entry.times) continue;
    const pipeline = entry.plan.name;
    const fires = await ctx.store.listFires({ pipeline, limit: RECOVER_FIRES });
    const orphans: WaitingFire[] = [];
    for (const fire of fires) {
      // Only `ran`: a catch-up `queued` fire may be waiting in a live scheduler's memory right
      // now, and starting it here would break its backlog's one-after-another order; an
      // overlap: queue one waits in the store, and every scheduler's drain starts it.
      if (fire.outcome !== 'ran' || fire.runId === null) continue;
      if (await ctx.store.getRun(fire.runId)) continue;
      orphans.push({ scheduledFor: Date.parse(fire.scheduledFor), runId: fire.runId, kind: 'catchup' });
    }
    if (orphans.length === 0) continue;
    orphans.sort((a, b) => a.scheduledFor - b.scheduledFor);
    for (const fire of orphans) {
      ctx.log({
        type: 'fire:queued',
        pipeline,
        scheduledFor: new Date(fire.scheduledFor).toISOString(),
        reason: 'recorded before a restart, its run never created',
      });
    }
    ctx.waiting.set(pipeline, [...orphans, ...(ctx.waiting.get(pipeline) ?? [])]);
    void ctx.track(ctx.drain(pipeline), 'starting a recovered fire');
  }
}

/**
 * IMPORTANT: nothing this scheduler owned may stay `running` after stop. A run whose execution
 * ended without recording its end (a store error mid-way) is marked interrupted, so a later
 * `weft resume` can finish it.
 */
export async function releaseLeftovers(ctx: SchedulerContext): Promise<void> {
  try {
    const left = await ctx.store.listRuns({ states: ['running', 'retrying'], limit: 1000 });
    for (const run of left.filter((r) => r.owner === ctx.options.owner)) {
      await ctx.store.updateRun(run.id, { state: 'interrupted' }, { states: [run.state], owner: run.owner });
    }
  } catch (error) {
    ctx.logError(error, 'checking for runs left running');
  }
}
