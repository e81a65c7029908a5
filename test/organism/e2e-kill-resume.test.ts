// A real process killed by SIGKILL inside update_graph_incremental's crash windows (named failure
// points, so the window is hit every time), then `weft resume`: the graph must end up exactly as
// after an uninterrupted run, and the consumer group must have nothing pending. Runs the built CLI
// (`npm test` builds dist/ first).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitInteractions } from '../../src/organism/index.js';
import { createTestDatabase, deleteKeys, randomSuffix, REDIS_URL, servicesAvailable } from './services.js';

const available = await servicesAvailable(
  'organism e2e: kill -9 inside update_graph_incremental, then resume',
);
const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');

describe.skipIf(!available)('incremental-update-pipeline killed around its COMMIT, then resumed', () => {
  const prefix = `weft-e2e-kill-${randomSuffix()}:`;
  const stream = `${prefix}interactions`;
  let redis: Redis;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let dir: string;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    dir = mkdtempSync(join(tmpdir(), 'weft-e2e-kill-'));
  });

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await pool?.end();
    await db?.drop();
    if (redis) {
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
  });

  const weft = (args: string[], failpoint?: string) => {
    const result = spawnSync(process.execPath, [WEFT_BIN, ...args, '--store', join(dir, 'weft.db')], {
      cwd: ROOT,
      env: {
        ...process.env,
        NO_COLOR: '1',
        REDIS_URL,
        DATABASE_URL: db.url,
        WEFT_FAILPOINT: failpoint ?? '',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
  };
  const run = (failpoint?: string) =>
    weft(
      ['run', 'pipelines/incremental-update.yaml', '-p', 'batch_size=1000', '-p', `stream=${stream}`, '-q'],
      failpoint,
    );
  const latestRunId = () => {
    const listed = weft(['runs', '-n', '1', '--format', 'json']);
    expect(listed.code).toBe(0);
    const runs = JSON.parse(listed.stdout) as { id: string; state: string }[];
    return runs[0]!;
  };
  const graph = async () =>
    (
      await pool.query<{
        people: number;
        edges: number;
        interactions: number;
        weight: number;
        ledger: number;
      }>(
        `SELECT (SELECT count(*) FROM people)::int AS people,
                (SELECT count(*) FROM interaction_edges)::int AS edges,
                (SELECT coalesce(sum(count), 0) FROM interaction_edges)::int AS interactions,
                (SELECT coalesce(sum(weight_sum), 0) FROM interaction_edges) AS weight,
                (SELECT count(*) FROM applied_stream_entries)::int AS ledger`,
      )
    ).rows[0]!;
  const pendingCount = async () => Number(((await redis.xpending(stream, 'weft')) as [number])[0]);

  it('ends with exactly the counts of an uninterrupted run and nothing pending', async () => {
    const options = { redis, count: 3000, people: 80, seed: 9, start: '2024-02-05', days: 14 };
    await emitInteractions({ ...options, stream });

    // The reference, computed from the stream itself: what an uninterrupted run must produce
    // (e2e-incremental.test.ts checks that an uninterrupted run does produce exactly this).
    const entries = await redis.xrange(stream, '-', '+');
    const field = (f: string[], name: string) => f[f.indexOf(name) + 1]!;
    const expectedPeople = new Set(entries.flatMap(([, f]) => [field(f, 'source'), field(f, 'target')]));
    const expectedEdges = new Map<string, { count: number; weight: number }>();
    for (const [, f] of entries) {
      const key = `${field(f, 'source')}|${field(f, 'target')}|${field(f, 'kind')}`;
      const edge = expectedEdges.get(key) ?? { count: 0, weight: 0 };
      edge.count += 1;
      edge.weight += Number(field(f, 'weight'));
      expectedEdges.set(key, edge);
    }
    const expectedWeight = [...expectedEdges.values()].reduce((sum, e) => sum + e.weight, 0);

    // 1. Killed after the statement, before COMMIT: nothing may be applied, the batch stays pending.
    const beforeCommit = run('before-graph-commit');
    expect([beforeCommit.code, beforeCommit.signal]).toEqual([null, 'SIGKILL']);
    expect(await graph()).toMatchObject({ people: 0, interactions: 0, ledger: 0 });
    expect(await pendingCount()).toBe(1000);
    const first = latestRunId();
    // The next command finds the run's process dead and marks it interrupted.
    expect(first.state).toBe('interrupted');
    expect(weft(['resume', first.id, '-q']).code).toBe(0);
    expect(await graph()).toMatchObject({ interactions: 1000, ledger: 1000 });
    expect(await pendingCount()).toBe(0);

    // 2. Killed after COMMIT, before XACK: applied once, still pending; the resume re-applies the
    //    same batch, finds every id in the ledger, changes nothing, and acknowledges.
    const afterCommit = run('after-graph-commit');
    expect([afterCommit.code, afterCommit.signal]).toEqual([null, 'SIGKILL']);
    expect(await graph()).toMatchObject({ interactions: 2000, ledger: 2000 });
    expect(await pendingCount()).toBe(1000);
    const second = latestRunId();
    expect([second.id === first.id, second.state]).toEqual([false, 'interrupted']);
    expect(weft(['resume', second.id, '-q']).code).toBe(0);
    expect(await graph()).toMatchObject({ interactions: 2000, ledger: 2000 });
    expect(await pendingCount()).toBe(0);
    const detail = weft(['runs', second.id, '--format', 'json']);
    const tasks = (JSON.parse(detail.stdout) as { tasks: { task: string; output: unknown }[] }).tasks;
    expect(tasks.find((t) => t.task === 'update_graph_incremental')!.output).toMatchObject({
      applied: 0,
      duplicates: 1000,
    });

    // 3. Fresh runs drain the rest.
    expect(run().code).toBe(0);
    expect(run().code).toBe(0);
    expect(latestRunId().state).toBe('succeeded');

    const final = await graph();
    expect(final).toEqual({
      people: expectedPeople.size,
      edges: expectedEdges.size,
      interactions: 3000,
      weight: expectedWeight,
      ledger: 3000,
    });
    expect(await pendingCount()).toBe(0);
    // Per edge too: each interaction counted once, never twice.
    const edges = await pool.query<{ key: string; count: number; weight: number }>(
      `SELECT source || '|' || target || '|' || kind AS key, count::int AS count, weight_sum AS weight FROM interaction_edges`,
    );
    expect(Object.fromEntries(edges.rows.map((r) => [r.key, { count: r.count, weight: r.weight }]))).toEqual(
      Object.fromEntries(expectedEdges),
    );
  });
});
