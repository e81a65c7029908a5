import { setMaxListeners } from 'node:events';
import type { JsonObject, JsonValue } from '../core/json.js';
import { failpoint } from '../core/failpoint.js';
import { assertTaskTransition } from '../core/states.js';
import { toWeftError, WeftError } from '../errors.js';
import type { RunInfo } from '../handlers/types.js';
import { evaluateCondition } from '../pipeline/expressions.js';
import type { TaskRunRecord } from '../store/run-store.js';
import type { AttemptResult } from './attempt.js';
import type { AttemptScope } from './attempt-context.js';
import { recordAttemptEnd, runTaskFailureHooks } from './attempt-end.js';
import type { ExecutionContext } from './execution-context.js';
import type { HookRunner } from './hooks.js';
import { expressionScopeOf, invokeTask } from './task-inputs.js';
import { createTaskNodes, finishedTasksOf, type TaskNode } from './task-node.js';
import {
  couldDecideEarly,
  passResultOf,
  stallError,
  type PassResult,
  type StopKind,
} from './task-outcome.js';
import { writeAttemptStart, writeCancelled, writeSkipped } from './task-writes.js';
import { toIso } from './time.js';
import { decideTrigger, type UpstreamOutcome } from './trigger-rules.js';

export type { PassResult } from './task-outcome.js';

/**
 * One pass over a run's tasks: from the task runs the store holds to every task finished. A run
 * has one pass per run attempt (pipeline-level retries start a new pass).
 *
 * Scheduling is event-driven with O(1) bookkeeping per task: each task counts its unfinished
 * dependencies, and a finishing task visits only its direct dependents. A dependent is decided
 * (`decideTrigger`) when its last dependency finishes, or earlier when an outcome could decide it
 * early (a failure under all_success), never by scanning all tasks.
 *
 * IMPORTANT: every started attempt reaches exactly one persisted terminal state. A task is marked
 * `running` and its attempt inserted (durably) before its handler is called; the attempt's end is
 * written before the task run's, and every write after that is fenced on the state (and attempt
 * count) this pass last wrote, so a task run changed behind our back is a loud conflict, not a
 * silent overwrite.
 */

export class RunPass implements AttemptScope {
  readonly ctx: ExecutionContext;
  readonly runInfo: RunInfo;
  /** Frozen: every handler sees the same params, and none can change them for the others. */
  readonly params: JsonObject;
  readonly #nodes: TaskNode[];
  #evalQueue: TaskNode[] = [];
  #evalHead = 0;
  #ready: TaskNode[] = [];
  #readyHead = 0;
  #running = 0;
  #waiting = 0;
  #finished: number;
  #draining = false;
  #stop: StopKind | null = null;
  #stopReason = '';
  #fatal: { error: unknown } | null = null;
  #settled = false;
  readonly #controller = new AbortController();
  readonly #timers = new AbortController();
  readonly #background = new Set<Promise<unknown>>();
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  readonly #done: Promise<void>;

  constructor(ctx: ExecutionContext, taskRuns: readonly TaskRunRecord[]) {
    this.ctx = ctx;
    const { run } = ctx;
    this.runInfo = {
      id: run.id,
      pipeline: run.pipeline,
      scheduledFor: run.scheduledFor,
      attempt: run.attempt,
    };
    this.params = ctx.params;
    // Every running attempt (and many handlers) listens to this signal: thousands is normal here.
    setMaxListeners(0, this.#controller.signal);
    this.#done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const { nodes, finished } = createTaskNodes(ctx.plan, run.id, taskRuns);
    this.#nodes = nodes;
    this.#finished = finished;
  }

  /** Runs every unfinished task; resolves when all are finished, or the pass was stopped. */
  async execute(): Promise<PassResult> {
    const { ctx } = this;
    const onCancel = () => this.#halt('cancel', ctx.cancelSignal.reason);
    if (ctx.cancelSignal.aborted) onCancel();
    else ctx.cancelSignal.addEventListener('abort', onCancel, { once: true });
    const timeoutMs = ctx.plan.timeoutMs;
    if (timeoutMs !== null) {
      ctx.clock.sleep(timeoutMs, this.#timers.signal).then(
        () => this.#halt('timeout', new WeftError('RUN_TIMEOUT', `the run timed out after ${timeoutMs}ms`)),
        () => undefined,
      );
    }
    try {
      for (const node of this.#nodes) if (node.state === 'pending') this.#evalQueue.push(node);
      this.#drain();
      await this.#done;
    } finally {
      ctx.cancelSignal.removeEventListener('abort', onCancel);
      this.#timers.abort();
    }
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    if (this.#fatal) throw this.#fatal.error;
    return passResultOf(this.#nodes, this.#stop, this.#stopReason);
  }

  /** Finished tasks: output (null unless succeeded) and state. */
  finishedTasks(): Record<string, { output: JsonValue; state: string }> {
    return finishedTasksOf(this.#nodes);
  }

  // ---- scheduling -------------------------------------------------------------------------------

  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (;;) {
        while (this.#evalHead < this.#evalQueue.length) this.#evaluate(this.#evalQueue[this.#evalHead++]!);
        this.#evalQueue = [];
        this.#evalHead = 0;
        while (
          this.#stop === null &&
          this.#running < this.ctx.concurrency &&
          this.#readyHead < this.#ready.length
        ) {
          const node = this.#ready[this.#readyHead++]!;
          if (node.state === 'pending' || node.state === 'retrying') this.#admit(node);
        }
        if (this.#readyHead === this.#ready.length) {
          this.#ready = [];
          this.#readyHead = 0;
        }
        if (this.#evalQueue.length === 0) break;
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#draining = false;
    }
    this.#checkSettled();
  }

  #evaluate(node: TaskNode): void {
    if (node.decided || node.state !== 'pending' || this.#stop !== null) return;
    const upstream = node.deps.map((d) => ({ task: d.name, outcome: d.outcome }));
    const decision = decideTrigger(node.task.triggerRule, upstream);
    switch (decision.kind) {
      case 'wait':
        return;
      case 'skip':
        node.decided = true;
        this.#skip(node, decision.reason);
        return;
      case 'run':
        node.decided = true;
        this.#ready.push(node);
        return;
    }
  }

  #admit(node: TaskNode): void {
    let whenError: unknown;
    if (node.state === 'pending' && node.task.when !== null) {
      let run = true;
      try {
        const when = node.task.when;
        run = typeof when === 'boolean' ? when : evaluateCondition(when, expressionScopeOf(this, node));
      } catch (error) {
        // Reported through an attempt, so the failure is recorded like any other.
        whenError = error;
      }
      if (!run) {
        this.#skip(node, `its when condition is false: ${String(node.task.when)}`);
        return;
      }
    }
    this.#running += 1;
    node.holdsSlot = true;
    void this.#runAttempt(node, whenError);
  }

  #markFinished(node: TaskNode, outcome: UpstreamOutcome): void {
    node.outcome = outcome;
    this.#finished += 1;
    const halted = this.#stop !== null;
    for (const dependent of node.dependents) {
      dependent.remaining -= 1;
      if (halted || dependent.decided) continue;
      if (dependent.remaining === 0 || couldDecideEarly(dependent.task.triggerRule, outcome))
        this.#evalQueue.push(dependent);
    }
  }

  #releaseSlot(node: TaskNode): void {
    if (!node.holdsSlot) return;
    node.holdsSlot = false;
    this.#running -= 1;
  }

  #checkSettled(): void {
    if (this.#settled || this.#running > 0) return;
    if (this.#fatal) {
      this.#settled = true;
      this.#reject(this.#fatal.error);
      return;
    }
    if (this.#finished === this.#nodes.length) {
      this.#settled = true;
      this.#resolve();
      return;
    }
    if (this.#draining) return;
    if (this.#stop === null && (this.#waiting > 0 || this.#readyHead < this.#ready.length)) return;
    // Nothing runs, nothing waits, tasks remain: no event can ever finish them. Say so, never hang.
    this.#fail(stallError(this.ctx.run.id, this.#nodes));
    this.#checkSettled();
  }

  #track(promise: Promise<unknown>): void {
    this.#background.add(promise);
    promise.then(
      () => this.#background.delete(promise),
      (error: unknown) => {
        this.#background.delete(promise);
        this.#fail(error);
      },
    );
  }

  #fail(error: unknown): void {
    if (!this.#fatal) this.#fatal = { error };
    this.#halt('fatal', error);
    this.#checkSettled();
  }

  /**
   * Stops the pass: running attempts see their signal aborted; on cancel and run timeout every
   * task not running ends `cancelled` at once (running ones end when their handler returns or the
   * grace period is over). On a fatal error the store is not trusted with more writes: the run is
   * left as it is, for interrupted-run recovery.
   */
  #halt(kind: StopKind, reason: unknown): void {
    if (this.#stop !== null) return;
    this.#stop = kind;
    const error = toWeftError(reason);
    this.#stopReason = this.ctx.masker(error.message);
    this.#controller.abort(
      kind === 'fatal'
        ? new WeftError('TASK_CANCELLED', 'the run stopped on an error', { cause: reason })
        : error,
    );
    if (kind !== 'fatal') {
      for (const node of this.#nodes) {
        if (node.state === 'pending' || (node.state === 'retrying' && !node.holdsSlot))
          this.#cancel(node, this.#stopReason);
      }
    }
    this.#checkSettled();
  }

  // ---- state writes -----------------------------------------------------------------------------

  #skip(node: TaskNode, reason: string): void {
    assertTaskTransition(node.name, node.state, 'skipped');
    node.state = 'skipped';
    const { ctx } = this;
    this.#track(writeSkipped(ctx, node.name, reason));
    this.#markFinished(node, 'skipped');
    if (ctx.onEvent) ctx.emit({ type: 'task:skipped', runId: ctx.run.id, task: node.name, reason });
  }

  #cancel(node: TaskNode, reason: string): void {
    const from = node.state;
    assertTaskTransition(node.name, from, 'cancelled');
    if (node.waiting) {
      node.waiting = false;
      this.#waiting -= 1;
    }
    node.token += 1;
    node.state = 'cancelled';
    const { ctx } = this;
    this.#track(writeCancelled(ctx, node.name, from, reason));
    this.#markFinished(node, 'cancelled');
    ctx.emit({ type: 'task:cancelled', runId: ctx.run.id, task: node.name, reason });
  }

  async #runAttempt(node: TaskNode, whenError: unknown): Promise<void> {
    try {
      const { ctx } = this;
      const runId = ctx.run.id;
      const from = node.state;
      assertTaskTransition(node.name, from, 'running');
      const attempt = node.attempts + 1;
      const nth = attempt - node.base;
      const startMs = ctx.clock.now();
      node.attempts = attempt;
      node.state = 'running';
      await writeAttemptStart(ctx, node.name, from, {
        number: attempt,
        isFirstOfPass: nth === 1,
        delayMs: node.delayMs,
        startedAt: toIso(startMs),
      });
      // The task is `running` with an open attempt, and its handler has not been called.
      failpoint('after-task-running');
      if (ctx.onEvent) ctx.emit({ type: 'task:started', runId, task: node.name, attempt });
      const result: AttemptResult =
        whenError !== undefined
          ? { state: 'failed', error: toWeftError(whenError, 'EXPRESSION_FAILED') }
          : await invokeTask(this, node, attempt, this.#controller.signal);
      // IMPORTANT: after a fatal stop (the store failed) nothing more is written: the attempt is
      // left open for interrupted-run recovery, which records it `lost` and runs the task again.
      // Recording it `cancelled` (its handler was aborted) would make resuming the interrupted
      // run treat the task as finished, and the run end `cancelled`.
      if (this.#stop === 'fatal') return;
      await this.#finishAttempt(node, attempt, nth, startMs, result);
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#releaseSlot(node);
      this.#drain();
    }
  }

  async #finishAttempt(
    node: TaskNode,
    attempt: number,
    nth: number,
    startMs: number,
    result: AttemptResult,
  ): Promise<void> {
    const { ctx } = this;
    const runId = ctx.run.id;
    const end = await recordAttemptEnd(ctx, node, attempt, nth, result, this.#stop === null);
    node.state = end.state;
    this.#releaseSlot(node);
    switch (end.state) {
      case 'succeeded': {
        node.output = end.output;
        this.#markFinished(node, 'success');
        const durationMs = end.finishedMs - startMs;
        if (ctx.onEvent) ctx.emit({ type: 'task:succeeded', runId, task: node.name, attempt, durationMs });
        return;
      }
      case 'cancelled':
        this.#markFinished(node, 'cancelled');
        ctx.emit({ type: 'task:cancelled', runId, task: node.name, reason: end.reason });
        return;
      case 'retrying': {
        const { error, delayMs } = end;
        node.error = error;
        node.delayMs = delayMs;
        ctx.emit({ type: 'task:retrying', runId, task: node.name, attempt, delayMs, error });
        // A stop while the retry was being recorded found the task still running: cancel it now.
        if (this.#stop !== null) this.#cancel(node, this.#stopReason);
        else this.#scheduleRetry(node, delayMs);
        return;
      }
      case 'failed': {
        const { error, hooks } = end;
        node.error = error;
        this.#markFinished(node, node.task.continueOnError ? 'success' : 'failed');
        const { continueOnError } = node.task;
        ctx.emit({ type: 'task:failed', runId, task: node.name, error, attempts: nth, continueOnError });
        if (hooks.length > 0) this.#track(runTaskFailureHooks(this.hookRunner(), node, hooks, error, nth));
        return;
      }
    }
  }

  #scheduleRetry(node: TaskNode, delayMs: number): void {
    node.waiting = true;
    this.#waiting += 1;
    const token = ++node.token;
    this.ctx.clock.sleep(delayMs, this.#controller.signal).then(
      () => {
        if (node.token !== token || node.state !== 'retrying') return;
        node.waiting = false;
        this.#waiting -= 1;
        this.#ready.push(node);
        this.#drain();
      },
      // Stopped: #halt cancels the task.
      () => undefined,
    );
  }

  hookRunner(): HookRunner {
    const { ctx } = this;
    return {
      store: ctx.store,
      registry: ctx.registry,
      run: ctx.run,
      env: ctx.env,
      masker: ctx.masker,
      logs: ctx.logs,
      clock: ctx.clock,
      signal: ctx.hookSignal,
      emit: (event) => ctx.emit(event),
      tasks: () => this.finishedTasks(),
    };
  }
}
