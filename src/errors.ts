/**
 * weft's two error channels (see ARCHITECTURE.md):
 *  - Diagnostics: collected values for everything static (YAML, schema, graph, expressions).
 *  - WeftError: thrown at run time, told apart by `code`, never by message.
 */

/** Codes of static problems in a pipeline file. Tests assert these, not the prose. */
export const DIAGNOSTIC_CODES = [
  'FILE_UNREADABLE',
  'FILE_TOO_LARGE',
  'YAML_EMPTY',
  'YAML_SYNTAX',
  'YAML_DUPLICATE_KEY',
  'YAML_ALIAS_LIMIT',
  'YAML_TAG',
  'YAML_TOO_DEEP',
  'YAML_ENCODING',
  'SCHEMA_UNKNOWN_KEY',
  'SCHEMA_MISSING_KEY',
  'SCHEMA_TYPE',
  'SCHEMA_ENUM',
  'SCHEMA_PATTERN',
  'SCHEMA_RANGE',
  'SCHEMA_INVALID',
  'TASK_NAME_RESERVED',
  'DEPENDENCY_UNKNOWN',
  'DEPENDENCY_SELF',
  'DEPENDENCY_CYCLE',
  'CRON_INVALID',
  'TIMEZONE_UNKNOWN',
  'DURATION_INVALID',
  'EXPRESSION_SYNTAX',
  'EXPRESSION_UNKNOWN_PARAM',
  'EXPRESSION_UNKNOWN_TASK',
  'EXPRESSION_NOT_UPSTREAM',
  'EXPRESSION_UNKNOWN_ROOT',
  'EXPRESSION_SHELL_CONTEXT',
  'PARAM_DEFAULT_TYPE',
  'HANDLER_UNKNOWN',
  'HANDLER_ARGS',
] as const;
export type DiagnosticCode = (typeof DIAGNOSTIC_CODES)[number];

export type Severity = 'error' | 'warning';

/** A path into the pipeline document, as ajv and yaml's `getIn` use it. */
export type DocPath = readonly (string | number)[];

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  message: string;
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  path: DocPath;
  /** e.g. "did you mean `retries`?" */
  hint?: string;
}

/** Codes of run-time errors. */
export const ERROR_CODES = [
  'USAGE',
  'CONFIG_INVALID',
  'PIPELINE_NOT_FOUND',
  'PIPELINE_INVALID',
  'PARAM_INVALID',
  'SECRET_MISSING',
  'HANDLER_UNKNOWN',
  'HANDLER_ARGS',
  'HANDLER_FAILED',
  'HANDLER_OUTPUT_INVALID',
  'EXPRESSION_FAILED',
  'TASK_TIMEOUT',
  'HOOK_TIMEOUT',
  'TASK_CANCELLED',
  'TASK_LOST',
  'RUN_NOT_FOUND',
  'RUN_DUPLICATE',
  'RUN_STATE',
  'RUN_TIMEOUT',
  'STORE_FAILED',
  'SERVICE_UNAVAILABLE',
  'STATE_TRANSITION',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface WeftErrorOptions {
  cause?: unknown;
  /** A hint for the user: what to do about it. */
  hint?: string;
  /** Static problems behind this error (PIPELINE_INVALID). */
  diagnostics?: Diagnostic[];
  /** When true, the engine does not retry the attempt that threw this. */
  retryable?: boolean;
}

export class WeftError extends Error {
  override readonly name: string = 'WeftError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly diagnostics: Diagnostic[];
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: WeftErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.diagnostics = options.diagnostics ?? [];
    this.retryable = options.retryable ?? true;
  }
}

/** A wrong flag, a missing argument: exit code 2. */
export class UsageError extends WeftError {
  override readonly name = 'UsageError';
  constructor(message: string, options: WeftErrorOptions = {}) {
    super('USAGE', message, { ...options, retryable: false });
  }
}

/**
 * Thrown by a handler to say that retrying cannot help (bad input, a 4xx answer): the task fails at
 * once. Checked by `name`, so a handler bundled with another copy of weft is understood too.
 */
export class NonRetryableError extends Error {
  override readonly name = 'NonRetryableError';
}

export function isNonRetryable(error: unknown): boolean {
  if (error instanceof WeftError) return !error.retryable;
  return error instanceof Error && error.name === 'NonRetryableError';
}

/** Normalises anything caught into a WeftError, keeping the original as `cause`. */
export function toWeftError(error: unknown, code: ErrorCode = 'INTERNAL'): WeftError {
  if (error instanceof WeftError) return error;
  if (error instanceof Error) {
    return new WeftError(code, error.message, { cause: error, retryable: !isNonRetryable(error) });
  }
  return new WeftError(code, typeof error === 'string' ? error : `non-error thrown: ${String(error)}`, {
    cause: error,
  });
}

/** The persisted, JSON form of an error. */
export interface ErrorInfo {
  code: string;
  message: string;
  /** Handler errors keep their class name (TypeError, NonRetryableError, ...). */
  name?: string;
}

export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof WeftError) {
    const cause = error.cause;
    const name = cause instanceof Error ? cause.name : undefined;
    return name
      ? { code: error.code, message: error.message, name }
      : { code: error.code, message: error.message };
  }
  if (error instanceof Error) return { code: 'HANDLER_FAILED', message: error.message, name: error.name };
  return { code: 'HANDLER_FAILED', message: String(error) };
}
