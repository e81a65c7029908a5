import type { JsonObject, JsonValue } from '../core/json.js';
import type { ErrorInfo } from '../errors.js';

/** A JSON Schema object (draft 2020-12), as a handler declares its `with` arguments. */
export type JsonSchema = { [key: string]: unknown };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Lines a handler logs are stored with its task run (see RunStore.appendLogs). */
export interface TaskLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Raw output lines of a child process. */
  stdout(line: string): void;
  stderr(line: string): void;
}

export interface RunInfo {
  id: string;
  pipeline: string;
  /** ISO time this run was scheduled for, or null for a manual run. */
  scheduledFor: string | null;
  /** Whole-run attempt (pipeline-level retries), from 1. */
  attempt: number;
}

/** What a handler's `run` receives besides its resolved arguments. */
export interface HandlerContext {
  pipeline: string;
  task: string;
  run: RunInfo;
  /** This attempt's number, from 1. */
  attempt: number;
  params: JsonObject;
  /** Outputs of the tasks upstream of this one (direct and indirect) that succeeded. */
  upstream: Record<string, JsonValue>;
  /** Aborted on timeout or cancel; the reason says which. */
  signal: AbortSignal;
  log: TaskLogger;
  env: Readonly<Record<string, string | undefined>>;
  /**
   * A handler that starts a child process in its own process group reports the group here, so that
   * if weft's own process dies, recovery can stop what it left running (no orphans doing work
   * twice after a resume). Resolves once the group is stored: a handler should not let the child
   * start its work before then (the shell handler holds it at a gate). Optional: contexts outside
   * the engine may not offer it.
   */
  recordChildProcess?: (pgid: number) => Promise<void>;
  /** Hooks only: what the hook is about. */
  hook?: HookInfo;
  /**
   * Masks the run's secrets (the values of the pipeline's `secrets:`, in their common encodings)
   * in text the handler sends or keeps elsewhere, such as a notification. Optional: contexts
   * outside the engine may not offer it.
   */
  mask?: (text: string) => string;
}

export interface HookInfo {
  event: 'task_failure' | 'run_failure' | 'run_success' | 'run_recovery';
  /** The failed task, for task hooks and run failures caused by one. */
  task: string | null;
  error: ErrorInfo | null;
  /** Attempts the failed task made, when known (so a message can say "failed after 4 attempts"). */
  attempts?: number;
  runState: string;
  /** Consecutive failures of this pipeline, counting this run (run_failure/run_recovery). */
  consecutiveFailures: number;
}

/** What `describe` sees: the arguments after substitution, for `weft plan`. */
export interface DescribeContext {
  pipeline: string;
  task: string;
}

/** A server a handler talks to (see `Handler.services`). */
export type ServiceName = 'redis' | 'postgres';

export interface Handler<Args = JsonValue> {
  /** Dotted namespaces allowed: `notify.webhook`. */
  name: string;
  description?: string;
  /** JSON Schema of `with`; checked at validate time and again after substitution at run time. */
  args?: JsonSchema;
  /**
   * Top-level argument names whose strings are shell scripts: an expression substituted inside
   * such a string is quoted for where it stands (a word, inside "…", inside '…'; anywhere else
   * validation refuses it), so a parameter can never inject shell syntax.
   */
  shellQuoted?: readonly string[];
  /**
   * External services every call needs, so `weft check` can tell which pipelines depend on which
   * server before anything runs. Omitted: none.
   */
  services?: readonly ServiceName[];
  /** One line saying what the handler would do with these arguments (shown by `weft plan`). */
  describe?: (args: Args, ctx: DescribeContext) => string;
  /** Its return value is the task's output: it must be JSON-serialisable. */
  run: (args: Args, ctx: HandlerContext) => Promise<JsonValue | void> | JsonValue | void;
}

/** A handler of any argument type, as the registry holds them. */
// The registry cannot know each handler's argument type; validation against `args` is what makes
// the call safe, so the variance is erased here on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyHandler = Handler<any>;
