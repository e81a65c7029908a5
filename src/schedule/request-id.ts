import { newRunId } from '../store/ids.js';

/** Run request ids look like run ids with a `q_` prefix: sortable by time, unique per process. */
export function newRunRequestId(now: number): string {
  return `q_${newRunId(now).slice(2)}`;
}

/**
 * The id of the run a request becomes: the request's own time and randomness under the run
 * prefix. Deterministic, so a request taken twice (its first claimer died, or lost the answer to
 * creating the run) cannot become two runs: the second createRun finds the first's run.
 */
export function runIdForRequest(requestId: string): string {
  return `r_${requestId.slice(2)}`;
}
