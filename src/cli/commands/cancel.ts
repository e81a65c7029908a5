import { isRunFinished } from '../../core/states.js';
import { requestCancel } from '../../engine/index.js';
import { runToJson } from '../../store/run-json.js';
import type { RunRecord } from '../../store/run-store.js';
import type { CliContext } from '../context.js';
import { requireRun, requireStoreFor } from './runs.js';

const WAIT_POLL_MS = 200;
const WAIT_LIMIT_MS = 30_000;

export interface CancelOptions {
  format?: 'text' | 'json';
}

/**
 * `weft cancel RUN_ID`: a run being executed elsewhere is asked to cancel (its process polls for
 * the request) and this waits until it has; a run nobody executes is cancelled at once.
 */
export async function cancelCommand(
  ctx: CliContext,
  runId: string,
  options: CancelOptions = {},
): Promise<number> {
  // With --format json, stdout is the run as it stands when this returns, whatever happened.
  const say = (run: RunRecord, text: string) =>
    ctx.io.stdout(options.format === 'json' ? JSON.stringify(runToJson(run), null, 2) + '\n' : text);
  await requireStoreFor(ctx, runId);
  const store = await ctx.recoveredStore();
  const before = await requireRun(store, runId);
  runId = before.id;
  if (isRunFinished(before.state)) {
    say(before, `run ${runId} already ${before.state}\n`);
    return 0;
  }
  let run = await requestCancel(store, runId, { now: Date.now() });
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!isRunFinished(run.state) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
    run = (await store.getRun(runId)) ?? run;
  }
  if (isRunFinished(run.state)) {
    say(run, `run ${runId} ${run.state}\n`);
    return 0;
  }
  say(run, `cancel requested for run ${runId}; its process has not stopped it yet (still ${run.state})\n`);
  return 1;
}
