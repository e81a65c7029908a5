import type { RunState } from '../core/states.js';
import type { ErrorInfo } from '../errors.js';
import type { LogLevel } from '../handlers/types.js';
import type { HookEvent } from '../store/run-store.js';

/**
 * What the engine reports while it runs, for the CLI's live list and plain lines. Every event
 * carries its run id. Error messages and log lines are masked (secrets) like what is stored.
 */
export type EngineEvent =
  | { type: 'run:started'; runId: string; pipeline: string; attempt: number; tasks: number }
  | { type: 'run:retrying'; runId: string; attempt: number; delayMs: number; error: ErrorInfo | null }
  /** Last: after the final state is stored and the run's hooks have run. */
  | { type: 'run:finished'; runId: string; state: RunState; error: ErrorInfo | null; durationMs: number }
  | { type: 'task:started'; runId: string; task: string; attempt: number }
  | { type: 'task:retrying'; runId: string; task: string; attempt: number; delayMs: number; error: ErrorInfo }
  | { type: 'task:succeeded'; runId: string; task: string; attempt: number; durationMs: number }
  | {
      type: 'task:failed';
      runId: string;
      task: string;
      error: ErrorInfo;
      attempts: number;
      /** The failure does not fail the run, and dependents run as after a success. */
      continueOnError: boolean;
    }
  | { type: 'task:skipped'; runId: string; task: string; reason: string }
  | { type: 'task:cancelled'; runId: string; task: string; reason: string }
  | {
      type: 'task:log';
      runId: string;
      task: string;
      attempt: number;
      level: LogLevel | 'stdout' | 'stderr';
      message: string;
    }
  | {
      type: 'hook:failed';
      runId: string;
      key: string;
      event: HookEvent;
      handler: string;
      task: string | null;
      error: ErrorInfo;
    };

export type EngineEventType = EngineEvent['type'];

/** Event by type: `EngineEventMap['task:failed']`. */
export type EngineEventMap = { [E in EngineEvent as E['type']]: E };

export type EngineEventListener = (event: EngineEvent) => void;
