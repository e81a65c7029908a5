import type { Plan } from '../compile/plan.js';
import type { Clock } from '../core/clock.js';
import type { EngineOptions } from '../engine/options.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { RunStore } from '../store/run-store.js';
import type { TaskQueue } from '../worker/queue-port.js';
import type { SchedulerLogListener } from './events.js';
import type { PipelineSource } from './pipeline-source.js';

/** The scheduler's public shape: what `createScheduler` takes and returns, and its defaults. */

export interface SchedulerOptions {
  store: RunStore;
  registry: HandlerRegistry;
  /** Default: the system clock. */
  clock?: Clock;
  pipelines: PipelineSource | (() => readonly Plan[]);
  /** "host:pid" recorded as the owner of the runs this scheduler executes. */
  owner: string;
  onLog?: SchedulerLogListener;
  /** How often run requests are looked for, in real time. Default 500 ms. */
  pollMs?: number;
  /** Longest single sleep of the tick loop. Default 60 s. */
  maxSleepMs?: number;
  /**
   * At start, or when several fires fall due at once, the newest of them still runs as the current
   * fire when at most this late (and the pipeline sets no start_deadline). Default 60 s.
   */
  lateGraceMs?: number;
  /**
   * At start, create the runs of fires recorded as ran or queued whose run does not exist (a
   * scheduler died between recording a fire and creating its run, or stopped with fires waiting).
   * `weft serve` turns it on. Default false only because older tests seed fire histories without
   * their runs.
   */
  recoverUncreatedRuns?: boolean;
  /** Decides which runs left running by another process are interrupted (tests). */
  isOwnerAlive?: (owner: string) => boolean;
  /**
   * Distributed execution: runs are handed to this queue (their tasks made ready for `weft
   * worker` processes) instead of being executed in this process.
   */
  queue?: Pick<TaskQueue, 'startRun'>;
  /** Passed to the engine for every run. */
  engine?: Partial<
    Pick<EngineOptions, 'cancelGraceMs' | 'heartbeatMs' | 'cancelPollMs' | 'random' | 'env' | 'concurrency'>
  >;
}

export interface StopOptions {
  /** How long runs in progress get to finish before they are cancelled. Default 30 s. */
  graceMs?: number;
}

export interface Scheduler {
  start(): Promise<void>;
  /** No new runs start; runs in progress get `graceMs`, then are cancelled. Nothing is left running. */
  stop(options?: StopOptions): Promise<void>;
  /** Resolves once no fire, request or run is being handled (tests step the clock with it). */
  whenIdle(): Promise<void>;
  /** Looks for run requests now (the poll timer does this every `pollMs`). Returns how many it took. */
  pollRequests(): Promise<number>;
  /** The next fire time of each scheduled pipeline. */
  nextFires(): { pipeline: string; at: number | null }[];
  /** Ids of the runs this scheduler is executing. */
  runningRuns(): string[];
  /**
   * Executes a run that `prepareResume` made ready (the dashboard's Resume button), in the
   * background like any other run. Resolves once it has started, or rejects when the run is not
   * queued or the scheduler is stopping.
   */
  resumeRun(runId: string): Promise<void>;
}

export const DEFAULT_POLL_MS = 500;
export const DEFAULT_MAX_SLEEP_MS = 60_000;
export const DEFAULT_LATE_GRACE_MS = 60_000;
export const DEFAULT_STOP_GRACE_MS = 30_000;
