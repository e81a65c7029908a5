// Issue 8 item 1 on the PostgreSQL run store. (1) Local execution: `weft run … --store postgres://`
// killed by SIGKILL at each named failure point of the incremental pipeline and at random moments
// of its run (timed from the run's start; one that missed the run is drawn again), then resumed, or
// run afresh when the run was never created (`before-run-insert-commit` must leave no run, every
// other named point must leave one) — chaos-plan.ts. (2) Workers: two `weft worker` processes take
// runs enqueued through the library; one is killed at a worker failpoint — `after-claim` (claim()
// committed, nothing run) or `after-completion-claim` (a completion committed with the next task
// leased, not run) — or at a random moment while it holds a lease, and replaced each time. Either
// way, in the end: 0 interactions lost, 0 applied twice, nothing pending in the consumer group,
// every run terminal (its `runs` row), no attempt left `running`, no hook pending, and no marked
// shell child left (every run has one, chaos-pipeline.ts; (1) checks after every kill and resume).
// Default tier: (1) each named point once + 1 random kill that landed, (2) 3 kills (each worker
// point once, 1 random); WEFT_CHAOS=full: (1) 100 runs x 500 entries, 60 named kills (each point 7
// or 8 times) + 40 random kills that landed, (2) 32 kills, each worker point 8 times, 16 random.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { emitInteractions } from '../../src/organism/index.js';
import { createDefaultHandlers } from '../../src/project/default-handlers.js';
import { loadPipeline } from '../../src/project/load-pipeline.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createPostgresTaskQueue } from '../../src/store/postgres/queue.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';
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
  groupBacklog,
  groupViolations,
  postgresStoreViolations,
  processesWith,
} from './invariants.js';
import { onLines } from '../support/lines.js';
import { count, isFullTier, seededRng } from './tier.js';
import { chaosMarker, chaosPipeline, NAMED_POINTS, WORKER_POINTS } from './chaos-pipeline.js';
import { drainStream, executeKillPlan, medianOf } from './chaos-plan.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');
const built = existsSync(join(ROOT, 'dist', 'cli', 'commands', 'worker.js'));
if (!built) console.warn('SKIPPED kill-incremental-postgres: run `npm run build` first (no dist/)');
const available = built && (await servicesAvailable('reliability: kill the incremental pipeline (postgres)'));

const TERMINAL = ['succeeded', 'failed', 'cancelled', 'skipped'];

/**
 * pg-pool's end() resolves before its clients' sockets have closed, and the DROP DATABASE … WITH
 * (FORCE) that follows may terminate one of them: the pool then emits that error, which with no
 * listener is an uncaught exception failing the file after its tests passed. Expected here.
 */
async function endPool(pool: pg.Pool | undefined): Promise<void> {
  if (!pool) return;
  pool.on('error', () => {});
  await pool.end();
}

/** Redis, a graph database, a run-store database and a directory for one scenario. */
function useScenario(name: string) {
  const prefix = `weft-chaos-${name}-${randomSuffix()}:`;
  const state = {
    prefix,
    stream: `${prefix}interactions`,
    redis: undefined as unknown as Redis,
    graph: undefined as unknown as { url: string; drop: () => Promise<void> },
    runDb: undefined as unknown as { url: string; drop: () => Promise<void> },
    graphPool: undefined as unknown as pg.Pool,
    storePool: undefined as unknown as pg.Pool,
    dir: '',
    pipelinePath: '',
    hooksLog: '',
    /** The marked shell child's `sleep` argument (chaos-pipeline.ts), set by each test. */
    marker: '',
  };
  beforeAll(async () => {
    state.redis = new Redis(REDIS_URL);
    state.graph = await createTestDatabase();
    state.runDb = await createTestDatabase();
    state.graphPool = new pg.Pool({ connectionString: state.graph.url, max: 1 });
    state.storePool = new pg.Pool({ connectionString: state.runDb.url, max: 1 });
    state.dir = mkdtempSync(join(tmpdir(), `weft-chaos-${name}-`));
    state.hooksLog = join(state.dir, 'hooks.log');
    state.pipelinePath = join(state.dir, 'incremental-chaos.yaml');
    writeFileSync(state.pipelinePath, chaosPipeline(state.hooksLog));
  });
  afterAll(async () => {
    // A failed run may have left a marked child: do not leak it past the test.
    if (state.marker !== '') for (const pid of processesWith(state.marker)) process.kill(pid, 'SIGKILL');
    if (state.dir) rmSync(state.dir, { recursive: true, force: true });
    await endPool(state.graphPool);
    await endPool(state.storePool);
    await state.graph?.drop();
    await state.runDb?.drop();
    if (state.redis) {
      await deleteKeys(state.redis, prefix);
      await state.redis.quit();
    }
  }, 30_000);
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    NO_COLOR: '1',
    REDIS_URL,
    DATABASE_URL: state.graph.url,
    WEFT_FAILPOINT: '',
    CHAOS_SLEEP: state.marker,
    ...extra,
  });
  /** The final invariants, shared by both scenarios. */
  const violations = async (produced: [string, string[]][]) => {
    const dead = await deadLetteredIds(state.redis, `${state.stream}:dead`);
    const found = [
      ...(await graphViolations(state.graphPool, expectedGraph(produced, dead), state.stream)),
      ...(await groupViolations(state.redis, state.stream, 'weft')),
      ...(await postgresStoreViolations(state.storePool)),
      ...processesWith(state.marker).map((pid) => `orphan process ${pid} (sleep ${state.marker})`),
    ];
    const hookRuns = existsSync(state.hooksLog)
      ? readFileSync(state.hooksLog, 'utf8').split('\n').filter(Boolean)
      : [];
    const succeeded = (
      await state.storePool.query<{ id: string }>(`SELECT id FROM runs WHERE state = 'succeeded'`)
    ).rows;
    for (const run of succeeded)
      if (!hookRuns.includes(run.id)) found.push(`run ${run.id}: on_success hook never ran`);
    return {
      found,
      dead,
      succeeded: succeeded.length,
      hookRepeats: hookRuns.length - new Set(hookRuns).size,
    };
  };
  const emit = async (seed: number, total: number) => {
    const emitted = await emitInteractions({
      redis: state.redis,
      stream: state.stream,
      count: total,
      people: 60,
      seed,
      start: '2024-03-04',
      days: 14,
    });
    expect(emitted.emitted).toBe(total);
    return state.redis.xrange(state.stream, '-', '+');
  };
  return { state, env, violations, emit };
}

describe.skipIf(!available)('incremental pipeline on the PostgreSQL run store, killed locally', () => {
  const { state, env, violations, emit } = useScenario('pg-local');
  const namedKills = count(NAMED_POINTS.length, 60);
  const randomKills = count(1, 40);
  // Random kills that missed (the run finished first) are drawn again, up to this many times.
  const maxMisses = count(3, 20);
  const batch = count(50, 500);

  const weft = (args: string[]) => {
    const result = spawnSync(process.execPath, [WEFT_BIN, ...args, '--store', state.runDb.url], {
      cwd: ROOT,
      env: env(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const runArgs = () => [
    'run',
    state.pipelinePath,
    '-p',
    `batch_size=${batch}`,
    '-p',
    `stream=${state.stream}`,
  ];
  /** Read straight from the database: a weft command here would itself be the restart. */
  const query = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => {
    try {
      return (await state.storePool.query<T>(sql, params)).rows;
    } catch (error) {
      // Killed before the first migration committed: no table yet.
      if ((error as { code?: string }).code === '42P01') return [];
      throw error;
    }
  };

  it(
    'loses nothing, applies nothing twice, leaves every run terminal',
    async () => {
      const rng = seededRng('kill-incremental-postgres (local)');
      state.marker = chaosMarker(rng);
      const produce = (total: number) => emit(rng.int(1_000_000), total);
      await produce((namedKills + randomKills) * batch);

      const started = Date.now();
      const { runs, tally, killsAt, durations } = await executeKillPlan({
        rng,
        named: namedKills,
        random: randomKills,
        maxMisses,
        marker: state.marker,
        store: {
          runCount: async () =>
            (await query<{ n: number }>(`SELECT count(*)::int AS n FROM runs`))[0]?.n ?? 0,
          latestRun: async () =>
            (
              await query<{ id: string; state: string }>(
                `SELECT id, state FROM runs ORDER BY created_at DESC, id DESC LIMIT 1`,
              )
            )[0],
          hasPendingHooks: async (runId) =>
            (
              await query<{ n: number }>(
                `SELECT count(*)::int AS n FROM hooks WHERE run_id = $1 AND state = 'pending'`,
                [runId],
              )
            )[0]!.n > 0,
          runDurationMs: async (runId) => {
            const row = (
              await query<{ started: Date; finished: Date }>(
                `SELECT started_at AS started, finished_at AS finished FROM runs WHERE id = $1`,
                [runId],
              )
            )[0]!;
            return row.finished.getTime() - row.started.getTime();
          },
        },
        runArgs: [...runArgs(), '--store', state.runDb.url],
        env,
        resume: (runId) => weft(['resume', runId, '-q']),
        topUp: async () => {
          await produce(batch);
        },
      });
      const drains = await drainStream(state.redis, state.stream, () =>
        weft([...runArgs(), '--format', 'json']),
      );

      const result = await violations(await state.redis.xrange(state.stream, '-', '+'));
      console.log(
        `[reliability] kill-incremental-postgres (local): ${runs} killed runs x ${batch} entries, ` +
          `${JSON.stringify(tally)}, ${drains} drain run(s), ` +
          `kills per named point ${JSON.stringify(Object.fromEntries(killsAt))}, ` +
          `unkilled run ${medianOf(durations)} ms (median of ${durations.length}), ` +
          `${result.dead.size} dead-lettered, ${result.succeeded} runs succeeded, ` +
          `${result.hookRepeats} hook repeat(s), ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(result.found).toEqual([]);
      expect(result.dead.size).toBe(0);
      expect(tally.randomLanded).toBeGreaterThanOrEqual(randomKills);
      expect(Math.min(...killsAt.values()), 'kills at the least-hit named point').toBeGreaterThanOrEqual(
        count(1, 6),
      );
    },
    isFullTier ? 3_600_000 : 180_000,
  );
});

describe.skipIf(!available)('incremental pipeline run by `weft worker` processes, one killed', () => {
  const { state, env, violations, emit } = useScenario('pg-workers');
  // Half the kills at the worker failpoints, half at random moments of a task.
  const kills = count(3, 32);
  const batch = count(50, 200);
  const LEASE = '1000ms';
  const children = new Set<ChildProcess>();
  let store: RunStore;
  let queue: TaskQueue;

  afterAll(async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await queue?.close();
    await store?.close();
  });

  /** A `weft worker`; resolves once it has registered (its `worker:started` line). */
  const startWorker = async (failpoint: string) => {
    const child = spawn(
      process.execPath,
      [
        WEFT_BIN,
        'worker',
        '--store',
        state.runDb.url,
        '--lease',
        LEASE,
        '--grace',
        '5s',
        '--log-format',
        'json',
      ],
      { cwd: state.dir, env: env({ WEFT_FAILPOINT: failpoint }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(child);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, signal) => r(signal)));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const id = await new Promise<string>((ready, reject) => {
      const timer = setTimeout(() => reject(new Error(`weft worker did not start: ${stderr}`)), 15_000);
      const stop = onLines(child.stdout, (line) => {
        if (!line.includes('"worker:started"')) return;
        clearTimeout(timer);
        stop();
        child.stdout.resume();
        ready((JSON.parse(line) as { worker: string }).worker);
      });
      void exited.then(() => reject(new Error(`weft worker exited early: ${stderr}`)));
    });
    return { child, exited, id };
  };
  const kill = async (
    worker: { child: ChildProcess; exited: Promise<NodeJS.Signals | null> },
    signal: NodeJS.Signals = 'SIGKILL',
  ) => {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill(signal);
    await worker.exited;
    children.delete(worker.child);
  };
  /** The workers holding a task's lease (of one run, or of any). */
  const leaseOwners = async (runId?: string) =>
    new Set(
      (
        await state.storePool.query<{ owner: string }>(
          `SELECT DISTINCT lease_owner AS owner FROM queue_tasks
            WHERE state = 'leased' AND ($1::text IS NULL OR run_id = $1)`,
          [runId ?? null],
        )
      ).rows.map((r) => r.owner),
    );
  const runState = async (id: string) => (await store.getRun(id))?.state ?? 'missing';
  const waitTerminal = async (ids: readonly string[], timeoutMs: number, until = { stop: false }) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(ids.map(runState));
      if (states.every((s) => TERMINAL.includes(s))) return states;
      if (Date.now() > deadline || until.stop) return states;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it(
    'finishes every run succeeded, losing nothing and applying nothing twice',
    async () => {
      const rng = seededRng('kill-incremental-postgres (workers)');
      state.marker = chaosMarker(rng);
      store = await createPostgresStore(state.runDb.url);
      queue = await createPostgresTaskQueue(state.runDb.url);
      const loaded = await loadPipeline(state.pipelinePath, {
        registry: new HandlerRegistry(createDefaultHandlers()),
      });
      expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const plan = loaded.plan!;
      const enqueue = async () => {
        const run = await createRun(store, {
          plan,
          params: { batch_size: batch, stream: state.stream },
          trigger: 'manual',
          now: Date.now(),
        });
        expect(await queue.startRun(run.id)).toBe(true);
        return run.id;
      };
      const produced = await emit(rng.int(1_000_000), kills * batch);

      // Half the kills at the worker failpoints, taken in turn (the first round at one), the rest at
      // random moments.
      const rounds = Array.from({ length: kills }, (_, i) =>
        i % 2 === 0 ? WORKER_POINTS[(i / 2) % WORKER_POINTS.length]! : 'random',
      );
      const ids: string[] = [];
      const tally = { random: 0, randomIdle: 0 };
      const killsAt = new Map<string, number>(WORKER_POINTS.map((p) => [p, 0]));
      const started = Date.now();
      const slots = [await startWorker(''), await startWorker('')];
      for (const round of rounds) {
        if (round !== 'random') {
          // The armed worker must be the one that claims: with a healthy worker beside it, the
          // other might take the run's first task (claim()) or complete the task whose completion
          // leases the next one (complete.ts). Stop both (the healthy one cleanly), then let the
          // armed one work alone: it claims the run's first task, and its completion the second.
          await kill(slots[0]!);
          await kill(slots[1]!, 'SIGTERM');
          const victim = await startWorker(round);
          ids.push(await enqueue());
          const signal = await Promise.race([
            victim.exited,
            new Promise<'alive'>((r) => setTimeout(() => r('alive'), 15_000)),
          ]);
          expect(signal, `the armed worker did not die at ${round}`).toBe('SIGKILL');
          await kill(victim);
          killsAt.set(round, killsAt.get(round)! + 1);
          slots[0] = await startWorker('');
          slots[1] = await startWorker('');
          continue;
        }
        // A random kill lands in the middle of a task: wait (bounded) until a worker holds one of
        // this run's tasks, let it work a random moment, then kill a worker holding a lease — if
        // the run moved on and none does, the kill is idle (counted, and bounded below).
        const id = await enqueue();
        ids.push(id);
        const leaseDeadline = Date.now() + 15_000;
        while (Date.now() < leaseDeadline && (await leaseOwners(id)).size === 0)
          await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, rng.int(150)));
        const owners = await leaseOwners();
        const busy = slots.findIndex((w) => owners.has(w.id));
        const slot = busy >= 0 ? busy : rng.int(2);
        if (busy >= 0) tally.random += 1;
        else tally.randomIdle += 1;
        await kill(slots[slot]!);
        slots[slot] = await startWorker('');
      }
      const states = await waitTerminal(ids, 60_000);
      expect(states, `runs ${ids.join(', ')}`).toEqual(ids.map(() => 'succeeded'));

      // Drain what the kills left unread (a killed fetch's entries are reclaimed by a later one).
      let drains = 0;
      while ((await groupBacklog(state.redis, state.stream, 'weft')) > 0) {
        expect(drains, 'drain runs').toBeLessThan(50);
        drains += 1;
        const id = await enqueue();
        ids.push(id);
        expect(await waitTerminal([id], 30_000)).toEqual(['succeeded']);
      }
      // Hooks run after the run's final state: give the last ones time to finish.
      const hookDeadline = Date.now() + 15_000;
      while (Date.now() < hookDeadline) {
        const pending = await state.storePool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM hooks WHERE state = 'pending'`,
        );
        if (pending.rows[0]!.n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const worker of slots) await kill(worker);

      const lost = await state.storePool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM attempts WHERE state = 'lost'`,
      );
      const result = await violations(produced);
      console.log(
        `[reliability] kill-incremental-postgres (workers): ${rounds.length} rounds, ${ids.length} runs ` +
          `(${drains} to drain) x ` +
          `${batch} entries, kills per named point ${JSON.stringify(Object.fromEntries(killsAt))}, ` +
          `${JSON.stringify(tally)}, ${lost.rows[0]!.n} attempt(s) recorded lost, ` +
          `${result.dead.size} dead-lettered, ${result.hookRepeats} hook repeat(s), ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(result.found).toEqual([]);
      expect(result.dead.size).toBe(0);
      for (const point of WORKER_POINTS) expect(killsAt.get(point), point).toBeGreaterThan(0);
      // Random kills aim at a worker holding a lease; one that found none hit an idle worker.
      const randomRounds = rounds.filter((r) => r === 'random').length;
      expect(tally.random, 'random kills of a busy worker').toBeGreaterThanOrEqual(1);
      expect(tally.randomIdle, 'random kills of an idle worker').toBeLessThanOrEqual(
        Math.floor(randomRounds / 4),
      );
    },
    isFullTier ? 3_600_000 : 90_000,
  );
});
