// Item 8: the stream consumer (a child process calling the built fetch and update handlers from
// dist/ in a loop) killed by SIGKILL K times mid-batch, and once paused (SIGSTOP) past the reclaim
// idle time while a second consumer takes its entries over, then continued (SIGCONT): applied =
// produced exactly, the paused consumer's late write is a no-op (ledger), nothing left pending.
// Then entries delivered more than max_deliveries times go to the dead-letter stream.
// Default tier: 5,000 entries, 3 kills; WEFT_CHAOS=full: 50,000 entries, 20 kills.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitInteractions } from '../../src/organism/index.js';
import {
  createTestDatabase,
  deleteKeys,
  randomSuffix,
  REDIS_URL,
  servicesAvailable,
} from '../organism/services.js';
import {
  deadLetteredIds,
  expectedGraph,
  graphViolations,
  groupViolations,
  pendingCount,
} from './invariants.js';
import { count, isFullTier, seededRng } from './tier.js';

const available = await servicesAvailable('reliability: stream consumer killed and paused');
const ROOT = resolve(import.meta.dirname, '..', '..');

/** The consumer: fetch + update in a loop until a fetch brings nothing and nothing is pending. */
const CONSUMER = `
import { fetchInteractions } from ${JSON.stringify(join(ROOT, 'dist/organism/fetch-interactions.js'))};
import { updateGraphIncremental } from ${JSON.stringify(join(ROOT, 'dist/organism/update-graph.js'))};
import { closeOrganismConnections } from ${JSON.stringify(join(ROOT, 'dist/organism/connections.js'))};
const [stream, consumer, batch, claimIdle, maxDeliveries] = process.argv.slice(2);
const log = { debug() {}, info() {}, warn() {}, error() {}, stdout() {}, stderr() {} };
const ctx = { env: process.env, log, signal: new AbortController().signal };
let applied = 0;
for (;;) {
  const fetched = await fetchInteractions(
    { stream, group: 'weft', consumer, count: Number(batch), claim_idle: claimIdle, max_deliveries: Number(maxDeliveries) },
    ctx,
  );
  process.stdout.write('batch ' + fetched.entries.length + '\\n');
  if (process.env.CHAOS_PAUSE_AFTER_FETCH) { process.kill(process.pid, 'SIGSTOP'); delete process.env.CHAOS_PAUSE_AFTER_FETCH; }
  if (fetched.entries.length === 0 && fetched.dead_lettered === 0) break;
  const result = await updateGraphIncremental({ batch: fetched }, ctx);
  applied += result.applied;
  process.stdout.write('applied ' + result.applied + ' duplicates ' + result.duplicates + '\\n');
}
process.stdout.write('done ' + applied + '\\n');
await closeOrganismConnections();
`;

describe.skipIf(!available)('stream consumer killed mid-batch and paused past the reclaim time', () => {
  const prefix = `weft-chaos-stream-${randomSuffix()}:`;
  const stream = `${prefix}interactions`;
  let redis: Redis;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let dir: string;
  let script: string;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    dir = mkdtempSync(join(tmpdir(), 'weft-chaos-stream-'));
    script = join(dir, 'consumer.mjs');
    writeFileSync(script, CONSUMER);
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

  const consume = (
    name: string,
    options: { claimIdle?: string; maxDeliveries?: number; pause?: boolean; on?: string } = {},
  ) => {
    const child = spawn(
      process.execPath,
      [
        script,
        options.on ?? stream,
        name,
        '250',
        options.claimIdle ?? '300ms',
        String(options.maxDeliveries ?? 1000),
      ],
      {
        env: {
          ...process.env,
          REDIS_URL,
          DATABASE_URL: db.url,
          ...(options.pause ? { CHAOS_PAUSE_AFTER_FETCH: '1' } : {}),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on('exit', (code, signal) => done({ code, signal })),
    );
    return { child, exited, output: () => out };
  };
  const waitFor = async (check: () => boolean, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('waitFor: timed out');
      await sleep(5);
    }
  };

  it(
    'applies every entry exactly once through kills and a paused consumer',
    async () => {
      const rng = seededRng('stream-recovery');
      const total = count(5_000, 50_000);
      const kills = count(3, 20);
      await emitInteractions({
        redis,
        stream,
        count: total,
        people: 80,
        seed: rng.int(1_000_000),
        start: '2024-05-06',
        days: 10,
      });
      const produced = await redis.xrange(stream, '-', '+');
      const started = Date.now();

      // K kills, each after a random number of batches, mid-batch (between fetch and update, or in update).
      for (let k = 0; k < kills; k++) {
        const c = consume('c1');
        const batches = 1 + rng.int(3);
        await waitFor(
          () => (c.output().match(/^batch /gm)?.length ?? 0) >= batches || c.output().includes('done'),
        );
        await sleep(rng.int(15));
        c.child.kill('SIGKILL');
        await c.exited;
      }

      // The pause: c2 reads a batch and stops itself (SIGSTOP) holding it; c3 reclaims it after the
      // idle time and applies it; then c2 continues and applies its stale copy: a no-op.
      const paused = consume('c2', { pause: true });
      await waitFor(() => paused.output().includes('batch '));
      await waitFor(() => readState(paused.child) === 'T');
      await sleep(400); // past claim_idle (300 ms)
      const taker = consume('c3');
      const takerExit = await taker.exited;
      expect(takerExit, taker.output()).toEqual({ code: 0, signal: null });
      paused.child.kill('SIGCONT');
      const pausedExit = await paused.exited;
      expect(pausedExit, paused.output()).toEqual({ code: 0, signal: null });
      // c2's late batch was all duplicates: its first update applied nothing.
      expect(paused.output()).toMatch(/^applied 0 duplicates [1-9]\d*$/m);

      const dead = await deadLetteredIds(redis, `${stream}:dead`);
      expect(dead.size).toBe(0);
      const violations = [
        ...(await graphViolations(pool, expectedGraph(produced), stream)),
        ...(await groupViolations(redis, stream, 'weft')),
      ];
      console.log(
        `[reliability] stream-recovery: ${total} entries, ${kills} kill(s), 1 pause, ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(violations).toEqual([]);
    },
    isFullTier ? 900_000 : 90_000,
  );

  it('dead-letters an entry delivered more than max_deliveries times', async () => {
    const poison = `${prefix}poison`;
    await emitInteractions({
      redis,
      stream: poison,
      count: 20,
      people: 10,
      seed: 5,
      start: '2024-05-06',
      days: 2,
    });
    const produced = await redis.xrange(poison, '-', '+');
    // Read all 20 and never acknowledge (a consumer that crashes every time), 3 times over.
    await redis.xgroup('CREATE', poison, 'weft', '0', 'MKSTREAM');
    await redis.xreadgroup('GROUP', 'weft', 'crasher', 'COUNT', 100, 'STREAMS', poison, '>');
    for (let i = 0; i < 2; i++) {
      await sleep(60);
      await redis.xautoclaim(poison, 'weft', 'crasher', 50, '0-0', 'COUNT', 100);
    }
    await sleep(60);
    // Delivered 3 times; with max_deliveries 2, the next reclaim (the 4th delivery) dead-letters them.
    const c = consume('c4', { on: poison, claimIdle: '50ms', maxDeliveries: 2 });
    expect(await c.exited, c.output()).toEqual({ code: 0, signal: null });
    const dead = await deadLetteredIds(redis, `${poison}:dead`);
    expect(dead).toEqual(new Set(produced.map(([id]) => id)));
    expect(await pendingCount(redis, poison, 'weft')).toBe(0);
    const applied = (
      await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM applied_stream_entries WHERE stream = $1`,
        [poison],
      )
    ).rows[0]!.n;
    expect(applied).toBe(0);
  }, 30_000);
});

/** The process state letter from /proc (T = stopped). */
function readState(child: ChildProcess): string {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '?';
  }
}
