import type { JsonObject, JsonValue } from '../../src/core/json.js';
import type { HandlerContext, HookInfo, RunInfo, TaskLogger } from '../../src/handlers/types.js';

export type LogStream = 'debug' | 'info' | 'warn' | 'error' | 'stdout' | 'stderr';

export interface LoggedLine {
  stream: LogStream;
  line: string;
}

export interface TestContextOptions {
  pipeline?: string;
  task?: string;
  run?: Partial<RunInfo>;
  attempt?: number;
  params?: JsonObject;
  upstream?: Record<string, JsonValue>;
  env?: Record<string, string | undefined>;
  hook?: HookInfo;
}

export interface TestContext {
  ctx: HandlerContext;
  /** Every logged line, in order, with its stream. */
  lines: LoggedLine[];
  /** The lines of one stream. */
  linesOf: (stream: LogStream) => string[];
  controller: AbortController;
  /** Aborts ctx.signal, as the engine does on timeout or cancel. */
  abort: (reason?: unknown) => void;
}

/** A HandlerContext for calling a handler directly: collects logs, aborts on demand. */
export function createTestContext(options: TestContextOptions = {}): TestContext {
  const lines: LoggedLine[] = [];
  const controller = new AbortController();
  const logTo =
    (stream: LogStream) =>
    (line: string): void => {
      lines.push({ stream, line });
    };
  const log: TaskLogger = {
    debug: logTo('debug'),
    info: logTo('info'),
    warn: logTo('warn'),
    error: logTo('error'),
    stdout: logTo('stdout'),
    stderr: logTo('stderr'),
  };
  const ctx: HandlerContext = {
    pipeline: options.pipeline ?? 'test-pipeline',
    task: options.task ?? 'test-task',
    run: {
      id: 'r_test',
      pipeline: options.pipeline ?? 'test-pipeline',
      scheduledFor: null,
      attempt: 1,
      ...options.run,
    },
    attempt: options.attempt ?? 1,
    params: options.params ?? {},
    upstream: options.upstream ?? {},
    signal: controller.signal,
    log,
    env: options.env ?? {},
    ...(options.hook ? { hook: options.hook } : {}),
  };
  return {
    ctx,
    lines,
    linesOf: (stream) => lines.filter((entry) => entry.stream === stream).map((entry) => entry.line),
    controller,
    abort: (reason) => controller.abort(reason),
  };
}
