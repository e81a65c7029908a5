import type { Plan } from '../compile/plan.js';
import type { Diagnostic } from '../errors.js';

/** One pipeline file as `weft serve` knows it: valid (with a plan) or not (with its diagnostics). */
export interface PipelineEntry {
  file: string;
  /** The pipeline's `name:` (or, when the file could not be read that far, its base name). */
  name: string;
  /** Null when the file has errors. */
  plan: Plan | null;
  diagnostics: readonly Diagnostic[];
  /** The YAML text, shown on the pipeline page; null when it could not be read. */
  source: string | null;
}

/** What the server may ask the scheduler running beside it; every part is optional. */
export interface SchedulerView {
  /** The scheduler's own next fire per scheduled pipeline (it knows about catch-up and overlap). */
  nextFires?(): readonly { pipeline: string; at: number | null }[];
  /**
   * Executes a run that `prepareResume` has put back in `queued`, in the background. Without it,
   * POST /api/runs/:id/resume answers 503 (nothing in this process could execute the run).
   */
  resumeRun?(runId: string): unknown;
}

export function findPipeline(entries: readonly PipelineEntry[], name: string): PipelineEntry | undefined {
  return entries.find((e) => e.name === name);
}
