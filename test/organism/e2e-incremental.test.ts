// End to end through the engine: the real pipeline file, the real loader and default registry, a
// SQLite run store, real Redis and PostgreSQL. Nothing mocked.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/compile/plan.js';
import { createRun, executeRun, localOwner } from '../../src/engine/index.js';
import { closeOrganismConnections, emitInteractions } from '../../src/organism/index.js';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipeline } from '../../src/project/load-pipeline.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createTestDatabase, deleteKeys, randomSuffix, REDIS_URL, servicesAvailable } from './services.js';

const available = await servicesAvailable('organism e2e: incremental-update-pipeline through the engine');
const PIPELINE = new URL('../../pipelines/incremental-update.yaml', import.meta.url).pathname;

/**
 * What the graph must hold, computed from the stream's entries by the test itself (not by the
 * handler's parser): well-formed = has source, target (different), kind, a positive weight or none,
 * and an ISO ts — the only kinds of entries this test writes.
 */
function expectedGraph(entries: [string, string[]][]) {
  const people = new Set<string>();
  const edges = new Map<string, { count: number; weight: number }>();
  const daily = new Map<string, { out: number; in: number }>();
  let malformed = 0;
  for (const [, flat] of entries) {
    const f: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
    if (!f.source || !f.target || !f.kind || f.source === f.target || Number.isNaN(Date.parse(f.ts ?? ''))) {
      malformed++;
      continue;
    }
    const weight = f.weight === undefined ? 1 : Number(f.weight);
    people.add(f.source).add(f.target);
    const key = `${f.source}|${f.target}|${f.kind}`;
    const edge = edges.get(key) ?? { count: 0, weight: 0 };
    edge.count += 1;
    edge.weight += weight;
    edges.set(key, edge);
    const day = new Date(f.ts!).toISOString().slice(0, 10);
    for (const [person, dir] of [
      [f.source, 'out'],
      [f.target, 'in'],
    ] as const) {
      const k = `${person}|${day}|${f.kind}`;
      const d = daily.get(k) ?? { out: 0, in: 0 };
      d[dir] += 1;
      daily.set(k, d);
    }
  }
  return { people, edges, daily, malformed };
}

describe.skipIf(!available)(
  'incremental-update-pipeline end to end (engine + SQLite store + Redis + PostgreSQL)',
  () => {
    const prefix = `weft-e2e-inc-${randomSuffix()}:`;
    const stream = `${prefix}interactions`;
    let redis: Redis;
    let db: { url: string; drop: () => Promise<void> };
    let pool: pg.Pool;
    let dir: string;
    let store: RunStore;
    let plan: Plan;
    const registry = createDefaultRegistry();

    beforeAll(async () => {
      redis = new Redis(REDIS_URL);
      db = await createTestDatabase();
      pool = new pg.Pool({ connectionString: db.url, max: 1 });
      dir = mkdtempSync(join(tmpdir(), 'weft-e2e-inc-'));
      store = createSqliteStore(join(dir, 'weft.db'));
      const loaded = await loadPipeline(PIPELINE, { registry });
      expect(loaded.diagnostics).toEqual([]);
      plan = loaded.plan!;
    });

    afterAll(async () => {
      await closeOrganismConnections();
      await store?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      await pool?.end();
      await db?.drop();
      if (redis) {
        await deleteKeys(redis, prefix);
        await redis.quit();
      }
    });

    it('drains 5,000 seeded interactions (and dead-letters the malformed ones) with exact graph counts', async () => {
      await emitInteractions({
        redis,
        stream,
        count: 5000,
        people: 120,
        seed: 42,
        start: '2024-03-04',
        days: 21,
      });
      const ts = '2024-03-10T09:00:00.000Z';
      // Four malformed entries, each rejected for a different reason.
      await redis.xadd(stream, '*', 'source', 'p001', 'kind', 'message', 'ts', ts);
      await redis.xadd(stream, '*', 'source', 'p001', 'target', 'p001', 'kind', 'message', 'ts', ts);
      await redis.xadd(
        stream,
        '*',
        'source',
        'p001',
        'target',
        'p002',
        'kind',
        'message',
        'ts',
        'last tuesday',
      );
      await redis.xadd(stream, '*', 'source', 'p001', 'target', 'p002', 'ts', ts);
      const expected = expectedGraph((await redis.xrange(stream, '-', '+')) as [string, string[]][]);
      expect(expected.malformed).toBe(4);

      const env = { REDIS_URL, DATABASE_URL: db.url };
      const outputs: { fetched: number; dead: number; applied: number; duplicates: number }[] = [];
      for (let i = 0; i < 20; i++) {
        const run = await createRun(store, {
          plan,
          params: { batch_size: 1000, stream },
          trigger: 'manual',
          now: Date.now(),
        });
        const final = await executeRun(run.id, { store, registry, owner: localOwner(), env });
        expect(final.state).toBe('succeeded');
        const tasks = await store.getTaskRuns(run.id);
        const fetch = tasks.find((t) => t.task === 'fetch_interactions')!.output as {
          entries: unknown[];
          dead_lettered: number;
        };
        const update = tasks.find((t) => t.task === 'update_graph_incremental')!.output as {
          applied: number;
          duplicates: number;
        };
        outputs.push({
          fetched: fetch.entries.length,
          dead: fetch.dead_lettered,
          applied: update.applied,
          duplicates: update.duplicates,
        });
        if (fetch.entries.length === 0 && fetch.dead_lettered === 0) break;
      }
      // Five full batches, a sixth with only the malformed four, then an empty run.
      expect(outputs).toEqual([
        ...Array.from({ length: 5 }, () => ({ fetched: 1000, dead: 0, applied: 1000, duplicates: 0 })),
        { fetched: 0, dead: 4, applied: 0, duplicates: 0 },
        { fetched: 0, dead: 0, applied: 0, duplicates: 0 },
      ]);

      const people = await pool.query<{ id: string }>('SELECT id FROM people ORDER BY id');
      expect(people.rows.map((r) => r.id)).toEqual([...expected.people].sort());

      const edges = await pool.query<{
        source: string;
        target: string;
        kind: string;
        count: string;
        weight_sum: number;
      }>('SELECT source, target, kind, count, weight_sum FROM interaction_edges');
      const actualEdges = new Map(
        edges.rows.map((r) => [
          `${r.source}|${r.target}|${r.kind}`,
          { count: Number(r.count), weight: r.weight_sum },
        ]),
      );
      expect(actualEdges.size).toBe(expected.edges.size);
      expect(Object.fromEntries(actualEdges)).toEqual(Object.fromEntries(expected.edges));

      const daily = await pool.query<{
        person: string;
        day: string;
        kind: string;
        count_out: string;
        count_in: string;
      }>(
        `SELECT person, to_char(day, 'YYYY-MM-DD') AS day, kind, count_out, count_in FROM interactions_daily`,
      );
      const actualDaily = Object.fromEntries(
        daily.rows.map((r) => [
          `${r.person}|${r.day}|${r.kind}`,
          { out: Number(r.count_out), in: Number(r.count_in) },
        ]),
      );
      expect(actualDaily).toEqual(Object.fromEntries(expected.daily));

      const totals = await pool.query<{ interactions: string; weight: number; ledger: string }>(
        `SELECT (SELECT sum(count) FROM interaction_edges) AS interactions,
              (SELECT sum(weight_sum) FROM interaction_edges) AS weight,
              (SELECT count(*) FROM applied_stream_entries WHERE stream = $1) AS ledger`,
        [stream],
      );
      expect(totals.rows[0]).toMatchObject({ interactions: '5000', ledger: '5000' });
      expect(totals.rows[0]!.weight).toBe([...expected.edges.values()].reduce((s, e) => s + e.weight, 0));

      expect(await redis.xlen(`${stream}:dead`)).toBe(4);
      const reasons = (await redis.xrange(`${stream}:dead`, '-', '+')).map(
        ([, f]) => f[f.indexOf('reason') + 1],
      );
      expect(reasons).toEqual([
        'missing field "target"',
        'self loop: source and target are both "p001"',
        'ts "last tuesday" is neither ISO 8601 nor epoch milliseconds',
        'missing field "kind"',
      ]);
      const pending = (await redis.xpending(stream, 'weft')) as [number, ...unknown[]];
      expect(Number(pending[0])).toBe(0);
    });
  },
);
