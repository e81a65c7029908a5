import type { Plan } from '../compile/plan.js';
import type { Clock } from '../core/clock.js';
import type { RunStore } from '../store/run-store.js';
import type { CronTimes } from './due-fires.js';
import type { SchedulerEvent } from './events.js';
import type { PipelineSource } from './pipeline-source.js';
import type { SchedulerOptions } from './scheduler-options.js';

/**
 * What the parts of one scheduler share: its ports, its in-memory state, its log. The scheduler
 * class owns it and hands it to the functions in fire-actions.ts, run-execution.ts, recovery.ts
 * and run-requests.ts; nothing outside src/schedule sees it.
 */

export interface Entry {
  plan: Plan;
  times: CronTimes | null;
  /** The schedule this entry's times were built for ("cron\0timezone"). */
  scheduleKey: string | null;
  /** The latest schedule time handled (epoch ms). */
  cursor: number;
  nextAt: number | null;
}

/**
 * A fire of this process's catch-up backlog, taken (recorded) and started once its pipeline is
 * free. An overlap: queue fire is not held here: it waits in the store (fire-actions.ts).
 */
export interface WaitingFire {
  scheduledFor: number;
  runId: string;
  /** Only `catchup` is held now; `queue` stays for callers that still name it. */
  kind: 'queue' | 'catchup';
}

export interface Execution {
  runId: string;
  pipeline: string;
  controller: AbortController;
  done: Promise<void>;
}

export interface SchedulerContext {
  readonly store: RunStore;
  readonly clock: Clock;
  readonly options: SchedulerOptions;
  readonly source: PipelineSource;
  readonly entries: Map<string, Entry>;
  readonly waiting: Map<string, WaitingFire[]>;
  /** Pipelines whose waiting fires are being started (one drain at a time per pipeline). */
  readonly draining: Set<string>;
  /** Pipeline -> ids of its runs in progress here (created, not yet finished). */
  readonly active: Map<string, Set<string>>;
  readonly executions: Map<string, Execution>;
  /** True once stop() has begun: no new runs start. */
  isStopping(): boolean;
  log(event: SchedulerEvent): void;
  logError(error: unknown, what: string): void;
  /** Runs `work` as tracked background work: whenIdle and stop wait for it; errors are logged. */
  track<T>(work: Promise<T>, what: string): Promise<T | undefined>;
  /**
   * Starts the oldest waiting fire of `pipeline` (this process's backlog first, then the
   * overlap: queue fire waiting in the store) when nothing of it runs any more.
   */
  drain(pipeline: string): Promise<void>;
}
