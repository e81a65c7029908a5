#!/usr/bin/env node
// Scheduler figures. Build first (npm run build): this imports the compiled dist/.
//   node --expose-gc bench/scheduler.mjs [--pipelines 100] [--minutes 3] [--sim-minutes 120] [--skip-real]
//
// 1. Real clock: N pipelines on `* * * * *` against a fresh SQLite store, for M minutes of fires
//    (N x M runs). Lag = the run's recorded start (claimed by the engine) minus its schedule time,
//    so it includes timer wake-up, recordFire, the overlap check and createRun under a burst of
//    N fires in the same millisecond. Prints p50 / p99 / max.
// 2. Many fires, ManualClock: the same N pipelines through S simulated minutes (N x S runs) on a
//    SQLite store, with RSS and heap (after GC) sampled along the way: memory must not grow with
//    the number of fires handled (everything a fire leaves behind is in the store, not the process).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, systemClock } from '../dist/core/clock.js';
import { HandlerRegistry } from '../dist/handlers/registry.js';
import { createScheduler } from '../dist/schedule/scheduler.js';
import { createSqliteStore } from '../dist/store/sqlite/sqlite-store.js';

const argv = process.argv.slice(2);
const flag = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
const N = flag('--pipelines', 100);
const MINUTES = flag('--minutes', 3);
const SIM_MINUTES = flag('--sim-minutes', 120);
const SKIP_REAL = argv.includes('--skip-real');

const POSITION = { file: 'bench.yaml', line: 1, column: 1 };
const RETRY = { retries: 0, delayMs: 0, backoff: 'fixed', maxDelayMs: null, jitter: false };

function buildPlan(name) {
  const tasks = Object.create(null);
  tasks.work = {
    name: 'work',
    handler: 'noop',
    with: null,
    dependsOn: [],
    dependents: [],
    retry: RETRY,
    timeoutMs: null,
    when: null,
    triggerRule: 'all_success',
    continueOnError: false,
    onFailure: [],
    queue: 'default',
    description: null,
    stage: 0,
    position: POSITION,
  };
  return {
    version: 1,
    name,
    description: null,
    file: `${name}.yaml`,
    hash: name,
    schedule: {
      cron: '* * * * *',
      timezone: 'UTC',
      overlap: 'skip',
      catchup: 'none',
      catchupLimit: 100,
      startDeadlineMs: null,
      position: POSITION,
    },
    params: Object.create(null),
    concurrency: 16,
    retry: RETRY,
    timeoutMs: null,
    onFailure: [],
    onSuccess: [],
    onRecovery: [],
    secrets: [],
    resumeInterrupted: false,
    tasks,
    order: ['work'],
    stages: [['work']],
  };
}

const plans = Array.from({ length: N }, (_, i) => buildPlan(`p${String(i).padStart(3, '0')}`));
const registry = new HandlerRegistry([{ name: 'noop', run: () => null }]);
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const gc = () => globalThis.gc?.();
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function openStore() {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-sched-'));
  return { store: createSqliteStore(join(dir, 'weft.db')), dir };
}

async function realClockPhase() {
  const { store, dir } = openStore();
  const errors = [];
  const scheduler = createScheduler({
    store,
    registry,
    clock: systemClock,
    pipelines: () => plans,
    owner: `bench:${process.pid}`,
    onLog: (event) => event.type === 'scheduler:error' && errors.push(event.message),
  });
  gc();
  const rssBefore = process.memoryUsage().rss;
  await scheduler.start();
  const firstFire = Math.ceil(Date.now() / 60_000) * 60_000;
  const lastFire = firstFire + (MINUTES - 1) * 60_000;
  console.log(
    `real clock: ${N} pipelines on "* * * * *", ${MINUTES} minute(s) of fires, first at ${new Date(firstFire).toISOString()}`,
  );
  await new Promise((resolve) => setTimeout(resolve, lastFire - Date.now() + 5_000));
  await scheduler.stop({ graceMs: 10_000 });
  const runs = await store.listRuns({ limit: 100_000 });
  const lags = runs
    .filter((r) => r.scheduledFor && r.startedAt)
    .map((r) => Date.parse(r.startedAt) - Date.parse(r.scheduledFor))
    .sort((a, b) => a - b);
  gc();
  const rssAfter = process.memoryUsage().rss;
  const states = {};
  for (const r of runs) states[r.state] = (states[r.state] ?? 0) + 1;
  console.log(
    `  runs: ${runs.length} (expected ${N * MINUTES}) ${JSON.stringify(states)}; scheduler errors: ${errors.length}`,
  );
  console.log(
    `  lag schedule time -> run start: p50 ${percentile(lags, 50)} ms, p99 ${percentile(lags, 99)} ms, max ${lags.at(-1)} ms, min ${lags[0]} ms`,
  );
  console.log(`  RSS before ${mb(rssBefore)}, after ${mb(rssAfter)}`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

async function manyFiresPhase() {
  const { store, dir } = openStore();
  const clock = new ManualClock(Date.parse('2025-01-01T00:00:30Z'));
  const scheduler = createScheduler({
    store,
    registry,
    clock,
    pipelines: () => plans,
    owner: `bench:${process.pid}`,
    engine: { heartbeatMs: 3_600_000, cancelPollMs: 3_600_000 },
  });
  await scheduler.start();
  console.log(
    `many fires (ManualClock, SQLite): ${N} pipelines x ${SIM_MINUTES} simulated minutes = ${N * SIM_MINUTES} runs`,
  );
  const samples = [];
  const started = performance.now();
  for (let minute = 1; minute <= SIM_MINUTES; minute++) {
    await clock.advance(60_000);
    await scheduler.whenIdle();
    if (minute === 10 || minute % Math.max(1, Math.floor(SIM_MINUTES / 4)) === 0) {
      gc();
      const m = process.memoryUsage();
      samples.push({ fires: minute * N, rss: m.rss, heap: m.heapUsed });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await scheduler.stop({ graceMs: 1000 });
  const count = (await store.listRuns({ limit: 1_000_000 })).length;
  console.log(
    `  ${count} runs in ${seconds.toFixed(1)} s (${Math.round(count / seconds)} scheduled runs/s, SQLite)`,
  );
  for (const s of samples)
    console.log(`  after ${String(s.fires).padStart(6)} fires: RSS ${mb(s.rss)}, heap ${mb(s.heap)}`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

if (!globalThis.gc) console.log('(run with node --expose-gc for heap figures after GC)');
if (!SKIP_REAL) await realClockPhase();
await manyFiresPhase();
