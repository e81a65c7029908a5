import type { JsonObject, JsonValue } from '../core/json.js';
import type { HandlerContext, LogLevel, RunInfo, TaskLogger } from '../handlers/types.js';
import type { ExecutionContext } from './execution-context.js';
import { toIso } from './time.js';

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

/** A handler's log: masked, stored through the run's log writer, and reported as `task:log`. */
export class AttemptLogger implements TaskLogger {
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
