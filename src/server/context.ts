import type { RunStore } from '../store/run-store.js';
import type { PipelineEntry, SchedulerView } from './pipelines.js';

export interface ServerLogger {
  info?(message: string): void;
  error(message: string, error?: unknown): void;
}

/** What every handler and view reads from: the options of createHttpServer, defaults applied. */
export interface ServerContext {
  store: RunStore;
  pipelines: () => readonly PipelineEntry[];
  scheduler: SchedulerView | undefined;
  now: () => number;
  /** Where secret values are read from (default process.env). */
  env: Readonly<Record<string, string | undefined>>;
  logger: ServerLogger;
  /** Runs looked at by /metrics. */
  metricsWindow: number;
  /** How often SSE streams look for new lines, in ms. */
  streamPollMs: number;
}
