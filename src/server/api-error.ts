import { WeftError } from '../errors.js';

/** An error the API answers with: `{ error: { code, message, details? } }` and an HTTP status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: readonly string[],
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  USAGE: 400,
  PARAM_INVALID: 400,
  SECRET_MISSING: 409,
  RUN_NOT_FOUND: 404,
  PIPELINE_NOT_FOUND: 404,
  PIPELINE_INVALID: 409,
  RUN_STATE: 409,
  STATE_TRANSITION: 409,
  RUN_DUPLICATE: 409,
  SERVICE_UNAVAILABLE: 503,
};

/**
 * What a caught error becomes. A WeftError with a known code keeps its message (it was written
 * for users); anything else is a bug or an outage and gets a generic 500: no stack, no internals.
 */
export function toApiError(error: unknown): { error: ApiError; unexpected: boolean } {
  if (error instanceof ApiError) return { error, unexpected: false };
  if (error instanceof WeftError) {
    const status = STATUS_BY_CODE[error.code];
    if (status !== undefined)
      return { error: new ApiError(status, error.code, error.message), unexpected: false };
  }
  return {
    error: new ApiError(500, 'INTERNAL', 'internal server error; see the server log'),
    unexpected: true,
  };
}

export const notFound = (what = 'no such route'): ApiError => new ApiError(404, 'NOT_FOUND', what);
export const badRequest = (message: string, details?: readonly string[]): ApiError =>
  new ApiError(400, 'BAD_REQUEST', message, details);
