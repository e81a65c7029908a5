import type { Clock } from '../core/clock.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { RunStore } from '../store/run-store.js';
import type { EngineEventListener } from './events.js';

export interface EngineOptions {
  store: RunStore;
  registry: HandlerRegistry;
  /** Default: the system clock. */
  clock?: Clock;
  /** A number in [0, 1) for retry jitter. Default Math.random. */
  random?: () => number;
  /** Who executes the run: "host:pid" (see isLocalOwnerAlive). */
  owner: string;
  /** Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Aborting it cancels the run (Ctrl-C). */
  signal?: AbortSignal;
  /** How long handlers get to return after their signal is aborted on cancel. Default 5000. */
  cancelGraceMs?: number;
  /** Overrides the plan's concurrency. */
  concurrency?: number;
  onEvent?: EngineEventListener;
  /** How often run.heartbeatAt is refreshed. Default 5000. */
  heartbeatMs?: number;
  /** How often the store is asked whether someone requested a cancel. Default 500. */
  cancelPollMs?: number;
}

export const DEFAULT_CANCEL_GRACE_MS = 5000;
export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_CANCEL_POLL_MS = 500;
