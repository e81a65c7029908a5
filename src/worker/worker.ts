import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type { Plan, PlanTask } from '../compile/plan.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { JsonObject, JsonValue } from '../core/json.js';
import { invokeHandler, type AttemptResult } from '../engine/attempt.js';
import { checkHandlerArgs } from '../engine/handler-args.js';
import { countPreviousFailures, planHookOf, runHook, type HookRunner } from '../engine/hooks.js';
import { createLogWriter, type LogWriter } from '../engine/log-writer.js';
import { createSecretMasker, maskValue, type Masker } from '../engine/mask.js';
import { DEFAULT_CANCEL_GRACE_MS } from '../engine/options.js';
import { normaliseOutput } from '../engine/output.js';
import { isNonRetryable, toErrorInfo, toWeftError, WeftError, type ErrorInfo } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { quoteShellWord } from '../handlers/shell-quote.js';
import type { HookInfo, RunInfo } from '../handlers/types.js';
import {
  containsExpression,
  evaluateCondition,
  resolveTemplate,
  type ExpressionScope,
} from '../pipeline/expressions.js';
import type { RunRecord, RunStore } from '../store/run-store.js';
import type { ClaimedTask, HookClaim, TaskCompletion, TaskQueue } from './queue-port.js';
import { WorkerTaskContext, WorkerTaskLogger } from './task-context.js';
import { UpstreamCache } from './upstream-cache.js';

/**
 * A worker: claims ready tasks of its queues from a TaskQueue, runs their handlers with the
 * engine's `invokeHandler` (same timeout, cancel, output and argument rules as `weft run`), and
 * reports results in batches (one transaction for all results that are ready together). It wakes
 * on the queue's notifications and polls slowly in case one was lost; it renews its leases while
 * tasks run, aborts tasks of runs asked to cancel, runs pending hooks, and does the queue's
 * housekeeping (reaping the leases of dead workers) like any other worker or scheduler.
 *
 * IMPORTANT: a lease this worker lost (it hung past the lease, the reaper gave the task to
 * another) is never written to: every report names its lease, and the queue fences it.
 */

export interface WorkerOptions {
  store: RunStore;
  queue: TaskQueue;
  registry: HandlerRegistry;
  /** Queues to take tasks from. Default ["default"]. */
  queues?: readonly string[];
  /** Tasks run at once. Default 16. */
  concurrency?: number;
  /** Default "host:pid/random". */
  id?: string;
  /** How long a claim lasts without renewal. Default 10 s. */
  leaseMs?: number;
  /** How often leases are renewed (and cancel requests seen). Default leaseMs / 3. */
  heartbeatMs?: number;
  /** How often the queue's housekeeping runs here. Default 1 s. */
  reapIntervalMs?: number;
  /** The fallback poll when no notification comes. Default 1 s. */
  pollMs?: number;
  /** How long handlers get to return once cancelled. Default 5 s. */
  cancelGraceMs?: number;
  /** Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** For handler timeouts. Default the system clock. */
  clock?: Clock;
  onEvent?: (event: WorkerEvent) => void;
}

export type WorkerEvent =
  | { type: 'worker:started'; worker: string; queues: readonly string[]; concurrency: number }
  | { type: 'worker:stopped'; worker: string }
  | { type: 'worker:error'; worker: string; message: string; error: ErrorInfo }
  | { type: 'task:started'; worker: string; runId: string; task: string; attempt: number }
  | {
      type: 'task:finished';
      worker: string;
      runId: string;
      task: string;
      attempt: number;
      kind: TaskCompletion['kind'];
      /** False: the lease was lost meanwhile and the result was not recorded. */
      recorded: boolean;
    }
  | { type: 'lease:lost'; worker: string; runId: string; task: string; attempt: number }
  | {
      type: 'queue:reaped';
      worker: string;
      lost: number;
      cancelled: number;
      resumed: number;
      timedOut: number;
    };

export interface WorkerStopOptions {
  /** How long running tasks get to finish before their leases are released. Default 30 s. */
  graceMs?: number;
}

export interface Worker {
  readonly id: string;
  start(): Promise<void>;
  /** No new claims; running tasks get `graceMs`, then are aborted and their leases released. */
  stop(options?: WorkerStopOptions): Promise<void>;
  /** Tasks running now. */
  running(): number;
}

export const DEFAULT_LEASE_MS = 10_000;
const DEFAULT_CONCURRENCY = 16;
const DEFAULT_POLL_MS = 1000;
const DEFAULT_REAP_MS = 1000;
const DEFAULT_STOP_GRACE_MS = 30_000;
/** Results recorded per transaction at most. */
const COMPLETE_BATCH = 500;
const RUN_CACHE = 64;

export function createWorker(options: WorkerOptions): Worker {
  return new QueueWorker(options);
}

export function newWorkerId(): string {
  return `${hostname()}:${process.pid}/${randomBytes(3).toString('hex')}`;
}

interface RunEntry {
  run: RunRecord;
  params: JsonObject;
  masker: Masker;
}

interface Held {
  claim: ClaimedTask;
  controller: AbortController;
  /** performance.now() when claimed. */
  since: number;
  /** Its lease is gone (or being given back): whatever it ends with is not reported. */
  discard: boolean;
  /** The pipeline's `timeout`, once its run is known (for the message when it passes). */
  runTimeoutMs: number | null;
}

const expressionCache = new WeakMap<PlanTask, boolean>();

function withHasExpressions(task: PlanTask): boolean {
  let has = expressionCache.get(task);
  if (has === undefined) {
    has = task.with !== null && containsExpression(task.with);
    expressionCache.set(task, has);
  }
  return has;
}

function heldKey(runId: string, task: string): string {
  return `${runId}\u0000${task}`;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

class QueueWorker implements Worker {
  readonly id: string;
  readonly #o: WorkerOptions;
  readonly #queue: TaskQueue;
  readonly #queues: readonly string[];
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #clock: Clock;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #logs: LogWriter;
  readonly #upstream: UpstreamCache;
  readonly #runs = new Map<string, Promise<RunEntry>>();
  readonly #held = new Map<string, Held>();
  readonly #tasks = new Set<Promise<void>>();
  #pendingResults: {
    completion: TaskCompletion;
    claim: ClaimedTask;
    plan: Plan | undefined;
    resolve: (ok: boolean) => void;
    reject: (e: unknown) => void;
  }[] = [];
  #completing: Promise<void> | undefined;
  /** The last claims found more ready tasks than there were free slots. */
  #plenty = false;
  #stopping = false;
  #started = false;
  #loop: Promise<void> | undefined;
  #wakeUp: (() => void) | undefined;
  #woken = false;
  #waitingForSlots = false;
  #stopListening: (() => Promise<void>) | undefined;
  #timers: NodeJS.Timeout[] = [];
  #reaping: Promise<void> | undefined;
  #hooks: Promise<void> | undefined;
  #renewing: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#queue = options.queue;
    this.id = options.id ?? newWorkerId();
    this.#queues = options.queues && options.queues.length > 0 ? [...new Set(options.queues)] : ['default'];
    this.#concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#clock = options.clock ?? systemClock;
    this.#env = options.env ?? process.env;
    this.#logs = createLogWriter(options.store, {
      onError: (error) => this.#error(error, 'storing log lines'),
    });
    this.#upstream = new UpstreamCache(this.#queue);
  }

  #emit(event: WorkerEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch {
      // A listener that throws must not stop the worker.
    }
  }

  #error(error: unknown, what: string): void {
    const info = toErrorInfo(error);
    this.#emit({ type: 'worker:error', worker: this.id, message: `${what}: ${info.message}`, error: info });
  }

  running(): number {
    return this.#held.size;
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.#started)
      throw new WeftError('RUN_STATE', `worker ${this.id} was started already`, { retryable: false });
    this.#started = true;
    await this.#queue.registerWorker({
      id: this.id,
      queues: this.#queues,
      concurrency: this.#concurrency,
      host: hostname(),
      pid: process.pid,
    });
    this.#stopListening = await this.#queue.listen((queue) => {
      if (queue === null) void this.#runHooks();
      else if (this.#queues.includes(queue)) this.#wake();
    });
    const heartbeatMs = this.#o.heartbeatMs ?? Math.max(50, Math.floor(this.#leaseMs / 3));
    const reapMs = this.#o.reapIntervalMs ?? DEFAULT_REAP_MS;
    const every = (ms: number, fn: () => void) => {
      const timer = setInterval(fn, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(heartbeatMs, () => void this.#renew());
    every(reapMs, () => {
      void this.#reap();
      void this.#runHooks();
    });
    this.#emit({
      type: 'worker:started',
      worker: this.id,
      queues: this.#queues,
      concurrency: this.#concurrency,
    });
    this.#loop = this.#claimLoop();
    void this.#runHooks();
  }

  async stop(options: WorkerStopOptions = {}): Promise<void> {
    if (!this.#started || this.#stopping) return;
    this.#stopping = true;
    this.#wake();
    await this.#loop;
    const graceMs = options.graceMs ?? DEFAULT_STOP_GRACE_MS;
    if (this.#tasks.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const over = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.allSettled([...this.#tasks]), over]);
      clearTimeout(timer);
      // What did not finish in time goes back to the queue for another worker.
      for (const held of this.#held.values()) {
        held.discard = true;
        held.controller.abort(
          new WeftError('TASK_CANCELLED', `worker ${this.id} is shutting down`, { retryable: true }),
        );
      }
      await Promise.allSettled([...this.#tasks]);
      await this.#queue
        .releaseLeases(this.id)
        .catch((error: unknown) => this.#error(error, 'releasing leases'));
    }
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    await Promise.allSettled([this.#completing, this.#reaping, this.#hooks, this.#renewing]);
    await this.#stopListening?.().catch(() => undefined);
    await this.#logs.flush();
    await this.#queue
      .unregisterWorker(this.id)
      .catch((error: unknown) => this.#error(error, 'unregistering'));
    this.#emit({ type: 'worker:stopped', worker: this.id });
  }

  #wake(): void {
    this.#woken = true;
    const wake = this.#wakeUp;
    this.#wakeUp = undefined;
    wake?.();
  }

  /** Sleeps until woken (a notification, a free slot, stop) or `ms` passed. */
  async #sleep(ms: number): Promise<void> {
    if (this.#woken || this.#stopping) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#wakeUp = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#wakeUp = undefined;
  }

  // ---- claiming ---------------------------------------------------------------------------------

  async #claimLoop(): Promise<void> {
    const pollMs = this.#o.pollMs ?? DEFAULT_POLL_MS;
    let failures = 0;
    while (!this.#stopping) {
      const free = this.#concurrency - this.#held.size;
      if (free <= 0) {
        this.#waitingForSlots = true;
        await this.#sleep(pollMs);
        this.#waitingForSlots = false;
        this.#woken = false;
        continue;
      }
      // Cleared before the query: a notification that arrives meanwhile makes the next sleep return.
      this.#woken = false;
      let claims: ClaimedTask[];
      try {
        claims = await this.#queue.claim(this.id, this.#queues, free, this.#leaseMs);
        failures = 0;
      } catch (error) {
        failures += 1;
        this.#error(error, 'claiming tasks');
        await this.#sleep(Math.min(pollMs * failures, 10_000));
        continue;
      }
      for (const claim of claims) this.#start(claim);
      if (claims.length === free) continue;
      let wait = pollMs;
      try {
        const due = claims.length === 0 ? await this.#queue.nextDueIn(this.#queues) : null;
        if (due !== null) wait = Math.min(wait, Math.max(1, Math.ceil(due)));
      } catch (error) {
        this.#error(error, 'looking for delayed tasks');
      }
      if (claims.length > 0 && !this.#woken) {
        // Took what there was; the tasks just started will make more ready, and say so.
        await this.#sleep(wait);
        continue;
      }
      await this.#sleep(wait);
    }
  }

  #start(claim: ClaimedTask): void {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    const held: Held = { claim, controller, since: performance.now(), discard: false, runTimeoutMs: null };
    const key = heldKey(claim.runId, claim.task);
    this.#held.set(key, held);
    const task = this.#execute(held)
      .catch((error: unknown) => this.#error(error, `running task "${claim.task}" of run ${claim.runId}`))
      .finally(() => {
        if (this.#held.get(key) === held) this.#held.delete(key);
        this.#tasks.delete(task);
        // A worker waiting for slots takes more once a quarter of them are free (batched claims).
        const free = this.#concurrency - this.#held.size;
        if (this.#waitingForSlots && (free * 4 >= this.#concurrency || this.#held.size === 0)) this.#wake();
      });
    this.#tasks.add(task);
  }

  #runEntry(runId: string): Promise<RunEntry> {
    let entry = this.#runs.get(runId);
    if (!entry) {
      entry = this.#o.store.getRun(runId).then((run) => {
        if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${runId}`, { retryable: false });
        return {
          run,
          params: deepFreeze(structuredClone(run.params)),
          masker: createSecretMasker(run.plan.secrets, this.#env),
        };
      });
      entry.catch(() => this.#runs.delete(runId));
      if (this.#runs.size >= RUN_CACHE) this.#runs.delete(this.#runs.keys().next().value!);
      this.#runs.set(runId, entry);
    }
    return entry;
  }

  async #execute(held: Held): Promise<void> {
    const { claim, controller } = held;
    const entry = await this.#runEntry(claim.runId);
    const { run, params, masker } = entry;
    const plan = run.plan;
    held.runTimeoutMs = plan.timeoutMs;
    const task = plan.tasks[claim.task];
    const base = { runId: claim.runId, task: claim.task, lease: claim.lease, attempt: claim.attempt };
    if (!task) {
      await this.#report(claim, {
        ...base,
        kind: 'failed',
        state: 'failed',
        error: { code: 'INTERNAL', message: `the run's plan has no task "${claim.task}"` },
        retryable: false,
      });
      return;
    }
    const entries = await this.#upstream.ensure(claim.runId, claim.runAttempt, plan, claim.task);
    const runInfo: RunInfo = {
      id: run.id,
      pipeline: run.pipeline,
      scheduledFor: run.scheduledFor,
      attempt: claim.runAttempt,
    };
    const scope = (): ExpressionScope => ({
      params,
      env: this.#env,
      tasks: UpstreamCache.ancestors(plan, entries, claim.task),
      run: { id: run.id, scheduled_for: run.scheduledFor, attempt: claim.runAttempt },
    });
    let whenError: unknown;
    if (!claim.started) {
      let go = true;
      try {
        const when = task.when;
        go = when === null ? true : typeof when === 'boolean' ? when : evaluateCondition(when, scope());
      } catch (error) {
        // Reported through an attempt, so the failure is recorded like any other.
        whenError = error;
      }
      if (!go) {
        await this.#report(claim, {
          ...base,
          kind: 'skipped',
          reason: `its when condition is false: ${String(task.when)}`,
        });
        return;
      }
      if (!(await this.#queue.startAttempt(this.id, claim))) {
        this.#emit({
          type: 'lease:lost',
          worker: this.id,
          runId: claim.runId,
          task: claim.task,
          attempt: claim.attempt,
        });
        return;
      }
    }
    this.#emit({
      type: 'task:started',
      worker: this.id,
      runId: claim.runId,
      task: claim.task,
      attempt: claim.attempt,
    });
    const result: AttemptResult =
      whenError !== undefined
        ? { state: 'failed', error: toWeftError(whenError, 'EXPRESSION_FAILED') }
        : await this.#invoke(task, claim, controller.signal, runInfo, params, masker, scope, () => {
            const out: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
            for (const [name, value] of Object.entries(UpstreamCache.ancestors(plan, entries, claim.task))) {
              if (value.state === 'succeeded') out[name] = value.output;
            }
            return out;
          });
    if (held.discard) return;
    await this.#report(claim, this.#completion(base, task, result, masker), plan);
  }

  #completion(
    base: Pick<TaskCompletion, 'runId' | 'task' | 'lease' | 'attempt'>,
    task: PlanTask,
    raw: AttemptResult,
    masker: Masker,
  ): TaskCompletion {
    let result = raw;
    if (result.state === 'succeeded') {
      try {
        // Outputs are stored, shown and passed on: a secret a command echoed must not be.
        return {
          ...base,
          kind: 'succeeded',
          output: maskValue(normaliseOutput(result.value, task.name), masker),
        };
      } catch (error) {
        result = { state: 'failed', error: toWeftError(error, 'HANDLER_OUTPUT_INVALID') };
      }
    }
    const info = toErrorInfo(result.error);
    const error: ErrorInfo = { ...info, message: masker(info.message) };
    if (result.state === 'cancelled') return { ...base, kind: 'cancelled', error };
    return { ...base, kind: 'failed', state: result.state, error, retryable: !isNonRetryable(result.error) };
  }

  #invoke(
    task: PlanTask,
    claim: ClaimedTask,
    signal: AbortSignal,
    runInfo: RunInfo,
    params: JsonObject,
    masker: Masker,
    scope: () => ExpressionScope,
    upstream: () => Record<string, JsonValue>,
  ): Promise<AttemptResult> | AttemptResult {
    const handler = this.#o.registry.get(task.handler);
    if (!handler) {
      return {
        state: 'failed',
        error: new WeftError(
          'HANDLER_UNKNOWN',
          `task "${task.name}": no handler named "${task.handler}" is registered on worker ${this.id}`,
          {
            retryable: false,
          },
        ),
      };
    }
    let args: JsonValue;
    try {
      const value = task.with;
      if (value === null) args = null;
      else if (!withHasExpressions(task)) args = typeof value === 'object' ? structuredClone(value) : value;
      else {
        const quoting = handler.shellQuoted ? { quoteKeys: handler.shellQuoted, quote: quoteShellWord } : {};
        args = resolveTemplate(value, scope(), quoting);
      }
      checkHandlerArgs(handler, args, task.name);
    } catch (error) {
      return { state: 'failed', error: toWeftError(error, 'EXPRESSION_FAILED') };
    }
    const log = new WorkerTaskLogger(this.#logs, masker, this.#clock, claim.runId, claim.task, claim.attempt);
    return invokeHandler(
      (handlerSignal) =>
        handler.run(
          args ?? undefined,
          new WorkerTaskContext({
            run: runInfo,
            task: task.name,
            attempt: claim.attempt,
            params,
            signal: handlerSignal,
            log,
            env: this.#env,
            upstream,
            mask: masker,
            recordChildProcess: (pgid) => {
              // Fire and forget, as in the interpreter: the child runs already, and a store
              // failure must not fail the attempt (the worst case is an orphan nobody can stop).
              this.#o.store
                .updateAttempt(claim.runId, claim.task, claim.attempt, { pid: pgid }, { states: ['running'] })
                .catch((error: unknown) => this.#error(error, 'recording a child process'));
            },
          }),
        ),
      {
        task: task.name,
        clock: this.#clock,
        timeoutMs: task.timeoutMs,
        cancelSignal: signal,
        graceMs: this.#o.cancelGraceMs ?? DEFAULT_CANCEL_GRACE_MS,
      },
    );
  }

  // ---- results ----------------------------------------------------------------------------------

  /** Records a result (batched with others); resolves to whether it was recorded. */
  async #report(claim: ClaimedTask, completion: TaskCompletion, plan?: Plan): Promise<boolean> {
    // An attempt's lines are stored before anyone can see it end.
    await this.#logs.flush();
    const recorded = await new Promise<boolean>((resolve, reject) => {
      this.#pendingResults.push({ completion, claim, plan, resolve, reject });
      // Results that arrive while a batch commits wait for the next one: group commit.
      this.#completing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
        this.#drainResults(),
      );
    });
    this.#emit({
      type: 'task:finished',
      worker: this.id,
      runId: claim.runId,
      task: claim.task,
      attempt: claim.attempt,
      kind: completion.kind,
      recorded,
    });
    if (!recorded) {
      this.#emit({
        type: 'lease:lost',
        worker: this.id,
        runId: claim.runId,
        task: claim.task,
        attempt: claim.attempt,
      });
    }
    return recorded;
  }

  async #drainResults(): Promise<void> {
    try {
      while (this.#pendingResults.length > 0) {
        const batch = this.#pendingResults.splice(0, COMPLETE_BATCH);
        try {
          // The slots these results free, filled in the same transaction: what they made ready
          // is taken here at once, without a notification's round trip (or anyone else woken).
          let limit = this.#stopping ? 0 : Math.max(0, this.#concurrency - this.#held.size + batch.length);
          // While the queue has plenty ready, claim in a transaction of its own first: the
          // result transaction holds its run's lock, and should hold it no longer than needed.
          const early =
            limit > 0 && this.#plenty
              ? await this.#queue.claim(this.id, this.#queues, limit, this.#leaseMs).catch(() => [])
              : [];
          limit -= early.length;
          for (const claim of early) this.#start(claim);
          const { recorded, claimed } = await this.#withRetry(() =>
            this.#queue.complete(
              this.id,
              batch.map((b) => b.completion),
              { queues: this.#queues, limit, leaseMs: this.#leaseMs },
            ),
          );
          batch.forEach((b, i) => {
            const ok = recorded[i] ?? false;
            // Known before the tasks just claimed look for their upstream outputs.
            if (ok && b.plan && b.completion.kind === 'succeeded') {
              this.#upstream.remember(
                b.claim.runId,
                b.claim.runAttempt,
                b.plan,
                b.claim.task,
                b.completion.output,
              );
            }
            b.resolve(ok);
          });
          for (const claim of claimed) this.#start(claim);
          this.#plenty = early.length > 0 || (limit > 0 && claimed.length === limit);
        } catch (error) {
          // Not recorded: the leases expire and the reaper hands the tasks out again.
          for (const b of batch) b.reject(error);
        }
      }
    } finally {
      this.#completing = undefined;
    }
  }

  async #withRetry<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= 3 || this.#stopping) throw error;
        this.#error(error, 'recording results (trying again)');
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  // ---- leases, housekeeping, hooks -------------------------------------------------------------

  #renew(): Promise<void> {
    this.#renewing ??= (async () => {
      try {
        const sentAt = performance.now();
        const renewal = await this.#queue.renewLeases(this.id, this.#leaseMs);
        const held = new Set(renewal.held.map((h) => `${heldKey(h.runId, h.task)}#${h.lease}`));
        const cancelled = new Set(renewal.cancelRequested);
        const timedOut = new Set(renewal.timedOut ?? []);
        for (const [key, h] of this.#held) {
          if (h.controller.signal.aborted) continue;
          if (cancelled.has(h.claim.runId)) {
            h.controller.abort(
              new WeftError('TASK_CANCELLED', 'the run was cancelled', { retryable: false }),
            );
          } else if (timedOut.has(h.claim.runId)) {
            // Worded as the interpreter words it: the attempt and its task end with this reason.
            const after = h.runTimeoutMs === null ? '' : ` after ${h.runTimeoutMs}ms`;
            h.controller.abort(
              new WeftError('RUN_TIMEOUT', `the run timed out${after}`, { retryable: false }),
            );
          } else if (h.since < sentAt && !held.has(`${key}#${h.claim.lease}`)) {
            // Its lease is gone: reaped and given to someone else, or its result already recorded.
            // Either way nothing it could report would count: stop working on it.
            h.discard = true;
            h.controller.abort(
              new WeftError('TASK_LOST', `worker ${this.id} lost its lease on this task`, {
                retryable: true,
              }),
            );
            this.#emit({
              type: 'lease:lost',
              worker: this.id,
              runId: h.claim.runId,
              task: h.claim.task,
              attempt: h.claim.attempt,
            });
          }
        }
      } catch (error) {
        this.#error(error, 'renewing leases');
      } finally {
        this.#renewing = undefined;
      }
    })();
    return this.#renewing;
  }

  #reap(): Promise<void> {
    this.#reaping ??= (async () => {
      try {
        const result = await this.#queue.reap();
        if (result.lost + result.cancelled + result.resumed + result.timedOut > 0)
          this.#emit({ type: 'queue:reaped', worker: this.id, ...result });
      } catch (error) {
        this.#error(error, 'housekeeping');
      } finally {
        this.#reaping = undefined;
      }
    })();
    return this.#reaping;
  }

  #runHooks(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#hooks ??= (async () => {
      try {
        for (;;) {
          const claims = await this.#queue.claimHooks(this.id, 8, this.#leaseMs * 6);
          if (claims.length === 0) break;
          for (const claim of claims) await this.#runHook(claim);
        }
      } catch (error) {
        this.#error(error, 'running hooks');
      } finally {
        this.#hooks = undefined;
      }
    })();
    return this.#hooks;
  }

  /** One pending hook, at least once: its record says done or failed before its queue entry goes. */
  async #runHook(claim: HookClaim): Promise<void> {
    const { store } = this.#o;
    const record = (await store.getHooks(claim.runId, ['pending'])).find((h) => h.key === claim.key);
    if (record) {
      const run = await store.getRun(claim.runId);
      if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${claim.runId}`, { retryable: false });
      const taskRuns = await store.getTaskRuns(run.id);
      const tasks = Object.create(null) as Record<string, { output: JsonValue; state: string }>;
      for (const t of taskRuns)
        tasks[t.task] = { output: t.state === 'succeeded' ? t.output : null, state: t.state };
      const masker = createSecretMasker(run.plan.secrets, this.#env);
      const runner: HookRunner = {
        store,
        registry: this.#o.registry,
        run,
        env: this.#env,
        masker,
        logs: this.#logs,
        now: () => this.#clock.now(),
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
      await this.#logs.flush();
    }
    await this.#queue.finishHook(this.id, claim);
  }
}
