import type { JsonObject, JsonValue } from '../core/json.js';
import type { Masker } from '../engine/mask.js';
import type { HandlerContext, RunInfo, TaskLogger } from '../handlers/types.js';

/** The handler's context on a worker; `upstream` is computed only if the handler reads it. */
export class WorkerTaskContext implements HandlerContext {
  readonly pipeline: string;
  readonly task: string;
  readonly run: RunInfo;
  readonly attempt: number;
  readonly params: JsonObject;
  readonly signal: AbortSignal;
  readonly log: TaskLogger;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly mask: (text: string) => string;
  readonly recordChildProcess: (pgid: number) => Promise<void>;
  #upstream: Record<string, JsonValue> | undefined;
  readonly #compute: () => Record<string, JsonValue>;

  constructor(init: {
    run: RunInfo;
    task: string;
    attempt: number;
    params: JsonObject;
    signal: AbortSignal;
    log: TaskLogger;
    env: Readonly<Record<string, string | undefined>>;
    upstream: () => Record<string, JsonValue>;
    /** The run's secrets masked (see HandlerContext.mask). */
    mask: Masker;
    /** Stores a child process group on the attempt, so that the reaper can stop it as an orphan. */
    recordChildProcess: (pgid: number) => Promise<void>;
  }) {
    this.pipeline = init.run.pipeline;
    this.task = init.task;
    this.run = init.run;
    this.attempt = init.attempt;
    this.params = init.params;
    this.signal = init.signal;
    this.log = init.log;
    this.env = init.env;
    this.mask = init.mask;
    this.recordChildProcess = init.recordChildProcess;
    this.#compute = init.upstream;
  }

  get upstream(): Record<string, JsonValue> {
    this.#upstream ??= this.#compute();
    return this.#upstream;
  }
}
