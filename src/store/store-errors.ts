import { WeftError, type WeftErrorOptions } from '../errors.js';

/**
 * The errors every adapter raises for the same refusals, worded once so that a message does not
 * depend on the backend. Callers tell them apart by code, never by message.
 */

const NOT_RETRYABLE: WeftErrorOptions = { retryable: false };

export function runExistsError(id: string): WeftError {
  return new WeftError('RUN_DUPLICATE', `a run with id ${id} exists already`, NOT_RETRYABLE);
}

export function scheduleTakenError(
  pipeline: string,
  scheduledFor: string | null,
  otherId: string,
): WeftError {
  return new WeftError(
    'RUN_DUPLICATE',
    `pipeline "${pipeline}" already has a run for ${scheduledFor} (${otherId})`,
    NOT_RETRYABLE,
  );
}

export function runRequestExistsError(id: string): WeftError {
  return new WeftError('RUN_DUPLICATE', `a run request with id ${id} exists already`, NOT_RETRYABLE);
}

export function attemptExistsError(
  runId: string,
  task: string,
  attempt: number | string,
  options: WeftErrorOptions = NOT_RETRYABLE,
): WeftError {
  return new WeftError(
    'STORE_FAILED',
    `attempt ${attempt} of task "${task}" in run ${runId} exists already`,
    options,
  );
}

export function noSuchTaskError(
  runId: string,
  task: string,
  options: WeftErrorOptions = NOT_RETRYABLE,
): WeftError {
  return new WeftError(
    'STORE_FAILED',
    `cannot insert an attempt of task "${task}": run ${runId} has no such task`,
    options,
  );
}

/** `what` completes "cannot …", e.g. "append logs". */
export function missingRunError(
  runId: string,
  what: string,
  options: WeftErrorOptions = NOT_RETRYABLE,
): WeftError {
  return new WeftError('STORE_FAILED', `cannot ${what}: run ${runId} does not exist in the store`, options);
}

export function missingPlanError(location: string, hash: string): WeftError {
  return new WeftError('STORE_FAILED', `${location}: plan ${hash} is missing`);
}

export function closedError(location: string): WeftError {
  return new WeftError('STORE_FAILED', `the store ${location} is closed`);
}

/**
 * A database failure as STORE_FAILED: "<doing> the <backend> store <location>: <detail>", with the
 * original kept as cause and the adapter's hint, when it has one for this failure.
 */
export function backendError(
  backend: string,
  location: string,
  doing: string,
  cause: unknown,
  hint: string | undefined,
): WeftError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new WeftError('STORE_FAILED', `${doing} the ${backend} store ${location}: ${detail}`, {
    cause,
    ...(hint !== undefined ? { hint } : {}),
  });
}
