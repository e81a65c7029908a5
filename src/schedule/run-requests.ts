import type { Plan } from '../compile/plan.js';
import { unsealParams } from '../engine/secret-params.js';
import { type ErrorInfo, isNonRetryable, toErrorInfo, WeftError } from '../errors.js';
import type { RunRequestRecord } from '../store/run-store.js';
import { runIdForRequest } from './request-id.js';
import { startRun } from './run-execution.js';
import type { SchedulerContext } from './scheduler-context.js';

/**
 * The runs `weft trigger` (and the HTTP server) ask for (requestRun): claimed from the store,
 * started here.
 *
 * A request is taken at least once and becomes at most one run. Its claim can outlive the
 * scheduler that made it (a kill, or the store's answer lost with a dropped connection), so a
 * claim older than REQUEST_CLAIM_STALE_MS is taken again by whichever scheduler polls next; the
 * run id comes from the request id, so taking it again finds the run the first take created
 * instead of starting a second one. A store error leaves the request claimed for that retake
 * rather than failing a request the user made.
 */

const REQUEST_BATCH = 16;
export const REQUEST_CLAIM_STALE_MS = 30_000;

/** Claims a batch of run requests and starts a run for each; returns how many it took. */
export async function takeRunRequests(ctx: SchedulerContext): Promise<number> {
  const now = ctx.clock.now();
  const requests = await ctx.store.claimRunRequests(
    REQUEST_BATCH,
    ctx.options.owner,
    new Date(now).toISOString(),
    new Date(now - REQUEST_CLAIM_STALE_MS).toISOString(),
  );
  const plans = new Map(ctx.source.current().map((p) => [p.name, p]));
  for (const request of requests) {
    const plan = ctx.entries.get(request.pipeline)?.plan ?? plans.get(request.pipeline);
    try {
      await takeRequest(ctx, request, plan);
    } catch (error) {
      // Left claimed: taken again once its claim is stale.
      ctx.logError(error, `taking run request ${request.id} of ${request.pipeline}`);
    }
  }
  return requests.length;
}

async function takeRequest(ctx: SchedulerContext, request: RunRequestRecord, plan: Plan | undefined) {
  const runId = runIdForRequest(request.id);
  let outcome: { runId: string | null; error: ErrorInfo | null };
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
    await startRun(ctx, plan, params, 'manual', runId, null, request.id);
    outcome = { runId, error: null };
  } catch (error) {
    if (error instanceof WeftError && error.code === 'RUN_DUPLICATE') {
      // An earlier take of this request created the run; only its answer was lost.
      outcome = { runId, error: null };
    } else if (!isNonRetryable(error)) {
      throw error;
    } else {
      const info = toErrorInfo(error);
      outcome = { runId: null, error: info };
      ctx.log({ type: 'request:failed', requestId: request.id, pipeline: request.pipeline, error: info });
    }
  }
  await ctx.store.completeRunRequest(
    request.id,
    outcome.runId,
    outcome.error,
    new Date(ctx.clock.now()).toISOString(),
  );
}
