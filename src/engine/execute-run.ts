import { setMaxListeners } from 'node:events';
import type { Plan } from '../compile/plan.js';
import { systemClock, type Clock } from '../core/clock.js';
import { failpoint } from '../core/failpoint.js';
import type { JsonObject } from '../core/json.js';
import { assertRunTransition, assertTaskTransition, isRunFinished, type RunState } from '../core/states.js';
import { toErrorInfo, WeftError, type ErrorInfo } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { HookInfo } from '../handlers/types.js';
import type { HookRecord, RunRecord, RunStore, TaskRunRecord } from '../store/run-store.js';
import { deepFreeze } from './attempt-context.js';
import type { EngineEvent, EngineEventListener } from './events.js';
import type { ExecutionContext } from './execution-context.js';
import {
  countPreviousFailures,
  isFailureHookDue,
  newHookRecord,
  planHookOf,
  runHook,
  runHookKey,
  runHooksOf,
  type HookRunner,
} from './hooks.js';
import { createLogWriter, type LogWriter } from './log-writer.js';
import { createSecretMasker, type Masker } from './mask.js';
import {
  DEFAULT_CANCEL_GRACE_MS,
  DEFAULT_CANCEL_POLL_MS,
  DEFAULT_HEARTBEAT_MS,
  type EngineOptions,
} from './options.js';
import { resetInterruptedTasks, resetTasksToPending } from './resume.js';
import { hasRetryLeft, retryDelayMs } from './retry-delay.js';
import { RunPass, type PassResult } from './run-pass.js';
import { unsealParams } from './secret-params.js';
import { toIso } from './time.js';

/**
 * Executes (or continues) a run until it is finished, and returns its final record. Works from
 * what the store holds: tasks that succeeded keep their outputs and are not run again, hooks left
 * pending by an earlier execution run first. The run is claimed (fenced on its state and owner)
 * before anything runs, so two processes never execute one run.
 */
export async function executeRun(runId: string, options: EngineOptions): Promise<RunRecord> {
  const run = await options.store.getRun(runId);
  if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${runId}`, { retryable: false });
  return new Execution(run, options).execute();
}

function cancelledError(why: string): WeftError {
  return new WeftError('TASK_CANCELLED', why, { retryable: false });
}

/** The signal of a caller that gave none. */
const NEVER_ABORTED = new AbortController().signal;

class Execution implements ExecutionContext {
  readonly store: RunStore;
  readonly registry: HandlerRegistry;
  readonly clock: Clock;
  readonly random: () => number;
  readonly owner: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly masker: Masker;
  readonly logs: LogWriter;
  readonly plan: Plan;
  run: RunRecord;
  /** Set by execute() once the run is claimed (unsealing may fail: see #failUnstarted). */
  params: JsonObject = {};
  readonly concurrency: number;
  readonly graceMs: number;
  readonly onEvent: EngineEventListener | undefined;
  readonly #options: EngineOptions;
  readonly #cancel = new AbortController();
  #logError: unknown;
  #heartbeat: Promise<unknown> = Promise.resolve();

  constructor(run: RunRecord, options: EngineOptions) {
    this.#options = options;
    this.store = options.store;
    this.registry = options.registry;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.owner = options.owner;
    this.env = options.env ?? process.env;
    this.run = run;
    this.plan = run.plan;
    this.masker = createSecretMasker(run.plan.secrets, this.env);
    const concurrency = options.concurrency ?? run.plan.concurrency;
    this.concurrency = Number.isFinite(concurrency) && concurrency >= 1 ? Math.floor(concurrency) : Infinity;
    this.graceMs = options.cancelGraceMs ?? DEFAULT_CANCEL_GRACE_MS;
    this.onEvent = options.onEvent;
    setMaxListeners(0, this.#cancel.signal);
    this.logs = createLogWriter(this.store, {
      onError: (error) => {
        this.#logError ??= error;
      },
    });
  }

  get cancelSignal(): AbortSignal {
    return this.#cancel.signal;
  }

  get hookSignal(): AbortSignal {
    return this.#options.signal ?? NEVER_ABORTED;
  }

  emit(event: EngineEvent): void {
    if (!this.onEvent) return;
    try {
      this.onEvent(event);
    } catch {
      // A listener (a renderer) that throws must not change how the run ends.
    }
  }

  #requestStop(why: string): void {
    if (!this.#cancel.signal.aborted) this.#cancel.abort(cancelledError(why));
  }

  async execute(): Promise<RunRecord> {
    if (isRunFinished(this.run.state)) {
      // Only what a dead execution may have left: hooks recorded but never run.
      await this.#runPendingHooks(await this.store.getTaskRuns(this.run.id));
      await this.#flushLogs();
      return (await this.store.getRun(this.run.id))!;
    }
    await this.#claim();
    try {
      this.params = deepFreeze(unsealParams(this.run.params, this.plan.secrets, this.env));
    } catch (error) {
      return this.#failUnstarted(error);
    }
    const stopTimers = this.#startTimers();
    const external = this.#options.signal;
    const onAbort = () => this.#requestStop('the run was cancelled');
    if (external?.aborted) onAbort();
    else external?.addEventListener('abort', onAbort, { once: true });
    if (this.run.cancelRequested) this.#requestStop('cancel requested');
    try {
      const startedMs = this.clock.now();
      this.emit({
        type: 'run:started',
        runId: this.run.id,
        pipeline: this.run.pipeline,
        attempt: this.run.attempt,
        tasks: this.plan.order.length,
      });
      let taskRuns = await this.store.getTaskRuns(this.run.id);
      taskRuns = await resetInterruptedTasks(this.store, this.run.id, taskRuns, this.clock.now());
      await this.#runPendingHooks(taskRuns);
      const firstAttempt = this.run.attempt;
      for (;;) {
        const pass = new RunPass(this, taskRuns);
        const result = await pass.execute();
        const retryNumber = this.run.attempt - firstAttempt + 1;
        if (
          result.state === 'failed' &&
          !this.#cancel.signal.aborted &&
          hasRetryLeft(this.plan.retry, retryNumber)
        ) {
          const next = await this.#retryRun(result, retryRunDelay(this.plan, retryNumber, this.random));
          if (next) {
            taskRuns = next;
            continue;
          }
          return await this.#finish({ ...result, state: 'cancelled', error: null }, pass, startedMs);
        }
        return await this.#finish(result, pass, startedMs);
      }
    } finally {
      external?.removeEventListener('abort', onAbort);
      stopTimers();
      await this.#heartbeat.catch(() => undefined);
      // Lines of an execution that stopped on an error are still worth keeping.
      await this.logs.flush();
    }
  }

  /** Takes the run: fenced on the state and owner seen, so a second executor loses cleanly. */
  async #claim(): Promise<void> {
    const run = this.run;
    const mine = run.owner === this.owner;
    if ((run.state === 'running' || run.state === 'retrying') && !mine) {
      throw new WeftError(
        'RUN_STATE',
        `run ${run.id} is ${run.state} in ${run.owner ?? 'an unknown process'}`,
        {
          retryable: false,
          hint: 'if that process is gone, mark the run interrupted (weft recover) and resume it',
        },
      );
    }
    if (run.state !== 'running') assertRunTransition(run.id, run.state, 'running');
    const now = toIso(this.clock.now());
    const ok = await this.store.updateRun(
      run.id,
      {
        state: 'running',
        owner: this.owner,
        heartbeatAt: now,
        startedAt: run.startedAt ?? now,
        finishedAt: null,
        nextAttemptAt: null,
        error: null,
      },
      { states: [run.state], owner: run.owner },
    );
    if (!ok) {
      throw new WeftError(
        'RUN_STATE',
        `run ${run.id} changed while this process was taking it; is another process running it?`,
        {
          retryable: false,
        },
      );
    }
    this.run = {
      ...run,
      state: 'running',
      owner: this.owner,
      heartbeatAt: now,
      startedAt: run.startedAt ?? now,
    };
  }

  /**
   * The run cannot start here (a secret its params refer to is not set in this environment): it
   * fails with that error and nothing runs — not even its hooks, which would read the same params.
   * Its tasks stay as they were, so a resume where the secret is set runs them.
   */
  async #failUnstarted(caught: unknown): Promise<RunRecord> {
    const { run } = this;
    const error = toErrorInfo(caught);
    const now = toIso(this.clock.now());
    assertRunTransition(run.id, run.state, 'failed');
    const ok = await this.store.updateRun(
      run.id,
      { state: 'failed', finishedAt: now, error, nextAttemptAt: null, heartbeatAt: now },
      { states: [run.state], owner: this.owner },
    );
    if (!ok) throw this.#conflict('recording that it failed');
    this.run = { ...run, state: 'failed' };
    this.emit({ type: 'run:finished', runId: run.id, state: 'failed', error, durationMs: 0 });
    return (await this.store.getRun(run.id))!;
  }

  /** Heartbeat and cancel-request polling, on real timers: they measure liveness, not run time. */
  #startTimers(): () => void {
    const heartbeatMs = this.#options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const pollMs = this.#options.cancelPollMs ?? DEFAULT_CANCEL_POLL_MS;
    const heartbeat = setInterval(() => {
      this.#heartbeat = this.store
        .updateRun(this.run.id, { heartbeatAt: toIso(this.clock.now()) }, { owner: this.owner })
        .catch(() => undefined);
    }, heartbeatMs);
    heartbeat.unref();
    let polling = false;
    const poll = setInterval(() => {
      if (polling || this.#cancel.signal.aborted) return;
      polling = true;
      this.store
        .getRun(this.run.id)
        .then((run) => {
          if (run?.cancelRequested) this.#requestStop('cancel requested');
        })
        .catch(() => undefined)
        .finally(() => {
          polling = false;
        });
    }, pollMs);
    poll.unref();
    return () => {
      clearInterval(heartbeat);
      clearInterval(poll);
    };
  }

  /**
   * Pipeline-level retry: the run waits in `retrying` (with nextAttemptAt and the next run
   * attempt recorded), its failed, skipped and cancelled tasks back in `pending` so that a crash
   * while waiting loses nothing. Returns the task runs for the next pass, or null when the run
   * was cancelled while it waited.
   */
  async #retryRun(result: PassResult, delayMs: number): Promise<TaskRunRecord[] | null> {
    const { store, run } = this;
    assertRunTransition(run.id, run.state, 'retrying');
    const attempt = run.attempt + 1;
    const ok = await store.updateRun(
      run.id,
      { state: 'retrying', attempt, nextAttemptAt: toIso(this.clock.now() + delayMs), error: result.error },
      { states: ['running'], owner: this.owner },
    );
    if (!ok) throw this.#conflict('retrying');
    this.run = { ...run, state: 'retrying', attempt };
    this.emit({ type: 'run:retrying', runId: run.id, attempt, delayMs, error: result.error });
    await resetTasksToPending(store, run.id, await store.getTaskRuns(run.id));
    try {
      await this.clock.sleep(delayMs, this.#cancel.signal);
    } catch {
      const now = toIso(this.clock.now());
      const taskRuns = await store.getTaskRuns(run.id);
      await Promise.all(
        taskRuns
          .filter((t) => t.state === 'pending')
          .map((t) => {
            assertTaskTransition(t.task, 'pending', 'cancelled');
            return store.updateTaskRun(
              run.id,
              t.task,
              { state: 'cancelled', reason: 'the run was cancelled', finishedAt: now },
              { states: ['pending'] },
            );
          }),
      );
      return null;
    }
    assertRunTransition(run.id, 'retrying', 'running');
    const resumed = await store.updateRun(
      run.id,
      { state: 'running', nextAttemptAt: null, error: null },
      { states: ['retrying'], owner: this.owner },
    );
    if (!resumed) throw this.#conflict('ending its retry wait');
    this.run = { ...this.run, state: 'running' };
    return store.getTaskRuns(run.id);
  }

  #conflict(what: string): WeftError {
    return new WeftError(
      'RUN_STATE',
      `run ${this.run.id} changed in the store while this process ran it (${what})`,
      {
        retryable: false,
      },
    );
  }

  /**
   * Records the outcome. The run's hooks are stored (pending) before its final state, then run:
   * a kill at any point leaves them on record for the next execution.
   */
  async #finish(result: PassResult, pass: RunPass, startedMs: number): Promise<RunRecord> {
    const { store, run } = this;
    const now = this.clock.now();
    const due = await this.#dueRunHooks(result.state, result.error, now);
    if (due.length > 0) await store.addHooks(due.map((d) => d.record));
    const state: RunState = result.state;
    assertRunTransition(run.id, run.state, state);
    const ok = await store.updateRun(
      run.id,
      { state, finishedAt: toIso(now), error: result.error, nextAttemptAt: null, heartbeatAt: toIso(now) },
      { states: [run.state], owner: this.owner },
    );
    if (!ok) throw this.#conflict(`recording that it ${state}`);
    this.run = { ...run, state };
    const runner = pass.hookRunner();
    // The run is over, so its hooks are not its tasks: Ctrl-C still reaches them, a cancel request does not.
    const hookRunner: HookRunner = {
      ...runner,
      run: this.run,
      signal: this.hookSignal,
    };
    // A due hook that an earlier, killed execution recorded was run by #runPendingHooks already:
    // it runs at least once, and not once more per resume.
    const pendingKeys =
      due.length === 0
        ? new Set<string>()
        : new Set((await store.getHooks(run.id, ['pending'])).map((h) => h.key));
    if (pendingKeys.size > 0) failpoint('after-hook-recorded');
    for (const { record, info } of due) {
      if (pendingKeys.has(record.key)) await runHook(hookRunner, record, planHookOf(this.plan, record), info);
    }
    await this.#flushLogs();
    const final = (await store.getRun(run.id))!;
    this.emit({
      type: 'run:finished',
      runId: run.id,
      state,
      error: result.error,
      durationMs: this.clock.now() - startedMs,
    });
    return final;
  }

  async #dueRunHooks(
    state: PassResult['state'],
    error: ErrorInfo | null,
    now: number,
  ): Promise<{ record: HookRecord; info: HookInfo }[]> {
    const { plan, run } = this;
    const due: { record: HookRecord; info: HookInfo }[] = [];
    const add = (
      event: 'run_failure' | 'run_success' | 'run_recovery',
      index: number,
      consecutiveFailures: number,
    ) => {
      const hook = runHooksOf(plan, event)[index]!;
      due.push({
        record: newHookRecord(run.id, runHookKey(event, index, run.attempt), event, null, hook, error, now),
        info: { event, task: null, error, runState: state, consecutiveFailures },
      });
    };
    if (state === 'failed' && plan.onFailure.length > 0) {
      const consecutive = (await countPreviousFailures(this.store, run)) + 1;
      plan.onFailure.forEach((hook, index) => {
        if (isFailureHookDue(hook, consecutive)) add('run_failure', index, consecutive);
      });
    }
    if (state === 'succeeded') {
      plan.onSuccess.forEach((_, index) => add('run_success', index, 0));
      if (plan.onRecovery.length > 0) {
        const previous = await countPreviousFailures(this.store, run);
        if (previous > 0) plan.onRecovery.forEach((_, index) => add('run_recovery', index, previous));
      }
    }
    return due;
  }

  /** Hooks a dead execution recorded but did not finish: run now, at least once, never lost. */
  async #runPendingHooks(taskRuns: readonly TaskRunRecord[]): Promise<void> {
    const pending = await this.store.getHooks(this.run.id, ['pending']);
    if (pending.length === 0) return;
    const byTask = new Map(taskRuns.map((t) => [t.task, t]));
    const tasks = Object.create(null) as Record<string, { output: TaskRunRecord['output']; state: string }>;
    for (const t of taskRuns)
      tasks[t.task] = { output: t.state === 'succeeded' ? t.output : null, state: t.state };
    const runner: HookRunner = {
      store: this.store,
      registry: this.registry,
      run: this.run,
      env: this.env,
      masker: this.masker,
      logs: this.logs,
      clock: this.clock,
      signal: this.hookSignal,
      emit: (event) => this.emit(event),
      tasks: () => tasks,
    };
    let previousFailures: number | undefined;
    for (const record of pending) {
      let info: HookInfo;
      if (record.event === 'task_failure') {
        const taskRun = record.task === null ? undefined : byTask.get(record.task);
        info = {
          event: 'task_failure',
          task: record.task,
          error: record.error ?? taskRun?.error ?? null,
          attempts: taskRun?.attempts ?? 0,
          runState: this.run.state,
          consecutiveFailures: 0,
        };
      } else {
        previousFailures ??= await countPreviousFailures(this.store, this.run);
        const failed = record.event === 'run_failure';
        info = {
          event: record.event,
          task: null,
          error: record.error,
          runState: failed ? 'failed' : 'succeeded',
          consecutiveFailures: failed
            ? previousFailures + 1
            : record.event === 'run_recovery'
              ? previousFailures
              : 0,
        };
      }
      await runHook(runner, record, planHookOf(this.plan, record), info);
    }
  }

  async #flushLogs(): Promise<void> {
    await this.logs.flush();
    if (this.#logError !== undefined) {
      throw new WeftError('STORE_FAILED', "could not store the run's log lines", { cause: this.#logError });
    }
  }
}

function retryRunDelay(plan: Plan, retryNumber: number, random: () => number): number {
  return retryDelayMs(plan.retry, retryNumber + 1, random);
}
