import type { Clock } from '../core/clock.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { RunStore } from '../store/run-store.js';
import type { TaskQueue } from './queue-port.js';
import type { WorkerEvent } from './worker-events.js';

/** What `createWorker` is given; the defaults are applied in worker.ts. */
export interface WorkerOptions {
  store: RunStore;
  queue: TaskQueue;
  registry: HandlerRegistry;
  /** Queues to take tasks from. Default ["default"]. */
  queues?: readonly string[];
  /** Tasks run at once. Default 16. */
  concurrency?: number;
  /** Default "host:pid/random". */
  id?: string;
  /** How long a claim lasts without renewal. Default 10 s. */
  leaseMs?: number;
  /** How often leases are renewed (and cancel requests seen). Default leaseMs / 3. */
  heartbeatMs?: number;
  /** How often the queue's housekeeping runs here. Default 1 s. */
  reapIntervalMs?: number;
  /** The fallback poll when no notification comes. Default 1 s. */
  pollMs?: number;
  /** How long handlers get to return once cancelled. Default 5 s. */
  cancelGraceMs?: number;
  /** Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** For handler timeouts. Default the system clock. */
  clock?: Clock;
  onEvent?: (event: WorkerEvent) => void;
}

export interface WorkerStopOptions {
  /** How long running tasks get to finish before their leases are released. Default 30 s. */
  graceMs?: number;
}
