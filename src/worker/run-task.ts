import type { Plan, PlanTask } from '../compile/plan.js';
import type { Clock } from '../core/clock.js';
import type { JsonObject, JsonValue } from '../core/json.js';
import { invokeHandler, type AttemptResult } from '../engine/attempt.js';
import { checkHandlerArgs } from '../engine/handler-args.js';
import type { LogWriter } from '../engine/log-writer.js';
import { createSecretMasker, maskValue, type Masker } from '../engine/mask.js';
import { DEFAULT_CANCEL_GRACE_MS } from '../engine/options.js';
import { normaliseOutput } from '../engine/output.js';
import { unsealParams } from '../engine/secret-params.js';
import { isNonRetryable, toErrorInfo, toWeftError, WeftError, type ErrorInfo } from '../errors.js';
import { quoteShellSubstitution } from '../handlers/shell-quote.js';
import type { RunInfo } from '../handlers/types.js';
import {
  containsExpression,
  evaluateCondition,
  resolveTemplate,
  type ExpressionScope,
} from '../pipeline/expressions.js';
import type { RunRecord } from '../store/run-store.js';
import type { HeldTask } from './leases.js';
import type { ClaimedTask, TaskCompletion } from './queue-port.js';
import { createTaskLogger } from '../engine/task-logger.js';
import { WorkerTaskContext } from './task-context.js';
import { UpstreamCache } from './upstream-cache.js';
import type { WorkerEvent } from './worker-events.js';
import type { WorkerOptions } from './worker-options.js';

const RUN_CACHE = 64;

export interface TaskRunnerContext {
  workerId: string;
  /** Read when used (store, queue, registry, cancelGraceMs), as the worker was given them. */
  options: WorkerOptions;
  env: Readonly<Record<string, string | undefined>>;
  clock: Clock;
  logs: LogWriter;
  upstream: UpstreamCache;
  emit: (event: WorkerEvent) => void;
  error: (error: unknown, what: string) => void;
  /** Records a result (batched with others); resolves to whether it was recorded. */
  report: (claim: ClaimedTask, completion: TaskCompletion, plan?: Plan) => Promise<boolean>;
}

interface RunEntry {
  run: RunRecord;
  /** Unsealed from the store's (secret-params.ts) with this worker's environment. */
  params: JsonObject;
  /** Why they could not be (a secret not set here): each of the run's tasks fails with it. */
  paramsError: WeftError | null;
  masker: Masker;
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

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/**
 * Runs one claimed task, from its run and arguments to the completion it reports: the `when`
 * condition, the attempt's start (fenced by its lease), the handler through the engine's
 * `invokeHandler`, and the result masked and normalised. Keeps the last runs it read.
 */
export class TaskRunner {
  readonly #c: TaskRunnerContext;
  readonly #runs = new Map<string, Promise<RunEntry>>();

  constructor(context: TaskRunnerContext) {
    this.#c = context;
  }

  #runEntry(runId: string): Promise<RunEntry> {
    let entry = this.#runs.get(runId);
    if (!entry) {
      entry = this.#c.options.store.getRun(runId).then((run) => {
        if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${runId}`, { retryable: false });
        let params: JsonObject = {};
        let paramsError: WeftError | null = null;
        try {
          params = deepFreeze(unsealParams(run.params, run.plan.secrets, this.#c.env));
        } catch (error) {
          paramsError = toWeftError(error);
        }
        return { run, params, paramsError, masker: createSecretMasker(run.plan.secrets, this.#c.env) };
      });
      entry.catch(() => this.#runs.delete(runId));
      if (this.#runs.size >= RUN_CACHE) this.#runs.delete(this.#runs.keys().next().value!);
      this.#runs.set(runId, entry);
    }
    return entry;
  }

  async execute(held: HeldTask): Promise<void> {
    const { claim, controller } = held;
    const entry = await this.#runEntry(claim.runId);
    const { run, params, paramsError, masker } = entry;
    const plan = run.plan;
    held.runTimeoutMs = plan.timeoutMs;
    const task = plan.tasks[claim.task];
    const base = { runId: claim.runId, task: claim.task, lease: claim.lease, attempt: claim.attempt };
    if (!task) {
      await this.#c.report(claim, {
        ...base,
        kind: 'failed',
        state: 'failed',
        error: { code: 'INTERNAL', message: `the run's plan has no task "${claim.task}"` },
        retryable: false,
      });
      return;
    }
    const entries = await this.#c.upstream.ensure(claim.runId, claim.runAttempt, plan, claim.task);
    const runInfo: RunInfo = {
      id: run.id,
      pipeline: run.pipeline,
      scheduledFor: run.scheduledFor,
      attempt: claim.runAttempt,
    };
    const scope = (): ExpressionScope => ({
      params,
      env: this.#c.env,
      tasks: UpstreamCache.ancestors(plan, entries, claim.task),
      run: { id: run.id, scheduled_for: run.scheduledFor, attempt: claim.runAttempt },
    });
    // Params that cannot be unsealed fail the attempt like a `when` that cannot be evaluated.
    let whenError: unknown = paramsError ?? undefined;
    if (!claim.started) {
      let go = true;
      try {
        const when = whenError === undefined ? task.when : null;
        go = when === null ? true : typeof when === 'boolean' ? when : evaluateCondition(when, scope());
      } catch (error) {
        // Reported through an attempt, so the failure is recorded like any other.
        whenError = error;
      }
      if (!go) {
        await this.#c.report(claim, {
          ...base,
          kind: 'skipped',
          reason: `its when condition is false: ${String(task.when)}`,
        });
        return;
      }
      if (!(await this.#c.options.queue.startAttempt(this.#c.workerId, claim))) {
        this.#c.emit({
          type: 'lease:lost',
          worker: this.#c.workerId,
          runId: claim.runId,
          task: claim.task,
          attempt: claim.attempt,
        });
        return;
      }
    }
    this.#c.emit({
      type: 'task:started',
      worker: this.#c.workerId,
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
    await this.#c.report(claim, this.#completion(base, task, result, masker), plan);
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
    const handler = this.#c.options.registry.get(task.handler);
    if (!handler) {
      return {
        state: 'failed',
        error: new WeftError(
          'HANDLER_UNKNOWN',
          `task "${task.name}": no handler named "${task.handler}" is registered on worker ${this.#c.workerId}`,
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
        const quoting = handler.shellQuoted
          ? { quoteKeys: handler.shellQuoted, quote: quoteShellSubstitution }
          : {};
        args = resolveTemplate(value, scope(), quoting);
      }
      checkHandlerArgs(handler, args, task.name);
    } catch (error) {
      return { state: 'failed', error: toWeftError(error, 'EXPRESSION_FAILED') };
    }
    const clock = this.#c.clock;
    const log = createTaskLogger({
      logs: this.#c.logs,
      masker,
      now: () => clock.now(),
      runId: claim.runId,
      task: claim.task,
      attempt: claim.attempt,
    });
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
            env: this.#c.env,
            upstream,
            mask: masker,
            recordChildProcess: (pgid) =>
              // As in the interpreter: the child waits for this before it starts its work; a store
              // failure does not fail the attempt (the worst case is an orphan nobody can stop).
              this.#c.options.store
                .updateAttempt(claim.runId, claim.task, claim.attempt, { pid: pgid }, { states: ['running'] })
                .then(
                  () => undefined,
                  (error: unknown) => this.#c.error(error, 'recording a child process'),
                ),
          }),
        ),
      {
        task: task.name,
        clock: this.#c.clock,
        timeoutMs: task.timeoutMs,
        cancelSignal: signal,
        graceMs: this.#c.options.cancelGraceMs ?? DEFAULT_CANCEL_GRACE_MS,
      },
    );
  }
}
