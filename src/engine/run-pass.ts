import { setMaxListeners } from 'node:events';
import type { PlanTask } from '../compile/plan.js';
import { createDict, type JsonObject, type JsonValue } from '../core/json.js';
import { failpoint } from '../core/failpoint.js';
import { assertTaskTransition, type TaskState } from '../core/states.js';
import { isNonRetryable, toErrorInfo, toWeftError, WeftError, type ErrorInfo } from '../errors.js';
import { quoteShellWord } from '../handlers/shell-quote.js';
import type { AnyHandler, HandlerContext, LogLevel, RunInfo, TaskLogger } from '../handlers/types.js';
import {
  containsExpression,
  evaluateCondition,
  resolveTemplate,
  type ExpressionScope,
} from '../pipeline/expressions.js';
import type { HookRecord, TaskRunPatch, TaskRunRecord } from '../store/run-store.js';
import { invokeHandler, type AttemptResult } from './attempt.js';
import type { ExecutionContext } from './execution-context.js';
import { checkHandlerArgs } from './handler-args.js';
import { newHookRecord, runHook, taskHookKey, type HookRunner } from './hooks.js';
import { maskValue } from './mask.js';
import { normaliseOutput } from './output.js';
import { hasRetryLeft, retryDelayMs } from './retry-delay.js';
import { toIso } from './time.js';
import { decideTrigger, type UpstreamOutcome } from './trigger-rules.js';

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

interface TaskNode {
  name: string;
  task: PlanTask;
  deps: TaskNode[];
  dependents: TaskNode[];
  state: TaskState;
  /** How this task ended as its dependents see it. */
  outcome: UpstreamOutcome;
  /** Dependencies not finished yet. */
  remaining: number;
  /** Queued to run or skipped: decideTrigger is not asked again. */
  decided: boolean;
  /** Attempts started so far (across passes and resumes: attempt numbers only grow). */
  attempts: number;
  /** `attempts` when this pass began: retries are counted within the pass. */
  base: number;
  /** The delay waited before the next attempt. */
  delayMs: number;
  output: JsonValue;
  error: ErrorInfo | null;
  holdsSlot: boolean;
  waiting: boolean;
  /** Invalidates a retry timer that fires after the task was cancelled. */
  token: number;
}

export interface PassResult {
  state: 'succeeded' | 'failed' | 'cancelled';
  error: ErrorInfo | null;
  /** Why the pass stopped early, if it did. */
  stopped: 'cancel' | 'timeout' | null;
}

type StopKind = 'cancel' | 'timeout' | 'fatal';

const expressionCache = new WeakMap<PlanTask, boolean>();

/** Whether a task's `with` needs substitution (cached: plans are immutable). */
function withHasExpressions(task: PlanTask): boolean {
  let has = expressionCache.get(task);
  if (has === undefined) {
    has = task.with !== null && containsExpression(task.with);
    expressionCache.set(task, has);
  }
  return has;
}

/** Whether an outcome could decide a dependent with this rule before its last dependency ends. */
function couldDecideEarly(rule: PlanTask['triggerRule'], outcome: UpstreamOutcome): boolean {
  switch (rule) {
    case 'all_success':
      return outcome !== 'success';
    case 'all_done':
      return false;
    case 'one_failed':
      return outcome === 'failed';
    case 'all_failed':
      return outcome !== 'failed';
  }
}

function outcomeOf(state: TaskState, task: PlanTask): UpstreamOutcome {
  switch (state) {
    case 'succeeded':
      return 'success';
    case 'failed':
      return task.continueOnError ? 'success' : 'failed';
    case 'skipped':
      return 'skipped';
    case 'cancelled':
      return 'cancelled';
    case 'pending':
    case 'running':
    case 'retrying':
      return 'unfinished';
  }
}

function conflict(runId: string, task: string, what: string): WeftError {
  return new WeftError(
    'RUN_STATE',
    `task "${task}" of run ${runId} changed in the store while this process ran it (${what}); is another process executing the run?`,
    { retryable: false },
  );
}

class AttemptLogger implements TaskLogger {
  constructor(
    private readonly ctx: ExecutionContext,
    private readonly task: string,
    private readonly attempt: number,
  ) {}

  #write(level: LogLevel | 'stdout' | 'stderr', message: string): void {
    const { ctx } = this;
    const text = ctx.masker(String(message));
    ctx.logs.write({
      runId: ctx.run.id,
      task: this.task,
      attempt: this.attempt,
      ts: toIso(ctx.clock.now()),
      level,
      message: text,
    });
    if (ctx.onEvent) {
      ctx.emit({
        type: 'task:log',
        runId: ctx.run.id,
        task: this.task,
        attempt: this.attempt,
        level,
        message: text,
      });
    }
  }
  debug(message: string): void {
    this.#write('debug', message);
  }
  info(message: string): void {
    this.#write('info', message);
  }
  warn(message: string): void {
    this.#write('warn', message);
  }
  error(message: string): void {
    this.#write('error', message);
  }
  stdout(line: string): void {
    this.#write('stdout', line);
  }
  stderr(line: string): void {
    this.#write('stderr', line);
  }
}

/** The handler's context; `upstream` is computed only if the handler reads it. */
class AttemptContext implements HandlerContext {
  readonly pipeline: string;
  readonly task: string;
  readonly run: RunInfo;
  readonly attempt: number;
  readonly params: JsonObject;
  readonly signal: AbortSignal;
  readonly log: TaskLogger;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly mask: (text: string) => string;
  #upstream: Record<string, JsonValue> | undefined;
  readonly #compute: () => Record<string, JsonValue>;
  readonly #store: ExecutionContext['store'];

  constructor(
    pass: { runInfo: RunInfo; params: JsonObject; ctx: ExecutionContext },
    task: string,
    attempt: number,
    signal: AbortSignal,
    compute: () => Record<string, JsonValue>,
  ) {
    this.pipeline = pass.runInfo.pipeline;
    this.task = task;
    this.run = pass.runInfo;
    this.attempt = attempt;
    this.params = pass.params;
    this.signal = signal;
    this.log = new AttemptLogger(pass.ctx, task, attempt);
    this.env = pass.ctx.env;
    this.mask = pass.ctx.masker;
    this.#compute = compute;
    this.#store = pass.ctx.store;
  }

  get upstream(): Record<string, JsonValue> {
    this.#upstream ??= this.#compute();
    return this.#upstream;
  }

  readonly recordChildProcess = (pgid: number): void => {
    // Fire and forget: the child is already running, and a store failure here must not fail the
    // attempt; the worst case is an orphan that recovery cannot find.
    this.#store
      .updateAttempt(this.run.id, this.task, this.attempt, { pid: pgid }, { states: ['running'] })
      .catch(() => undefined);
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

export class RunPass {
  readonly ctx: ExecutionContext;
  readonly runInfo: RunInfo;
  /** Frozen: every handler sees the same params, and none can change them for the others. */
  readonly params: JsonObject;
  readonly #nodes: TaskNode[] = [];
  readonly #byName = new Map<string, TaskNode>();
  #evalQueue: TaskNode[] = [];
  #evalHead = 0;
  #ready: TaskNode[] = [];
  #readyHead = 0;
  #running = 0;
  #waiting = 0;
  #finished = 0;
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
    const { run, plan } = ctx;
    this.runInfo = {
      id: run.id,
      pipeline: run.pipeline,
      scheduledFor: run.scheduledFor,
      attempt: run.attempt,
    };
    this.params = deepFreeze(structuredClone(run.params));
    // Every running attempt (and many handlers) listens to this signal: thousands is normal here.
    setMaxListeners(0, this.#controller.signal);
    this.#done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    for (const taskRun of taskRuns) {
      const task = plan.tasks[taskRun.task];
      if (!task)
        throw new WeftError(
          'INTERNAL',
          `run ${run.id} has a task run "${taskRun.task}" its plan does not know`,
        );
      if (taskRun.state === 'running' || taskRun.state === 'retrying') {
        throw new WeftError(
          'INTERNAL',
          `task "${taskRun.task}" is still ${taskRun.state} when a pass over run ${run.id} begins`,
        );
      }
      const node: TaskNode = {
        name: taskRun.task,
        task,
        deps: [],
        dependents: [],
        state: taskRun.state,
        outcome: outcomeOf(taskRun.state, task),
        remaining: 0,
        decided: taskRun.state !== 'pending',
        attempts: taskRun.attempts,
        base: taskRun.attempts,
        delayMs: 0,
        output: taskRun.output,
        error: taskRun.error,
        holdsSlot: false,
        waiting: false,
        token: 0,
      };
      this.#byName.set(node.name, node);
    }
    for (const name of plan.order) {
      const node = this.#byName.get(name);
      if (!node) throw new WeftError('INTERNAL', `run ${run.id} has no task run for task "${name}"`);
      this.#nodes.push(node);
    }
    for (const node of this.#nodes) {
      for (const dep of node.task.dependsOn) {
        const upstream = this.#byName.get(dep)!;
        node.deps.push(upstream);
        upstream.dependents.push(node);
        if (upstream.outcome === 'unfinished') node.remaining += 1;
      }
      if (node.outcome !== 'unfinished') this.#finished += 1;
    }
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
    return this.#result();
  }

  #result(): PassResult {
    if (this.#stop === 'timeout') {
      return {
        state: 'failed',
        error: { code: 'RUN_TIMEOUT', message: this.#stopReason },
        stopped: 'timeout',
      };
    }
    if (this.#stop === 'cancel') return { state: 'cancelled', error: null, stopped: 'cancel' };
    const failed = this.#nodes.filter((n) => n.state === 'failed' && !n.task.continueOnError);
    const first = failed[0];
    if (first) {
      const more = failed.length > 1 ? ` (and ${failed.length - 1} more failed task(s))` : '';
      const error = first.error ?? { code: 'HANDLER_FAILED', message: 'failed' };
      return {
        state: 'failed',
        error: { code: error.code, message: `task "${first.name}" failed: ${error.message}${more}` },
        stopped: null,
      };
    }
    // Tasks left cancelled by an earlier execution (a partial resume) mean the run did not all run.
    if (this.#nodes.some((n) => n.state === 'cancelled'))
      return { state: 'cancelled', error: null, stopped: null };
    return { state: 'succeeded', error: null, stopped: null };
  }

  /** Finished tasks: output (null unless succeeded) and state. */
  finishedTasks(): Record<string, { output: JsonValue; state: string }> {
    const out = createDict<{ output: JsonValue; state: string }>();
    for (const node of this.#nodes) {
      if (node.outcome !== 'unfinished')
        out[node.name] = { output: node.state === 'succeeded' ? node.output : null, state: node.state };
    }
    return out;
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
        run = typeof when === 'boolean' ? when : evaluateCondition(when, this.#scope(node));
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
    const stuck = this.#nodes.filter((n) => n.outcome === 'unfinished');
    const names = stuck.slice(0, 5).map((n) => `"${n.name}" (${n.state})`);
    this.#fail(
      new WeftError(
        'INTERNAL',
        `run ${this.ctx.run.id} stalled: nothing is running or waiting, yet ${stuck.length} task(s) are unfinished: ` +
          `${names.join(', ')}${stuck.length > 5 ? ', …' : ''}. This is a bug in weft.`,
        { retryable: false },
      ),
    );
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
    this.#track(
      ctx.store
        .updateTaskRun(
          ctx.run.id,
          node.name,
          { state: 'skipped', reason, finishedAt: toIso(ctx.clock.now()) },
          { states: ['pending'] },
        )
        .then((ok) => {
          if (!ok) throw conflict(ctx.run.id, node.name, 'marking it skipped');
        }),
    );
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
    this.#track(
      ctx.store
        .updateTaskRun(
          ctx.run.id,
          node.name,
          { state: 'cancelled', reason, finishedAt: toIso(ctx.clock.now()), nextAttemptAt: null },
          { states: [from] },
        )
        .then((ok) => {
          if (!ok) throw conflict(ctx.run.id, node.name, 'marking it cancelled');
        }),
    );
    this.#markFinished(node, 'cancelled');
    ctx.emit({ type: 'task:cancelled', runId: ctx.run.id, task: node.name, reason });
  }

  async #runAttempt(node: TaskNode, whenError: unknown): Promise<void> {
    try {
      const { ctx } = this;
      const { store } = ctx;
      const runId = ctx.run.id;
      const from = node.state;
      assertTaskTransition(node.name, from, 'running');
      const attempt = node.attempts + 1;
      const nth = attempt - node.base;
      const startMs = ctx.clock.now();
      const startedAt = toIso(startMs);
      node.attempts = attempt;
      node.state = 'running';
      const patch: TaskRunPatch =
        nth === 1
          ? {
              state: 'running',
              attempts: attempt,
              startedAt,
              finishedAt: null,
              nextAttemptAt: null,
              error: null,
            }
          : { state: 'running', attempts: attempt, nextAttemptAt: null };
      // Both sent at once: the store neither reorders nor acknowledges before commit, so the two
      // may share one commit with other tasks' writes.
      const [fenced] = await Promise.all([
        store.updateTaskRun(runId, node.name, patch, { states: [from], attempts: attempt - 1 }),
        store.insertAttempt({
          runId,
          task: node.name,
          attempt,
          state: 'running',
          delayMs: node.delayMs,
          startedAt,
          finishedAt: null,
          error: null,
          worker: ctx.owner,
          pid: null,
        }),
      ]);
      if (!fenced) {
        const error = conflict(runId, node.name, 'starting an attempt');
        await store.updateAttempt(
          runId,
          node.name,
          attempt,
          { state: 'cancelled', finishedAt: toIso(ctx.clock.now()), error: toErrorInfo(error) },
          { states: ['running'] },
        );
        throw error;
      }
      // The task is `running` with an open attempt, and its handler has not been called.
      failpoint('after-task-running');
      if (ctx.onEvent) ctx.emit({ type: 'task:started', runId, task: node.name, attempt });
      const result: AttemptResult =
        whenError !== undefined
          ? { state: 'failed', error: toWeftError(whenError, 'EXPRESSION_FAILED') }
          : await this.#invoke(node, attempt);
      await this.#finishAttempt(node, attempt, nth, startMs, result);
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#releaseSlot(node);
      this.#drain();
    }
  }

  #invoke(node: TaskNode, attempt: number): Promise<AttemptResult> | AttemptResult {
    const handler = this.ctx.registry.get(node.task.handler);
    if (!handler) {
      return {
        state: 'failed',
        error: new WeftError(
          'HANDLER_UNKNOWN',
          `task "${node.name}": no handler named "${node.task.handler}" is registered`,
          {
            retryable: false,
          },
        ),
      };
    }
    let args: JsonValue;
    try {
      args = this.#resolveArgs(node, handler);
      checkHandlerArgs(handler, args, node.name);
    } catch (error) {
      return { state: 'failed', error: toWeftError(error, 'EXPRESSION_FAILED') };
    }
    const { ctx } = this;
    return invokeHandler(
      (signal) =>
        handler.run(
          args ?? undefined,
          new AttemptContext(this, node.name, attempt, signal, () => this.#upstreamOutputs(node)),
        ),
      {
        task: node.name,
        clock: ctx.clock,
        timeoutMs: node.task.timeoutMs,
        cancelSignal: this.#controller.signal,
        graceMs: ctx.graceMs,
      },
    );
  }

  #resolveArgs(node: TaskNode, handler: AnyHandler): JsonValue {
    const value = node.task.with;
    if (value === null) return null;
    if (!withHasExpressions(node.task)) return typeof value === 'object' ? structuredClone(value) : value;
    const options = handler.shellQuoted ? { quoteKeys: handler.shellQuoted, quote: quoteShellWord } : {};
    return resolveTemplate(value, this.#scope(node), options);
  }

  /** Upstream tasks (direct and indirect), visited once each. */
  #ancestors(node: TaskNode): TaskNode[] {
    const seen = new Set<TaskNode>();
    const stack = [...node.deps];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      for (const dep of next.deps) if (!seen.has(dep)) stack.push(dep);
    }
    return [...seen];
  }

  #upstreamOutputs(node: TaskNode): Record<string, JsonValue> {
    const out = createDict<JsonValue>();
    for (const upstream of this.#ancestors(node))
      if (upstream.state === 'succeeded') out[upstream.name] = upstream.output;
    return out;
  }

  #scope(node: TaskNode): ExpressionScope {
    const tasks = createDict<{ output: JsonValue; state: string }>();
    for (const upstream of this.#ancestors(node)) {
      if (upstream.outcome === 'unfinished') continue;
      tasks[upstream.name] = {
        output: upstream.state === 'succeeded' ? upstream.output : null,
        state: upstream.state,
      };
    }
    return {
      params: this.params,
      env: this.ctx.env,
      tasks,
      run: { id: this.runInfo.id, scheduled_for: this.runInfo.scheduledFor, attempt: this.runInfo.attempt },
    };
  }

  async #finishAttempt(
    node: TaskNode,
    attempt: number,
    nth: number,
    startMs: number,
    raw: AttemptResult,
  ): Promise<void> {
    const { ctx } = this;
    const { store, masker } = ctx;
    const runId = ctx.run.id;
    let result = raw;
    let output: JsonValue = null;
    if (result.state === 'succeeded') {
      try {
        // Outputs are stored, shown and passed on: a secret a command echoed must not be.
        output = maskValue(normaliseOutput(result.value, node.name), masker);
      } catch (error) {
        result = { state: 'failed', error: toWeftError(error, 'HANDLER_OUTPUT_INVALID') };
      }
    }
    const now = ctx.clock.now();
    const finishedAt = toIso(now);
    // Sent before the terminal writes, which the store keeps in order: an attempt's lines are
    // stored before it is seen to end.
    const logsWritten = ctx.logs.flush();
    const fence = { states: ['running'] as TaskState[], attempts: attempt };

    if (result.state === 'succeeded') {
      const [, attemptOk, taskOk] = await Promise.all([
        logsWritten,
        store.updateAttempt(
          runId,
          node.name,
          attempt,
          { state: 'succeeded', finishedAt },
          { states: ['running'] },
        ),
        store.updateTaskRun(
          runId,
          node.name,
          { state: 'succeeded', output, finishedAt, error: null, reason: null },
          fence,
        ),
      ]);
      if (!attemptOk || !taskOk) throw conflict(runId, node.name, 'recording its success');
      node.state = 'succeeded';
      node.output = output;
      this.#releaseSlot(node);
      this.#markFinished(node, 'success');
      if (ctx.onEvent)
        ctx.emit({ type: 'task:succeeded', runId, task: node.name, attempt, durationMs: now - startMs });
      return;
    }

    const info = toErrorInfo(result.error);
    const error: ErrorInfo = { ...info, message: masker(info.message) };
    const attemptEnd = { state: result.state, finishedAt, error };

    if (result.state === 'cancelled') {
      const reason = masker(result.error.message);
      const [, attemptOk, taskOk] = await Promise.all([
        logsWritten,
        store.updateAttempt(runId, node.name, attempt, attemptEnd, { states: ['running'] }),
        store.updateTaskRun(
          runId,
          node.name,
          { state: 'cancelled', reason, finishedAt, nextAttemptAt: null },
          fence,
        ),
      ]);
      if (!attemptOk || !taskOk) throw conflict(runId, node.name, 'recording its cancellation');
      node.state = 'cancelled';
      this.#releaseSlot(node);
      this.#markFinished(node, 'cancelled');
      ctx.emit({ type: 'task:cancelled', runId, task: node.name, reason });
      return;
    }

    if (!isNonRetryable(result.error) && hasRetryLeft(node.task.retry, nth) && this.#stop === null) {
      const delayMs = retryDelayMs(node.task.retry, nth + 1, ctx.random);
      const [, attemptOk, taskOk] = await Promise.all([
        logsWritten,
        store.updateAttempt(runId, node.name, attempt, attemptEnd, { states: ['running'] }),
        store.updateTaskRun(
          runId,
          node.name,
          { state: 'retrying', error, nextAttemptAt: toIso(now + delayMs) },
          fence,
        ),
      ]);
      if (!attemptOk || !taskOk) throw conflict(runId, node.name, 'recording a retry');
      node.state = 'retrying';
      node.error = error;
      node.delayMs = delayMs;
      this.#releaseSlot(node);
      ctx.emit({ type: 'task:retrying', runId, task: node.name, attempt, delayMs, error });
      if (this.#stop !== null) {
        this.#cancel(node, this.#stopReason);
        return;
      }
      this.#scheduleRetry(node, delayMs);
      return;
    }

    // Failed for good. Its hooks are recorded before the failure, so a failure on record always
    // has its hooks on record too.
    const hooks = node.task.onFailure.map((hook, index) =>
      newHookRecord(
        runId,
        taskHookKey(node.name, index, attempt),
        'task_failure',
        node.name,
        hook,
        error,
        now,
      ),
    );
    const hooksWritten = hooks.length > 0 ? store.addHooks(hooks) : undefined;
    const [, attemptOk, , taskOk] = await Promise.all([
      logsWritten,
      store.updateAttempt(runId, node.name, attempt, attemptEnd, { states: ['running'] }),
      hooksWritten,
      store.updateTaskRun(
        runId,
        node.name,
        { state: 'failed', error, finishedAt, nextAttemptAt: null },
        fence,
      ),
    ]);
    if (!attemptOk || !taskOk) throw conflict(runId, node.name, 'recording its failure');
    node.state = 'failed';
    node.error = error;
    this.#releaseSlot(node);
    this.#markFinished(node, node.task.continueOnError ? 'success' : 'failed');
    ctx.emit({
      type: 'task:failed',
      runId,
      task: node.name,
      error,
      attempts: nth,
      continueOnError: node.task.continueOnError,
    });
    if (hooks.length > 0) this.#track(this.#runTaskHooks(node, hooks, error, nth));
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
      now: () => ctx.clock.now(),
      signal: ctx.cancelSignal,
      emit: (event) => ctx.emit(event),
      tasks: () => this.finishedTasks(),
    };
  }

  async #runTaskHooks(
    node: TaskNode,
    records: HookRecord[],
    error: ErrorInfo,
    attempts: number,
  ): Promise<void> {
    const runner = this.hookRunner();
    for (const [index, record] of records.entries()) {
      await runHook(runner, record, node.task.onFailure[index], {
        event: 'task_failure',
        task: node.name,
        error,
        attempts,
        runState: 'running',
        consecutiveFailures: 0,
      });
    }
  }
}
