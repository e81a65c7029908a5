import { systemClock } from '../core/clock.js';
import { toErrorInfo, WeftError } from '../errors.js';
import { createCronTimes, type DueContext } from './due-fires.js';
import type { SchedulerEvent } from './events.js';
import {
  drainablePipelines,
  drainQueuedFire,
  drainWaiting,
  dropWaiting,
  handleDueFires,
} from './fire-actions.js';
import { toPipelineSource } from './pipeline-source.js';
import { recoverInterrupted, recoverUncreatedRuns, releaseLeftovers } from './recovery.js';
import { executeInBackground } from './run-execution.js';
import { takeRunRequests } from './run-requests.js';
import type { Entry, SchedulerContext } from './scheduler-context.js';
import {
  DEFAULT_LATE_GRACE_MS,
  DEFAULT_MAX_SLEEP_MS,
  DEFAULT_POLL_MS,
  DEFAULT_STOP_GRACE_MS,
  type Scheduler,
  type SchedulerOptions,
  type StopOptions,
} from './scheduler-options.js';

export type { Scheduler, SchedulerOptions, StopOptions } from './scheduler-options.js';

/**
 * The scheduler: runs pipelines on their cron schedules, and the runs `weft trigger` asks for, in
 * this process, side by side. A library object: `weft serve` wires it to a folder and a store, the
 * HTTP server will wire it too.
 *
 * One tick loop sleeps on the injected clock until the earliest next fire of any pipeline (at most
 * `maxSleepMs` at a time, so a wall-clock jump is noticed), then handles every due fire.
 *
 * IMPORTANT: a fire is acted on only by the scheduler whose `recordFire` for it returned true.
 * The fire's identity is (pipeline, schedule time), so a restart, a clock set back, or a second
 * scheduler on the same store never runs one fire twice; a run's own uniqueness on (pipeline,
 * scheduledFor) is the backstop.
 */

export function createScheduler(options: SchedulerOptions): Scheduler {
  return new SchedulerImpl(options);
}

class SchedulerImpl implements Scheduler {
  /** The state and ports the parts in fire-actions, run-execution, recovery and run-requests share. */
  readonly #ctx: SchedulerContext;
  /** Fire handling, request handling, reloads: what whenIdle and stop wait for. */
  readonly #busy = new Set<Promise<unknown>>();
  #started = false;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wake = new AbortController();
  #pollTimer: NodeJS.Timeout | undefined;
  #polling: Promise<number> | undefined;
  #unsubscribe: (() => void) | undefined;
  #sync: Promise<void> = Promise.resolve();

  constructor(options: SchedulerOptions) {
    const ctx: SchedulerContext = {
      options,
      store: options.store,
      clock: options.clock ?? systemClock,
      source: toPipelineSource(options.pipelines),
      entries: new Map(),
      waiting: new Map(),
      draining: new Set(),
      active: new Map(),
      executions: new Map(),
      isStopping: () => this.#stopping,
      log: (event) => this.#log(event),
      logError: (error, what) => this.#logError(error, what),
      track: (work, what) => this.#track(work, what),
      drain: async (pipeline) => {
        await drainWaiting(ctx, pipeline);
        await drainQueuedFire(ctx, pipeline);
      },
    };
    this.#ctx = ctx;
  }

  #log(event: SchedulerEvent): void {
    try {
      this.#ctx.options.onLog?.(event, this.#ctx.clock.now());
    } catch {
      // A logger that throws must not stop the scheduler.
    }
  }

  #logError(error: unknown, what: string): void {
    const info = toErrorInfo(error);
    this.#log({ type: 'scheduler:error', message: `${what}: ${info.message}`, error: info });
  }

  /** Runs `work` as tracked background work: whenIdle and stop wait for it; errors are logged. */
  #track<T>(work: Promise<T>, what: string): Promise<T | undefined> {
    const tracked = work.catch((error: unknown) => {
      this.#logError(error, what);
      return undefined;
    });
    this.#busy.add(tracked);
    void tracked.finally(() => this.#busy.delete(tracked));
    return tracked;
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async start(): Promise<void> {
    const ctx = this.#ctx;
    if (this.#started)
      throw new WeftError('RUN_STATE', 'the scheduler was started already', { retryable: false });
    this.#started = true;
    await recoverInterrupted(ctx);
    await this.#syncPlans('start');
    if (ctx.options.recoverUncreatedRuns) await recoverUncreatedRuns(ctx);
    const scheduled = [...ctx.entries.values()].filter((e) => e.times !== null).length;
    this.#log({
      type: 'scheduler:started',
      owner: ctx.options.owner,
      pipelines: ctx.entries.size,
      scheduled,
    });
    this.#unsubscribe = ctx.source.subscribe?.(() => {
      void this.#track(this.#syncPlans('reload'), 'reloading pipelines');
    });
    const pollMs = ctx.options.pollMs ?? DEFAULT_POLL_MS;
    this.#pollTimer = setInterval(() => {
      void this.pollRequests();
      for (const pipeline of drainablePipelines(ctx))
        void this.#track(ctx.drain(pipeline), 'starting a queued fire');
    }, pollMs);
    this.#loop = this.#tickLoop();
  }

  async stop(options: StopOptions = {}): Promise<void> {
    const ctx = this.#ctx;
    if (!this.#started || this.#stopping) return;
    this.#stopping = true;
    const graceMs = options.graceMs ?? DEFAULT_STOP_GRACE_MS;
    clearInterval(this.#pollTimer);
    this.#unsubscribe?.();
    await this.#polling;
    this.#wake.abort();
    await this.#loop;
    await this.#settleBusy();
    this.#log({ type: 'scheduler:stopping', running: ctx.executions.size, graceMs });
    for (const [pipeline, list] of ctx.waiting) {
      for (const fire of list) {
        this.#log({
          type: 'fire:dropped',
          pipeline,
          scheduledFor: new Date(fire.scheduledFor).toISOString(),
          reason: 'the scheduler stopped before it could start',
        });
      }
    }
    ctx.waiting.clear();
    let cancelled = 0;
    const pending = [...ctx.executions.values()];
    if (pending.length > 0) {
      // Real time: the grace is about the process shutting down, whatever clock runs the schedule.
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.allSettled(pending.map((e) => e.done)), graceOver]);
      clearTimeout(timer);
      for (const execution of ctx.executions.values()) {
        cancelled += 1;
        execution.controller.abort(
          new WeftError('TASK_CANCELLED', 'the scheduler is shutting down', { retryable: false }),
        );
      }
      await Promise.allSettled(pending.map((e) => e.done));
    }
    await this.#settleBusy();
    await releaseLeftovers(ctx);
    this.#log({ type: 'scheduler:stopped', cancelled });
  }

  async #settleBusy(): Promise<void> {
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy]);
  }

  async whenIdle(): Promise<void> {
    for (;;) {
      const waits = [...this.#busy, ...[...this.#ctx.executions.values()].map((e) => e.done)];
      if (this.#polling) waits.push(this.#polling);
      if (waits.length === 0) return;
      await Promise.allSettled(waits);
      // Let continuations that start more work (a queued fire after a run ends) get going.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  nextFires(): { pipeline: string; at: number | null }[] {
    return [...this.#ctx.entries.values()]
      .filter((e) => e.times !== null)
      .map((e) => ({ pipeline: e.plan.name, at: e.nextAt }));
  }

  runningRuns(): string[] {
    return [...this.#ctx.executions.keys()];
  }

  async resumeRun(runId: string): Promise<void> {
    if (this.#stopping) throw new WeftError('RUN_STATE', 'the scheduler is stopping; resume the run later');
    const run = await this.#ctx.store.getRun(runId);
    if (!run) throw new WeftError('RUN_NOT_FOUND', `no run ${runId}`);
    if (run.state !== 'queued')
      throw new WeftError('RUN_STATE', `run ${runId} is ${run.state}, not ready to resume`);
    executeInBackground(this.#ctx, run, run.scheduledFor === null ? null : Date.parse(run.scheduledFor));
  }

  pollRequests(): Promise<number> {
    if (this.#stopping || !this.#started) return Promise.resolve(0);
    // One poll at a time: a slow store must not pile up claims.
    this.#polling ??= takeRunRequests(this.#ctx)
      .catch((error: unknown) => {
        this.#logError(error, 'looking for run requests');
        return 0;
      })
      .finally(() => {
        this.#polling = undefined;
      });
    return this.#polling;
  }

  // ---- pipelines ----------------------------------------------------------------------------------

  /** Brings the entries in line with the source's plans; serialised so reloads never interleave. */
  #syncPlans(context: 'start' | 'reload'): Promise<void> {
    const next = this.#sync.then(() => this.#applyPlans(context));
    this.#sync = next.catch(() => undefined);
    return next;
  }

  async #applyPlans(context: 'start' | 'reload'): Promise<void> {
    const ctx = this.#ctx;
    if (this.#stopping) return;
    const plans = ctx.source.current();
    const names = new Set(plans.map((p) => p.name));
    for (const name of [...ctx.entries.keys()]) {
      if (names.has(name)) continue;
      const entry = ctx.entries.get(name)!;
      ctx.entries.delete(name);
      dropWaiting(ctx, name, 'its pipeline was removed');
      if (entry.times)
        this.#log({ type: 'pipeline:unscheduled', pipeline: name, reason: 'its file was removed' });
    }
    const now = ctx.clock.now();
    const dueAtStart: Entry[] = [];
    for (const plan of plans) {
      const existing = ctx.entries.get(plan.name);
      const key = plan.schedule ? `${plan.schedule.cron}\u0000${plan.schedule.timezone}` : null;
      if (existing && existing.scheduleKey === key) {
        existing.plan = plan;
        continue;
      }
      const entry: Entry = { plan, times: null, scheduleKey: key, cursor: now, nextAt: null };
      if (plan.schedule) {
        entry.times = createCronTimes(plan.schedule.cron, plan.schedule.timezone);
        if (context === 'start') {
          // Downtime: fires since the last one recorded are missed, and catchup decides.
          const last = await ctx.store.lastFire(plan.name);
          if (last) {
            entry.cursor = Date.parse(last.scheduledFor);
            dueAtStart.push(entry);
          }
        } else if (existing?.times) {
          // A changed schedule starts from the old one's last handled fire, and never re-fires it.
          entry.cursor = Math.max(existing.cursor, now);
        }
        entry.nextAt = entry.times.next(entry.cursor);
      } else if (existing?.times) {
        this.#log({ type: 'pipeline:unscheduled', pipeline: plan.name, reason: 'its schedule was removed' });
      }
      ctx.entries.set(plan.name, entry);
      if (plan.schedule && !dueAtStart.includes(entry)) this.#logScheduled(entry);
    }
    for (const entry of dueAtStart) {
      if (entry.nextAt !== null && entry.nextAt <= now) await this.#handleDue(entry, now, 'start');
      this.#logScheduled(entry);
    }
    this.#wake.abort();
  }

  #logScheduled(entry: Entry): void {
    const schedule = entry.plan.schedule!;
    this.#log({
      type: 'pipeline:scheduled',
      pipeline: entry.plan.name,
      cron: schedule.cron,
      timezone: schedule.timezone,
      nextAt: entry.nextAt === null ? null : new Date(entry.nextAt).toISOString(),
    });
  }

  // ---- the tick loop ----------------------------------------------------------------------------

  async #tickLoop(): Promise<void> {
    const ctx = this.#ctx;
    const maxSleepMs = ctx.options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
    const graceMs = ctx.options.lateGraceMs ?? DEFAULT_LATE_GRACE_MS;
    /**
     * When the last sleep was due to end (a wake-up asked for earlier, by a reload, only shortens
     * it); null when the loop went from handling fires to handling fires without sleeping.
     */
    let sleptUntil: number | null = null;
    while (!this.#stopping) {
      const now = ctx.clock.now();
      const due = [...ctx.entries.values()].filter((e) => e.nextAt !== null && e.nextAt <= now);
      if (due.length > 0) {
        // Said out loud, because a late loop decides fires as missed: the operator sees why.
        const dueAt = Math.min(...due.map((e) => e.nextAt!));
        if (now - dueAt > graceMs) {
          const overslept = sleptUntil !== null && now - sleptUntil > graceMs;
          this.#log({
            type: 'scheduler:late',
            dueAt: new Date(dueAt).toISOString(),
            lateMs: now - dueAt,
            cause: overslept ? 'overslept' : 'busy',
          });
        }
        sleptUntil = null;
        await Promise.all(
          due.map((entry) => this.#track(this.#handleDue(entry, now, 'wake'), `firing ${entry.plan.name}`)),
        );
        continue;
      }
      if (this.#stopping) break;
      let wait = maxSleepMs;
      for (const entry of ctx.entries.values()) {
        if (entry.nextAt !== null) wait = Math.min(wait, entry.nextAt - now);
      }
      // A fresh controller per sleep: a clock may leave its listener on the signal after waking,
      // and the entries are read anew each turn, so a wake-up asked for meanwhile is not lost.
      this.#wake = new AbortController();
      sleptUntil = now + Math.max(0, wait);
      try {
        await ctx.clock.sleep(Math.max(0, wait), this.#wake.signal);
      } catch {
        // Woken early: the pipelines changed, or stop.
      }
    }
  }

  #handleDue(entry: Entry, now: number, context: DueContext): Promise<void> {
    return handleDueFires(this.#ctx, entry, now, context);
  }
}
