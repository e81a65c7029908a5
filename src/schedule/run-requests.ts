import { unsealParams } from '../engine/secret-params.js';
import { toErrorInfo, WeftError } from '../errors.js';
import { newRunId } from '../store/ids.js';
import { startRun } from './run-execution.js';
import type { SchedulerContext } from './scheduler-context.js';

/**
 * The runs `weft trigger` (and the HTTP server) ask for (requestRun): claimed from the store,
 * started here.
 */

const REQUEST_BATCH = 16;

/** Claims a batch of run requests and starts a run for each; returns how many it took. */
export async function takeRunRequests(ctx: SchedulerContext): Promise<number> {
  const now = () => new Date(ctx.clock.now()).toISOString();
  const requests = await ctx.store.claimRunRequests(REQUEST_BATCH, ctx.options.owner, now());
  const plans = new Map(ctx.source.current().map((p) => [p.name, p]));
  for (const request of requests) {
    const plan = ctx.entries.get(request.pipeline)?.plan ?? plans.get(request.pipeline);
    try {
      if (!plan) {
        throw new WeftError(
          'PIPELINE_NOT_FOUND',
          `this scheduler has no pipeline named "${request.pipeline}"`,
          {
            retryable: false,
          },
        );
      }
      // Stored sealed (requestRun); createRun seals them again for the run, with the environment
      // the run executes with. A secret not set here fails the request, naming it.
      const params = unsealParams(request.params, plan.secrets, ctx.options.engine?.env ?? process.env);
      const runId = newRunId(ctx.clock.now());
      const run = await startRun(ctx, plan, params, 'manual', runId, null, request.id);
      await ctx.store.completeRunRequest(request.id, run?.id ?? null, null, now());
    } catch (error) {
      const info = toErrorInfo(error);
      await ctx.store.completeRunRequest(request.id, null, info, now());
      ctx.log({ type: 'request:failed', requestId: request.id, pipeline: request.pipeline, error: info });
    }
  }
  return requests.length;
}
