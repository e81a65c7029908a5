import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeOrganismConnections,
  fetchInteractions,
  type InteractionBatch,
  updateGraphIncremental,
} from '../../src/organism/index.js';
import {
  createContext,
  createTestDatabase,
  deleteKeys,
  randomSuffix,
  REDIS_URL,
  servicesAvailable,
} from './services.js';

const available = await servicesAvailable('organism stream + graph tests');

describe.skipIf(!available)(
  'organism.fetch_interactions and update_graph_incremental (real Redis + PostgreSQL)',
  () => {
    const prefix = `weft-test-${randomSuffix()}:`;
    let redis: Redis;
    let db: { url: string; drop: () => Promise<void> };
    let pool: pg.Pool;
    // Rows as unknown-valued records: tests compare them, they never trust their shape.
    const check = {
      query: (sql: string, params: unknown[] = []) => pool.query<Record<string, unknown>>(sql, params),
    };
    let env: Record<string, string>;

    beforeAll(async () => {
      redis = new Redis(REDIS_URL);
      db = await createTestDatabase();
      pool = new pg.Pool({ connectionString: db.url, max: 1 });
      env = { REDIS_URL, DATABASE_URL: db.url };
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

    const ts = '2024-05-06T10:00:00.000Z';
    const add = (stream: string, fields: Record<string, string>) =>
      redis.xadd(stream, '*', ...Object.entries(fields).flat());
    const edgeRows = async () =>
      (
        await check.query(
          'SELECT source, target, kind, count::int, weight_sum FROM interaction_edges ORDER BY 1, 2, 3',
        )
      ).rows;

    it('dead-letters malformed entries with their reason and acknowledges them', async () => {
      const stream = `${prefix}malformed`;
      const good = await add(stream, { source: 'ann', target: 'bob', kind: 'message', weight: '2', ts });
      await add(stream, { source: 'ann', kind: 'message', ts });
      await add(stream, { source: 'ann', target: 'bob', kind: 'message', ts: 'yesterday' });
      await add(stream, { source: 'ann', target: 'bob', kind: 'message', weight: 'heavy', ts });
      await add(stream, { source: 'ann', target: 'ann', kind: 'message', ts });
      const epoch = await add(stream, {
        source: 'bob',
        target: 'cy',
        kind: 'review',
        ts: String(Date.parse(ts)),
      });

      const batch = await fetchInteractions({ stream, group: 'g', consumer: 'c1' }, createContext(env));
      expect(batch.entries.map((e) => e.id)).toEqual([good, epoch]);
      expect(batch.entries[0]).toEqual({
        id: good,
        source: 'ann',
        target: 'bob',
        kind: 'message',
        weight: 2,
        ts,
      });
      expect(batch.entries[1]).toMatchObject({ weight: 1, ts });
      expect(batch.dead_lettered).toBe(4);

      const dead = await redis.xrange(`${stream}:dead`, '-', '+');
      const reasons = dead.map(([, fields]) => fields[fields.indexOf('reason') + 1]);
      expect(reasons).toEqual([
        'missing field "target"',
        'ts "yesterday" is neither ISO 8601 nor epoch milliseconds',
        'weight "heavy" is not a positive number',
        'self loop: source and target are both "ann"',
      ]);
      expect(dead[0]![1]).toEqual(expect.arrayContaining(['original_stream', stream, 'field:source', 'ann']));
      // Only the two good entries are still pending (waiting for update_graph's XACK).
      const pending = (await redis.xpending(stream, 'g')) as [number, ...unknown[]];
      expect(Number(pending[0])).toBe(2);
    });

    it('reclaims the entries of a crashed consumer, and dead-letters them past max_deliveries', async () => {
      const stream = `${prefix}reclaim`;
      const ids = [];
      for (let i = 0; i < 3; i++)
        ids.push(await add(stream, { source: `p${i}`, target: 'hub', kind: 'meeting', weight: '3', ts }));
      // Consumer A reads and dies without acknowledging.
      const a = await fetchInteractions({ stream, group: 'g', consumer: 'A' }, createContext(env));
      expect(a.entries).toHaveLength(3);
      const b = await fetchInteractions(
        { stream, group: 'g', consumer: 'B', claim_idle: 0 },
        createContext(env),
      );
      expect(b.reclaimed).toBe(3);
      expect(b.entries.map((e) => e.id)).toEqual(ids);
      // Third delivery with max_deliveries 2: dead-lettered, not retried for ever.
      const c = await fetchInteractions(
        { stream, group: 'g', consumer: 'C', claim_idle: 0, max_deliveries: 2 },
        createContext(env),
      );
      expect(c.entries).toHaveLength(0);
      expect(c.dead_lettered).toBe(3);
      const dead = await redis.xrange(`${stream}:dead`, '-', '+');
      expect(dead[0]![1][dead[0]![1].indexOf('reason') + 1]).toBe('delivered 3 times (max_deliveries 2)');
    });

    it('applies a batch once: the same batch again changes nothing', async () => {
      const stream = `${prefix}twice`;
      for (const [s, t, k, w] of [
        ['ann', 'bob', 'message', '1'],
        ['ann', 'bob', 'message', '2'],
        ['bob', 'ann', 'meeting', '3'],
      ] as const) {
        await add(stream, { source: s, target: t, kind: k, weight: w, ts });
      }
      const batch = await fetchInteractions({ stream, group: 'g', consumer: 'c' }, createContext(env));
      const first = await updateGraphIncremental({ batch }, createContext(env));
      expect(first).toEqual({ applied: 3, duplicates: 0, people: 2, edges: 2 });
      const second = await updateGraphIncremental({ batch }, createContext(env));
      expect(second).toEqual({ applied: 0, duplicates: 3, people: 0, edges: 0 });
      expect(await edgeRows()).toEqual([
        { source: 'ann', target: 'bob', kind: 'message', count: 2, weight_sum: 3 },
        { source: 'bob', target: 'ann', kind: 'meeting', count: 1, weight_sum: 3 },
      ]);
      const daily = await check.query(
        `SELECT person, to_char(day, 'YYYY-MM-DD') AS day, kind, count_out::int, count_in::int FROM interactions_daily ORDER BY 1, 3`,
      );
      expect(daily.rows).toEqual([
        { person: 'ann', day: '2024-05-06', kind: 'meeting', count_out: 0, count_in: 1 },
        { person: 'ann', day: '2024-05-06', kind: 'message', count_out: 2, count_in: 0 },
        { person: 'bob', day: '2024-05-06', kind: 'meeting', count_out: 1, count_in: 0 },
        { person: 'bob', day: '2024-05-06', kind: 'message', count_out: 0, count_in: 2 },
      ]);
      expect(Number(((await redis.xpending(stream, 'g')) as [number])[0])).toBe(0);
    });

    it('loses and double-counts nothing after a crash between COMMIT and XACK', async () => {
      const stream = `${prefix}crash`;
      for (let i = 0; i < 5; i++)
        await add(stream, { source: 'cy', target: 'dee', kind: 'review', weight: '1.5', ts });
      const batch = await fetchInteractions({ stream, group: 'g', consumer: 'dies' }, createContext(env));
      // The crash: the transaction commits, then Redis is gone before the XACK.
      await expect(
        updateGraphIncremental({ batch, redis_url: 'redis://127.0.0.1:1' }, createContext(env)),
      ).rejects.toThrow();
      expect(await check.query(`SELECT count::int FROM interaction_edges WHERE source = 'cy'`)).toMatchObject(
        { rows: [{ count: 5 }] },
      );
      expect(Number(((await redis.xpending(stream, 'g')) as [number])[0])).toBe(5);

      // The engine's retry replays the same batch: a no-op, then acknowledged.
      expect(await updateGraphIncremental({ batch }, createContext(env))).toMatchObject({
        applied: 0,
        duplicates: 5,
      });
      expect(Number(((await redis.xpending(stream, 'g')) as [number])[0])).toBe(0);
      // A replay of an acknowledged batch is still a no-op (the ledger outlives the acknowledgement).
      expect(await updateGraphIncremental({ batch }, createContext(env))).toMatchObject({
        applied: 0,
        duplicates: 5,
      });
      const row = await check.query(
        `SELECT count::int, weight_sum FROM interaction_edges WHERE source = 'cy'`,
      );
      expect(row.rows).toEqual([{ count: 5, weight_sum: 7.5 }]);
    });

    it('applies reclaimed entries of a consumer that crashed after COMMIT exactly once', async () => {
      const stream = `${prefix}reclaim-applied`;
      for (let i = 0; i < 4; i++) await add(stream, { source: 'fay', target: 'gus', kind: 'message', ts });
      const batch = await fetchInteractions({ stream, group: 'g', consumer: 'dies' }, createContext(env));
      await expect(
        updateGraphIncremental({ batch, redis_url: 'redis://127.0.0.1:1' }, createContext(env)),
      ).rejects.toThrow();
      await add(stream, { source: 'fay', target: 'gus', kind: 'message', ts });
      // A new incarnation reclaims the pending entries with the new one: only the new one counts.
      const again = await fetchInteractions(
        { stream, group: 'g', consumer: 'restarted', claim_idle: 0 },
        createContext(env),
      );
      expect(again.reclaimed).toBe(4);
      expect(again.entries).toHaveLength(5);
      expect(await updateGraphIncremental({ batch: again }, createContext(env))).toMatchObject({
        applied: 1,
        duplicates: 4,
      });
      const row = await check.query(`SELECT count::int FROM interaction_edges WHERE source = 'fay'`);
      expect(row.rows).toEqual([{ count: 5 }]);
      expect(Number(((await redis.xpending(stream, 'g')) as [number])[0])).toBe(0);
    });

    it('prunes ledger rows past retention once nothing older is pending', async () => {
      const stream = `${prefix}prune`;
      await add(stream, { source: 'h1', target: 'h2', kind: 'message', ts });
      const batch = await fetchInteractions({ stream, group: 'g', consumer: 'c' }, createContext(env));
      await updateGraphIncremental({ batch, ledger_retention: 0 }, createContext(env));
      const ledger = await check.query(
        'SELECT count(*)::int AS n FROM applied_stream_entries WHERE stream = $1',
        [stream],
      );
      expect(ledger.rows[0]!.n).toBe(0);
    });

    it('keeps ledger rows while entries below them are still pending', async () => {
      const stream = `${prefix}ledger`;
      await add(stream, { source: 'e1', target: 'e2', kind: 'message', ts });
      await fetchInteractions({ stream, group: 'g', consumer: 'slow', count: 1 }, createContext(env)); // stays pending
      await add(stream, { source: 'e2', target: 'e3', kind: 'message', ts });
      const batch = await fetchInteractions({ stream, group: 'g', consumer: 'fast' }, createContext(env));
      expect(batch.entries).toHaveLength(1);
      await updateGraphIncremental({ batch, ledger_retention: 0 }, createContext(env));
      const ledger = await check.query('SELECT entry_id FROM applied_stream_entries WHERE stream = $1', [
        stream,
      ]);
      expect(ledger.rows.map((r) => r.entry_id)).toEqual([batch.entries[0]!.id]);
    });

    it('rejects a batch that is not a fetch output as non-retryable', async () => {
      await expect(
        updateGraphIncremental({ batch: { stream: 's' } as unknown as InteractionBatch }, createContext(env)),
      ).rejects.toMatchObject({
        name: 'NonRetryableError',
      });
    });
  },
);
