#!/usr/bin/env node
// Retention: how fast `weft prune` deletes old history, and how long a writer working beside it
// (a scheduler recording a fire) waits. The store holds N finished runs of a 3-task pipeline, each
// with 5 log lines and a fire, all older than the cut-off, plus a day of recent ones that stay.
//   node bench/prune.mjs [--runs 50000] [--store sqlite|postgres]
// Without --store: both (PostgreSQL from $DATABASE_URL or the local server).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

const argv = process.argv.slice(2);
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const N = Number(arg('--runs', '50000'));

if (!argv.includes('--store')) {
  for (const store of ['sqlite', 'postgres']) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...argv, '--store', store], {
      stdio: 'inherit',
    });
    if (child.status !== 0) process.exit(child.status ?? 1);
  }
  process.exit(0);
}

const { createSqliteStore } = await import('../dist/store/sqlite/sqlite-store.js');
const { createPostgresStore } = await import('../dist/store/postgres/postgres-store.js');

const kind = arg('--store');
const DAY = 86_400_000;
const now = Date.now();
const iso = (ms) => new Date(ms).toISOString();
const { loadPipeline } = await import('../dist/project/load-pipeline.js');
const { createBuiltinRegistry } = await import('../dist/handlers/builtins.js');
const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-prune-'));
const pipelineFile = join(scratch, 'p.yaml');
writeFileSync(
  pipelineFile,
  'name: p\nschedule: "*/5 * * * *"\ntasks:\n  a: { handler: noop }\n  b: { handler: noop, depends_on: a }\n  c: { handler: noop, depends_on: b }\n',
);
const { plan } = await loadPipeline(pipelineFile, { registry: createBuiltinRegistry() });
if (!plan) throw new Error('the bench pipeline did not compile');

let store;
let dropDatabase = async () => undefined;
if (kind === 'sqlite') {
  store = createSqliteStore(join(scratch, 'weft.db'));
} else {
  const admin = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `weft_bench_prune_${process.pid}`;
  const run = async (sql) => {
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    await client.query(sql);
    await client.end();
  };
  await run(`CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  store = await createPostgresStore(url.toString());
  dropDatabase = () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

try {
  // N old runs of p (40 to 10 days ago; every 10th failed), 288 from the last day that stay, and
  // N/10 old runs of q, which has failed ever since: its failure streak stays (hooks count it).
  const total = N + 288 + N / 10;
  for (let i = 0; i < total; i += 500) {
    const batch = [];
    for (let j = i; j < Math.min(total, i + 500); j++) {
      const streak = j >= N + 288;
      const at =
        j < N
          ? now - 40 * DAY + (j * 30 * DAY) / N
          : streak
            ? now - 40 * DAY + ((j - N - 288) * 300 * DAY) / N
            : now - DAY + (j - N) * 300_000;
      const pipeline = streak ? 'q' : 'p';
      const state = streak || (j < N && j % 10 === 0) ? 'failed' : 'succeeded';
      const id = `r_${String(j).padStart(8, '0')}`;
      batch.push(
        (async () => {
          await store.createRun({
            id,
            pipeline,
            plan,
            params: {},
            trigger: 'schedule',
            scheduledFor: iso(at),
            state: 'queued',
            owner: null,
            createdAt: iso(at),
          });
          await store.appendLogs(
            Array.from({ length: 5 }, (_, k) => ({
              runId: id,
              task: 'a',
              attempt: 1,
              ts: iso(at),
              level: 'info',
              message: `line ${k} of run ${id}`,
            })),
          );
          await store.recordFire({
            pipeline,
            scheduledFor: iso(at),
            outcome: 'ran',
            reason: null,
            runId: id,
            recordedAt: iso(at),
          });
          await store.updateRun(id, { state, startedAt: iso(at), finishedAt: iso(at + 1000) });
        })(),
      );
    }
    await Promise.all(batch);
  }

  // A writer beside the prune: a fire of another pipeline every 10 ms, timed.
  const waits = [];
  let writing = true;
  let tick = 0;
  const writer = (async () => {
    while (writing) {
      const started = performance.now();
      await store.recordFire({
        pipeline: 'other',
        scheduledFor: iso(now + tick++ * 1000),
        outcome: 'ran',
        reason: null,
        runId: null,
        recordedAt: iso(now),
      });
      waits.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const started = performance.now();
  const report = await store.prune({ before: iso(now - 7 * DAY) });
  const seconds = (performance.now() - started) / 1000;
  writing = false;
  await writer;
  if (report.runs !== N) throw new Error(`pruned ${report.runs} runs, expected ${N}`);
  waits.sort((a, b) => a - b);
  const pct = (p) => waits[Math.min(waits.length - 1, Math.floor((p / 100) * waits.length))].toFixed(1);
  console.log(
    `prune ${kind}: ${N} runs (${3 * N} task runs, ${5 * N} log lines; ${N / 10} failed runs of a streak kept) and ${report.fires} fires in ${seconds.toFixed(
      1,
    )} s = ${Math.round(N / seconds)} runs/s; a writer beside it waited p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${pct(100)} ms (${waits.length} writes)`,
  );
} finally {
  await store.close();
  await dropDatabase();
  rmSync(scratch, { recursive: true, force: true });
}
