import type { CliContext } from '../context.js';
import { renderGraph, type GraphFormat } from '../render/graph.js';
import { loadPlanForCommand } from './common.js';

/** `weft graph PIPELINE --format mermaid|dot|json`: the DAG, e.g. for a pull-request comment. */
export async function graphCommand(
  ctx: CliContext,
  pipeline: string,
  options: { format: GraphFormat },
): Promise<number> {
  const plan = await loadPlanForCommand(ctx, pipeline);
  ctx.io.stdout(renderGraph(plan, options.format));
  return 0;
}
