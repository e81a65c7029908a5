import type { Handler, HandlerContext } from '../handlers/types.js';
import { analyseOrganism, analysisToMetricRows, type MetricRow } from './analyse.js';
import { CONNECTION_ARG_SCHEMA, type ConnectionArgs } from './connections.js';
import { inTransaction, organismPool, referenceTime } from './db.js';

export interface RunCausalAnalysisArgs extends ConnectionArgs {
  window_days?: number;
  min_days?: number;
  lag?: number;
  seed?: number;
  /** Last day of the window (ISO date or time); default the run's scheduled time, else now. */
  as_of?: string;
  /** Staging rows older than this many days are deleted (default 7). */
  keep_staging_days?: number;
}

/**
 * Compact on purpose: the per-person metrics (8 × 5,000 rows and more for pairs) travel to
 * store_metrics through the staging table organism_analysis_metrics, keyed by `analysis_id`,
 * not through the run store's JSON outputs.
 */
export type RunCausalAnalysisResult = {
  analysis_id: string;
  people: number;
  pairs: number;
  metrics: number;
  communities: number;
  window_start: string | null;
  window_end: string | null;
  computed_at: string;
};

const CHUNK = 20_000;

export async function runCausalAnalysis(
  args: RunCausalAnalysisArgs,
  ctx: HandlerContext,
): Promise<RunCausalAnalysisResult> {
  const windowDays = args.window_days ?? 28;
  const pool = await organismPool(args, ctx);
  const windowEnd = referenceTime(ctx, args.as_of).toISOString().slice(0, 10);

  // The in-memory graph is always rebuilt from PostgreSQL (never the other way round), from the
  // materialized views the pipeline refreshed just before.
  const started = performance.now();
  const [people, edges, daily] = await Promise.all([
    pool.query<{ id: string }>('SELECT id FROM people'),
    pool.query<{ source: string; target: string; weight: number }>(
      'SELECT source, target, weight FROM organism_pair_strength',
    ),
    pool.query<{ person: string; day: string; count: string }>(
      `SELECT person, to_char(day, 'YYYY-MM-DD') AS day, interactions AS count
         FROM organism_person_daily_activity
        WHERE day > $1::date - $2::int AND day <= $1::date`,
      [windowEnd, windowDays],
    ),
  ]);
  const loaded = performance.now();
  const analysis = analyseOrganism({
    people: people.rows.map((row) => row.id),
    edges: edges.rows,
    daily: daily.rows.map((row) => ({ person: row.person, day: row.day, count: Number(row.count) })),
    options: { windowDays, minDays: args.min_days ?? 7, lag: args.lag ?? 1, windowEnd, seed: args.seed ?? 1 },
  });
  const analysed = performance.now();
  const rows = analysisToMetricRows(analysis);
  const computedAt = new Date().toISOString();
  const analysisId = ctx.run.id;

  await inTransaction(pool, async (client) => {
    // A re-run of this task replaces its earlier staging (ON DELETE CASCADE takes the rows).
    await client.query(
      'DELETE FROM organism_analysis_runs WHERE analysis_id = $1 OR computed_at < now() - make_interval(days => $2)',
      [analysisId, args.keep_staging_days ?? 7],
    );
    await client.query(
      `INSERT INTO organism_analysis_runs (analysis_id, computed_at, window_end, people, pairs, metric_rows, options)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        analysisId,
        computedAt,
        windowEnd,
        analysis.people.length,
        analysis.pairs.length,
        rows.length,
        JSON.stringify({
          window_days: windowDays,
          min_days: args.min_days ?? 7,
          lag: args.lag ?? 1,
          seed: args.seed ?? 1,
        }),
      ],
    );
    for (let i = 0; i < rows.length; i += CHUNK)
      await insertStaging(client, analysisId, rows.slice(i, i + CHUNK));
  });
  ctx.log.info(
    `analysed ${analysis.people.length} people, ${analysis.pairs.length} pairs: load ${Math.round(loaded - started)} ms, ` +
      `analysis ${Math.round(analysed - loaded)} ms, staging ${Math.round(performance.now() - analysed)} ms`,
  );
  return {
    analysis_id: analysisId,
    people: analysis.people.length,
    pairs: analysis.pairs.length,
    metrics: rows.length,
    communities: analysis.communities,
    window_start: analysis.window_start,
    window_end: analysis.window_end,
    computed_at: computedAt,
  };
}

async function insertStaging(
  client: { query: (text: string, values: unknown[]) => Promise<unknown> },
  id: string,
  rows: MetricRow[],
) {
  await client.query(
    `INSERT INTO organism_analysis_metrics (analysis_id, subject, metric, value)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::float8[])`,
    [id, rows.map((r) => r.subject), rows.map((r) => r.metric), rows.map((r) => r.value)],
  );
}

export const runCausalAnalysisHandler: Handler<RunCausalAnalysisArgs> = {
  name: 'organism.run_causal_analysis',
  services: ['postgres'],
  description:
    'Rebuilds the interaction graph from PostgreSQL and computes degree, PageRank, betweenness, clustering, ' +
    'communities and lagged (Granger-style) influence between connected people; stages the metrics for store_metrics.',
  args: {
    type: 'object',
    additionalProperties: false,
    properties: {
      window_days: {
        type: 'integer',
        minimum: 4,
        maximum: 366,
        default: 28,
        description: 'Days of daily activity used for influence scores.',
      },
      min_days: {
        type: 'integer',
        minimum: 1,
        default: 7,
        description: 'Both people of a pair must be active on at least this many days of the window.',
      },
      lag: {
        type: 'integer',
        minimum: 1,
        maximum: 7,
        default: 1,
        description: 'Lag in days of the influence regression.',
      },
      seed: {
        type: 'integer',
        default: 1,
        description: 'Seed of the Louvain community detection (reproducible communities).',
      },
      as_of: {
        type: 'string',
        description:
          "Last day of the window (ISO date); defaults to the run's scheduled time, else today (UTC).",
      },
      keep_staging_days: {
        type: 'integer',
        minimum: 1,
        default: 7,
        description: 'Staged analyses older than this are deleted.',
      },
      ...CONNECTION_ARG_SCHEMA,
    },
  },
  describe: (args) =>
    `analyse the organism graph (window ${args.window_days ?? 28} days, lag ${args.lag ?? 1})`,
  run: (args, ctx) => runCausalAnalysis(args, ctx),
};
