import type { Plan } from '../../compile/plan.js';
import type { JsonObject } from '../../core/json.js';
import { UsageError, WeftError } from '../../errors.js';
import { resolveParams } from '../../pipeline/params.js';
import { resolvePipelineArgument } from '../../project/discover.js';
import { loadPipeline } from '../../project/load-pipeline.js';
import type { CliContext } from '../context.js';
import { renderReports } from '../render/diagnostics.js';

/**
 * PIPELINE (a path or a name in pipelines/) -> its Plan. An invalid pipeline prints its
 * diagnostics like `weft validate` and fails with PIPELINE_INVALID: nothing runs.
 */
export async function loadPlanForCommand(ctx: CliContext, pipeline: string): Promise<Plan> {
  const file = resolvePipelineArgument(pipeline, { cwd: ctx.cwd, pipelinesDir: await ctx.pipelinesDir() });
  const loaded = await loadPipeline(file, { registry: await ctx.registry() });
  if (!loaded.plan) {
    ctx.io.stderr(
      renderReports(
        [{ file, valid: false, pipeline: loaded.spec?.name ?? null, diagnostics: loaded.diagnostics }],
        'text',
        ctx.io.colors,
      ),
    );
    throw new WeftError('PIPELINE_INVALID', `${file} is not a valid pipeline; nothing was run`, {
      diagnostics: loaded.diagnostics,
      retryable: false,
    });
  }
  return loaded.plan;
}

/** `--param k=v` flags checked against the pipeline's declared params; a mismatch is a usage error. */
export function paramsForCommand(plan: Plan, given: Record<string, string> | undefined): JsonObject {
  const { params, errors } = resolveParams(plan.params, given ?? {}, 'cli');
  if (errors.length > 0) {
    throw new UsageError(errors.join('\n'), { hint: `'weft plan ${plan.name}' lists the params it takes` });
  }
  return params;
}

export function parsePositiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} expects a whole number of 1 or more, got "${value}"`);
  return n;
}
