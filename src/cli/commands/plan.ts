import { buildPlanPreview } from '../../project/plan-preview.js';
import type { CliContext } from '../context.js';
import { renderPlanText } from '../render/plan.js';
import { loadPlanForCommand, paramsForCommand } from './common.js';

export interface PlanOptions {
  param?: Record<string, string>;
  fail?: string[];
  format: 'text' | 'json';
}

/**
 * `weft plan PIPELINE` (and `weft run --dry-run`): what a run would do, without running a handler
 * or writing anything. With --fail TASK, what failure of that task would do.
 */
export async function planCommand(ctx: CliContext, pipeline: string, options: PlanOptions): Promise<number> {
  const plan = await loadPlanForCommand(ctx, pipeline);
  const params = paramsForCommand(plan, options.param);
  const preview = buildPlanPreview(plan, {
    params,
    env: ctx.io.env,
    registry: await ctx.registry(),
    now: new Date(),
    ...(options.fail ? { fail: options.fail } : {}),
  });
  ctx.io.stdout(
    options.format === 'json'
      ? JSON.stringify(preview, null, 2) + '\n'
      : renderPlanText(preview, ctx.io.colors),
  );
  return 0;
}
