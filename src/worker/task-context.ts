import type { Clock } from '../core/clock.js';
import type { JsonObject, JsonValue } from '../core/json.js';
import type { LogWriter } from '../engine/log-writer.js';
import type { Masker } from '../engine/mask.js';
import { toIso } from '../engine/time.js';
import type { HandlerContext, LogLevel, RunInfo, TaskLogger } from '../handlers/types.js';

/** Lines of one attempt, masked and buffered into the worker's log writer (as the interpreter's). */
export class WorkerTaskLogger implements TaskLogger {
  constructor(
    private readonly logs: LogWriter,
    private readonly masker: Masker,
    private readonly clock: Clock,
    private readonly runId: string,
    private readonly task: string | null,
    private readonly attempt: number | null,
  ) {}

  #write(level: LogLevel | 'stdout' | 'stderr', message: string): void {
    this.logs.write({
      runId: this.runId,
      task: this.task,
      attempt: this.attempt,
      ts: toIso(this.clock.now()),
      level,
      message: this.masker(String(message)),
    });
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
  readonly recordChildProcess: (pgid: number) => void;
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
    recordChildProcess: (pgid: number) => void;
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
