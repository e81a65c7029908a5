import type { JsonObject, JsonValue } from '../core/json.js';
import type { HandlerContext, RunInfo, TaskLogger } from '../handlers/types.js';
import type { ExecutionContext } from './execution-context.js';
import { createTaskLogger } from './task-logger.js';

/** What every attempt of one pass shares: the run as handlers see it, and the execution around it. */
export interface AttemptScope {
  readonly runInfo: RunInfo;
  /** Frozen: every handler sees the same params, and none can change them for the others. */
  readonly params: JsonObject;
  readonly ctx: ExecutionContext;
}

/** Freezes a value and everything in it, so that no handler can change what the others see. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** The handler's context; `upstream` is computed only if the handler reads it. */
export class AttemptContext implements HandlerContext {
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
    pass: AttemptScope,
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
    const { ctx } = pass;
    this.log = createTaskLogger({
      logs: ctx.logs,
      masker: ctx.masker,
      now: () => ctx.clock.now(),
      runId: ctx.run.id,
      task,
      attempt,
      ...(ctx.onEvent
        ? {
            onLine: (level, message) =>
              ctx.emit({ type: 'task:log', runId: ctx.run.id, task, attempt, level, message }),
          }
        : {}),
    });
    this.env = pass.ctx.env;
    this.mask = pass.ctx.masker;
    this.#compute = compute;
    this.#store = pass.ctx.store;
  }

  get upstream(): Record<string, JsonValue> {
    this.#upstream ??= this.#compute();
    return this.#upstream;
  }

  readonly recordChildProcess = (pgid: number): Promise<void> =>
    // The shell handler holds its child at a gate until this settles, so a kill of weft before the
    // group is stored leaves no running child. A store failure here must not fail the attempt;
    // the child then goes ahead unrecorded (the worst case: an orphan recovery cannot find).
    this.#store
      .updateAttempt(this.run.id, this.task, this.attempt, { pid: pgid }, { states: ['running'] })
      .then(
        () => undefined,
        () => undefined,
      );
}
