import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { systemClock, type Clock } from '../core/clock.js';
import { createLogWriter, type LogWriter } from '../engine/log-writer.js';
import { toErrorInfo, WeftError } from '../errors.js';
import { CompletionBatcher } from './completions.js';
import { runClaimedHook, type ClaimedHookContext } from './hook-runner.js';
import { heldKey, renewLeases, type HeldTask } from './leases.js';
import type { ClaimedTask, HookClaim, TaskQueue } from './queue-port.js';
import { TaskRunner } from './run-task.js';
import { UpstreamCache } from './upstream-cache.js';
import type { WorkerEvent } from './worker-events.js';
import type { WorkerOptions, WorkerStopOptions } from './worker-options.js';

export type { WorkerEvent } from './worker-events.js';
export type { WorkerOptions, WorkerStopOptions } from './worker-options.js';

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
 *
 * This file is the loop and its lifecycle; one claimed task is run in run-task.ts, results are
 * batched in completions.ts, heartbeats are in leases.ts and hooks in hook-runner.ts.
 */

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

export function createWorker(options: WorkerOptions): Worker {
  return new QueueWorker(options);
}

export function newWorkerId(): string {
  return `${hostname()}:${process.pid}/${randomBytes(3).toString('hex')}`;
}

class QueueWorker implements Worker {
  readonly id: string;
  readonly #o: WorkerOptions;
  readonly #queue: TaskQueue;
  readonly #queues: readonly string[];
  readonly #concurrency: number;
  readonly #leaseMs: number;
  /** How often held leases (tasks' and the running hook's) are renewed. */
  readonly #heartbeatMs: number;
  readonly #clock: Clock;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #logs: LogWriter;
  readonly #upstream: UpstreamCache;
  readonly #runner: TaskRunner;
  readonly #hookContext: ClaimedHookContext;
  readonly #held = new Map<string, HeldTask>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #results: CompletionBatcher;
  #stopping = false;
  #started = false;
  #loop: Promise<void> | undefined;
  #wakeUp: (() => void) | undefined;
  #woken = false;
  #waitingForSlots = false;
  #stopListening: (() => Promise<void>) | undefined;
  #timers: NodeJS.Timeout[] = [];
  #reaping: Promise<void> | undefined;
  #reapFailed = false;
  #hooks: Promise<void> | undefined;
  #renewing: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#queue = options.queue;
    this.id = options.id ?? newWorkerId();
    this.#queues = options.queues && options.queues.length > 0 ? [...new Set(options.queues)] : ['default'];
    this.#concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.floor(this.#leaseMs / 3));
    this.#clock = options.clock ?? systemClock;
    this.#env = options.env ?? process.env;
    this.#logs = createLogWriter(options.store, {
      onError: (error) => this.#error(error, 'storing log lines'),
    });
    this.#upstream = new UpstreamCache(this.#queue);
    this.#results = new CompletionBatcher({
      workerId: this.id,
      queue: this.#queue,
      queues: this.#queues,
      leaseMs: this.#leaseMs,
      concurrency: this.#concurrency,
      logs: this.#logs,
      upstream: this.#upstream,
      emit: (event) => this.#emit(event),
      error: (error, what) => this.#error(error, what),
      isStopping: () => this.#stopping,
      running: () => this.#held.size,
      start: (claim) => this.#start(claim),
    });
    this.#runner = new TaskRunner({
      workerId: this.id,
      options,
      env: this.#env,
      clock: this.#clock,
      logs: this.#logs,
      upstream: this.#upstream,
      emit: (event) => this.#emit(event),
      error: (error, what) => this.#error(error, what),
      report: (claim, completion, plan) => this.#results.report(claim, completion, plan),
    });
    this.#hookContext = {
      workerId: this.id,
      store: options.store,
      queue: this.#queue,
      registry: options.registry,
      env: this.#env,
      logs: this.#logs,
      clock: this.#clock,
    };
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
    const heartbeatMs = this.#heartbeatMs;
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
    await Promise.allSettled([this.#results.idle(), this.#reaping, this.#hooks, this.#renewing]);
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
    const held: HeldTask = {
      claim,
      controller,
      since: performance.now(),
      discard: false,
      runTimeoutMs: null,
    };
    const key = heldKey(claim.runId, claim.task);
    this.#held.set(key, held);
    const task = this.#runner
      .execute(held)
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

  // ---- leases, housekeeping, hooks -------------------------------------------------------------

  #renew(): Promise<void> {
    this.#renewing ??= (async () => {
      try {
        await renewLeases({
          queue: this.#queue,
          workerId: this.id,
          leaseMs: this.#leaseMs,
          held: this.#held,
          emit: (event) => this.#emit(event),
        });
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
        if (this.#reapFailed) {
          // The database is back: claim now, not after the claim loop's back-off (grown up to
          // 10 s while it was out of reach) — nobody may notify: the other workers are waiting too.
          this.#reapFailed = false;
          this.#wake();
        }
        if (result.lost + result.cancelled + result.resumed + result.timedOut > 0)
          this.#emit({ type: 'queue:reaped', worker: this.id, ...result });
      } catch (error) {
        this.#reapFailed = true;
        this.#error(error, 'housekeeping');
      } finally {
        this.#reaping = undefined;
      }
    })();
    return this.#reaping;
  }

  /** One heartbeat of a running hook's lease; a lease taken meanwhile is said once, and the hook goes on. */
  async #renewHook(claim: HookClaim, lease: { lost: boolean }): Promise<void> {
    try {
      const held = await this.#queue.renewHook(this.id, claim, this.#leaseMs);
      if (!held && !lease.lost) {
        lease.lost = true;
        this.#emit({ type: 'hook:lease-lost', worker: this.id, runId: claim.runId, key: claim.key });
      }
    } catch (error) {
      this.#error(error, 'renewing a hook lease');
    }
  }

  #runHooks(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#hooks ??= (async () => {
      try {
        // One at a time, its lease renewed while it runs (a hook may take up to its timeout):
        // a hook whose worker died is run again by another one lease later, and a slow one is
        // not run twice. A stopping worker takes no more, and lets the one it runs finish.
        while (!this.#stopping) {
          const [claim] = await this.#queue.claimHooks(this.id, 1, this.#leaseMs);
          if (!claim) break;
          const lease = { lost: false };
          const renew = setInterval(() => void this.#renewHook(claim, lease), this.#heartbeatMs);
          renew.unref();
          try {
            await runClaimedHook(this.#hookContext, claim);
          } finally {
            clearInterval(renew);
          }
        }
      } catch (error) {
        this.#error(error, 'running hooks');
      } finally {
        this.#hooks = undefined;
      }
    })();
    return this.#hooks;
  }
}
