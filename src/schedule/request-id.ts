import { newRunId } from '../store/ids.js';

/** Run request ids look like run ids with a `q_` prefix: sortable by time, unique per process. */
export function newRunRequestId(now: number): string {
  return `q_${newRunId(now).slice(2)}`;
}
