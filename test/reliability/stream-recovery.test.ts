// Item 8: the stream consumer (a child process calling the built fetch and update handlers from
// dist/ in a loop) killed by SIGKILL K times mid-batch, and once paused (SIGSTOP) past the reclaim
// idle time while a second consumer takes its entries over, then continued (SIGCONT): applied =
// produced exactly, the paused consumer's late write is a no-op (ledger), nothing left pending.
// Each kill lands while the killed consumer holds entries it has not acknowledged (XPENDING for it
// is > 0 after it died). Then the max_deliveries limit: an entry delivered exactly max_deliveries
// times is applied, one delivered once more goes to the dead-letter stream.
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
  process.stdout.write('batch ' + fetched.entries.length + ' dead ' + fetched.dead_lettered + '\\n');
  // A consumer that dies after reading, before applying or acknowledging anything.
  if (process.env.CHAOS_FETCH_ONLY) break;
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
    options: {
      claimIdle?: string;
      maxDeliveries?: number;
      pause?: boolean;
      fetchOnly?: boolean;
      on?: string;
    } = {},
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
          ...(options.fetchOnly ? { CHAOS_FETCH_ONLY: '1' } : {}),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on('close', (code, signal) => done({ code, signal })),
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

      // K kills, each after a random number of batches, mid-batch (between fetch and update, or in
      // update). Each killed consumer has a name of its own, so the entries pending for it after
      // it died are the ones it held when killed: proof that the kill came mid-batch.
      const heldAtKill: number[] = [];
      for (let k = 0; k < kills; k++) {
        const name = `killed-${k}`;
        const c = consume(name);
        let exited = false;
        void c.exited.then(() => (exited = true));
        const batches = 1 + rng.int(3);
        await waitFor(
          () => (c.output().match(/^batch /gm)?.length ?? 0) >= batches || c.output().includes('done'),
        );
        await sleep(rng.int(15));
        // Frozen (SIGSTOP), what it holds cannot change; between an acknowledgement and its next
        // read it holds nothing, so it is let go on (SIGCONT) and frozen again a moment later.
        for (let tries = 0; tries < 200 && !exited; tries++) {
          c.child.kill('SIGSTOP');
          await waitFor(() => exited || readState(c.child) === 'T');
          if ((await pendingFor(redis, stream, name)) > 0) break;
          c.child.kill('SIGCONT');
          await sleep(1 + rng.int(5));
        }
        c.child.kill('SIGKILL');
        expect(await c.exited, c.output()).toEqual({ code: null, signal: 'SIGKILL' });
        const held = await pendingFor(redis, stream, name);
        expect(held, `kill ${k}: ${name} held no unacknowledged entries when killed`).toBeGreaterThan(0);
        heldAtKill.push(held);
      }

      // The pause: c2 reads a batch and stops itself (SIGSTOP) holding it; c3 reclaims it after the
      // idle time and applies it; then c2 continues and applies its stale copy: a no-op.
      const paused = consume('c2', { pause: true });
      await waitFor(() => /^batch \d+ dead \d+$/m.test(paused.output()));
      await waitFor(() => readState(paused.child) === 'T');
      const staleBatch = Number(/^batch (\d+)/m.exec(paused.output())![1]);
      expect(staleBatch, 'the paused consumer held a batch').toBeGreaterThan(0);
      await sleep(400); // past claim_idle (300 ms)
      const taker = consume('c3');
      const takerExit = await taker.exited;
      expect(takerExit, taker.output()).toEqual({ code: 0, signal: null });
      const beforeContinue = paused.output().length;
      paused.child.kill('SIGCONT');
      const pausedExit = await paused.exited;
      expect(pausedExit, paused.output()).toEqual({ code: 0, signal: null });
      // c2's late write (the first update after SIGCONT, of the batch it held) was all duplicates.
      const lateWrite = paused
        .output()
        .slice(beforeContinue)
        .split('\n')
        .find((line) => line.startsWith('applied '));
      expect(lateWrite, paused.output()).toBe(`applied 0 duplicates ${staleBatch}`);

      const dead = await deadLetteredIds(redis, `${stream}:dead`);
      expect(dead.size).toBe(0);
      const violations = [
        ...(await graphViolations(pool, expectedGraph(produced), stream)),
        ...(await groupViolations(redis, stream, 'weft')),
      ];
      console.log(
        `[reliability] stream-recovery: ${total} entries, ${kills} kill(s) holding [${heldAtKill.join(', ')}] entries, ` +
          `1 pause holding ${staleBatch}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
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
    expect(c.output()).toMatch(/^batch 0 dead 20$/m);
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

  // The rule (src/organism/fetch-interactions.ts): an entry is dead-lettered when the delivery
  // that reclaims it is number max_deliveries + 1; up to max_deliveries it is handed out.
  it('applies an entry delivered exactly max_deliveries times and dead-letters it at one delivery more', async () => {
    const maxDeliveries = 3;
    /** 20 entries on a stream of their own, read and reclaimed (never acknowledged) `times` times. */
    const deliveredBefore = async (name: string, times: number) => {
      const on = `${prefix}${name}`;
      await emitInteractions({
        redis,
        stream: on,
        count: 20,
        people: 10,
        seed: 7,
        start: '2024-05-06',
        days: 2,
      });
      await redis.xgroup('CREATE', on, 'weft', '0', 'MKSTREAM');
      await redis.xreadgroup('GROUP', 'weft', 'crasher', 'COUNT', 100, 'STREAMS', on, '>');
      for (let i = 1; i < times; i++) {
        await sleep(60);
        await redis.xautoclaim(on, 'weft', 'crasher', 50, '0-0', 'COUNT', 100);
      }
      await sleep(60); // past claim_idle (50 ms): the consumer reclaims them all
      const ids = (await redis.xrange(on, '-', '+')).map(([id]) => id);
      expect(await deliveryCounts(redis, on)).toEqual(ids.map(() => times));
      return { on, ids };
    };
    const appliedOn = async (on: string) =>
      (
        await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM applied_stream_entries WHERE stream = $1`,
          [on],
        )
      ).rows[0]!.n;

    // Delivered max_deliveries - 1 times; the consumer's reclaim is delivery max_deliveries: applied.
    const atLimit = await deliveredBefore('at-limit', maxDeliveries - 1);
    const applier = consume('applier', { on: atLimit.on, claimIdle: '50ms', maxDeliveries });
    expect(await applier.exited, applier.output()).toEqual({ code: 0, signal: null });
    expect(applier.output()).toMatch(/^batch 20 dead 0$/m);
    expect(await appliedOn(atLimit.on)).toBe(20);
    expect((await deadLetteredIds(redis, `${atLimit.on}:dead`)).size).toBe(0);
    expect(await pendingCount(redis, atLimit.on, 'weft')).toBe(0);

    // The same delivery handed to a consumer that dies before applying it (still not dead-
    // lettered, now delivered max_deliveries times); the next reclaim is one delivery more.
    const past = await deliveredBefore('past-limit', maxDeliveries - 1);
    const dies = consume('dies', { on: past.on, claimIdle: '50ms', maxDeliveries, fetchOnly: true });
    expect(await dies.exited, dies.output()).toEqual({ code: 0, signal: null });
    expect(dies.output()).toMatch(/^batch 20 dead 0$/m);
    expect(await deliveryCounts(redis, past.on)).toEqual(past.ids.map(() => maxDeliveries));
    expect((await deadLetteredIds(redis, `${past.on}:dead`)).size).toBe(0);
    await sleep(60);
    const next = consume('next', { on: past.on, claimIdle: '50ms', maxDeliveries });
    expect(await next.exited, next.output()).toEqual({ code: 0, signal: null });
    expect(next.output()).toMatch(/^batch 0 dead 20$/m);
    expect(await deadLetteredIds(redis, `${past.on}:dead`)).toEqual(new Set(past.ids));
    expect(await appliedOn(past.on)).toBe(0);
    expect(await pendingCount(redis, past.on, 'weft')).toBe(0);
  }, 30_000);
});

/** How many entries of the group `weft` are pending for one consumer (XPENDING's summary). */
async function pendingFor(redis: Redis, stream: string, consumer: string): Promise<number> {
  const summary = (await redis.xpending(stream, 'weft')) as [
    number,
    string,
    string,
    [string, string][] | null,
  ];
  return Number(summary[3]?.find(([name]) => name === consumer)?.[1] ?? 0);
}

/** Each pending entry's delivery count, in id order (XPENDING's extended form). */
async function deliveryCounts(redis: Redis, stream: string): Promise<number[]> {
  const rows = (await redis.xpending(stream, 'weft', '-', '+', 1000)) as [string, string, number, number][];
  return rows.map(([, , , deliveries]) => Number(deliveries));
}

/** The process state letter from /proc (T = stopped). */
function readState(child: ChildProcess): string {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '?';
  }
}
