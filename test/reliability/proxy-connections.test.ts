// Item 14: connections dropped. The reference incremental pipeline runs in-process against
// PostgreSQL and Redis reached through TCP proxies that cut every connection, refuse new ones for a
// while (CI 3 s, full 30 s) in the middle of the drain, then blip a few times. Runs fail and are
// retried; the outage outlasts a run's retry budget, so runs caught in it fail, and once the
// network is back each failed run is resumed (as `weft resume` does) and must succeed. The stream
// still drains, and the stores show 0 lost, 0 applied twice, nothing pending, every run
// succeeded, with no unhandled rejection or uncaught exception in the process. Then one
// run of the real CLI with a blip in its middle: it exits 0 or 1 (never crashes) and a following
// run drains the rest.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseDocument } from 'yaml';
import type { Plan } from '../../src/compile/plan.js';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { prepareResume } from '../../src/engine/resume.js';
import { REDIS_COMMAND_TIMEOUT_MS } from '../../src/organism/connections.js';
import {
  closeOrganismConnections,
  emitInteractions,
  fetchInteractions,
  getPool,
  getRedis,
} from '../../src/organism/index.js';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import {
  createContext,
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
  sqliteStoreViolations,
} from './invariants.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { count, isFullTier, seededRng } from './tier.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('tcp proxy', () => {
  let echo: Server;
  let echoPort: number;
  let proxy: TcpProxy;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    echo = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
    proxy = await startTcpProxy({ host: '127.0.0.1', port: echoPort });
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await proxy?.close();
    await new Promise((r) => echo?.close(r));
  });

  /** Connects through the proxy; resolves with what happened: the echo of `text`, or how it ended. */
  const exchange = (text: string) =>
    new Promise<{ echoed: string; ended: 'close' | 'error'; code?: string }>((done) => {
      const socket = connect({ host: '127.0.0.1', port: proxy.port });
      sockets.push(socket);
      let echoed = '';
      socket.on('data', (chunk: Buffer) => {
        echoed += chunk.toString();
        if (echoed === text) socket.end();
      });
      socket.on('error', (error: NodeJS.ErrnoException) =>
        done({ echoed, ended: 'error', code: error.code! }),
      );
      socket.on('close', () => done({ echoed, ended: 'close' }));
      socket.write(text);
    });

  it('forwards, cuts, refuses (reset and closed), heals on time, blips, and counts', async () => {
    expect(await exchange('hello')).toEqual({ echoed: 'hello', ended: 'close' });
    expect(proxy.stats.accepted).toBe(1);

    // An open connection is cut: the client sees its socket reset.
    const open = connect({ host: '127.0.0.1', port: proxy.port });
    sockets.push(open);
    const openEnded = new Promise<string>((done) => {
      open.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
      open.on('close', () => done('close'));
    });
    open.write('x');
    await until('the pair to open', () => proxy.stats.open === 1);
    expect(proxy.cutAll()).toBe(1);
    expect(await openEnded).toBe('ECONNRESET');
    expect(proxy.stats).toMatchObject({ cut: 1, open: 0, cuts: 1 });

    await proxy.refuse();
    expect(proxy.isRefusing).toBe(true);
    const reset = await exchange('no');
    expect(reset).toMatchObject({ echoed: '', ended: 'error', code: 'ECONNRESET' });
    expect(proxy.stats.refused).toBe(1);

    await proxy.refuse(undefined, 'closed');
    expect(await exchange('no')).toMatchObject({ echoed: '', ended: 'error', code: 'ECONNREFUSED' });
    await proxy.heal();
    expect(await exchange('again')).toEqual({ echoed: 'again', ended: 'close' });

    // A timed refusal heals by itself.
    const started = Date.now();
    await proxy.refuse(150, 'closed');
    expect((await exchange('no')).code).toBe('ECONNREFUSED');
    await until('the timed heal', () => !proxy.isRefusing);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await exchange('healed')).toEqual({ echoed: 'healed', ended: 'close' });

    // A blip cuts what is open and accepts again at once, even while refusing.
    const second = connect({ host: '127.0.0.1', port: proxy.port });
    sockets.push(second);
    second.on('error', () => undefined);
    second.write('y');
    await until('the second pair', () => proxy.stats.open === 1);
    await proxy.refuse();
    expect(await proxy.blip()).toBe(1);
    expect(proxy.isRefusing).toBe(false);
    expect(await exchange('after blip')).toEqual({ echoed: 'after blip', ended: 'close' });
    expect(proxy.stats).toMatchObject({ accepted: 6, refused: 1, cut: 2, cuts: 2, open: 0 });
  });

  it('rewrites a URL to point at the proxy', () => {
    expect(proxy.url('postgres://postgres@127.0.0.1:5432/db_x?sslmode=disable')).toBe(
      `postgres://postgres@127.0.0.1:${proxy.port}/db_x?sslmode=disable`,
    );
    expect(proxy.url('redis://localhost:6379/2')).toBe(`redis://127.0.0.1:${proxy.port}/2`);
  });
});

const available = await servicesAvailable('reliability: connections dropped');

/**
 * The reference pipeline with what a chaos test needs: short retries (full tier: tasks 5 x 200 ms,
 * the run 2 x 200 ms; CI: no retries), a short claim_idle (the next run reclaims what a failed one
 * read) and no webhook hook. In both tiers a run's whole retry budget is shorter than the outage,
 * so the runs it catches fail and must be resumed. CI has none because its outage is 3 s: an attempt
 * waits out up to ~1.5 s on a dead connection, so even one retry could outlast it.
 */
function proxyPipeline(): string {
  const doc = parseDocument(readFileSync(join(ROOT, 'pipelines', 'incremental-update.yaml'), 'utf8'));
  doc.setIn(['retries'], count(0, 2));
  doc.setIn(['retry_delay'], '200ms');
  doc.deleteIn(['on_failure']);
  for (const task of ['fetch_interactions', 'update_graph_incremental']) {
    doc.setIn(['tasks', task, 'retries'], count(0, 5));
    doc.setIn(['tasks', task, 'retry_delay'], '200ms');
  }
  doc.setIn(['tasks', 'fetch_interactions', 'with', 'claim_idle'], '100ms');
  return doc.toString();
}

interface RunTally {
  runs: number;
  succeeded: number;
  failed: number;
  /** Runs that needed a whole-run retry (run.attempt > 1). */
  runRetried: number;
  /** Runs that failed, then were resumed after the outage and succeeded. */
  resumed: number;
  /** Task attempts that failed (each one retried, or the last of a failed run). */
  failedAttempts: number;
  /** The longest task attempt, ms: a hung client shows here. */
  longestAttemptMs: number;
}

describe.skipIf(!available)('connections dropped under the incremental pipeline', () => {
  const prefix = `weft-chaos-proxy-${randomSuffix()}:`;
  const stream = `${prefix}interactions`;
  const total = count(3000, 30_000);
  const batch = count(40, 200);
  const outageMs = count(3000, 30_000);
  const blips = count(4, 12);
  let redis: Redis;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let redisProxy: TcpProxy;
  let pgProxy: TcpProxy;
  let dir: string;
  let store: RunStore | undefined;
  let plan: Plan;
  let env: Record<string, string | undefined>;
  const problems: string[] = [];
  const onRejection = (reason: unknown) => problems.push(`unhandledRejection: ${String(reason)}`);
  const onException = (error: unknown) => problems.push(`uncaughtException: ${String(error)}`);

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    redis = new Redis(REDIS_URL);
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const redisTarget = new URL(REDIS_URL);
    const pgTarget = new URL(db.url);
    redisProxy = await startTcpProxy({ host: redisTarget.hostname, port: Number(redisTarget.port || 6379) });
    pgProxy = await startTcpProxy({ host: pgTarget.hostname, port: Number(pgTarget.port || 5432) });
    env = {
      ...process.env,
      NO_COLOR: '1',
      REDIS_URL: redisProxy.url(REDIS_URL),
      DATABASE_URL: pgProxy.url(db.url),
    };
    dir = mkdtempSync(join(tmpdir(), 'weft-chaos-proxy-'));
    writeFileSync(join(dir, 'incremental-proxy.yaml'), proxyPipeline());
    const loaded = loadPipelineText('incremental-proxy.yaml', proxyPipeline(), {
      registry: createDefaultRegistry(),
    });
    expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    plan = loaded.plan!;
  });

  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    await store?.close();
    await closeOrganismConnections();
    await redisProxy?.close();
    await pgProxy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await pool?.end();
    await db?.drop();
    if (redis) {
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
  });

  const ledgerCount = async () =>
    (
      await pool
        .query<{
          n: number;
        }>(`SELECT count(*)::int AS n FROM applied_stream_entries WHERE stream = $1`, [stream])
        .catch(() => ({ rows: [{ n: 0 }] }))
    ).rows[0]!.n;

  /** One run in-process; returns its final state and how many entries its fetch read. */
  async function runOnce(tally: RunTally): Promise<{ id: string; state: string; fetched: number | null }> {
    const registry = createDefaultRegistry();
    const run = await createRun(store!, {
      plan,
      params: { batch_size: batch, stream },
      trigger: 'manual',
      now: Date.now(),
      owner: `test:${process.pid}`,
    });
    const done = await executeRun(run.id, { store: store!, registry, owner: `test:${process.pid}`, env });
    tally.runs += 1;
    if (done.state === 'succeeded') tally.succeeded += 1;
    else tally.failed += 1;
    if (done.attempt > 1) tally.runRetried += 1;
    for (const attempt of await store!.getAttempts(run.id)) {
      if (attempt.state !== 'succeeded') tally.failedAttempts += 1;
      if (attempt.finishedAt) {
        const ms = Date.parse(attempt.finishedAt) - Date.parse(attempt.startedAt);
        tally.longestAttemptMs = Math.max(tally.longestAttemptMs, ms);
      }
    }
    const fetch = (await store!.getTaskRuns(run.id)).find((t) => t.task === 'fetch_interactions');
    const output = fetch?.state === 'succeeded' ? (fetch.output as { entries?: unknown[] } | null) : null;
    return { id: run.id, state: done.state, fetched: output?.entries?.length ?? null };
  }

  // The failure modes the chaos run can only hit by chance, one at a time and on purpose.
  describe('the cached clients', () => {
    // One proxy per service for these tests (the chaos run below has its own).
    let pgSide: TcpProxy;
    let proxy: TcpProxy;
    beforeAll(async () => {
      const pgTarget = new URL(db.url);
      pgSide = await startTcpProxy({ host: pgTarget.hostname, port: Number(pgTarget.port || 5432) });
      const redisTarget = new URL(REDIS_URL);
      proxy = await startTcpProxy({ host: redisTarget.hostname, port: Number(redisTarget.port || 6379) });
    });
    afterAll(async () => {
      await pgSide?.close();
      await proxy?.close();
    });

    it('a checked-out PostgreSQL client losing its connection mid-query rejects the query, crashes nothing, and is not handed out again', async () => {
      const url = pgSide.url(db.url);
      const cached = getPool(url);
      const client = await cached.connect();
      const before = problems.length;
      const query = client.query('SELECT pg_sleep(5)').then(
        () => 'completed',
        (error: Error) => error.message,
      );
      await sleep(100);
      const started = Date.now();
      expect(pgSide.cutAll()).toBe(1);
      expect(await query).toMatch(/terminated|ECONNRESET/);
      expect(Date.now() - started).toBeLessThan(1000);
      // Without an 'error' listener on the checked-out client, pg's 'error' event is an uncaughtException.
      await sleep(50);
      expect(problems.slice(before)).toEqual([]);
      client.release();
      expect(cached.totalCount).toBe(0);
      // The next checkout is a fresh, working connection.
      expect((await cached.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n).toBe(1);
      expect(pgSide.stats.accepted).toBe(2);
    });

    it(`a Redis command in flight when the connection drops fails within ${REDIS_COMMAND_TIMEOUT_MS} ms, not when the server returns`, async () => {
      await proxy.heal();
      const client = getRedis(proxy.url(REDIS_URL));
      expect(await client.ping()).toBe('PONG');
      const started = Date.now();
      // Blocks 1 s at the server: surely in flight when the cut comes.
      const inFlight = client.xread('BLOCK', 1000, 'STREAMS', `${prefix}nothing`, '$').then(
        () => 'answered',
        (error: Error) => error.message,
      );
      await sleep(100);
      proxy.cutAll();
      // Refused for longer than the timeout. 'hangup' (TCP accepted, then closed) is the mode that
      // hangs: each reconnect gets as far as "connected", so ioredis keeps the command to resend
      // once the server is ready again instead of failing it with the offline queue.
      await proxy.refuse(REDIS_COMMAND_TIMEOUT_MS + 4000, 'hangup');
      // A command issued once the client knows it is offline fails after a few reconnect attempts.
      await until('the client to notice', () => client.status !== 'ready');
      const issued = Date.now();
      await expect(client.get(`${prefix}x`)).rejects.toThrow(/max retries/i);
      expect(Date.now() - issued).toBeLessThan(2000);
      expect(await inFlight).toMatch(/timed out/i);
      expect(Date.now() - started).toBeLessThan(REDIS_COMMAND_TIMEOUT_MS + 1500);
      await proxy.heal();
      await until('the client to reconnect', () => client.status === 'ready', 5000);
      expect(await client.ping()).toBe('PONG');
      expect(problems).toEqual([]);
    }, 20_000);

    it('a blocking read longer than the command timeout, cut in its middle, reconnects quietly and waits its block out', async () => {
      await proxy.heal();
      const errors = vi.spyOn(console, 'error');
      try {
        const blockMs = REDIS_COMMAND_TIMEOUT_MS + 500;
        const started = Date.now();
        const read = fetchInteractions(
          { stream: `${prefix}quiet`, block: `${blockMs}ms`, redis_url: proxy.url(REDIS_URL) },
          createContext({}),
        );
        await sleep(300);
        expect(await proxy.blip()).toBeGreaterThan(0);
        const batch = await read;
        expect(batch.entries).toEqual([]);
        // The block restarted on the new connection; no "Command timed out" at 5 s.
        expect(Date.now() - started).toBeGreaterThanOrEqual(blockMs);
        // duplicate() has no listeners of its own: ioredis would print "Unhandled error event".
        expect(
          errors.mock.calls.map((call) => call.join(' ')).filter((line) => /ioredis|unhandled/i.test(line)),
        ).toEqual([]);
      } finally {
        errors.mockRestore();
      }
    }, 20_000);

    it('a Redis client that ended is replaced, not handed out again', async () => {
      await proxy.heal();
      const url = proxy.url(REDIS_URL);
      const first = getRedis(url);
      expect(await first.ping()).toBe('PONG');
      await first.quit();
      await until('the client to end', () => first.status === 'end');
      const second = getRedis(url);
      expect(second).not.toBe(first);
      expect(await second.ping()).toBe('PONG');
    });
  });

  it(
    'drains the stream exactly once while both connections are cut, refused and blipped',
    async () => {
      const rng = seededRng('proxy-connections');
      store = createSqliteStore(join(dir, 'weft.db'));
      const emitted = await emitInteractions({
        redis,
        stream,
        count: total,
        people: 60,
        seed: rng.int(1_000_000),
        start: '2024-03-04',
        days: 14,
      });
      expect(emitted.emitted).toBe(total);

      // The chaos, keyed to progress (the ledger, read directly) so that it lands mid-drain.
      const events: string[] = [];
      const started = Date.now();
      const stamp = () => `${((Date.now() - started) / 1000).toFixed(2)}s`;
      const waitForProgress = async (fraction: number) => {
        while ((await ledgerCount()) < total * fraction) await sleep(15);
        await sleep(rng.int(40));
      };
      const mode = rng.pick(['reset', 'closed', 'hangup'] as const);
      const chaos = (async () => {
        await waitForProgress(0.3);
        const cut = redisProxy.cutAll() + pgProxy.cutAll();
        await Promise.all([redisProxy.refuse(outageMs, mode), pgProxy.refuse(outageMs, mode)]);
        events.push(`${stamp()} outage: cut ${cut} connection(s), refusing (${mode}) for ${outageMs} ms`);
        await until(
          'the outage to end',
          () => !redisProxy.isRefusing && !pgProxy.isRefusing,
          outageMs + 2000,
        );
        events.push(`${stamp()} healed`);
        for (let i = 0; i < blips; i++) {
          await waitForProgress(0.5 + (0.45 * i) / blips);
          const which = rng.pick(['redis', 'postgres', 'both'] as const);
          let n = 0;
          if (which !== 'postgres') n += await redisProxy.blip();
          if (which !== 'redis') n += await pgProxy.blip();
          events.push(`${stamp()} blip ${which}: cut ${n}`);
        }
      })();
      let chaosDone = false;
      void chaos.finally(() => (chaosDone = true));

      const tally: RunTally = {
        runs: 0,
        succeeded: 0,
        failed: 0,
        runRetried: 0,
        resumed: 0,
        failedAttempts: 0,
        longestAttemptMs: 0,
      };
      const maxRuns = Math.ceil(total / batch) * 4 + 50;
      const failedRuns: string[] = [];
      for (;;) {
        expect(tally.runs, `no drain after ${tally.runs} runs; ${events.join('; ')}`).toBeLessThan(maxRuns);
        const { id, state, fetched } = await runOnce(tally);
        if (state !== 'succeeded') failedRuns.push(id);
        if (
          chaosDone &&
          state === 'succeeded' &&
          fetched === 0 &&
          (await pendingCount(redis, stream, 'weft')) === 0
        )
          break;
      }
      await chaos;

      // The network is back: every run that failed is resumed (what `weft resume RUN` does) and
      // succeeds; a resumed update re-applies what its fetch read, which the ledger makes a no-op.
      for (const id of failedRuns) {
        const failedRun = (await store.getRun(id))!;
        expect(failedRun.state, id).toBe('failed');
        await prepareResume(store, id, { now: Date.now() });
        const resumed = await executeRun(id, {
          store,
          registry: createDefaultRegistry(),
          owner: `test:${process.pid}`,
          env,
        });
        expect(resumed.state, `resumed ${id}`).toBe('succeeded');
        tally.resumed += 1;
      }
      for (const run of await store.listRuns()) expect(run.state, run.id).toBe('succeeded');
      const seconds = (Date.now() - started) / 1000;

      const produced = await redis.xrange(stream, '-', '+');
      const dead = await deadLetteredIds(redis, `${stream}:dead`);
      await store.flush();
      const violations = [
        ...(await graphViolations(pool, expectedGraph(produced, dead), stream)),
        ...(await groupViolations(redis, stream, 'weft')),
        ...sqliteStoreViolations(join(dir, 'weft.db')),
        ...problems,
      ];
      console.log(
        `[reliability] proxy-connections: ${total} entries, batch ${batch}, ${JSON.stringify(tally)}, ` +
          `${dead.size} dead-lettered, ${seconds.toFixed(1)} s; redis proxy ${JSON.stringify(redisProxy.stats)}, ` +
          `postgres proxy ${JSON.stringify(pgProxy.stats)}\n  ${events.join('\n  ')}`,
      );
      expect(violations).toEqual([]);
      expect(dead.size).toBe(0);
      // The chaos did bite. Refused connections fail attempts, and the outage (longer than a run's
      // retries) fails runs that only resuming brings through. A `hangup` outage shorter than the
      // Redis command timeout may instead be ridden out: each reconnect gets as far as
      // "connected", so ioredis holds the command in flight and resends it once healed — then an
      // attempt spans the outage.
      if (mode === 'hangup' && outageMs < REDIS_COMMAND_TIMEOUT_MS) {
        expect(
          tally.failedAttempts > 0 || tally.longestAttemptMs >= outageMs,
          `an attempt failed or waited the outage out: ${JSON.stringify(tally)}`,
        ).toBe(true);
      } else {
        expect(tally.failedAttempts).toBeGreaterThan(0);
        expect(tally.failed, 'runs failed by the outage').toBeGreaterThan(0);
      }
      expect(tally.resumed).toBe(tally.failed);
      expect(redisProxy.stats.cut + pgProxy.stats.cut).toBeGreaterThan(0);
      // No attempt hung on a dead connection for long after the network came back.
      expect(tally.longestAttemptMs).toBeLessThan(outageMs + 12_000);
    },
    isFullTier ? 900_000 : 120_000,
  );
  it(
    'a CLI run blipped in its middle exits 0 or 1 without crashing, and the next run drains the rest',
    async () => {
      const rng = seededRng('proxy-connections-cli');
      const extra = count(1200, 6000);
      await emitInteractions({
        redis,
        stream,
        count: extra,
        people: 60,
        seed: rng.int(1_000_000),
        start: '2024-03-18',
        days: 7,
      });
      const cliStore = join(dir, 'cli.db');
      const pipelinePath = join(dir, 'incremental-proxy.yaml');
      const cliRun = (batchSize: number) => {
        const child = spawn(
          process.execPath,
          [
            WEFT_BIN,
            'run',
            pipelinePath,
            '-p',
            `batch_size=${batchSize}`,
            '-p',
            `stream=${stream}`,
            '--format',
            'json',
            '--store',
            cliStore,
          ],
          { cwd: ROOT, env: { ...env, WEFT_FAILPOINT: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const exited = new Promise<{
          code: number | null;
          signal: NodeJS.Signals | null;
          stdout: string;
          stderr: string;
        }>((done) => child.on('close', (code, signal) => done({ code, signal, stdout, stderr })));
        return { child, exited };
      };
      const fetchedBy = (stdout: string) =>
        (
          JSON.parse(stdout) as { tasks: { task: string; output: { entries?: unknown[] } | null }[] }
        ).tasks.find((t) => t.task === 'fetch_interactions')?.output?.entries?.length ?? null;

      // The blip comes once the child opened its PostgreSQL connection (update_graph_incremental
      // migrating, then applying), a few random milliseconds in.
      const accepted = pgProxy.stats.accepted;
      const first = cliRun(Math.ceil(extra * 0.6));
      let blipped = -1;
      let running = true;
      void first.exited.then(() => (running = false));
      while (running && pgProxy.stats.accepted === accepted) await sleep(2);
      if (running) {
        await sleep(rng.int(25));
        blipped = (await redisProxy.blip()) + (await pgProxy.blip());
      }
      const outcome = await first.exited;
      const cliRuns = createSqliteStore(cliStore, { readonly: true });
      const blippedRun = (await cliRuns.listRuns())[0];
      const attempts = blippedRun ? await cliRuns.getAttempts(blippedRun.id) : [];
      await cliRuns.close();
      const failedAttempts = attempts
        .filter((a) => a.state !== 'succeeded')
        .map((a) => `${a.task}#${a.attempt}`);
      console.log(
        `[reliability] proxy-connections cli: exit ${outcome.code}, blip cut ${blipped} connection(s), ` +
          `run ${blippedRun?.state ?? '?'} (attempt ${blippedRun?.attempt ?? '?'}), failed attempts [${failedAttempts.join(', ')}]` +
          (outcome.code === 0 ? '' : `\n${outcome.stderr.slice(-2000)}`),
      );
      expect(blipped, 'the run ended before its PostgreSQL connection was blipped').toBeGreaterThan(0);
      expect(outcome.signal).toBeNull();
      expect([0, 1], outcome.stderr).toContain(outcome.code);
      expect(outcome.stderr).not.toMatch(/unhandled|uncaught/i);
      // A stack trace is printed only for a bug in weft itself.
      expect(outcome.stderr).not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/);

      // Undisturbed runs drain the rest (and what the blipped run left pending, if it failed).
      const drains: number[] = [];
      for (let i = 0; i < 10; i++) {
        const next = await cliRun(extra).exited;
        expect(next.code, next.stderr).toBe(0);
        const fetched = fetchedBy(next.stdout);
        drains.push(fetched ?? -1);
        if (fetched === 0 && (await pendingCount(redis, stream, 'weft')) === 0) break;
      }
      expect(drains.at(-1), `drain runs fetched ${drains.join(', ')}`).toBe(0);
      // The blipped run (exit 0 or 1) left at least 40 % for the runs after it.
      expect(drains[0]).toBeGreaterThan(0);

      const produced = await redis.xrange(stream, '-', '+');
      const dead = await deadLetteredIds(redis, `${stream}:dead`);
      const violations = [
        ...(await graphViolations(pool, expectedGraph(produced, dead), stream)),
        ...(await groupViolations(redis, stream, 'weft')),
        ...sqliteStoreViolations(cliStore),
        ...problems,
      ];
      expect(violations).toEqual([]);
      expect(dead.size).toBe(0);
      expect(produced.length).toBe(total + extra);
    },
    isFullTier ? 300_000 : 120_000,
  );
});
