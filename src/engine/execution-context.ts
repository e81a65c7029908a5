import type { Plan } from '../compile/plan.js';
import type { Clock } from '../core/clock.js';
import type { JsonObject } from '../core/json.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { RunRecord, RunStore } from '../store/run-store.js';
import type { EngineEvent, EngineEventListener } from './events.js';
import type { LogWriter } from './log-writer.js';
import type { Masker } from './mask.js';

/** What one pass over a run's tasks needs from the execution around it (see executeRun). */
export interface ExecutionContext {
  readonly store: RunStore;
  readonly registry: HandlerRegistry;
  readonly clock: Clock;
  readonly random: () => number;
  readonly owner: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly masker: Masker;
  readonly logs: LogWriter;
  readonly plan: Plan;
  /** The run as this pass runs it (its attempt is the current run attempt). */
  readonly run: RunRecord;
  /** The run's params unsealed (secret-params.ts) and frozen: what handlers and expressions see. */
  readonly params: JsonObject;
  readonly concurrency: number;
  readonly graceMs: number;
  /** Aborted when the run is cancelled (signal or cancel request); the reason is a WeftError. */
  readonly cancelSignal: AbortSignal;
  /**
   * What stops hooks: the caller's signal (Ctrl-C), never a cancel request — a task's on_failure
   * alert still goes out when the run is being cancelled.
   */
  readonly hookSignal: AbortSignal;
  readonly onEvent: EngineEventListener | undefined;
  emit(event: EngineEvent): void;
}
