import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeOrganismConnections,
  emitInteractions,
  evaluateInterventions,
  fetchInteractions,
  migrateOrganism,
  organismHandlers,
  refreshMaterializedViewsHandler,
  runCausalAnalysis,
  storeMetrics,
  updateGraphIncremental,
  type InterventionRule,
} from '../../src/organism/index.js';
import {
  createContext,
  createTestDatabase,
  deleteKeys,
  randomSuffix,
  REDIS_URL,
  servicesAvailable,
} from './services.js';

const available = await servicesAvailable('organism analysis pipeline tests');

const day = (offset: number) =>
  new Date(Date.UTC(2024, 5, 1) + offset * 86_400_000).toISOString().slice(0, 10);
// x's activity on 2024-06-01 … 06-14; y repeats it one day later.
const XS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7];
const AS_OF = '2024-06-14';
const SCHEDULED = '2024-06-14T18:00:00.000Z';

function organisation(): [string, string, string, string][] {
  const rows: [string, string, string, string][] = [];
  const at = (d: string) => `${d}T12:00:00Z`;
  // Links outside the analysis window: they make edges (candidates) without touching the series.
  rows.push(['x', 'y', 'message', at('2024-05-01')], ['a', 'b', 'message', at('2024-05-01')]);
  rows.push(['b', 'c', 'message', at('2024-05-01')], ['c', 'a', 'message', at('2024-05-01')]);
  rows.push(['z', 'a', 'meeting', at('2024-04-01')]);
  XS.forEach((n, t) => {
    for (let i = 0; i < n; i++) rows.push(['x', 'a', 'message', at(day(t))]);
    const follow = t === 0 ? 2 : XS[t - 1]!;
    for (let i = 0; i < follow; i++) rows.push(['y', 'b', 'message', at(day(t))]);
  });
  // o: one review a day for the 28 baseline days, five a day in the last week.
  for (let t = -21; t < 14; t++)
    for (let i = 0; i < (t >= 7 ? 5 : 1); i++) rows.push(['o', 'c', 'review', at(day(t))]);
  return rows;
}

describe.skipIf(!available)('organism analysis handlers (real Redis + PostgreSQL)', () => {
  const prefix = `weft-test-${randomSuffix()}:`;
  const stream = `${prefix}interactions`;
  let redis: Redis;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  // Rows as unknown-valued records: tests compare them, they never trust their shape.
  const check = {
    query: (sql: string, params: unknown[] = []) => pool.query<Record<string, unknown>>(sql, params),
  };
  let env: Record<string, string>;
  const scheduledCtx = () =>
    createContext(env, {
      run: { id: 'run-analysis', pipeline: 'full-analysis-pipeline', scheduledFor: SCHEDULED, attempt: 1 },
    });

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    env = { REDIS_URL, DATABASE_URL: db.url };
    const pipeline = redis.pipeline();
    for (const [source, target, kind, ts] of organisation())
      pipeline.xadd(stream, '*', 'source', source, 'target', target, 'kind', kind, 'ts', ts);
    await pipeline.exec();
    for (;;) {
      const batch = await fetchInteractions(
        { stream, group: 'g', consumer: 'c', count: 100 },
        createContext(env),
      );
      if (batch.entries.length === 0) break;
      await updateGraphIncremental({ batch }, createContext(env));
    }
  });

  afterAll(async () => {
    await closeOrganismConnections();
    await pool?.end();
    await db?.drop();
    if (redis) {
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
  });

  it('exports six handlers with described argument schemas', () => {
    expect(organismHandlers.map((h) => h.name).sort()).toEqual([
      'organism.evaluate_interventions',
      'organism.fetch_interactions',
      'organism.refresh_materialized_views',
      'organism.run_causal_analysis',
      'organism.store_metrics',
      'organism.update_graph_incremental',
    ]);
    for (const handler of organismHandlers) {
      const props = (handler.args as { properties: Record<string, { description?: string }> }).properties;
      for (const [key, prop] of Object.entries(props))
        expect(prop.description, `${handler.name}.${key}`).toBeTruthy();
    }
  });

  it('migrates once: a second migrateOrganism applies nothing and reports a plain metrics table', async () => {
    const fresh = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      expect(await migrateOrganism(fresh)).toEqual({ applied: [], metricsStorage: 'table' });
    } finally {
      await fresh.end();
    }
    const versions = await check.query('SELECT version FROM organism_schema_migrations');
    expect(versions.rows).toEqual([{ version: 1 }]);
  });

  it('refreshes the materialized views concurrently and refuses names that are not identifiers', async () => {
    const ctx = createContext(env);
    const out = (await refreshMaterializedViewsHandler.run(
      { views: ['organism_person_daily_activity', 'organism_pair_strength'] },
      ctx,
    )) as { refreshed: string[] };
    expect(out.refreshed).toEqual(['organism_person_daily_activity', 'organism_pair_strength']);
    const x = await check.query(
      `SELECT interactions::int FROM organism_person_daily_activity WHERE person = 'x' AND day = '2024-06-06'`,
    );
    expect(x.rows).toEqual([{ interactions: 9 }]);
    await expect(
      refreshMaterializedViewsHandler.run({ views: ['v; DROP TABLE people'] }, ctx),
    ).rejects.toMatchObject({
      name: 'NonRetryableError',
    });
  });

  it('analyses, stages, and stores metrics; a re-run replaces instead of duplicating', async () => {
    const analysis = await runCausalAnalysis({ as_of: AS_OF, window_days: 14, min_days: 5 }, scheduledCtx());
    expect(analysis).toMatchObject({
      analysis_id: 'run-analysis',
      people: 7,
      window_start: '2024-06-01',
      window_end: AS_OF,
    });
    expect(analysis.metrics).toBe(7 * 8 + 2 * analysis.pairs);

    const first = await storeMetrics({ analysis }, scheduledCtx());
    expect(first).toEqual({
      analysis_id: 'run-analysis',
      time: SCHEDULED,
      rows: analysis.metrics,
      replaced: 0,
    });
    await runCausalAnalysis({ as_of: AS_OF, window_days: 14, min_days: 5 }, scheduledCtx());
    const second = await storeMetrics({}, scheduledCtx());
    expect(second).toEqual({ ...first, replaced: analysis.metrics });
    const stored = await check.query(
      'SELECT count(*)::int AS n, count(DISTINCT time)::int AS times FROM organism_metrics',
    );
    expect(stored.rows[0]).toEqual({ n: analysis.metrics, times: 1 });

    const influence = await check.query(
      `SELECT subject, value FROM organism_metrics WHERE metric = 'granger_influence' AND subject IN ('x->y', 'y->x') ORDER BY subject`,
    );
    expect(influence.rows[0]!.subject).toBe('x->y');
    expect(influence.rows[0]!.value).toBeCloseTo(1, 9);
    expect(influence.rows[1]!.value).toBeLessThan(0.3);
  });

  it('proposes interventions with their numbers, and never the same open one twice', async () => {
    const rules: InterventionRule[] = [
      {
        kind: 'bottleneck',
        metric: 'betweenness',
        above: 0.15,
        reason: 'many paths run through this person',
      },
      { kind: 'isolated', no_interactions_days: 14 },
      { kind: 'overload_risk', activity_over_baseline: 2 },
      { kind: 'dependency', granger_above: 0.3 },
    ];
    const bridges = await check.query(
      `SELECT subject FROM organism_metrics WHERE metric = 'betweenness' AND value > 0.15 ORDER BY subject`,
    );
    // Directed betweenness: a and b each lie on 5 of the 30 ordered pairs' shortest paths.
    expect(bridges.rows.map((r) => r.subject)).toEqual(['a', 'b']);
    const first = await evaluateInterventions({ rules, as_of: `${AS_OF}T18:00:00Z` }, scheduledCtx());
    // The same rule written independently in SQL: strong influence, weak reverse.
    const deps = await check.query(
      `SELECT m.subject FROM organism_metrics m
         LEFT JOIN organism_metrics r ON r.metric = m.metric AND r.time = m.time
              AND r.subject = split_part(m.subject, '->', 2) || '->' || split_part(m.subject, '->', 1)
        WHERE m.metric = 'granger_influence' AND m.value > 0.3 AND coalesce(r.value, 0) < 0.3 ORDER BY 1`,
    );
    const dependencies = deps.rows.map((r) => r.subject as string);
    // a receives exactly x's activity and b exactly y's, so a->b is as strong as x->y.
    expect(dependencies).toEqual(expect.arrayContaining(['a->b', 'x->y']));
    // Everyone active in the last week whose earlier weeks were quieter (x, y, a, b started in June).
    const overloaded = ['a', 'b', 'c', 'o', 'x', 'y'];
    expect(first.by_kind).toEqual({
      bottleneck: 2,
      isolated: 1,
      overload_risk: overloaded.length,
      dependency: dependencies.length,
    });
    expect(first.proposed).toBe(2 + 1 + overloaded.length + dependencies.length);
    const open = await check.query(
      `SELECT kind, array_agg(subject ORDER BY subject) AS subjects FROM interventions GROUP BY kind ORDER BY kind`,
    );
    expect(open.rows).toEqual([
      { kind: 'bottleneck', subjects: ['a', 'b'] },
      { kind: 'dependency', subjects: dependencies },
      { kind: 'isolated', subjects: ['z'] },
      { kind: 'overload_risk', subjects: overloaded },
    ]);
    const bottleneck = await check.query(
      `SELECT reason FROM interventions WHERE kind = 'bottleneck' AND subject = 'a'`,
    );
    expect(bottleneck.rows[0]!.reason).toBe('many paths run through this person (betweenness 0.167 > 0.150)');
    const rows = await check.query(
      `SELECT subject, kind, reason, score, status FROM interventions WHERE subject IN ('x->y', 'z', 'o') ORDER BY kind`,
    );
    expect(rows.rows.map((r) => [r.kind, r.subject, r.status])).toEqual([
      ['dependency', 'x->y', 'proposed'],
      ['isolated', 'z', 'proposed'],
      ['overload_risk', 'o', 'proposed'],
    ]);
    expect(rows.rows[0]!.reason).toMatch(/^y depends on x: influence 1 > 0\.300, reverse 0\.\d{3}$/);
    expect(rows.rows[1]!.reason).toBe('no interactions for 74 days (threshold 14)');
    expect(rows.rows[2]!.reason).toBe('last 7 days 5/day vs 28-day baseline 1/day: 5× > 2×');
    expect(rows.rows[2]!.score).toBeCloseTo(5, 12);

    const again = await evaluateInterventions({ rules, as_of: `${AS_OF}T18:00:00Z` }, scheduledCtx());
    expect(again).toMatchObject({ proposed: 0, already_open: first.proposed });
    const total = await check.query('SELECT count(*)::int AS n FROM interventions');
    expect(total.rows[0]!.n).toBe(first.proposed);
  });

  it('store_metrics without a staged analysis fails without retry', async () => {
    await expect(storeMetrics({ analysis_id: 'nope' }, scheduledCtx())).rejects.toMatchObject({
      name: 'NonRetryableError',
    });
  });

  it('emits a seeded, well-formed stream that fetch accepts entirely', async () => {
    const emitted = `${prefix}emitted`;
    const result = await emitInteractions({
      redis,
      stream: emitted,
      count: 2000,
      people: 60,
      seed: 7,
      start: '2024-01-01',
      days: 14,
    });
    expect(result).toMatchObject({ emitted: 2000, people: 60, teams: 5 });
    expect(result.first_ts).toMatch(/^2024-01-/);
    const batch = await fetchInteractions(
      { stream: emitted, group: 'g', consumer: 'c', count: 5000 },
      createContext(env),
    );
    expect(batch.entries).toHaveLength(2000);
    expect(batch.dead_lettered).toBe(0);
    expect(new Set(batch.entries.map((e) => e.kind))).toEqual(new Set(['message', 'meeting', 'review']));
    // Same seed, same options: the same stream, field for field.
    const opts = { redis, count: 50, people: 60, seed: 7, start: '2024-01-01', days: 14 };
    await emitInteractions({ ...opts, stream: `${prefix}same1` });
    await emitInteractions({ ...opts, stream: `${prefix}same2` });
    const one = await redis.xrange(`${prefix}same1`, '-', '+');
    const two = await redis.xrange(`${prefix}same2`, '-', '+');
    expect(one.map(([, f]) => f)).toEqual(two.map(([, f]) => f));
    expect(one).toHaveLength(50);
  });
});
