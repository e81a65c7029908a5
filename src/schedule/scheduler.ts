import type { Plan } from '../compile/plan.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { JsonObject } from '../core/json.js';
import {
  createRun,
  executeRun,
  isLocalOwnerAlive,
  markInterruptedRuns,
  prepareResume,
} from '../engine/index.js';
import type { EngineEvent } from '../engine/events.js';
import type { EngineOptions } from '../engine/options.js';
import { toErrorInfo, WeftError } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { resolveParams } from '../pipeline/params.js';
import { newRunId } from '../store/ids.js';
import type { FireRecord, RunRecord, RunStore, RunTrigger } from '../store/run-store.js';
import type { TaskQueue } from '../worker/queue-port.js';
import {
  createCronTimes,
  decideDueFires,
  scanDueFires,
  type CronTimes,
  type DueContext,
  type FireDecision,
} from './due-fires.js';
import type { SchedulerEvent, SchedulerLogListener } from './events.js';
import { toPipelineSource, type PipelineSource } from './pipeline-source.js';

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

export interface SchedulerOptions {
  store: RunStore;
  registry: HandlerRegistry;
  /** Default: the system clock. */
  clock?: Clock;
  pipelines: PipelineSource | (() => readonly Plan[]);
  /** "host:pid" recorded as the owner of the runs this scheduler executes. */
  owner: string;
  onLog?: SchedulerLogListener;
  /** How often run requests are looked for, in real time. Default 500 ms. */
  pollMs?: number;
  /** Longest single sleep of the tick loop. Default 60 s. */
  maxSleepMs?: number;
  /**
   * At start, or when several fires fall due at once, the newest of them still runs as the current
   * fire when at most this late (and the pipeline sets no start_deadline). Default 60 s.
   */
  lateGraceMs?: number;
  /**
   * At start, create the runs of fires recorded as ran or queued whose run does not exist (a
   * scheduler died between recording a fire and creating its run, or stopped with fires waiting).
   * `weft serve` turns it on. Default false only because older tests seed fire histories without
   * their runs.
   */
  recoverUncreatedRuns?: boolean;
  /** Decides which runs left running by another process are interrupted (tests). */
  isOwnerAlive?: (owner: string) => boolean;
  /**
   * Distributed execution: runs are handed to this queue (their tasks made ready for `weft
   * worker` processes) instead of being executed in this process.
   */
  queue?: Pick<TaskQueue, 'startRun'>;
  /** Passed to the engine for every run. */
  engine?: Partial<
    Pick<EngineOptions, 'cancelGraceMs' | 'heartbeatMs' | 'cancelPollMs' | 'random' | 'env' | 'concurrency'>
  >;
}

export interface StopOptions {
  /** How long runs in progress get to finish before they are cancelled. Default 30 s. */
  graceMs?: number;
}

export interface Scheduler {
  start(): Promise<void>;
  /** No new runs start; runs in progress get `graceMs`, then are cancelled. Nothing is left running. */
  stop(options?: StopOptions): Promise<void>;
  /** Resolves once no fire, request or run is being handled (tests step the clock with it). */
  whenIdle(): Promise<void>;
  /** Looks for run requests now (the poll timer does this every `pollMs`). Returns how many it took. */
  pollRequests(): Promise<number>;
  /** The next fire time of each scheduled pipeline. */
  nextFires(): { pipeline: string; at: number | null }[];
  /** Ids of the runs this scheduler is executing. */
  runningRuns(): string[];
  /**
   * Executes a run that `prepareResume` made ready (the dashboard's Resume button), in the
   * background like any other run. Resolves once it has started, or rejects when the run is not
   * queued or the scheduler is stopping.
   */
  resumeRun(runId: string): Promise<void>;
}

const DEFAULT_POLL_MS = 500;
const DEFAULT_MAX_SLEEP_MS = 60_000;
const DEFAULT_LATE_GRACE_MS = 60_000;
const DEFAULT_STOP_GRACE_MS = 30_000;
/** Missed fires recorded one by one after downtime; older ones are only counted in the log. */
const MAX_MISSED_RECORDS = 500;
const REQUEST_BATCH = 16;
/** Recent fires per pipeline checked at start for a run that was never created. */
const RECOVER_FIRES = 50;

interface Entry {
  plan: Plan;
  times: CronTimes | null;
  /** The schedule this entry's times were built for ("cron\0timezone"). */
  scheduleKey: string | null;
  /** The latest schedule time handled (epoch ms). */
  cursor: number;
  nextAt: number | null;
}

/** A fire taken (recorded) that starts once its pipeline is free. */
interface WaitingFire {
  scheduledFor: number;
  runId: string;
  /** `queue`: overlap: queue (at most one); `catchup`: the backlog after downtime. */
  kind: 'queue' | 'catchup';
}

interface Execution {
  runId: string;
  pipeline: string;
  controller: AbortController;
  done: Promise<void>;
}

export function createScheduler(options: SchedulerOptions): Scheduler {
  return new SchedulerImpl(options);
}

class SchedulerImpl implements Scheduler {
  readonly #store: RunStore;
  readonly #clock: Clock;
  readonly #source: PipelineSource;
  readonly #options: SchedulerOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #waiting = new Map<string, WaitingFire[]>();
  readonly #draining = new Set<string>();
  /** Pipeline -> ids of its runs in progress here (created, not yet finished). */
  readonly #active = new Map<string, Set<string>>();
  readonly #executions = new Map<string, Execution>();
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
    this.#options = options;
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#source = toPipelineSource(options.pipelines);
  }

  #log(event: SchedulerEvent): void {
    try {
      this.#options.onLog?.(event, this.#clock.now());
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
    if (this.#started)
      throw new WeftError('RUN_STATE', 'the scheduler was started already', { retryable: false });
    this.#started = true;
    await this.#recoverInterrupted();
    await this.#syncPlans('start');
    if (this.#options.recoverUncreatedRuns) await this.#recoverUncreatedRuns();
    const scheduled = [...this.#entries.values()].filter((e) => e.times !== null).length;
    this.#log({
      type: 'scheduler:started',
      owner: this.#options.owner,
      pipelines: this.#entries.size,
      scheduled,
    });
    this.#unsubscribe = this.#source.subscribe?.(() => {
      void this.#track(this.#syncPlans('reload'), 'reloading pipelines');
    });
    const pollMs = this.#options.pollMs ?? DEFAULT_POLL_MS;
    this.#pollTimer = setInterval(() => {
      void this.pollRequests();
      for (const pipeline of this.#waiting.keys())
        void this.#track(this.#drain(pipeline), 'starting a queued fire');
    }, pollMs);
    this.#loop = this.#tickLoop();
  }

  async stop(options: StopOptions = {}): Promise<void> {
    if (!this.#started || this.#stopping) return;
    this.#stopping = true;
    const graceMs = options.graceMs ?? DEFAULT_STOP_GRACE_MS;
    clearInterval(this.#pollTimer);
    this.#unsubscribe?.();
    await this.#polling;
    this.#wake.abort();
    await this.#loop;
    await this.#settleBusy();
    this.#log({ type: 'scheduler:stopping', running: this.#executions.size, graceMs });
    for (const [pipeline, list] of this.#waiting) {
      for (const fire of list) {
        this.#log({
          type: 'fire:dropped',
          pipeline,
          scheduledFor: new Date(fire.scheduledFor).toISOString(),
          reason: 'the scheduler stopped before it could start',
        });
      }
    }
    this.#waiting.clear();
    let cancelled = 0;
    const pending = [...this.#executions.values()];
    if (pending.length > 0) {
      // Real time: the grace is about the process shutting down, whatever clock runs the schedule.
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.allSettled(pending.map((e) => e.done)), graceOver]);
      clearTimeout(timer);
      for (const execution of this.#executions.values()) {
        cancelled += 1;
        execution.controller.abort(
          new WeftError('TASK_CANCELLED', 'the scheduler is shutting down', { retryable: false }),
        );
      }
      await Promise.allSettled(pending.map((e) => e.done));
    }
    await this.#settleBusy();
    await this.#releaseLeftovers();
    this.#log({ type: 'scheduler:stopped', cancelled });
  }

  async #settleBusy(): Promise<void> {
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy]);
  }

  /**
   * IMPORTANT: nothing this scheduler owned may stay `running` after stop. A run whose execution
   * ended without recording its end (a store error mid-way) is marked interrupted, so a later
   * `weft resume` can finish it.
   */
  async #releaseLeftovers(): Promise<void> {
    try {
      const left = await this.#store.listRuns({ states: ['running', 'retrying'], limit: 1000 });
      for (const run of left.filter((r) => r.owner === this.#options.owner)) {
        await this.#store.updateRun(
          run.id,
          { state: 'interrupted' },
          { states: [run.state], owner: run.owner },
        );
      }
    } catch (error) {
      this.#logError(error, 'checking for runs left running');
    }
  }

  async whenIdle(): Promise<void> {
    for (;;) {
      const waits = [...this.#busy, ...[...this.#executions.values()].map((e) => e.done)];
      if (this.#polling) waits.push(this.#polling);
      if (waits.length === 0) return;
      await Promise.allSettled(waits);
      // Let continuations that start more work (a queued fire after a run ends) get going.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  nextFires(): { pipeline: string; at: number | null }[] {
    return [...this.#entries.values()]
      .filter((e) => e.times !== null)
      .map((e) => ({ pipeline: e.plan.name, at: e.nextAt }));
  }

  runningRuns(): string[] {
    return [...this.#executions.keys()];
  }

  // ---- pipelines ----------------------------------------------------------------------------------

  /** Brings the entries in line with the source's plans; serialised so reloads never interleave. */
  #syncPlans(context: 'start' | 'reload'): Promise<void> {
    const next = this.#sync.then(() => this.#applyPlans(context));
    this.#sync = next.catch(() => undefined);
    return next;
  }

  async #applyPlans(context: 'start' | 'reload'): Promise<void> {
    if (this.#stopping) return;
    const plans = this.#source.current();
    const names = new Set(plans.map((p) => p.name));
    for (const name of [...this.#entries.keys()]) {
      if (names.has(name)) continue;
      const entry = this.#entries.get(name)!;
      this.#entries.delete(name);
      this.#dropWaiting(name, 'its pipeline was removed');
      if (entry.times)
        this.#log({ type: 'pipeline:unscheduled', pipeline: name, reason: 'its file was removed' });
    }
    const now = this.#clock.now();
    const dueAtStart: Entry[] = [];
    for (const plan of plans) {
      const existing = this.#entries.get(plan.name);
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
          const last = await this.#store.lastFire(plan.name);
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
      this.#entries.set(plan.name, entry);
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
    const maxSleepMs = this.#options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
    while (!this.#stopping) {
      const now = this.#clock.now();
      const due = [...this.#entries.values()].filter((e) => e.nextAt !== null && e.nextAt <= now);
      if (due.length > 0) {
        await Promise.all(
          due.map((entry) => this.#track(this.#handleDue(entry, now, 'wake'), `firing ${entry.plan.name}`)),
        );
        continue;
      }
      if (this.#stopping) break;
      let wait = maxSleepMs;
      for (const entry of this.#entries.values()) {
        if (entry.nextAt !== null) wait = Math.min(wait, entry.nextAt - now);
      }
      // A fresh controller per sleep: a clock may leave its listener on the signal after waking,
      // and the entries are read anew each turn, so a wake-up asked for meanwhile is not lost.
      this.#wake = new AbortController();
      try {
        await this.#clock.sleep(Math.max(0, wait), this.#wake.signal);
      } catch {
        // Woken early: the pipelines changed, or stop.
      }
    }
  }

  /** Decides every fire of `entry` due by `now`, in time order, and moves its cursor past them. */
  async #handleDue(entry: Entry, now: number, context: DueContext): Promise<void> {
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
      lateGraceMs: this.#options.lateGraceMs ?? DEFAULT_LATE_GRACE_MS,
    });
    if (cutByLimit > 0) {
      this.#log({
        type: 'catchup:capped',
        pipeline: entry.plan.name,
        missed: cutByLimit,
        limit: schedule.catchupLimit,
      });
    }
    if (unrecorded > 0 && schedule.catchup !== 'all') {
      this.#log({
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
      if (this.#stopping) return;
      await this.#actOn(
        entry.plan,
        backlog && decision.action === 'run' ? { ...decision, catchup: true } : decision,
      );
    }
  }

  async #record(fire: Omit<FireRecord, 'recordedAt'>): Promise<boolean> {
    const taken = await this.#store.recordFire({
      ...fire,
      recordedAt: new Date(this.#clock.now()).toISOString(),
    });
    if (!taken) this.#log({ type: 'fire:taken', pipeline: fire.pipeline, scheduledFor: fire.scheduledFor });
    return taken;
  }

  async #actOn(plan: Plan, decision: FireDecision): Promise<void> {
    const pipeline = plan.name;
    const scheduledFor = new Date(decision.at).toISOString();
    if (decision.action === 'missed') {
      const reason = decision.reason ?? 'missed';
      if (await this.#record({ pipeline, scheduledFor, outcome: 'missed', reason, runId: null })) {
        this.#log({ type: 'fire:missed', pipeline, scheduledFor, reason });
      }
      return;
    }
    const params = resolveParams(plan.params, {}, 'json');
    if (params.errors.length > 0) {
      const reason = `its params need values a schedule cannot give: ${params.errors.join('; ')}`;
      if (await this.#record({ pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
        this.#log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
      }
      return;
    }
    const overlap = plan.schedule?.overlap ?? 'skip';
    const blocker = await this.#blockingRun(pipeline);
    const waiting = this.#waiting.get(pipeline) ?? [];
    const busy = blocker !== null || waiting.length > 0;
    const runId = newRunId(this.#clock.now());
    if (busy && (decision.catchup || overlap === 'queue')) {
      if (!decision.catchup && waiting.some((w) => w.kind === 'queue')) {
        const reason = 'a fire is waiting already (overlap: queue keeps at most one)';
        if (await this.#record({ pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
          this.#log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
        }
        return;
      }
      const reason = `${decision.catchup ? 'catch-up' : 'overlap: queue'}; starts when ${
        blocker ? `run ${blocker} ends` : 'the fires waiting before it have run'
      }`;
      if (await this.#record({ pipeline, scheduledFor, outcome: 'queued', reason, runId })) {
        this.#waiting.set(pipeline, [
          ...waiting,
          { scheduledFor: decision.at, runId, kind: decision.catchup ? 'catchup' : 'queue' },
        ]);
        this.#log({ type: 'fire:queued', pipeline, scheduledFor, reason });
      }
      return;
    }
    if (busy && overlap === 'skip') {
      const reason = `run ${blocker ?? '(queued)'} of this pipeline is still running (overlap: skip)`;
      if (await this.#record({ pipeline, scheduledFor, outcome: 'skipped', reason, runId: null })) {
        this.#log({ type: 'fire:skipped', pipeline, scheduledFor, reason });
      }
      return;
    }
    if (await this.#record({ pipeline, scheduledFor, outcome: 'ran', reason: null, runId })) {
      await this.#startRun(plan, params.params, 'schedule', runId, decision.at, null);
    }
  }

  /** A run of `pipeline` in progress here, or else anywhere in the store; null when none. */
  async #blockingRun(pipeline: string): Promise<string | null> {
    const local = this.#active.get(pipeline);
    if (local && local.size > 0) return local.values().next().value!;
    const running = await this.#store.listRuns({ pipeline, states: ['running', 'retrying'], limit: 10 });
    // A run whose process is known to be dead (killed, not yet marked interrupted) runs nothing:
    // it must not make every later fire skip until some scheduler restarts and notices.
    const isAlive = this.#options.isOwnerAlive ?? isLocalOwnerAlive;
    return running.find((r) => r.owner === null || isAlive(r.owner))?.id ?? null;
  }

  #dropWaiting(pipeline: string, reason: string): void {
    for (const fire of this.#waiting.get(pipeline) ?? []) {
      this.#log({
        type: 'fire:dropped',
        pipeline,
        scheduledFor: new Date(fire.scheduledFor).toISOString(),
        reason,
      });
    }
    this.#waiting.delete(pipeline);
  }

  /** Starts the oldest waiting fire of `pipeline` when nothing of it runs any more. */
  async #drain(pipeline: string): Promise<void> {
    if (this.#stopping || this.#draining.has(pipeline)) return;
    this.#draining.add(pipeline);
    try {
      // A fire whose run exists already (another scheduler created it) starts nothing here, and no
      // run's end would drain the next one: move on to it at once, or the list stays stuck and
      // every later fire is skipped as "still running".
      for (;;) {
        const list = this.#waiting.get(pipeline);
        if (!list || list.length === 0) return;
        if ((await this.#blockingRun(pipeline)) !== null) return;
        const entry = this.#entries.get(pipeline);
        const fire = list.shift()!;
        if (list.length === 0) this.#waiting.delete(pipeline);
        if (!entry) return;
        const params = resolveParams(entry.plan.params, {}, 'json').params;
        const started = await this.#startRun(
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
      this.#draining.delete(pipeline);
    }
  }

  // ---- runs -------------------------------------------------------------------------------------

  /** Creates the run and executes it in the background. Returns once it is created (or refused). */
  async #startRun(
    plan: Plan,
    params: JsonObject,
    trigger: RunTrigger,
    runId: string,
    scheduledFor: number | null,
    requestId: string | null,
  ): Promise<RunRecord | null> {
    const active = this.#activeOf(plan.name);
    // Counted as active before the first await, so an overlapping fire sees it at once.
    active.add(runId);
    let run: RunRecord;
    try {
      run = await createRun(this.#store, {
        plan,
        params,
        trigger,
        id: runId,
        now: this.#clock.now(),
        owner: this.#options.owner,
        ...(scheduledFor === null ? {} : { scheduledFor }),
      });
    } catch (error) {
      active.delete(runId);
      if (error instanceof WeftError && error.code === 'RUN_DUPLICATE' && scheduledFor !== null) {
        this.#log({
          type: 'fire:taken',
          pipeline: plan.name,
          scheduledFor: new Date(scheduledFor).toISOString(),
        });
        return null;
      }
      throw error;
    }
    this.#log({
      type: 'run:created',
      runId,
      pipeline: plan.name,
      trigger,
      scheduledFor: run.scheduledFor,
      requestId,
    });
    this.#execute(run, scheduledFor);
    return run;
  }

  #activeOf(pipeline: string): Set<string> {
    let set = this.#active.get(pipeline);
    if (!set) {
      set = new Set();
      this.#active.set(pipeline, set);
    }
    return set;
  }

  #execute(run: RunRecord, scheduledFor: number | null): void {
    if (this.#options.queue) {
      this.#enqueue(this.#options.queue, run);
      return;
    }
    const controller = new AbortController();
    const pipeline = run.pipeline;
    this.#activeOf(pipeline).add(run.id);
    const onEvent = (event: EngineEvent) => this.#onEngineEvent(pipeline, scheduledFor, event);
    const done = executeRun(run.id, {
      store: this.#store,
      registry: this.#options.registry,
      clock: this.#clock,
      owner: this.#options.owner,
      signal: controller.signal,
      onEvent,
      ...this.#options.engine,
    })
      .then(
        () => undefined,
        (error: unknown) => this.#logError(error, `executing run ${run.id} of ${pipeline}`),
      )
      .finally(() => {
        this.#executions.delete(run.id);
        this.#active.get(pipeline)?.delete(run.id);
        if (this.#waiting.has(pipeline)) void this.#track(this.#drain(pipeline), 'starting a queued fire');
      });
    this.#executions.set(run.id, { runId: run.id, pipeline, controller, done });
  }

  /**
   * Hands a created run to the queue. It counts as active here until the queue has taken it
   * (then the store shows it running, which is what overlap looks at).
   */
  #enqueue(queue: Pick<TaskQueue, 'startRun'>, run: RunRecord): void {
    const pipeline = run.pipeline;
    this.#activeOf(pipeline).add(run.id);
    const done = queue
      .startRun(run.id)
      .then(
        () => undefined,
        (error: unknown) => this.#logError(error, `queueing run ${run.id} of ${pipeline}`),
      )
      .finally(() => {
        this.#executions.delete(run.id);
        this.#active.get(pipeline)?.delete(run.id);
      });
    this.#executions.set(run.id, { runId: run.id, pipeline, controller: new AbortController(), done });
  }

  #onEngineEvent(pipeline: string, scheduledFor: number | null, event: EngineEvent): void {
    switch (event.type) {
      case 'run:started':
        this.#log({
          type: 'run:started',
          runId: event.runId,
          pipeline,
          attempt: event.attempt,
          lagMs: scheduledFor === null ? null : this.#clock.now() - scheduledFor,
        });
        return;
      case 'run:retrying':
        this.#log({ ...event, pipeline });
        return;
      case 'task:retrying':
        this.#log({ ...event, pipeline });
        return;
      case 'run:finished':
        this.#log({ ...event, pipeline });
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

  async resumeRun(runId: string): Promise<void> {
    if (this.#stopping) throw new WeftError('RUN_STATE', 'the scheduler is stopping; resume the run later');
    const run = await this.#store.getRun(runId);
    if (!run) throw new WeftError('RUN_NOT_FOUND', `no run ${runId}`);
    if (run.state !== 'queued')
      throw new WeftError('RUN_STATE', `run ${runId} is ${run.state}, not ready to resume`);
    this.#execute(run, run.scheduledFor === null ? null : Date.parse(run.scheduledFor));
  }

  /** Runs left running by a process that died: reported, and resumed when their plan says so. */
  async #recoverInterrupted(): Promise<void> {
    const marked = await markInterruptedRuns(this.#store, {
      now: this.#clock.now(),
      ...(this.#options.isOwnerAlive ? { isOwnerAlive: this.#options.isOwnerAlive } : {}),
    });
    for (const run of marked) {
      const resuming = run.plan.resumeInterrupted;
      this.#log({ type: 'run:interrupted', runId: run.id, pipeline: run.pipeline, resuming });
      if (!resuming) continue;
      try {
        const ready = await prepareResume(this.#store, run.id, { now: this.#clock.now() });
        this.#execute(ready, ready.scheduledFor === null ? null : Date.parse(ready.scheduledFor));
      } catch (error) {
        this.#logError(error, `resuming run ${run.id}`);
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
  async #recoverUncreatedRuns(): Promise<void> {
    for (const entry of this.#entries.values()) {
      if (!entry.times) continue;
      const pipeline = entry.plan.name;
      const fires = await this.#store.listFires({ pipeline, limit: RECOVER_FIRES });
      const orphans: WaitingFire[] = [];
      for (const fire of fires) {
        // Only `ran`: a `queued` fire may be waiting in a live scheduler's memory right now, and
        // starting it here would break its backlog's one-after-another order.
        if (fire.outcome !== 'ran' || fire.runId === null) continue;
        if (await this.#store.getRun(fire.runId)) continue;
        orphans.push({ scheduledFor: Date.parse(fire.scheduledFor), runId: fire.runId, kind: 'catchup' });
      }
      if (orphans.length === 0) continue;
      orphans.sort((a, b) => a.scheduledFor - b.scheduledFor);
      for (const fire of orphans) {
        this.#log({
          type: 'fire:queued',
          pipeline,
          scheduledFor: new Date(fire.scheduledFor).toISOString(),
          reason: 'recorded before a restart, its run never created',
        });
      }
      this.#waiting.set(pipeline, [...orphans, ...(this.#waiting.get(pipeline) ?? [])]);
      void this.#track(this.#drain(pipeline), 'starting a recovered fire');
    }
  }

  // ---- run requests -----------------------------------------------------------------------------

  pollRequests(): Promise<number> {
    if (this.#stopping || !this.#started) return Promise.resolve(0);
    // One poll at a time: a slow store must not pile up claims.
    this.#polling ??= this.#pollOnce()
      .catch((error: unknown) => {
        this.#logError(error, 'looking for run requests');
        return 0;
      })
      .finally(() => {
        this.#polling = undefined;
      });
    return this.#polling;
  }

  async #pollOnce(): Promise<number> {
    const now = () => new Date(this.#clock.now()).toISOString();
    const requests = await this.#store.claimRunRequests(REQUEST_BATCH, this.#options.owner, now());
    const plans = new Map(this.#source.current().map((p) => [p.name, p]));
    for (const request of requests) {
      const plan = this.#entries.get(request.pipeline)?.plan ?? plans.get(request.pipeline);
      try {
        if (!plan) {
          throw new WeftError(
            'PIPELINE_NOT_FOUND',
            `this scheduler has no pipeline named "${request.pipeline}"`,
            {
              retryable: false,
            },
          );
        }
        const runId = newRunId(this.#clock.now());
        const run = await this.#startRun(plan, request.params, 'manual', runId, null, request.id);
        await this.#store.completeRunRequest(request.id, run?.id ?? null, null, now());
      } catch (error) {
        const info = toErrorInfo(error);
        await this.#store.completeRunRequest(request.id, null, info, now());
        this.#log({ type: 'request:failed', requestId: request.id, pipeline: request.pipeline, error: info });
      }
    }
    return requests.length;
  }
}
