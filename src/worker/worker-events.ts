import type { ErrorInfo } from '../errors.js';
import type { TaskCompletion } from './queue-port.js';

/** Everything a worker reports through `WorkerOptions.onEvent`. */
export type WorkerEvent =
  | { type: 'worker:started'; worker: string; queues: readonly string[]; concurrency: number }
  | { type: 'worker:stopped'; worker: string }
  | { type: 'worker:error'; worker: string; message: string; error: ErrorInfo }
  | { type: 'task:started'; worker: string; runId: string; task: string; attempt: number }
  | {
      type: 'task:finished';
      worker: string;
      runId: string;
      task: string;
      attempt: number;
      kind: TaskCompletion['kind'];
      /** False: the lease was lost meanwhile and the result was not recorded. */
      recorded: boolean;
    }
  | { type: 'lease:lost'; worker: string; runId: string; task: string; attempt: number }
  /** Its lease on a running hook was taken (it could not renew it in time): another worker may run it too. */
  | { type: 'hook:lease-lost'; worker: string; runId: string; key: string }
  | {
      type: 'queue:reaped';
      worker: string;
      lost: number;
      cancelled: number;
      resumed: number;
      timedOut: number;
    };
