import { resolve } from 'node:path';
import type { JsonObject, JsonValue } from '../core/json.js';
import { checkHandlerArgs } from '../engine/handler-args.js';
import { normaliseOutput } from '../engine/output.js';
import { WeftError } from '../errors.js';
import { HandlerRegistry } from '../handlers/registry.js';
import type {
  AnyHandler,
  HandlerContext,
  HookInfo,
  LogLevel,
  RunInfo,
  TaskLogger,
} from '../handlers/types.js';
import { createDefaultHandlers } from '../project/default-handlers.js';
import { loadPipeline } from '../project/load-pipeline.js';
import { runPlanWithMocks, type Mock, type PipelineRunResult } from './run-plan.js';

export type { Mock, MockSpec, PipelineRunResult, TaskResult } from './run-plan.js';

export interface LoggedLine {
  level: LogLevel | 'stdout' | 'stderr';
  message: string;
}

export interface RunHandlerContext {
  pipeline?: string;
  task?: string;
  run?: Partial<RunInfo>;
  attempt?: number;
  params?: JsonObject;
  upstream?: Record<string, JsonValue>;
  /** Default: empty, so a test never depends on the machine's environment by accident. */
  env?: Record<string, string | undefined>;
  /** Abort it to test how the handler reacts to a timeout or cancel. */
  signal?: AbortSignal;
  hook?: HookInfo;
}

export interface HandlerResult {
  /** What the task's output would be (undefined becomes null; non-JSON values are refused). */
  output: JsonValue;
  /** Every line the handler logged, in order. */
  logs: LoggedLine[];
}

/**
 * Calls a handler as the engine would: the arguments are validated against its `args` schema
 * first (a mismatch rejects with a WeftError of code HANDLER_ARGS), the context has a logger that
 * collects lines, and the return value is checked to be JSON. A handler that throws rejects with
 * what it threw.
 */
export async function runHandler(
  handler: AnyHandler,
  args: unknown,
  context: RunHandlerContext = {},
): Promise<HandlerResult> {
  const task = context.task ?? 'test';
  checkHandlerArgs(handler, (args ?? null) as JsonValue, task);
  const logs: LoggedLine[] = [];
  const line = (level: LoggedLine['level']) => (message: string) => void logs.push({ level, message });
  const log: TaskLogger = {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    stdout: line('stdout'),
    stderr: line('stderr'),
  };
  const pipeline = context.pipeline ?? 'test';
  const ctx: HandlerContext = {
    pipeline,
    task,
    run: { id: 'r_test', pipeline, scheduledFor: null, attempt: 1, ...context.run },
    attempt: context.attempt ?? 1,
    params: context.params ?? {},
    upstream: context.upstream ?? {},
    signal: context.signal ?? new AbortController().signal,
    log,
    env: context.env ?? {},
    ...(context.hook ? { hook: context.hook } : {}),
  };
  const value: unknown = await handler.run(args, ctx);
  return { output: normaliseOutput(value, task), logs };
}

export interface RunPipelineOptions {
  /** Run parameters as typed values (not strings); the pipeline's defaults apply. */
  params?: JsonObject;
  /** The project's handlers, added to the built-ins (as weft.config.ts does). */
  handlers?: AnyHandler[];
  /** By task name or handler name; see Mock. */
  mocks?: Record<string, Mock>;
  /** Replace every handler that is not mocked by one returning null. Default false. */
  stubUnmocked?: boolean;
  /** Default: empty. */
  env?: Record<string, string | undefined>;
  /** Keep retry delays. Default false: retries happen at once. */
  realDelays?: boolean;
  /** Relative paths start here. Default process.cwd(). */
  cwd?: string;
}

/**
 * Loads, validates and runs a pipeline file once in an in-memory store and returns the final run
 * with each task's state and output. An invalid pipeline rejects with PIPELINE_INVALID (its
 * diagnostics on the error). Nothing is written to disk.
 */
export async function runPipeline(
  file: string,
  options: RunPipelineOptions = {},
): Promise<PipelineRunResult> {
  const registry = new HandlerRegistry([...createDefaultHandlers(), ...(options.handlers ?? [])]);
  const path = resolve(options.cwd ?? process.cwd(), file);
  const loaded = await loadPipeline(path, { registry });
  if (!loaded.plan) {
    const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
    const list = errors.slice(0, 5).map((d) => `${d.file}:${d.line}:${d.column} ${d.message} [${d.code}]`);
    throw new WeftError('PIPELINE_INVALID', `${file} is not a valid pipeline:\n${list.join('\n')}`, {
      diagnostics: loaded.diagnostics,
      retryable: false,
    });
  }
  return runPlanWithMocks(loaded.plan, {
    registry,
    ...(options.params ? { params: options.params } : {}),
    ...(options.mocks ? { mocks: options.mocks } : {}),
    ...(options.env ? { env: options.env } : {}),
    stubUnmocked: options.stubUnmocked ?? false,
    realDelays: options.realDelays ?? false,
  });
}
