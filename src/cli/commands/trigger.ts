import { isRunFinished } from '../../core/states.js';
import { requestRun } from '../../schedule/request-run.js';
import type { CliContext } from '../context.js';
import { paintState } from '../render/states.js';
import { loadPlanForCommand, paramsForCommand } from './common.js';

export interface TriggerOptions {
  param?: Record<string, string>;
  wait?: boolean;
}

const POLL_MS = 200;
/** Without --wait, how long to wait for the server to create the run before printing only the request id. */
const QUICK_RUN_ID_MS = 2000;
/** After this long without a scheduler taking the request, say what may be wrong (once). */
const NOBODY_HINT_MS = 5000;

/**
 * `weft trigger PIPELINE`: asks the running `weft serve` (through the store) to run a pipeline now.
 * Params are checked here, so a typo fails at once instead of in the server. Prints the request id;
 * with --wait, prints the run id as soon as the server creates the run, follows it, and exits 0
 * when it succeeded, 1 otherwise.
 */
export async function triggerCommand(
  ctx: CliContext,
  pipeline: string,
  options: TriggerOptions,
): Promise<number> {
  const plan = await loadPlanForCommand(ctx, pipeline);
  const params = paramsForCommand(plan, options.param);
  const store = await ctx.store();
  const { id } = await requestRun(store, { plan, params, env: ctx.io.env, now: Date.now() });
  ctx.io.stdout(`request ${id}\n`);
  if (!options.wait) {
    // The server takes requests within a second: give it a moment so the run id can be printed,
    // which is what the user will look up. If it is slow, the request id works as well.
    const deadline = Date.now() + QUICK_RUN_ID_MS;
    while (Date.now() < deadline) {
      const request = await store.getRunRequest(id);
      if (request?.runId) {
        ctx.io.stdout(`run ${request.runId}\n`);
        return 0;
      }
      if (request?.state === 'failed') break;
      await sleep(POLL_MS);
    }
    ctx.io.stdout(ctx.io.colors.dim(`(not started yet: 'weft runs ${id}' shows the run once it exists)\n`));
    return 0;
  }

  const c = ctx.io.colors;
  const started = Date.now();
  let hinted = false;
  let runId: string | null = null;
  for (;;) {
    const request = await store.getRunRequest(id);
    if (request?.state === 'failed') {
      ctx.io.stderr(
        `${c.red('error:')} the server could not run it: ${request.error?.message ?? 'unknown error'}\n`,
      );
      return 1;
    }
    if (request?.runId) {
      runId = request.runId;
      break;
    }
    if (!hinted && Date.now() - started > NOBODY_HINT_MS && request?.state === 'pending') {
      hinted = true;
      ctx.io.stderr(
        `${c.dim(`no scheduler has taken it yet: is \`weft serve\` running on the store ${store.location}?`)}\n`,
      );
    }
    await sleep(POLL_MS);
  }
  ctx.io.stdout(`run ${runId}\n`);
  for (;;) {
    const run = await store.getRun(runId);
    if (run && (isRunFinished(run.state) || run.state === 'interrupted')) {
      ctx.io.stdout(
        `${run.pipeline} ${paintState(run.state, c)}${run.error ? `: ${run.error.message.split('\n')[0]}` : ''}\n`,
      );
      return run.state === 'succeeded' ? 0 : 1;
    }
    await sleep(POLL_MS);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
