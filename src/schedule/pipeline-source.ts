import type { Plan } from '../compile/plan.js';

/**
 * Where the scheduler gets its pipelines: a fixed list (tests, the HTTP server later) or a folder
 * watched on disk (pipeline-watcher.ts). Only valid plans ever reach the scheduler.
 */
export interface PipelineSource {
  current(): readonly Plan[];
  /** Calls `listener` after the set of plans changed; returns a function that unsubscribes. */
  subscribe?(listener: () => void): () => void;
}

/** A source whose plans a test (or an embedding program) replaces at will. */
export interface StaticPipelineSource extends PipelineSource {
  set(plans: readonly Plan[]): void;
}

export function createStaticPipelineSource(plans: readonly Plan[] = []): StaticPipelineSource {
  let current = [...plans];
  const listeners = new Set<() => void>();
  return {
    current: () => current,
    set(next) {
      current = [...next];
      for (const listener of listeners) listener();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export function toPipelineSource(pipelines: PipelineSource | (() => readonly Plan[])): PipelineSource {
  return typeof pipelines === 'function' ? { current: pipelines } : pipelines;
}
