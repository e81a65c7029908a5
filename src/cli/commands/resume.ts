import { prepareResume } from '../../engine/index.js';
import type { CliContext } from '../context.js';
import { executeInForeground } from './run.js';
import { requireRun, requireStoreFor } from './runs.js';

export interface ResumeOptions {
  task?: string;
  quiet?: boolean;
  format: 'text' | 'json';
}

/**
 * `weft resume RUN_ID [--task TASK]`: finishes an interrupted run, or runs a failed one's failed
 * tasks (or the one named) and everything downstream again; tasks that succeeded keep their outputs.
 */
export async function resumeCommand(ctx: CliContext, runId: string, options: ResumeOptions): Promise<number> {
  await requireStoreFor(ctx, runId);
  const store = await ctx.recoveredStore();
  const found = await requireRun(store, runId);
  runId = found.id;
  if (
    found.state === 'succeeded' &&
    options.task === undefined &&
    (await store.getHooks(runId, ['pending'])).length > 0
  ) {
    // Its process died after recording the run's hooks, before running them: run just those.
    return executeInForeground(ctx, store, found, {
      format: options.format,
      ...(options.quiet ? { quiet: true } : {}),
    });
  }
  const run = await prepareResume(store, runId, {
    now: Date.now(),
    env: ctx.io.env,
    ...(options.task ? { task: options.task } : {}),
  });
  if (options.format !== 'json' && !options.quiet)
    ctx.io.stdout(`resuming run ${run.id} of ${run.pipeline}\n`);
  return executeInForeground(ctx, store, run, {
    format: options.format,
    ...(options.quiet ? { quiet: true } : {}),
  });
}
