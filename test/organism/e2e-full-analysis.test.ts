// Both reference pipelines end to end through the engine on a small organisation checked by hand:
// interactions go Redis -> incremental-update-pipeline -> PostgreSQL, then full-analysis-pipeline
// refreshes the views, analyses, stores the metrics and proposes interventions.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/compile/plan.js';
import { createRun, executeRun, localOwner } from '../../src/engine/index.js';
import { closeOrganismConnections } from '../../src/organism/index.js';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipeline } from '../../src/project/load-pipeline.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createTestDatabase, deleteKeys, randomSuffix, REDIS_URL, servicesAvailable } from './services.js';

const available = await servicesAvailable('organism e2e: full-analysis-pipeline through the engine');

const day = (offset: number) =>
  new Date(Date.UTC(2024, 5, 1) + offset * 86_400_000).toISOString().slice(0, 10);
// The organisation of analysis-pipeline.test.ts: x's activity on 2024-06-01 … 06-14; y repeats it
// one day later (x -> a, y -> b every day); a, b, c linked in a cycle; z seen only in April; o
// reviews once a day for weeks, then five times a day in the last week.
const XS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7];
const SCHEDULED = '2024-06-14T18:00:00.000Z';

function organisation(): [string, string, string, string][] {
  const rows: [string, string, string, string][] = [];
  const at = (d: string) => `${d}T12:00:00Z`;
  rows.push(['x', 'y', 'message', at('2024-05-01')], ['a', 'b', 'message', at('2024-05-01')]);
  rows.push(['b', 'c', 'message', at('2024-05-01')], ['c', 'a', 'message', at('2024-05-01')]);
  rows.push(['z', 'a', 'meeting', at('2024-04-01')]);
  XS.forEach((n, t) => {
    for (let i = 0; i < n; i++) rows.push(['x', 'a', 'message', at(day(t))]);
    const follow = t === 0 ? 2 : XS[t - 1]!;
    for (let i = 0; i < follow; i++) rows.push(['y', 'b', 'message', at(day(t))]);
  });
  for (let t = -21; t < 14; t++)
    for (let i = 0; i < (t >= 7 ? 5 : 1); i++) rows.push(['o', 'c', 'review', at(day(t))]);
  return rows;
}

describe.skipIf(!available)(
  'full-analysis-pipeline end to end (engine + SQLite store + Redis + PostgreSQL)',
  () => {
    const prefix = `weft-e2e-full-${randomSuffix()}:`;
    const stream = `${prefix}interactions`;
    const registry = createDefaultRegistry();
    let redis: Redis;
    let db: { url: string; drop: () => Promise<void> };
    let pool: pg.Pool;
    let dir: string;
    let mainStore: RunStore;
    let env: Record<string, string>;

    const planOf = async (file: string): Promise<Plan> => {
      const loaded = await loadPipeline(new URL(`../../pipelines/${file}`, import.meta.url).pathname, {
        registry,
      });
      expect(loaded.diagnostics).toEqual([]);
      return loaded.plan!;
    };
    const runToEnd = async (
      plan: Plan,
      params: Record<string, string | number>,
      scheduledFor: string | null,
      store: RunStore = mainStore,
    ) => {
      const run = await createRun(store, { plan, params, trigger: 'manual', scheduledFor, now: Date.now() });
      const final = await executeRun(run.id, { store, registry, owner: localOwner(), env });
      const tasks = await store.getTaskRuns(run.id);
      expect([
        final.state,
        tasks.filter((t) => t.state !== 'succeeded').map((t) => [t.task, t.error]),
      ]).toEqual(['succeeded', []]);
      return Object.fromEntries(tasks.map((t) => [t.task, t.output])) as Record<
        string,
        Record<string, unknown>
      >;
    };

    beforeAll(async () => {
      redis = new Redis(REDIS_URL);
      db = await createTestDatabase();
      pool = new pg.Pool({ connectionString: db.url, max: 1 });
      dir = mkdtempSync(join(tmpdir(), 'weft-e2e-full-'));
      mainStore = createSqliteStore(join(dir, 'weft.db'));
      env = { REDIS_URL, DATABASE_URL: db.url };
    });

    afterAll(async () => {
      await closeOrganismConnections();
      await mainStore?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      await pool?.end();
      await db?.drop();
      if (redis) {
        await deleteKeys(redis, prefix);
        await redis.quit();
      }
    });

    it('ingests, analyses, stores the metrics and proposes the expected interventions', async () => {
      const rows = organisation();
      const pipeline = redis.pipeline();
      for (const [source, target, kind, ts] of rows)
        pipeline.xadd(stream, '*', 'source', source, 'target', target, 'kind', kind, 'ts', ts);
      await pipeline.exec();
      const incremental = await planOf('incremental-update.yaml');
      let applied = 0;
      for (;;) {
        const out = await runToEnd(incremental, { batch_size: 100, stream }, null);
        if (out.update_graph_incremental!.applied === 0) break;
        applied += out.update_graph_incremental!.applied as number;
      }
      expect(applied).toBe(rows.length);

      const out = await runToEnd(await planOf('full-analysis.yaml'), {}, SCHEDULED);
      expect(out.refresh_materialized_views).toMatchObject({
        refreshed: ['organism_person_daily_activity', 'organism_pair_strength'],
      });
      const analysis = out.run_causal_analysis!;
      // 28-day window (the pipeline's window_days) ending on the run's scheduled day.
      expect(analysis).toMatchObject({ people: 7, window_start: '2024-05-18', window_end: '2024-06-14' });
      expect(analysis.metrics).toBe(7 * 8 + 2 * (analysis.pairs as number));
      expect(out.store_metrics).toEqual({
        analysis_id: analysis.analysis_id,
        time: SCHEDULED,
        rows: analysis.metrics,
        replaced: 0,
      });

      const metric = async (subject: string, name: string) =>
        (
          await pool.query<{ value: number }>(
            'SELECT value FROM organism_metrics WHERE subject = $1 AND metric = $2 AND time = $3',
            [subject, name, SCHEDULED],
          )
        ).rows.map((r) => r.value);
      // a: in-edges from c (1 message), z (1 meeting) and x (sum(XS) = 68 messages); out-edge to b.
      expect(await metric('a', 'in_degree')).toEqual([3]);
      expect(await metric('a', 'out_degree')).toEqual([1]);
      expect(await metric('a', 'weighted_in_degree')).toEqual([70]);
      // a's neighbours b, c, x, z: only b-c are linked, 1 of 6 possible pairs.
      expect((await metric('a', 'clustering'))[0]).toBeCloseTo(1 / 6, 12);
      // Directed, by hops, normalised by (N-1)(N-2) = 30 as networkx does: a and b each score 5/30.
      expect((await metric('a', 'betweenness'))[0]).toBeCloseTo(5 / 30, 12);
      expect((await metric('b', 'betweenness'))[0]).toBeCloseTo(5 / 30, 12);
      expect(await metric('z', 'betweenness')).toEqual([0]);
      const pagerank = await pool.query<{ total: number; n: number }>(
        `SELECT sum(value) AS total, count(*)::int AS n FROM organism_metrics WHERE metric = 'pagerank'`,
      );
      expect(pagerank.rows[0]!.n).toBe(7);
      expect(pagerank.rows[0]!.total).toBeCloseTo(1, 9);
      // y copies x one day late, so x predicts y far better than y predicts x.
      const [xy] = await metric('x->y', 'granger_influence');
      const [yx] = await metric('y->x', 'granger_influence');
      expect(xy).toBeGreaterThan(0.9);
      expect(yx!).toBeLessThan(0.3);

      // Interventions, with the pipeline's rules: no betweenness above 0.2 (bottleneck), z unseen for
      // 74 days (isolated), everyone whose last week beat twice their baseline (overload_risk), and
      // every strong one-way influence (dependency), which the same rule written in SQL lists.
      const deps = await pool.query<{ subject: string }>(
        `SELECT m.subject FROM organism_metrics m
         LEFT JOIN organism_metrics r ON r.metric = m.metric AND r.time = m.time
              AND r.subject = split_part(m.subject, '->', 2) || '->' || split_part(m.subject, '->', 1)
        WHERE m.metric = 'granger_influence' AND m.value > 0.3 AND coalesce(r.value, 0) < 0.3 ORDER BY 1`,
      );
      const dependencies = deps.rows.map((r) => r.subject);
      expect(dependencies).toEqual(expect.arrayContaining(['x->y']));
      const overloaded = ['a', 'b', 'c', 'o', 'x', 'y'];
      expect(out.evaluate_interventions).toMatchObject({
        proposed: 1 + overloaded.length + dependencies.length,
        by_kind: {
          bottleneck: 0,
          isolated: 1,
          overload_risk: overloaded.length,
          dependency: dependencies.length,
        },
      });
      const open = await pool.query<{ kind: string; subjects: string[] }>(
        `SELECT kind, array_agg(subject ORDER BY subject) AS subjects FROM interventions
        WHERE status = 'proposed' GROUP BY kind ORDER BY kind`,
      );
      expect(open.rows).toEqual([
        { kind: 'dependency', subjects: dependencies },
        { kind: 'isolated', subjects: ['z'] },
        { kind: 'overload_risk', subjects: overloaded },
      ]);
      const isolated = await pool.query<{ reason: string; score: number }>(
        `SELECT reason, score FROM interventions WHERE kind = 'isolated'`,
      );
      // Last seen 2024-04-01T12:00Z, as of 2024-06-14T18:00Z: 74 days and 6 hours.
      expect(isolated.rows).toEqual([
        {
          reason: 'No interaction with anyone for two weeks (no interactions for 74 days (threshold 14))',
          score: 74.25,
        },
      ]);

      // Another run for the same scheduled time (a second weft, with its own run store: one store
      // refuses two runs of one pipeline for one time) replaces the metrics and proposes nothing new.
      const again = await runToEnd(await planOf('full-analysis.yaml'), {}, SCHEDULED, createMemoryStore());
      expect(again.store_metrics).toMatchObject({ rows: analysis.metrics, replaced: analysis.metrics });
      expect(again.evaluate_interventions).toMatchObject({ proposed: 0 });
      const count = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM organism_metrics');
      expect(count.rows[0]!.n).toBe(analysis.metrics);
    });
  },
);
