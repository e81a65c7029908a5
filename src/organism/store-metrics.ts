import { isPlainObject } from '../core/json.js';
import { NonRetryableError } from '../errors.js';
import type { Handler, HandlerContext } from '../handlers/types.js';
import { CONNECTION_ARG_SCHEMA, type ConnectionArgs } from './connections.js';
import { inTransaction, organismPool } from './db.js';

export interface StoreMetricsArgs extends ConnectionArgs {
  /** The output of run_causal_analysis (or just its analysis_id). */
  analysis?: { analysis_id?: string };
  analysis_id?: string;
}

export type StoreMetricsResult = { analysis_id: string; time: string; rows: number; replaced: number };

function analysisIdOf(args: StoreMetricsArgs, ctx: HandlerContext): string {
  if (args.analysis_id) return args.analysis_id;
  if (args.analysis?.analysis_id) return args.analysis.analysis_id;
  const upstream = ctx.upstream.run_causal_analysis;
  if (isPlainObject(upstream) && typeof upstream.analysis_id === 'string') return upstream.analysis_id;
  return ctx.run.id;
}

/**
 * Copies a staged analysis into organism_metrics at the run's scheduled time (or, for a manual run,
 * the analysis' own computed_at, which is just as stable across retries). Delete-then-insert in one
 * transaction: a re-run replaces that time's rows, it never duplicates them.
 */
export async function storeMetrics(args: StoreMetricsArgs, ctx: HandlerContext): Promise<StoreMetricsResult> {
  const analysisId = analysisIdOf(args, ctx);
  const pool = await organismPool(args, ctx);
  return inTransaction(pool, async (client) => {
    const staged = await client.query<{ computed_at: Date }>(
      'SELECT computed_at FROM organism_analysis_runs WHERE analysis_id = $1',
      [analysisId],
    );
    const found = staged.rows[0];
    if (!found) {
      throw new NonRetryableError(
        `no staged analysis "${analysisId}": run organism.run_causal_analysis first`,
      );
    }
    const time = ctx.run.scheduledFor ? new Date(ctx.run.scheduledFor) : found.computed_at;
    const deleted = await client.query('DELETE FROM organism_metrics WHERE time = $1', [time]);
    // INSERT … SELECT from the staging table: the rows never leave the server.
    const inserted = await client.query(
      `INSERT INTO organism_metrics (time, subject, metric, value, run_scheduled_for, run_id)
       SELECT $1, subject, metric, value, $2, $3 FROM organism_analysis_metrics WHERE analysis_id = $4`,
      [time, ctx.run.scheduledFor, ctx.run.id, analysisId],
    );
    const result = {
      analysis_id: analysisId,
      time: time.toISOString(),
      rows: inserted.rowCount ?? 0,
      replaced: deleted.rowCount ?? 0,
    };
    ctx.log.info(`stored ${result.rows} metric rows at ${result.time} (replaced ${result.replaced})`);
    return result;
  });
}

export const storeMetricsHandler: Handler<StoreMetricsArgs> = {
  name: 'organism.store_metrics',
  services: ['postgres'],
  description:
    "Writes the staged analysis into organism_metrics at the run's scheduled time, replacing any earlier rows of that time.",
  args: {
    type: 'object',
    additionalProperties: false,
    properties: {
      analysis: {
        type: 'object',
        description:
          'The output of organism.run_causal_analysis ("${{ tasks.run_causal_analysis.output }}").',
        properties: { analysis_id: { type: 'string', description: 'Which staged analysis to store.' } },
      },
      analysis_id: { type: 'string', description: "Which staged analysis to store; defaults to this run's." },
      ...CONNECTION_ARG_SCHEMA,
    },
  },
  describe: () => "store the analysis metrics in organism_metrics (replacing this run's earlier rows)",
  run: (args, ctx) => storeMetrics(args, ctx),
};
