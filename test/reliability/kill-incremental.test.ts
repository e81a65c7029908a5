// Item 1: the reference incremental pipeline, run by the real CLI and killed by SIGKILL at every
// named failure point and at random moments of its run; each killed run is resumed or, when it was
// never created (killed before its run's COMMIT: `before-run-insert-commit` must leave no run,
// every other named point must leave one), run afresh. Afterwards the stores must show 0
// interactions lost, 0 applied twice, nothing pending in the consumer group, every run terminal, no
// hook pending, and `PRAGMA integrity_check` ok after every restart; after every kill and its
// resume no marked shell child may survive (chaos-pipeline.ts: every run has one, so a random kill
// can land inside it too). A random kill is timed from the run's start and counts only when it
// left the run unfinished; one that missed is drawn again. Default tier: each named point once, 1
// random kill that landed; WEFT_CHAOS=full: 100 runs x 500 entries, 60 named kills (each point 7 or
// 8 times) and 40 random kills that landed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
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
  processesWith,
  sqliteIntegrity,
  sqliteStoreViolations,
} from './invariants.js';
import { count, isFullTier, seededRng } from './tier.js';
import { chaosMarker, chaosPipeline, NAMED_POINTS } from './chaos-pipeline.js';
import { drainStream, executeKillPlan, medianOf } from './chaos-plan.js';

const available = await servicesAvailable('reliability: kill the incremental pipeline');
const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');

describe.skipIf(!available)('incremental pipeline killed at named points and at random', () => {
  const prefix = `weft-chaos-kill-${randomSuffix()}:`;
  const stream = `${prefix}interactions`;
  const namedKills = count(NAMED_POINTS.length, 60);
  const randomKills = count(1, 40);
  // Random kills that missed (the run finished first) are drawn again, up to this many times.
  const maxMisses = count(3, 20);
  const batch = count(100, 500);
  let redis: Redis;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let dir: string;
  let storePath: string;
  let pipelinePath: string;
  let hooksLog: string;
  let marker = '';

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    dir = mkdtempSync(join(tmpdir(), 'weft-chaos-kill-'));
    storePath = join(dir, 'weft.db');
    hooksLog = join(dir, 'hooks.log');
    pipelinePath = join(dir, 'incremental-chaos.yaml');
    writeFileSync(pipelinePath, chaosPipeline(hooksLog));
  });

  afterAll(async () => {
    // A failed run may have left a marked child: do not leak it past the test.
    if (marker !== '') for (const pid of processesWith(marker)) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    // end() resolves before its client's socket closes; the forced DROP DATABASE may then
    // terminate it, which the pool emits as an error: expected, not an uncaught exception.
    pool?.on('error', () => {});
    await pool?.end();
    await db?.drop();
    if (redis) {
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
  });

  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    NO_COLOR: '1',
    REDIS_URL,
    DATABASE_URL: db.url,
    WEFT_FAILPOINT: '',
    CHAOS_SLEEP: marker,
  });
  const weft = (args: string[]) => {
    const result = spawnSync(process.execPath, [WEFT_BIN, ...args, '--store', storePath], {
      cwd: ROOT,
      env: env(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const runArgs = () => ['run', pipelinePath, '-p', `batch_size=${batch}`, '-p', `stream=${stream}`];
  /** Read straight from the file: a weft command here would itself be the restart. */
  const query = <T>(sql: string, ...params: unknown[]): T[] => {
    if (!existsSync(storePath)) return [];
    const store = new Database(storePath, { readonly: true, fileMustExist: true });
    try {
      return store.prepare(sql).all(...params) as T[];
    } catch (error) {
      // Killed before the first migration committed: no table yet.
      if (/no such table/.test((error as Error).message)) return [];
      throw error;
    } finally {
      store.close();
    }
  };

  it(
    'loses nothing, applies nothing twice, leaves nothing stuck',
    async () => {
      const rng = seededRng('kill-incremental');
      marker = chaosMarker(rng);
      const emit = async (total: number) => {
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
      };
      await emit((namedKills + randomKills) * batch);

      const started = Date.now();
      const { runs, tally, killsAt, durations } = await executeKillPlan({
        rng,
        named: namedKills,
        random: randomKills,
        maxMisses,
        marker,
        store: {
          runCount: () => query<{ n: number }>(`SELECT count(*) AS n FROM runs`)[0]?.n ?? 0,
          latestRun: () =>
            query<{ id: string; state: string }>(
              `SELECT id, state FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1`,
            )[0],
          hasPendingHooks: (runId) =>
            query<{ n: number }>(
              `SELECT count(*) AS n FROM hooks WHERE run_id = ? AND state = 'pending'`,
              runId,
            )[0]!.n > 0,
          runDurationMs: (runId) => {
            const row = query<{ started: string; finished: string }>(
              `SELECT started_at AS started, finished_at AS finished FROM runs WHERE id = ?`,
              runId,
            )[0]!;
            return Date.parse(row.finished) - Date.parse(row.started);
          },
          // After every restart (a kill before the first run reached the store leaves no file yet).
          check: () => {
            if (existsSync(storePath)) expect(sqliteIntegrity(storePath)).toBe('ok');
          },
        },
        runArgs: [...runArgs(), '--store', storePath],
        env,
        resume: (runId) => weft(['resume', runId, '-q']),
        topUp: () => emit(batch),
      });
      const drains = await drainStream(redis, stream, () => weft([...runArgs(), '--format', 'json']));

      const produced = await redis.xrange(stream, '-', '+');
      const dead = await deadLetteredIds(redis, `${stream}:dead`);
      const violations = [
        ...(await graphViolations(pool, expectedGraph(produced, dead), stream)),
        ...(await groupViolations(redis, stream, 'weft')),
        ...sqliteStoreViolations(storePath),
        ...processesWith(marker).map((pid) => `orphan process ${pid} (sleep ${marker})`),
      ];
      // Every run that succeeded ran its on_success hook at least once.
      const hookRuns = existsSync(hooksLog) ? readFileSync(hooksLog, 'utf8').split('\n').filter(Boolean) : [];
      const succeeded = query<{ id: string }>(`SELECT id FROM runs WHERE state = 'succeeded'`);
      for (const run of succeeded)
        if (!hookRuns.includes(run.id)) violations.push(`run ${run.id}: on_success hook never ran`);
      const hookRepeats = hookRuns.length - new Set(hookRuns).size;
      console.log(
        `[reliability] kill-incremental: ${runs} killed runs x ${batch} entries, ${JSON.stringify(tally)}, ` +
          `${drains} drain run(s), ` +
          `kills per named point ${JSON.stringify(Object.fromEntries(killsAt))}, ` +
          `unkilled run ${medianOf(durations)} ms (median of ${durations.length}), ${dead.size} dead-lettered, ` +
          `${succeeded.length} runs succeeded, ${hookRepeats} hook repeat(s), ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(violations).toEqual([]);
      expect(dead.size).toBe(0);
      expect(tally.randomLanded).toBeGreaterThanOrEqual(randomKills);
      expect(Math.min(...killsAt.values()), 'kills at the least-hit named point').toBeGreaterThanOrEqual(
        count(1, 6),
      );
    },
    isFullTier ? 3_600_000 : 180_000,
  );
});
