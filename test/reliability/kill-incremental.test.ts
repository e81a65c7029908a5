// Item 1: the reference incremental pipeline, run by the real CLI and killed by SIGKILL at every
// named failure point and at random moments; each killed run is resumed or, when it was never
// created (killed before its run's COMMIT: `before-run-insert-commit` must leave no run, every
// other named point must leave one), run afresh. Afterwards the stores must show 0 interactions
// lost, 0 applied twice, nothing pending in the consumer group, every run terminal, no hook
// pending, no orphan child, and `PRAGMA integrity_check` ok after every restart. Default tier:
// each point once plus 2 random kills; WEFT_CHAOS=full: 100 runs x 500 entries, each point 7
// times, 44 random kills.
import { spawn, spawnSync } from 'node:child_process';
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
import { BEFORE_RUN_EXISTS, chaosPipeline, NAMED_POINTS } from './chaos-pipeline.js';

const available = await servicesAvailable('reliability: kill the incremental pipeline');
const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');

describe.skipIf(!available)('incremental pipeline killed at named points and at random', () => {
  const prefix = `weft-chaos-kill-${randomSuffix()}:`;
  const stream = `${prefix}interactions`;
  const runs = count(NAMED_POINTS.length + 2, 100);
  const batch = count(100, 500);
  let redis: Redis;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let dir: string;
  let storePath: string;
  let pipelinePath: string;
  let hooksLog: string;

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

  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    NO_COLOR: '1',
    REDIS_URL,
    DATABASE_URL: db.url,
    WEFT_FAILPOINT: '',
    CHAOS_SLEEP: '0',
    ...extra,
  });
  const weft = (args: string[]) => {
    const result = spawnSync(process.execPath, [WEFT_BIN, ...args, '--store', storePath], {
      cwd: ROOT,
      env: env(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const runArgs = ['run', '', '-p', `batch_size=${batch}`, '-p', `stream=${stream}`, '--format', 'json'];
  /** A `weft run` killed at a failure point, or by SIGKILL after `killAfterMs`. */
  const killedRun = (point: string | null, killAfterMs: number, sleepMarker: string) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) => {
      const args = [...runArgs];
      args[1] = pipelinePath;
      const child = spawn(process.execPath, [WEFT_BIN, ...args, '--store', storePath], {
        cwd: ROOT,
        env: env({ WEFT_FAILPOINT: point ?? '', CHAOS_SLEEP: sleepMarker }),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), point === null ? killAfterMs : 60_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal, stderr });
      });
    });
  const listRuns = () => {
    const listed = weft(['runs', '-n', '10000', '--format', 'json']);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout) as { id: string; state: string }[];
  };
  const pendingHooks = (runId: string) => {
    const db = new Database(storePath, { readonly: true });
    try {
      return (
        (
          db.prepare(`SELECT count(*) AS n FROM hooks WHERE run_id = ? AND state = 'pending'`).get(runId) as {
            n: number;
          }
        ).n > 0
      );
    } finally {
      db.close();
    }
  };

  it(
    'loses nothing, applies nothing twice, leaves nothing stuck',
    async () => {
      const rng = seededRng('kill-incremental');
      const emitted = await emitInteractions({
        redis,
        stream,
        count: runs * batch,
        people: 60,
        seed: rng.int(1_000_000),
        start: '2024-03-04',
        days: 14,
      });
      expect(emitted.emitted).toBe(runs * batch);
      const produced = await redis.xrange(stream, '-', '+');

      // Each named point at least 6 times in the full tier (60 kills), once in the default one; the rest random.
      const named = Array.from(
        { length: NAMED_POINTS.length * count(1, 7) },
        (_, i) => NAMED_POINTS[i % NAMED_POINTS.length]!,
      );
      const plan: (string | null)[] = [...named, ...Array.from({ length: runs - named.length }, () => null)];
      for (let i = plan.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [plan[i], plan[j]] = [plan[j]!, plan[i]!];
      }

      const marker = `${30 + rng.int(60)}.${String(100_000 + rng.int(900_000))}`;
      const tally = { killed: 0, finishedBeforeKill: 0, resumed: 0, fresh: 0, hookOnly: 0 };
      const killsAt = new Map<string, number>(NAMED_POINTS.map((p) => [p, 0]));
      const started = Date.now();
      let known = 0;
      for (const point of plan) {
        const killAfter = 150 + rng.int(1400);
        const outcome = await killedRun(point, killAfter, point === 'shell-child-started' ? marker : '0');
        if (outcome.signal === 'SIGKILL') {
          tally.killed += 1;
          if (point !== null) killsAt.set(point, killsAt.get(point)! + 1);
        } else {
          // A random delay longer than the run: it finished; nothing to recover.
          expect([point, outcome.code], outcome.stderr).toEqual([null, 0]);
          tally.finishedBeforeKill += 1;
        }
        // (A kill before the first run reached the store leaves no file yet.)
        if (existsSync(storePath)) expect(sqliteIntegrity(storePath)).toBe('ok');
        // The restart: the next command marks the dead run interrupted.
        const all = listRuns();
        const created = all.length > known;
        // Every named kill leaves its run behind but the one before the run's COMMIT, which must not.
        if (point !== null)
          expect(created, `${point}: was the run created?`).toBe(point !== BEFORE_RUN_EXISTS);
        if (!created) {
          // Killed before its run was committed: nothing to resume, run it afresh.
          const again = await killedRun(null, 120_000, '0');
          expect(again.code, again.stderr).toBe(0);
          tally.fresh += 1;
          known = listRuns().length;
          continue;
        }
        known = all.length;
        const latest = all[0]!;
        if (latest.state === 'interrupted') {
          const resumed = weft(['resume', latest.id, '-q']);
          expect(resumed.code, `${point ?? 'random'}: ${resumed.stderr}${resumed.stdout}`).toBe(0);
          tally.resumed += 1;
        } else if (latest.state === 'succeeded' && pendingHooks(latest.id)) {
          const resumed = weft(['resume', latest.id, '-q']);
          expect(resumed.code, resumed.stderr).toBe(0);
          tally.hookOnly += 1;
        } else {
          expect(latest.state, `${point ?? 'random'} left run ${latest.id}`).toBe('succeeded');
        }
        expect(sqliteIntegrity(storePath)).toBe('ok');
        if (point === 'shell-child-started') {
          // The killed run's `sleep <marker>` child: recovery must have stopped it.
          expect(processesWith(marker), 'orphan shell child after resume').toEqual([]);
        }
      }

      // Drain what the kills left unread (resumed fetches read fresh entries too).
      for (let i = 0; i < 50; i++) {
        const args = [...runArgs];
        args[1] = pipelinePath;
        const drained = weft(args);
        expect(drained.code, drained.stderr).toBe(0);
        const out = JSON.parse(drained.stdout) as {
          tasks: { task: string; output: { entries?: unknown[] } }[];
        };
        const fetched = out.tasks.find((t) => t.task === 'fetch_interactions')!.output.entries!.length;
        if (fetched === 0) break;
      }

      const dead = await deadLetteredIds(redis, `${stream}:dead`);
      const violations = [
        ...(await graphViolations(pool, expectedGraph(produced, dead), stream)),
        ...(await groupViolations(redis, stream, 'weft')),
        ...sqliteStoreViolations(storePath),
        ...processesWith(marker).map((pid) => `orphan process ${pid} (sleep ${marker})`),
      ];
      // Every run that succeeded ran its on_success hook at least once.
      const hookRuns = existsSync(hooksLog) ? readFileSync(hooksLog, 'utf8').split('\n').filter(Boolean) : [];
      const succeeded = listRuns().filter((r) => r.state === 'succeeded');
      for (const run of succeeded)
        if (!hookRuns.includes(run.id)) violations.push(`run ${run.id}: on_success hook never ran`);
      const hookRepeats = hookRuns.length - new Set(hookRuns).size;
      console.log(
        `[reliability] kill-incremental: ${plan.length} runs x ${batch} entries, ${JSON.stringify(tally)}, ` +
          `kills per named point ${JSON.stringify(Object.fromEntries(killsAt))}, ${dead.size} dead-lettered, ${succeeded.length} runs succeeded, ${hookRepeats} hook repeat(s), ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(violations).toEqual([]);
      expect(dead.size).toBe(0);
    },
    isFullTier ? 3_600_000 : 180_000,
  );
});
