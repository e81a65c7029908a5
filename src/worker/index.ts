/** Distributed execution: the TaskQueue port, the coordination rules, and the worker. */
export {
  advanceTasks,
  completeRun,
  startTasks,
  encodeStates,
  decodeStates,
  DEFAULT_MAX_LOST_ATTEMPTS,
  type AdvanceInput,
  type AdvanceResult,
  type Change,
  type CoordState,
  type FinishedTask,
  type RunCompletion,
  type TaskOutcome,
} from './advance.js';
export {
  QUEUE_RUN_OWNER,
  type ClaimedTask,
  type QueueHealth,
  type ReapResult,
  type TaskCompletion,
  type TaskQueue,
  type WorkerInfo,
} from './queue-port.js';
export { queueHealth, describeQueueHealth } from './queue-health.js';
export {
  createWorker,
  newWorkerId,
  DEFAULT_LEASE_MS,
  type Worker,
  type WorkerEvent,
  type WorkerOptions,
  type WorkerStopOptions,
} from './worker.js';
