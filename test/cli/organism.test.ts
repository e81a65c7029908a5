// `weft check`, `weft organism analyse` and `weft db migrate`, run as a user runs them (the built CLI).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, REDIS_URL, servicesAvailable } from '../organism/services.js';
import { weft } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const available = await servicesAvailable('weft check / organism analyse / db migrate (CLI)');

describe('weft organism analyse --input (no database)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cli-organism-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the textbook numbers of a directed triangle', () => {
    const file = join(dir, 'triangle.json');
    writeFileSync(
      file,
      JSON.stringify({
        edges: [
          { source: 'a', target: 'b', weight: 1 },
          { source: 'b', target: 'c', kind: 'meeting', weight: 2 },
          { source: 'c', target: 'a', weight: 3 },
        ],
        daily: [{ person: 'a', day: '2024-06-01', count: 2 }],
      }),
    );
    const result = weft(['organism', 'analyse', '--input', file, '--format', 'json'], { cwd: dir });
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as {
      people: Record<string, number | string>[];
      pairs: unknown[];
      communities: number;
      window_end: string;
    };
    // networkx: pagerank of a directed 3-cycle is 1/3 each whatever the weights (one out-edge each);
    // betweenness: each node is the middle of 1 of the 6 ordered pairs, normalised by (3-1)(3-2) = 2;
    // clustering of the undirected triangle: 1.
    expect(
      out.people.map((p) => [
        p.person,
        p.in_degree,
        p.out_degree,
        p.weighted_in_degree,
        p.weighted_out_degree,
      ]),
    ).toEqual([
      ['a', 1, 1, 3, 1],
      ['b', 1, 1, 1, 2],
      ['c', 1, 1, 2, 3],
    ]);
    for (const p of out.people) {
      expect(p.pagerank as number).toBeCloseTo(1 / 3, 9);
      expect(p.betweenness).toBe(0.5);
      expect(p.clustering).toBe(1);
      expect(p.community).toBe(0);
    }
    expect([out.communities, out.pairs, out.window_end]).toEqual([1, [], '2024-06-01']);

    const text = weft(['organism', 'analyse', '-i', file], { cwd: dir });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}a {7}1 {3}1 {4}3 {5}1 {6}0\.333333 {2}0\.500000 {5}1\.000000 {4}0$/m);
  });

  it('refuses a malformed input file, naming the entry (exit 1)', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        edges: [
          { source: 'a', target: 'b', weight: 1 },
          { source: 'a', target: 'c', weight: -1 },
        ],
      }),
    );
    const result = weft(['organism', 'analyse', '--input', file], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('edges[1].weight: expected a positive number [PARAM_INVALID]');
    const missing = weft(['organism', 'analyse', '--input', join(dir, 'nope.json')], { cwd: dir });
    expect(missing.code).toBe(2);
  });
});

describe.skipIf(!available)('weft check and weft db migrate (real Redis + PostgreSQL)', () => {
  let dir: string;
  let db: { url: string; drop: () => Promise<void> };
  const env = () => ({ REDIS_URL, DATABASE_URL: db.url });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cli-check-'));
    db = await createTestDatabase();
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it('weft check: everything reachable -> exit 0 with each version', () => {
    const result = weft(['check', '--store', join(dir, 'weft.db'), '--format', 'json'], {
      cwd: ROOT,
      env: env(),
    });
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as {
      ok: boolean;
      checks: {
        target: string;
        kind: string;
        reachable: boolean;
        version: string | null;
        needed_by: string[];
      }[];
      pipelines: { pipeline: string; services: string[] }[];
    };
    expect(out.ok).toBe(true);
    expect(out.checks.map((c) => [c.target, c.kind, c.reachable])).toEqual([
      ['store', 'sqlite', true],
      ['redis', 'redis', true],
      ['postgres', 'postgresql', true],
    ]);
    expect(out.checks[0]!.version).toBe('not created yet');
    expect(out.checks[1]!.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(out.checks[2]!.version).toMatch(/^\d+(\.\d+)?/);
    // What each reference pipeline needs comes from its handlers' declared services.
    expect(Object.fromEntries(out.pipelines.map((p) => [p.pipeline, p.services]))).toEqual({
      'full-analysis-pipeline': ['postgres'],
      hello: [],
      'incremental-update-pipeline': ['postgres', 'redis'],
    });
    expect(out.checks[1]!.needed_by).toEqual(['incremental-update-pipeline']);

    const text = weft(['check', '--store', join(dir, 'weft.db')], { cwd: ROOT, env: env() });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}Redis +ok +\d+\.\d+\.\d+ +redis:\/\//m);
    expect(text.stdout).toMatch(/^ {2}PostgreSQL +ok +\d+/m);
  });

  it('weft check: an unreachable Redis that a pipeline needs -> exit 1 naming Redis', () => {
    const result = weft(['check', '--store', join(dir, 'weft.db')], {
      cwd: ROOT,
      env: { ...env(), REDIS_URL: 'redis://127.0.0.1:1' },
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^ {2}Redis +unreachable +- +redis:\/\/127\.0\.0\.1:1 +incremental-update-pipeline$/m,
    );
    expect(result.stdout).toContain('not reachable but needed: Redis');
    expect(result.stdout).not.toMatch(/needed: .*PostgreSQL/);
  });

  it('weft check: an unreachable Redis that no pipeline under PATH needs -> exit 0', () => {
    const result = weft(['check', 'pipelines/full-analysis.yaml', '--store', join(dir, 'weft.db')], {
      cwd: ROOT,
      env: { ...env(), REDIS_URL: 'redis://127.0.0.1:1' },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ {2}Redis +unreachable .* no pipeline$/m);
  });

  it('weft organism emit: writes the seeded stream and exits (its Redis connection closed)', async () => {
    const stream = `weft-cli-emit-${Date.now()}:interactions`;
    const redis = new Redis(REDIS_URL);
    try {
      const started = Date.now();
      const result = weft(
        [
          'organism',
          'emit',
          '--count',
          '500',
          '--people',
          '20',
          '--seed',
          '3',
          '--start',
          '2024-01-01',
          '--stream',
          stream,
        ],
        { cwd: dir, env: env() },
      );
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^emitted 500 interaction\\(s\\) to ${stream} in `));
      expect(result.stdout).toContain('20 people in 2 team(s)');
      // A client left open would keep the process alive until the helper's 60 s timeout.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await redis.xlen(stream)).toBe(500);
    } finally {
      await redis.del(stream);
      await redis.quit();
    }
  });

  it('weft db migrate: applies the organism schema to a fresh database, then nothing', async () => {
    const first = weft(['db', 'migrate', '--database-url', db.url], { cwd: dir });
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('organism: applied 001-organism-schema');
    expect(first.stdout).toMatch(
      /organism_metrics is (a TimescaleDB hypertable|a plain table indexed on time)/,
    );
    const second = weft(['db', 'migrate', '--format', 'json'], { cwd: dir, env: { DATABASE_URL: db.url } });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ steps: [{ step: 'organism', applied: [] }] });
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const tables = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM information_schema.tables
          WHERE table_name IN ('people', 'interaction_edges', 'interactions_daily', 'applied_stream_entries', 'organism_metrics')`,
      );
      expect(tables.rows[0]!.n).toBe(5);
    } finally {
      await client.end();
    }
    const down = weft(['db', 'migrate', '--database-url', 'postgres://postgres@127.0.0.1:1/nothing'], {
      cwd: dir,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('[SERVICE_UNAVAILABLE]');
  });
});
