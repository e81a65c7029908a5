import type pg from 'pg';
import { createDict } from '../core/json.js';
import { NonRetryableError } from '../errors.js';
import type { Handler, HandlerContext } from '../handlers/types.js';
import { CONNECTION_ARG_SCHEMA, type ConnectionArgs } from './connections.js';
import { inTransaction, organismPool, referenceTime } from './db.js';

export type InterventionRule =
  | { kind: 'bottleneck'; metric?: string; above: number; reason?: string }
  | { kind: 'isolated'; no_interactions_days: number; reason?: string }
  | {
      kind: 'overload_risk';
      activity_over_baseline: number;
      recent_days?: number;
      baseline_days?: number;
      reason?: string;
    }
  | { kind: 'dependency'; granger_above: number; reverse_below?: number; reason?: string };

export interface EvaluateInterventionsArgs extends ConnectionArgs {
  rules: InterventionRule[];
  /** Reference time for the day-based rules; default the run's scheduled time, else now. */
  as_of?: string;
}

interface Candidate {
  subject: string;
  kind: string;
  reason: string;
  score: number;
  details: Record<string, unknown>;
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(3));
const because = (rule: { reason?: string }, numbers: string) =>
  rule.reason ? `${rule.reason} (${numbers})` : numbers;

async function latestMetricTime(pool: pg.Pool): Promise<Date | null> {
  const result = await pool.query<{ time: Date | null }>('SELECT max(time) AS time FROM organism_metrics');
  return result.rows[0]?.time ?? null;
}

async function candidatesFor(
  rule: InterventionRule,
  pool: pg.Pool,
  latest: Date | null,
  asOf: Date,
): Promise<Candidate[]> {
  switch (rule.kind) {
    case 'bottleneck': {
      if (!latest) return [];
      const metric = rule.metric ?? 'betweenness';
      const rows = await pool.query<{ subject: string; value: number }>(
        'SELECT subject, value FROM organism_metrics WHERE time = $1 AND metric = $2 AND value > $3',
        [latest, metric, rule.above],
      );
      return rows.rows.map(({ subject, value }) => ({
        subject,
        kind: rule.kind,
        score: value,
        reason: because(rule, `${metric} ${fmt(value)} > ${fmt(rule.above)}`),
        details: { metric, value, above: rule.above, metrics_time: latest.toISOString() },
      }));
    }
    case 'isolated': {
      const rows = await pool.query<{ id: string; last_seen: Date; days: number }>(
        `SELECT id, last_seen, extract(epoch FROM ($1::timestamptz - last_seen)) / 86400 AS days
           FROM people WHERE last_seen < $1::timestamptz - make_interval(days => $2)`,
        [asOf, rule.no_interactions_days],
      );
      return rows.rows.map(({ id, last_seen, days }) => ({
        subject: id,
        kind: rule.kind,
        score: Number(days),
        reason: because(
          rule,
          `no interactions for ${Math.floor(Number(days))} days (threshold ${rule.no_interactions_days})`,
        ),
        details: {
          last_seen: last_seen.toISOString(),
          days: Number(days),
          threshold: rule.no_interactions_days,
        },
      }));
    }
    case 'overload_risk': {
      const recent = rule.recent_days ?? 7;
      const baseline = rule.baseline_days ?? 28;
      // Baseline = the `baseline` days before the recent window; missing days count as 0.
      const rows = await pool.query<{ person: string; recent: string; base: string }>(
        `SELECT person,
                sum(interactions) FILTER (WHERE day > $1::date - $2::int) AS recent,
                sum(interactions) FILTER (WHERE day <= $1::date - $2::int) AS base
           FROM organism_person_daily_activity
          WHERE day > $1::date - ($2::int + $3::int) AND day <= $1::date
          GROUP BY person`,
        [asOf.toISOString().slice(0, 10), recent, baseline],
      );
      const out: Candidate[] = [];
      for (const row of rows.rows) {
        const recentRate = Number(row.recent ?? 0) / recent;
        const baseRate = Number(row.base ?? 0) / baseline;
        if (baseRate <= 0) continue; // no baseline: a newcomer is not overloaded by definition
        const ratio = recentRate / baseRate;
        if (ratio <= rule.activity_over_baseline) continue;
        out.push({
          subject: row.person,
          kind: rule.kind,
          score: ratio,
          reason: because(
            rule,
            `last ${recent} days ${fmt(recentRate)}/day vs ${baseline}-day baseline ${fmt(baseRate)}/day: ` +
              `${fmt(ratio)}× > ${fmt(rule.activity_over_baseline)}×`,
          ),
          details: {
            recent_per_day: recentRate,
            baseline_per_day: baseRate,
            ratio,
            threshold: rule.activity_over_baseline,
          },
        });
      }
      return out;
    }
    case 'dependency': {
      if (!latest) return [];
      const rows = await pool.query<{ subject: string; value: number }>(
        `SELECT subject, value FROM organism_metrics WHERE time = $1 AND metric = 'granger_influence'`,
        [latest],
      );
      const score = new Map(rows.rows.map((row) => [row.subject, row.value]));
      const reverseBelow = rule.reverse_below ?? rule.granger_above;
      const out: Candidate[] = [];
      for (const [subject, value] of score) {
        if (value <= rule.granger_above) continue;
        const [source, target] = subject.split('->');
        const reverse = score.get(`${target}->${source}`) ?? 0;
        // "One-way": the reverse influence must stay weak, otherwise it is mutual, not a dependency.
        if (reverse >= reverseBelow) continue;
        out.push({
          subject,
          kind: rule.kind,
          score: value,
          reason: because(
            rule,
            `${target} depends on ${source}: influence ${fmt(value)} > ${fmt(rule.granger_above)}, reverse ${fmt(reverse)}`,
          ),
          details: { source, target, influence: value, reverse, threshold: rule.granger_above },
        });
      }
      return out;
    }
    default: {
      const unknown: never = rule;
      throw new NonRetryableError(`unknown intervention rule kind "${(unknown as { kind: string }).kind}"`);
    }
  }
}

export type EvaluateInterventionsResult = {
  proposed: number;
  already_open: number;
  by_kind: Record<string, number>;
};

export async function evaluateInterventions(
  args: EvaluateInterventionsArgs,
  ctx: HandlerContext,
): Promise<EvaluateInterventionsResult> {
  const pool = await organismPool(args, ctx);
  const latest = await latestMetricTime(pool);
  const asOf = referenceTime(ctx, args.as_of);
  const candidates: Candidate[] = [];
  for (const rule of args.rules) candidates.push(...(await candidatesFor(rule, pool, latest, asOf)));
  const byKind = createDict<number>();
  for (const rule of args.rules) byKind[rule.kind] = 0;
  if (candidates.length === 0) return { proposed: 0, already_open: 0, by_kind: byKind };
  const inserted = await inTransaction(pool, (client) =>
    client.query<{ kind: string }>(
      `INSERT INTO interventions (subject, kind, reason, score, details)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::jsonb[])
       ON CONFLICT (subject, kind) WHERE status = 'proposed' DO NOTHING
       RETURNING kind`,
      [
        candidates.map((c) => c.subject),
        candidates.map((c) => c.kind),
        candidates.map((c) => c.reason),
        candidates.map((c) => c.score),
        candidates.map((c) => JSON.stringify(c.details)),
      ],
    ),
  );
  for (const row of inserted.rows) byKind[row.kind] = (byKind[row.kind] ?? 0) + 1;
  const proposed = inserted.rowCount ?? 0;
  ctx.log.info(`proposed ${proposed} intervention(s); ${candidates.length - proposed} already open`);
  return { proposed, already_open: candidates.length - proposed, by_kind: byKind };
}

const reasonSchema = {
  type: 'string',
  description: 'Why this matters, in words; the numbers are appended.',
} as const;

export const evaluateInterventionsHandler: Handler<EvaluateInterventionsArgs> = {
  name: 'organism.evaluate_interventions',
  services: ['postgres'],
  description: 'Turns the newest metrics into proposed interventions, never proposing an open one twice.',
  args: {
    type: 'object',
    additionalProperties: false,
    required: ['rules'],
    properties: {
      rules: {
        type: 'array',
        description: 'Rules evaluated in order; each proposes interventions of its kind.',
        items: {
          oneOf: [
            {
              type: 'object',
              additionalProperties: false,
              required: ['kind', 'above'],
              properties: {
                kind: { const: 'bottleneck', description: 'A person whose metric is above a threshold.' },
                metric: { type: 'string', default: 'betweenness', description: 'Person metric compared.' },
                above: { type: 'number', description: 'Threshold (exclusive).' },
                reason: reasonSchema,
              },
            },
            {
              type: 'object',
              additionalProperties: false,
              required: ['kind', 'no_interactions_days'],
              properties: {
                kind: { const: 'isolated', description: 'A person with no interaction for a while.' },
                no_interactions_days: {
                  type: 'number',
                  minimum: 0,
                  description: 'Days without any interaction.',
                },
                reason: reasonSchema,
              },
            },
            {
              type: 'object',
              additionalProperties: false,
              required: ['kind', 'activity_over_baseline'],
              properties: {
                kind: {
                  const: 'overload_risk',
                  description: "Recent activity far above the person's own baseline.",
                },
                activity_over_baseline: {
                  type: 'number',
                  minimum: 0,
                  description: 'Ratio of recent to baseline daily activity.',
                },
                recent_days: {
                  type: 'integer',
                  minimum: 1,
                  default: 7,
                  description: 'Length of the recent window.',
                },
                baseline_days: {
                  type: 'integer',
                  minimum: 1,
                  default: 28,
                  description: 'Length of the baseline window before it.',
                },
                reason: reasonSchema,
              },
            },
            {
              type: 'object',
              additionalProperties: false,
              required: ['kind', 'granger_above'],
              properties: {
                kind: {
                  const: 'dependency',
                  description: 'Strong one-way lagged influence of one person on another.',
                },
                granger_above: {
                  type: 'number',
                  minimum: 0,
                  maximum: 1,
                  description: 'Influence score threshold (exclusive).',
                },
                reverse_below: {
                  type: 'number',
                  minimum: 0,
                  maximum: 1,
                  description: 'Reverse influence must be below this (default granger_above).',
                },
                reason: reasonSchema,
              },
            },
          ],
        },
      },
      as_of: {
        type: 'string',
        description:
          "Reference time for day-based rules (ISO); defaults to the run's scheduled time, else now.",
      },
      ...CONNECTION_ARG_SCHEMA,
    },
  },
  describe: (args) =>
    `evaluate ${args.rules.length} intervention rule(s): ${args.rules.map((r) => r.kind).join(', ')}`,
  run: (args, ctx) => evaluateInterventions(args, ctx),
};
